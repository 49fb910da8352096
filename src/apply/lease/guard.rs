//! A lease held for a run: the heartbeat that renews it, the "lost" signal, and the write gate.
//!
//! - The heartbeat renews every third of the term with a conditional write (`If-Match` on the
//!   version it last wrote or read) of the expiry alone. A version conflict (the run itself
//!   wrote the record, e.g. its status) is read again: while the record still holds our lease
//!   the renewal is retried on the new version; another lease there means it was taken over or
//!   force-unlocked, and the lease is lost.
//! - Renewals skip the client's parallelism limiter ([`crate::http::gate::priority`]).
//! - A renewal that fails (the CRM cannot be reached) is retried until the lease's local
//!   deadline; reaching it without a renewal loses the lease. Each renewal is itself bounded by
//!   that deadline.
//! - Lost is final: [`Signal::is_lost`] (which also compares the deadline with the monotonic
//!   clock, so a process resumed after `SIGSTOP` knows before its heartbeat runs), the
//!   cancellation token, and the write gate all say so from then on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Held, deadline, expiry};
use crate::dataverse;
use crate::dataverse::records::Outcome;
use crate::dataverse::schema::audience as cols;
use crate::dataverse::tables::{AudienceStatus, Lease, ToolTables};
use crate::http::gate::Gate;

/// Renewals that meet a version conflict read the record again this many times in a row.
const MAX_REREADS: u32 = 5;

/// A lease held by a run, renewed in the background until [`Guard::release`] (or drop).
#[derive(Debug)]
pub struct Guard {
    held: Held,
    state: Arc<State>,
    heartbeat: tokio::task::JoinHandle<()>,
}

/// The "lost" signal of a [`Guard`], cheap to clone and check.
#[derive(Debug, Clone)]
pub struct Signal {
    state: Arc<State>,
}

#[derive(Debug)]
struct State {
    tables: ToolTables,
    binding: String,
    lease: Lease,
    record: uuid::Uuid,
    term: Duration,
    /// The record's version as we last wrote or read it; held while writing the record.
    etag: tokio::sync::Mutex<Option<String>>,
    deadline: Mutex<Instant>,
    lost: CancellationToken,
    reason: Mutex<Option<String>>,
    renewals: AtomicU64,
}

/// How a release ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// The lease was cleared and the final status written.
    Released,
    /// The lease was no longer ours (force-unlock, or taken over after it lapsed): nothing
    /// was written.
    NotOurs,
    /// The lease was lost during the run (the reason): nothing was written.
    Lost(String),
}

impl Guard {
    /// Hold `held` for a run: start renewing it every third of `term`.
    #[must_use]
    pub fn hold(tables: ToolTables, binding: &str, held: Held, term: Duration) -> Self {
        let term = term.max(super::MIN_TERM);
        let state = Arc::new(State {
            tables,
            binding: binding.to_owned(),
            lease: held.lease.clone(),
            record: held.record.id,
            term,
            etag: tokio::sync::Mutex::new(held.etag.clone()),
            // Taken just now: the expiry was computed a moment before the write was sent.
            deadline: Mutex::new(deadline(Instant::now(), held.lease.expires, term)),
            lost: CancellationToken::new(),
            reason: Mutex::new(None),
            renewals: AtomicU64::new(0),
        });
        let heartbeat = tokio::spawn(heartbeat(Arc::clone(&state)));
        super::stats().held.fetch_add(1, Ordering::Relaxed);
        Self {
            held,
            state,
            heartbeat,
        }
    }

    /// The lease as taken (its expiry is the first one).
    #[must_use]
    pub fn held(&self) -> &Held {
        &self.held
    }

    /// The lost signal.
    #[must_use]
    pub fn signal(&self) -> Signal {
        Signal {
            state: Arc::clone(&self.state),
        }
    }

    /// The write gate to run the writes under ([`crate::http::gate::guarded`]): closed once
    /// the lease is lost.
    #[must_use]
    pub fn gate(&self) -> Gate {
        let signal = self.signal();
        Gate::new(move || signal.reason())
    }

    /// The record's version as last known.
    pub async fn etag(&self) -> Option<String> {
        self.state.etag.lock().await.clone()
    }

    /// Write the status columns while the lease is held (with `If-Match`).
    ///
    /// # Errors
    /// The lease is lost, or the CRM refused.
    pub async fn set_status(&self, status: &AudienceStatus) -> Result<(), dataverse::Error> {
        let mut etag = self.state.etag.lock().await;
        if let Some(reason) = self.signal().reason() {
            return Err(dataverse::Error::Request { message: reason });
        }
        if let Some(new) = super::set_status(
            &self.state.tables,
            self.state.record,
            status,
            etag.as_deref(),
        )
        .await?
        {
            *etag = Some(new);
        }
        Ok(())
    }

