//! Service protection and request counters of the Dataverse emulator, with the fault injection
//! of [`crate::faults`] drawn in front of them.
//!
//! # How the real service counts (the sources this emulator follows)
//! - Three facets, evaluated **per user, per web server**: the number of requests (6000) and the
//!   combined execution time (1,200,000 ms) within a 5-minute (300 s) sliding window, and the
//!   number of concurrent requests (52 "or higher"). Exceeding one answers `429` with
//!   `Retry-After: <seconds>` and `0x80072322` "Number of requests exceeded the limit of 6000 over
//!   time window of 300 seconds.", `0x80072321` "Combined execution time of incoming requests
//!   exceeded limit of 1,200,000 milliseconds over time window of 300 seconds. ...", or
//!   `0x80072326` "Number of concurrent requests exceeded the limit of 52.". The concurrency
//!   limit trips immediately; the window limits trip once exceeded.
//!   (MicrosoftDocs/powerapps-docs @ 05cfff53, `powerapps-docs/developer/data-platform/api-limits.md`,
//!   sections "How Service Protection API Limits are enforced" and "Service Protection API Limit
//!   Errors returned".)
//! - **A `$batch` is one request** for the number-of-requests limit: "Combine the selected
//!   operations into a batch. A batch can contain up to 1000 operations and will avoid the number
//!   of requests limit. However, you will need to be prepared for the execution time limit." and
//!   "You could send fewer requests by bundling them in batch operations. The combined execution
//!   time limit will counter this." (same file, "Number of requests" and "How ... enforced").
//! - **A bulk action (`CreateMultiple`, `UpdateMultiple`, `UpsertMultiple`) is one request**:
//!   "Each bulk operation message counts as single request that accrues to the limit of 6,000
//!   requests per user, per server, during the five-minute window." and it is "more likely to hit
//!   the execution time limit". (MicrosoftDocs/powerapps-docs @ 0298617b,
//!   `powerapps-docs/developer/data-platform/bulk-operations.md`, FAQ "How are API limits applied?")
//! - Entitlement (Power Platform request) limits are separate and count every data change: each
//!   operation inside a `$batch` and each item of `Targets` (same two files). The emulator counts
//!   these as `operations`, and does not enforce a daily entitlement.
//! - `x-ms-dop-hint` gives the recommended degree of parallelism; `x-ms-ratelimit-burst-remaining-xrm-requests`
//!   and `x-ms-ratelimit-time-remaining-xrm-requests` are informational
//!   (`send-parallel-requests.md`, `api-limits.md`).
//!
//! So: one HTTP request to `/api/data/v9.2/...` = one counted request, whatever it carries.
//!
//! # Server time per operation (the numbers chosen, and why)
//! Execution time is the real time a request took here plus a server cost per data operation
//! (`op_cost_ms`, default **10 ms**: a row written, a list membership added or removed, a link
//! made, a row read by id). Microsoft publishes no per-operation figure; the number sits inside
//! what it does publish: its BulkOperations sample prints "Created 100 records in 1 seconds" at
//! `RecommendedDegreesOfParallelism:4` (PowerApps-Samples `BulkOperations/*/README.md`: at most
//! 4 s of server time for 100 rows, i.e. ≤ 40 ms a row), and "Optimize performance for bulk
//! operations" gives about 50,000 records an hour for single requests and about 2,000,000 an
//! hour for `ExecuteMultiple`/batches (PD `optimize-performance-create-update.md`: ≈ 70 ms and
//! ≈ 2 ms of wall time a record, the latter spread over many servers). 10 ms a row is a plain
//! standard-table write without plug-ins. So a first sync of 20,000 members (a create and a list
//! add each, ≈ 40,000 operations) costs ≈ 400 s of server time: a third of one window.
//!
//! How the cost is spent (`sleep_server_time`):
//! - `false` (the library default, what tests get): the cost is **charged** to the window
//!   without waiting, so a test sees the limit trip exactly as the service counts it, at no
//!   wall-clock cost;
//! - `true` (what the `sandbox` and `demo` commands run with): the answer is also **delayed**
//!   by the cost, so a client sees realistic latency and the window fills at the rate real
//!   server time allows. With the `x-ms-dop-hint` of 4, 4 requests in flight spend 4 s of
//!   server time a second: exactly the 1,200,000 ms per 300 s the window allows, so a client
//!   that follows the hint is never refused for execution time and one that runs 52 requests
//!   at once is.
//!
//! Refused (429) requests are not counted against the window. The window is kept per sandbox
//! (one application user, one web server); a real environment with several web servers has that
//! much more headroom.
//!
//! # What this means for the tag links (DESIGN's open question)
//! Counted the way the service counts, N:N `$ref` associations sent 1000 to a `$batch` cost the
//! same number of counted requests as `CreateMultiple` of 1000 rows of a Tag Membership table:
//! one per 1000. Measured here (`cargo run --release --example bench_dataverse -- 3000`):
//! `CreateMultiple` 3 counted / 3000 operations; `$ref` in `$batch` 3 counted / 3000 operations;
//! one `$ref` per request 3000 counted. For 3,000,000 links both batched forms need 3000 counted
//! requests (half of one 5-minute window); single requests would need 500 windows (about 42 h).
//! So the request-count limit does not favour a membership table; what remains different is
//! execution time (a bulk action on a standard table runs as one optimized transaction, a batch
//! runs its operations one by one; the emulator models this only through `op_cost_ms`) and the
//! entitlement count (equal: one per link either way). The `counters().batch_parts` map shows
//! which operations each batch carried.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

