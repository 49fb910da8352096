//! Fault injection, one setting for both emulators: slow answers (`latency_ms`), a deterministic
//! storm of 429s (`next_429`), deterministic bursts of any status or dropped connections
//! (`bursts`), then random shares of 429 / 500 / 503 / drops from a seeded generator, so a run can
//! be repeated. Each emulator turns a drawn [`Fault`] into its own service's answer (Mailchimp's
//! problem+json, Dataverse's OData error with `Retry-After`).
//!
//! Settings are read from seeds and from `PUT /_sandbox/{mailchimp|dataverse}/faults`; the
//! `GET` shows what is left of the storm and the bursts.

use std::collections::VecDeque;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Fault injection settings. All shares are between 0 and 1.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Slow answers, in milliseconds. Mailchimp: every answer's response time (the emulator's
    /// own work counts toward it, as the real service's does); Dataverse: a delay before every
    /// answer, on top of the server time it charges.
    pub latency_ms: u64,
    /// Share of requests answered 429 Too Many Requests.
    pub rate_429: f64,
    /// Share of requests answered 500 Internal Server Error.
    pub rate_500: f64,
    /// Share of requests answered 503 Service Unavailable.
    pub rate_503: f64,
    /// Share of requests whose connection is dropped without an answer.
    pub drop_rate: f64,
    /// The next N requests get a 429 (a deterministic storm), before the bursts and shares.
    pub next_429: u64,
    /// Deterministic bursts, consumed in order before the shares apply: the next `count`
    /// requests get `status` (0 = drop the connection).
    pub bursts: Vec<Burst>,
    /// `Retry-After` of injected 429s, in seconds, where the service sends one (Dataverse).
    pub retry_after_secs: u64,
    /// Seed of the random choices, so a run can be repeated.
    pub seed: u64,
}

/// A run of identical faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Burst {
    /// The status to answer (429, 500, 503, …), or 0 to drop the connection.
    pub status: u16,
    /// How many requests in a row.
    pub count: u32,
}

/// What to do with one request instead of answering it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status (the emulator writes its service's error body).
    Status(StatusCode),
    /// Drop the connection without an answer.
    Drop,
}

/// The settings with their random state and what is left of the storm and the bursts.
#[derive(Debug)]
pub struct FaultState {
    faults: Faults,
    rng: StdRng,
    bursts: VecDeque<Burst>,
}

impl Default for FaultState {
    fn default() -> Self {
        Self::new(Faults::default())
    }
}

impl FaultState {
    /// Start drawing from these settings.
    #[must_use]
    pub fn new(faults: Faults) -> Self {
        Self {
            rng: StdRng::seed_from_u64(faults.seed),
            bursts: faults
                .bursts
                .iter()
                .copied()
                .filter(|b| b.count > 0)
                .collect(),
            faults,
        }
    }

    /// The settings, with what is left of the storm and the bursts.
    #[must_use]
    pub fn faults(&self) -> Faults {
        let mut faults = self.faults.clone();
        faults.bursts = self.bursts.iter().copied().collect();
        faults
    }

    /// The delay before every answer.
    #[must_use]
    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.faults.latency_ms)
    }

    /// `Retry-After` of an injected 429, in seconds (at least 1).
    #[must_use]
    pub fn retry_after_secs(&self) -> u64 {
        self.faults.retry_after_secs.max(1)
    }

    /// The fault for the next request, if any.
    pub fn draw(&mut self) -> Option<Fault> {
        if self.faults.next_429 > 0 {
            self.faults.next_429 -= 1;
            return Some(Fault::Status(StatusCode::TOO_MANY_REQUESTS));
        }
        if let Some(burst) = self.bursts.front_mut() {
            let status = burst.status;
            burst.count -= 1;
            if burst.count == 0 {
                self.bursts.pop_front();
            }
            return Some(match StatusCode::from_u16(status) {
                Ok(code) if status != 0 => Fault::Status(code),
                _ => Fault::Drop,
            });
        }
        let f = &self.faults;
        if f.drop_rate + f.rate_429 + f.rate_500 + f.rate_503 <= 0.0 {
            return None;
        }
        let roll: f64 = self.rng.random();
        let mut edge = f.drop_rate;
        if roll < edge {
            return Some(Fault::Drop);
        }
        for (rate, status) in [
            (f.rate_429, StatusCode::TOO_MANY_REQUESTS),
            (f.rate_500, StatusCode::INTERNAL_SERVER_ERROR),
            (f.rate_503, StatusCode::SERVICE_UNAVAILABLE),
        ] {
            edge += rate;
            if roll < edge {
                return Some(Fault::Status(status));
            }
        }
        None
    }
}

/// A response whose body fails at once: the server aborts the connection without an answer.
#[must_use]
pub fn dropped_connection() -> Response {
    let stream = futures::stream::once(async {
        Err::<bytes::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "the sandbox dropped the connection (fault injection)",
        ))
    });
    (StatusCode::OK, Body::from_stream(stream)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_storm_then_the_bursts_come_first_and_in_order_then_shares_apply() {
        let mut state = FaultState::new(Faults {
            next_429: 1,
            bursts: vec![
                Burst {
                    status: 503,
                    count: 2,
                },
                Burst {
                    status: 0,
                    count: 1,
                },
            ],
            ..Faults::default()
        });
        let got: Vec<Option<Fault>> = (0..5).map(|_| state.draw()).collect();
        assert_eq!(
            got,
            vec![
                Some(Fault::Status(StatusCode::TOO_MANY_REQUESTS)),
                Some(Fault::Status(StatusCode::SERVICE_UNAVAILABLE)),
                Some(Fault::Status(StatusCode::SERVICE_UNAVAILABLE)),
                Some(Fault::Drop),
                None
            ]
        );
        assert!(state.faults().bursts.is_empty());
        assert_eq!(state.faults().next_429, 0);
    }

    #[test]
    fn a_storm_of_injected_429s_is_exactly_n_long() {
        let mut state = FaultState::new(Faults {
            next_429: 2,
            ..Faults::default()
        });
        let throttle = Some(Fault::Status(StatusCode::TOO_MANY_REQUESTS));
        assert_eq!(state.draw(), throttle);
        assert_eq!(state.draw(), throttle);
        assert_eq!(state.draw(), None);
        assert_eq!(state.retry_after_secs(), 1);
    }

    #[test]
    fn shares_are_roughly_respected_and_repeatable() {
        let faults = Faults {
            rate_503: 0.25,
            seed: 9,
            ..Faults::default()
        };
        let run = |faults: &Faults| {
            let mut state = FaultState::new(faults.clone());
            (0..4000).filter(|_| state.draw().is_some()).count()
        };
        let failed = run(&faults);
        assert!((800..1200).contains(&failed), "{failed}");
        assert_eq!(failed, run(&faults));
    }
}