    /// Stop renewing and release the lease with the final `status`, unless it was lost.
    ///
    /// # Errors
    /// The CRM refused.
    pub async fn release(self, status: &AudienceStatus) -> Result<Released, dataverse::Error> {
        self.heartbeat.abort();
        let etag = self.state.etag.lock().await.clone();
        if let Some(reason) = self.signal().reason() {
            return Ok(Released::Lost(reason));
        }
        let released = super::release(
            &self.state.tables,
            self.state.record,
            &self.state.lease.id,
            status,
            etag.as_deref(),
        )
        .await?;
        Ok(if released {
            Released::Released
        } else {
            Released::NotOurs
        })
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.heartbeat.abort();
        super::stats().held.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Signal {
    /// Why the lease is lost, or `None` while it is held.
    #[must_use]
    pub fn reason(&self) -> Option<String> {
        if !self.state.lost.is_cancelled() && Instant::now() >= self.state.deadline() {
            self.state.lose(format!(
                "could not renew it before it ran out ({}s lease)",
                self.state.term.as_secs()
            ));
        }
        self.state.lost.is_cancelled().then(|| self.state.message())
    }

    /// Whether the lease is lost.
    #[must_use]
    pub fn is_lost(&self) -> bool {
        self.reason().is_some()
    }

    /// Cancelled when the lease is lost (found by the heartbeat, at the latest at the deadline).
    #[must_use]
    pub fn token(&self) -> CancellationToken {
        self.state.lost.clone()
    }

    /// Successful renewals so far.
    #[must_use]
    pub fn renewals(&self) -> u64 {
        self.state.renewals.load(Ordering::Relaxed)
    }
}

impl State {
    fn deadline(&self) -> Instant {
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lose(&self, why: String) {
        let mut reason = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
        if reason.is_none() {
            super::stats().lost.fetch_add(1, Ordering::Relaxed);
            tracing::error!(binding = %self.binding, lease = %self.lease.id, reason = %why, "lost the lease; stopping all writes");
            *reason = Some(why);
        }
        self.lost.cancel();
    }

    fn message(&self) -> String {
        let why = self
            .reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_default();
        format!(
            "lost the lease `{}` of binding `{}`: {why}; stopped writing",
            self.lease.id, self.binding
        )
    }
}

/// What one renewal found.
enum Renewal {
    Renewed,
    /// The record holds another lease, or none.
    Gone(String),
    /// Could not be written now; try again.
    Failed(String),
}

async fn heartbeat(state: Arc<State>) {
    let interval = state.term / 3;
    let mut next = Instant::now() + interval;
    loop {
        let deadline = state.deadline();
        tokio::time::sleep_until(next.min(deadline)).await;
        if Instant::now() >= state.deadline() {
            state.lose(format!(
                "could not renew it before it ran out ({}s lease)",
                state.term.as_secs()
            ));
            return;
        }
        let renewal =
            tokio::time::timeout_at(state.deadline(), crate::http::gate::priority(renew(&state)))
                .await;
        match renewal {
            Ok(Renewal::Renewed) => {
                state.renewals.fetch_add(1, Ordering::Relaxed);
                super::stats().renewals.fetch_add(1, Ordering::Relaxed);
                next = Instant::now() + interval;
            }
            Ok(Renewal::Gone(why)) => {
                state.lose(why);
                return;
            }
            Ok(Renewal::Failed(why)) => {
                tracing::warn!(binding = %state.binding, lease = %state.lease.id, error = %why, "could not renew the lease; trying again");
                next = Instant::now() + (interval / 3).max(Duration::from_millis(200));
            }
            Err(_) => {
                state.lose("the renewal did not finish before the lease ran out".to_owned());
                return;
            }
        }
    }
}

async fn renew(state: &State) -> Renewal {
    let mut etag = state.etag.lock().await;
    let set = state.tables.schema.audience().entity_set.clone();
    for _ in 0..MAX_REREADS {
        let sent = Instant::now();
        let expires = expiry(state.term);
        let body = json!({
            cols::LEASE_EXPIRES: expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        let Some(version) = etag.clone() else {
            // Not known (a write answered without it): read it, and check the lease is ours.
            match reread(state).await {
                Ok(version) => *etag = version,
                Err(renewal) => return renewal,
            }
            continue;
        };
        match state
            .tables
            .client
            .update(&set, state.record, &body, Some(&version))
            .await
        {
            Ok(Outcome::Written { etag: new }) => {
                *etag = new;
                *state
                    .deadline
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = deadline(sent, expires, state.term);
                tracing::debug!(binding = %state.binding, lease = %state.lease.id, "lease renewed");
                return Renewal::Renewed;
            }
            Ok(Outcome::Stale) => match reread(state).await {
                Ok(version) => *etag = version,
                Err(renewal) => return renewal,
            },
            Err(err) => return Renewal::Failed(crate::output::error_chain(&err)),
        }
    }
    Renewal::Failed("the Audience record kept changing".to_owned())
}

/// The record's version, read again, while it still holds our lease.
async fn reread(state: &State) -> Result<Option<String>, Renewal> {
    match state.tables.audience(state.record).await {
        Ok(Some(record)) => match record.lease {
            Some(l) if l.id == state.lease.id => Ok(record.etag),
            Some(other) => Err(Renewal::Gone(format!(
                "`{}` took it over (lease `{}`)",
                other.owner, other.id
            ))),
            None => Err(Renewal::Gone("it was released (force-unlock)".to_owned())),
        },
        Ok(None) => Err(Renewal::Gone("the Audience record is gone".to_owned())),
        Err(err) => Err(Renewal::Failed(crate::output::error_chain(&err))),
    }
}