pub use crate::faults::Faults;
use crate::faults::{Fault, FaultState};

/// Service-protection settings (defaults are the documented ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Counted requests allowed per window.
    pub requests_per_window: u64,
    /// The sliding window, in seconds.
    pub window_secs: u64,
    /// Combined execution time allowed per window, in milliseconds.
    pub execution_ms_per_window: u64,
    /// Concurrent requests allowed.
    pub max_concurrent: u64,
    /// Server execution cost per data operation, in milliseconds (see the module doc).
    pub op_cost_ms: u64,
    /// Also delay each answer by its operations' cost (realistic latency), instead of only
    /// charging it to the window.
    pub sleep_server_time: bool,
    /// `x-ms-dop-hint` sent on every answer (default 4, what Microsoft's BulkOperations
    /// sample prints as `RecommendedDegreesOfParallelism` for its environment).
    pub dop_hint: u64,
    /// A fixed `Retry-After` (seconds) for limit refusals; computed from the window when absent.
    pub retry_after_secs: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            requests_per_window: 6000,
            window_secs: 300,
            execution_ms_per_window: 1_200_000,
            max_concurrent: 52,
            op_cost_ms: 10,
            sleep_server_time: false,
            dop_hint: 4,
            retry_after_secs: None,
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `error.code`.
    pub code: &'static str,
    /// `error.message`.
    pub message: String,
    /// `Retry-After` seconds.
    pub retry_after: u64,
}

/// Counters, readable at `/_sandbox/dataverse/requests`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counters {
    /// Every HTTP request to the Web API or token endpoint, refused ones included.
    pub http_requests: u64,
    /// Requests counted by service protection (admitted Web API requests; a `$batch` is one).
    pub counted_requests: u64,
    /// Data operations (entitlement view): each operation of a `$batch`, each bulk target,
    /// each single write or read.
    pub operations: u64,
    /// 429 answers (service protection and injected).
    pub throttled: u64,
    /// Token requests.
    pub token_requests: u64,
    /// Counted requests per route (`METHOD path-with-{id}`).
    pub routes: BTreeMap<String, u64>,
    /// Operations run inside `$batch` requests, per route (not counted requests).
    pub batch_parts: BTreeMap<String, u64>,
}

