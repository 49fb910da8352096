//! What happens to every API request before its handler: counting per route, the per-key limit of
//! 10 simultaneous connections (the 11th gets 429, as Mailchimp answers), authentication, the
//! `X-Trigger-Error` header, churn (the changes due, [`super::churn`]), and injected faults (drawn by [`crate::faults`], answered here as
//! Mailchimp's problem+json).
//!
//! # Invariants
//! - A request holds its concurrency slot from before authentication until its handler returns
//!   (injected latency included), and releases it even when the client goes away mid-request.
//! - Counters only grow until reset; `max_in_flight` is the largest number of simultaneous
//!   requests any one key had.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{MatchedPath, Request, State as AxumState};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::State;
use super::errors::Problem;
use crate::faults::{Fault, dropped_connection};

/// Mailchimp's limit of simultaneous connections per user.
pub const MAX_CONNECTIONS: usize = 10;

/// Request counters and concurrency bookkeeping.
#[derive(Debug, Default)]
pub(super) struct Traffic {
    counts: Mutex<BTreeMap<String, u64>>,
    in_flight: Mutex<HashMap<String, usize>>,
    max_in_flight: AtomicUsize,
    refused: AtomicUsize,
}

/// A snapshot of the counters, as `GET /_sandbox/mailchimp/requests` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// Requests per route, keyed `METHOD /3.0/path/{param}`.
    pub routes: BTreeMap<String, u64>,
    /// All API requests.
    pub total: u64,
    /// The most simultaneous requests one key had.
    pub max_in_flight: usize,
    /// Requests refused for exceeding 10 simultaneous connections.
    pub refused_concurrency: usize,
}

impl Traffic {
    pub(super) fn snapshot(&self) -> RequestCounts {
        let routes = self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        RequestCounts {
            total: routes.values().sum(),
            routes,
            max_in_flight: self.max_in_flight.load(Ordering::SeqCst),
            refused_concurrency: self.refused.load(Ordering::SeqCst),
        }
    }

    pub(super) fn reset(&self) {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.max_in_flight.store(0, Ordering::SeqCst);
        self.refused.store(0, Ordering::SeqCst);
    }

    fn count(&self, route: String) {
        *self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(route)
            .or_default() += 1;
    }

    /// Take a slot for `key`, or `None` when it already has [`MAX_CONNECTIONS`].
    fn enter<'a>(&'a self, key: &str) -> Option<Slot<'a>> {
        let mut map = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = map.entry(key.to_owned()).or_default();
        if *n >= MAX_CONNECTIONS {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return None;
        }
        *n += 1;
        self.max_in_flight.fetch_max(*n, Ordering::SeqCst);
        Some(Slot {
            traffic: self,
            key: key.to_owned(),
        })
    }
}

struct Slot<'a> {
    traffic: &'a Traffic,
    key: String,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut map = self
            .traffic
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.key) {
            *n = n.saturating_sub(1);
        }
    }
}

/// The API key a request presents: the password of HTTP Basic, or a Bearer token.
fn presented_key(request: &Request) -> Option<String> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (_, password) = text.split_once(':')?;
        Some(password.to_owned())
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(rest.trim().to_owned())
    } else {
        None
    }
}

/// The middleware in front of every `/3.0` route.
pub(super) async fn guard(
    AxumState(state): AxumState<Arc<State>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    state.traffic.count(format!("{} {route}", request.method()));
    let key = presented_key(&request);
    let Some(_slot) = state.traffic.enter(key.as_deref().unwrap_or("")) else {
        return Problem::too_many_connections().into_response();
    };
    match key {
        None => {
            return Problem::triggered("APIKeyMissing")
                .unwrap_or_else(Problem::not_found)
                .into_response();
        }
        Some(key) if key != state.api_key => {
            return Problem::triggered("APIKeyInvalid")
                .unwrap_or_else(Problem::not_found)
                .into_response();
        }
        Some(_) => {}
    }
    if let Some(name) = request
        .headers()
        .get("x-trigger-error")
        .and_then(|v| v.to_str().ok())
    {
        let problem = Problem::triggered(name.trim()).unwrap_or_else(|| {
            Problem::bad_request(format!(
                "`{name}` is not a known error name for X-Trigger-Error."
            ))
        });
        return problem.into_response();
    }
    state.churn_tick();
    let (latency, fault) = {
        let mut faults = state.faults.lock().unwrap_or_else(PoisonError::into_inner);
        (faults.latency(), faults.draw())
    };
    // The injected latency is the service's response time: the emulator's own work counts
    // toward it, so an answer comes `latency` after its request, however long the emulator took
    // (at most that), and requests in flight together overlap as they do on the real service.
    let due = tokio::time::Instant::now() + latency;
    let response = match fault {
        None => next.run(request).await,
        Some(Fault::Status(status)) => Problem::for_status(status).into_response(),
        Some(Fault::Drop) => dropped_connection(),
    };
    tokio::time::sleep_until(due).await;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eleventh_simultaneous_request_of_a_key_is_refused() {
        let traffic = Traffic::default();
        let slots: Vec<_> = (0..MAX_CONNECTIONS).map(|_| traffic.enter("k")).collect();
        assert!(slots.iter().all(Option::is_some));
        assert!(traffic.enter("k").is_none());
        assert!(traffic.enter("other").is_some());
        drop(slots);
        assert!(traffic.enter("k").is_some());
        assert_eq!(traffic.snapshot().max_in_flight, MAX_CONNECTIONS);
    }
}
