//! The seam between the watch loop and the work it schedules: [`Reconciler`].
//!
//! The loop decides *when* a binding is reconciled; a `Reconciler` decides *how* (observe both
//! sides, plan, and in [`Mode::Apply`] apply under the binding's CRM lease). The loop never looks
//! inside a run: it only reads the [`RunOutcome`] or [`RunError`] it returns.
//!
//! # Contract for implementations
//! - `reconcile` must be idempotent and tolerate being cancelled at any `.await` (kube-rs'
//!   finalizer contract): a run cut by `cancel` must leave nothing half-owned. In particular a
//!   lease it took is released before it returns, and it returns promptly (within seconds) once
//!   `cancel` fires.
//! - In [`Mode::Report`] it must not write anything: it plans and reports drift.
//! - `source_digest` identifies the data read from the source (Mailchimp) for this binding, so
//!   that the loop can tell "the same failing input again" from "new data": give it on errors too
//!   whenever the source was read before the failure.
//! - When another applier holds the binding's lease, return `Ok` with
//!   [`RunOutcome::skipped`] and [`RunOutcome::held_by`] set rather than an error (with two
//!   replicas that is routine): the loop logs it at warn with the holder, counts it, and looks
//!   again just after the holder's lease expires.
//! - `probe` answers quickly (the loop bounds it with a timeout) and does not write.
//! - Nothing here may carry a secret: messages end up in logs and in `/status`.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::Loaded;

/// What a pass does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Plan and apply.
    Apply,
    /// Only plan; report drift, write nothing.
    Report,
}

impl Mode {
    /// The name used in `/status` and in metric labels.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "apply",
            Self::Report => "report",
        }
    }
}

impl From<Mode> for crate::sync::Mode {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::Apply => Self::Apply,
            Mode::Report => Self::Plan,
        }
    }
}

/// Requests one run sent to one service, and how many of them were answered `429`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ApiCalls {
    /// Requests sent, retries included (`HttpStats::requests`).
    pub requests: u64,
    /// Responses with status 429 (`HttpStats::throttled`).
    pub throttled: u64,
}

/// What a finished run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunOutcome {
    /// Changes by kind (`create_contact`, `add_list_member`, `link_tag`, …): applied ones in
    /// [`Mode::Apply`], planned (pending) ones in [`Mode::Report`].
    pub changes: BTreeMap<String, u64>,
    /// Records whose write failed (each reported by apply with its reason); more than zero makes
    /// the run a partial failure, retried like a failed one.
    pub failures: u64,
    /// Report mode: the plan was not empty.
    pub drift: bool,
    /// A digest of the source data read (see the module doc); `None` when unknown.
    pub source_digest: Option<String>,
    /// API calls by service (`mailchimp`, `dataverse`).
    pub api: BTreeMap<String, ApiCalls>,
    /// Set when the run did nothing because another applier (a second replica, a pipeline)
    /// holds the binding's lease: who holds it and until when. Not a failure: the binding runs
    /// again at its next interval (the jitter spreads replicas apart).
    pub skipped: Option<String>,
    /// With `skipped`: the lease that made the run skip (who holds it, until when).
    pub held_by: Option<Holder>,
}

/// Another process's lease on a binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    /// Who holds it (host, process, run).
    pub owner: String,
    /// The lease id (for `force-unlock`).
    pub lease: String,
    /// When it lapses unless renewed.
    pub expires: chrono::DateTime<chrono::Utc>,
}

impl From<crate::dataverse::tables::Lease> for Holder {
    fn from(lease: crate::dataverse::tables::Lease) -> Self {
        Self {
            owner: lease.owner,
            lease: lease.id,
            expires: lease.expires,
        }
    }
}

/// Why a run failed as a whole.
#[derive(Debug, Clone, Default, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct RunError {
    /// What went wrong, with its causes (`format!("{err:#}")`), no secrets.
    pub message: String,
    /// A digest of the source data read before the failure, when it was read.
    pub source_digest: Option<String>,
    /// API calls made before the failure, by service.
    pub api: BTreeMap<String, ApiCalls>,
}

impl RunError {
    /// An error with only a message.
    #[must_use]
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            ..Self::default()
        }
    }

    /// The same error, with the digest of the source data it failed on.
    #[must_use]
    pub fn with_source_digest(mut self, digest: impl Into<String>) -> Self {
        self.source_digest = Some(digest.into());
        self
    }
}

/// What the loop calls to do the work. See the module doc for the contract.
///
/// Implemented with boxed futures (no `async_trait`), so it is object safe:
/// the loop holds an `Arc<dyn Reconciler>`.
pub trait Reconciler: Send + Sync + 'static {
    /// Reconcile one binding of `config` (by name) in `mode`. `cancel` fires when the process
    /// shuts down and the grace period is over: return promptly, releasing any lease.
    fn reconcile(
        &self,
        config: Arc<Loaded>,
        binding: String,
        mode: Mode,
        cancel: CancellationToken,
    ) -> BoxFuture<'_, Result<RunOutcome, RunError>>;

    /// Check that both APIs are reachable with the config's credentials (for `/readyz`).
    /// `Err` carries a one-line reason, no secrets.
    fn probe(&self, config: Arc<Loaded>) -> BoxFuture<'_, Result<(), String>>;

    /// Optional: a cheap digest of the binding's source data, comparable with
    /// [`RunOutcome::source_digest`] / [`RunError::source_digest`] (for instance from the
    /// audience's member count and newest `last_changed`, one small request). While a binding
    /// backs off after failures, the loop asks every `retry_interval`; a digest different from
    /// the failing one makes the binding run at once (new data is tried at once). `None` means
    /// "not supported" (the default): the loop then stops asking until the next failure.
    fn source_digest(&self, config: Arc<Loaded>, binding: String) -> BoxFuture<'_, Option<String>> {
        let _ = (config, binding);
        Box::pin(async { None })
    }
}