/// The protection state: window events, concurrency, counters, faults.
#[derive(Debug, Default)]
pub struct Protection {
    /// Settings.
    pub limits: Limits,
    /// Faults.
    pub faults: FaultState,
    /// Counters.
    pub counters: Counters,
    requests: VecDeque<Instant>,
    execution: VecDeque<(Instant, u64)>,
    execution_sum: u64,
    concurrent: u64,
    pressure: u32,
}

impl Protection {
    /// With these settings.
    #[must_use]
    pub fn new(limits: Limits, faults: Faults) -> Self {
        Self {
            limits,
            faults: FaultState::new(faults),
            ..Self::default()
        }
    }

    fn prune(&mut self, now: Instant) {
        let window = Duration::from_secs(self.limits.window_secs);
        while self
            .requests
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            self.requests.pop_front();
        }
        while let Some((t, ms)) = self.execution.front().copied() {
            if now.duration_since(t) >= window {
                self.execution.pop_front();
                self.execution_sum = self.execution_sum.saturating_sub(ms);
            } else {
                break;
            }
        }
    }

    fn retry_after(&self, oldest: Option<Instant>, now: Instant) -> u64 {
        if let Some(fixed) = self.limits.retry_after_secs {
            return fixed;
        }
        let window = Duration::from_secs(self.limits.window_secs);
        let wait = oldest.map_or(Duration::from_secs(1), |t| {
            (t + window).saturating_duration_since(now)
        });
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        // Continued pressure lengthens Retry-After (api-limits.md "The Retry-After duration").
        secs.max(1) + (u64::from(self.pressure) / 10).min(self.limits.window_secs)
    }

    /// Admit a counted request, or refuse it.
    ///
    /// # Errors
    /// A limit is exceeded.
    pub fn admit(&mut self, route: &str) -> Result<(), Refusal> {
        let now = Instant::now();
        self.prune(now);
        let refusal = if self.concurrent >= self.limits.max_concurrent {
            Some(Refusal {
                code: "0x80072326",
                message: format!(
                    "Number of concurrent requests exceeded the limit of {}.",
                    self.limits.max_concurrent
                ),
                retry_after: self.limits.retry_after_secs.unwrap_or(1),
            })
        } else if self.requests.len() as u64 >= self.limits.requests_per_window {
            Some(Refusal {
                code: "0x80072322",
                message: format!(
                    "Number of requests exceeded the limit of {} over time window of {} seconds.",
                    self.limits.requests_per_window, self.limits.window_secs
                ),
                retry_after: self.retry_after(self.requests.front().copied(), now),
            })
        } else if self.execution_sum >= self.limits.execution_ms_per_window {
            Some(Refusal {
                code: "0x80072321",
                message: format!(
                    "Combined execution time of incoming requests exceeded limit of {} milliseconds over time window of {} seconds. Decrease number of concurrent requests or reduce the duration of requests and try again later.",
                    self.limits.execution_ms_per_window, self.limits.window_secs
                ),
                retry_after: self.retry_after(self.execution.front().map(|(t, _)| *t), now),
            })
        } else {
            None
        };
        if let Some(refusal) = refusal {
            self.pressure = self.pressure.saturating_add(1);
            self.counters.throttled += 1;
            return Err(refusal);
        }
        self.pressure = 0;
        self.concurrent += 1;
        self.requests.push_back(now);
        self.counters.counted_requests += 1;
        *self.counters.routes.entry(route.to_owned()).or_default() += 1;
        Ok(())
    }

    /// How long to delay an answer of `operations` data operations (zero unless
    /// `sleep_server_time`).
    #[must_use]
    pub fn delay_for(&self, operations: u64) -> Duration {
        if self.limits.sleep_server_time {
            Duration::from_millis(operations.saturating_mul(self.limits.op_cost_ms))
        } else {
            Duration::ZERO
        }
    }

    /// A counted request finished after `elapsed`, having done `operations` data operations.
    /// The operations' cost is charged on top of `elapsed` unless it was slept (then `elapsed`
    /// holds it already).
    pub fn finish(&mut self, elapsed: Duration, operations: u64) {
        self.concurrent = self.concurrent.saturating_sub(1);
        let charged = if self.limits.sleep_server_time {
            0
        } else {
            operations.saturating_mul(self.limits.op_cost_ms)
        };
        let ms = u64::try_from(elapsed.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(charged);
        self.execution.push_back((Instant::now(), ms));
        self.execution_sum = self.execution_sum.saturating_add(ms);
        self.counters.operations += operations;
    }

    /// Note the routes of the parts a `$batch` ran.
    pub fn count_batch_parts(&mut self, routes: &[String]) {
        for route in routes {
            *self.counters.batch_parts.entry(route.clone()).or_default() += 1;
        }
    }

    /// Requests left in the window (`x-ms-ratelimit-burst-remaining-xrm-requests`).
    #[must_use]
    pub fn remaining_requests(&self) -> u64 {
        self.limits
            .requests_per_window
            .saturating_sub(self.requests.len() as u64)
    }

    /// Execution time left in the window, ms.
    #[must_use]
    pub fn remaining_execution_ms(&self) -> u64 {
        self.limits
            .execution_ms_per_window
            .saturating_sub(self.execution_sum)
    }

    /// Draw the fault (if any) for one data request; an injected 429 counts as throttled.
    pub fn draw_fault(&mut self) -> Option<Fault> {
        let fault = self.faults.draw();
        if fault == Some(Fault::Status(StatusCode::TOO_MANY_REQUESTS)) {
            self.counters.throttled += 1;
        }
        fault
    }

    /// Zero the counters (the window and settings stay).
    pub fn reset_counters(&mut self) {
        self.counters = Counters::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_refuses_after_the_limit_with_the_documented_code() {
        let mut p = Protection::new(
            Limits {
                requests_per_window: 2,
                window_secs: 60,
                ..Limits::default()
            },
            Faults::default(),
        );
        p.admit("GET contacts").unwrap();
        p.finish(Duration::ZERO, 1);
        p.admit("GET contacts").unwrap();
        p.finish(Duration::ZERO, 1);
        let refusal = p.admit("GET contacts").unwrap_err();
        assert_eq!(refusal.code, "0x80072322");
        assert!(refusal.retry_after >= 1 && refusal.retry_after <= 61);
        assert_eq!(p.counters.counted_requests, 2);
        assert_eq!(p.counters.throttled, 1);
    }

    #[test]
    fn concurrency_and_execution_time_trip() {
        let mut p = Protection::new(
            Limits {
                max_concurrent: 1,
                execution_ms_per_window: 100,
                op_cost_ms: 1,
                ..Limits::default()
            },
            Faults::default(),
        );
        p.admit("a").unwrap();
        assert_eq!(p.admit("a").unwrap_err().code, "0x80072326");
        p.finish(Duration::ZERO, 1000);
        assert_eq!(p.admit("a").unwrap_err().code, "0x80072321");
    }

    #[test]
    fn server_time_is_charged_once_whether_slept_or_not() {
        let mut charged = Protection::new(Limits::default(), Faults::default());
        assert_eq!(charged.delay_for(100), Duration::ZERO, "tests do not wait");
        charged.admit("a").unwrap();
        charged.finish(Duration::ZERO, 100);
        assert_eq!(charged.remaining_execution_ms(), 1_200_000 - 1_000);
        let mut slept = Protection::new(
            Limits {
                sleep_server_time: true,
                ..Limits::default()
            },
            Faults::default(),
        );
        assert_eq!(slept.delay_for(100), Duration::from_millis(1_000));
        slept.admit("a").unwrap();
        slept.finish(Duration::from_millis(1_000), 100);
        assert_eq!(slept.remaining_execution_ms(), 1_200_000 - 1_000);
    }
}
