//! The `/status` document: the config in force (and the error of a rejected edit), and per
//! binding the last run and the next one. The loop writes it; the HTTP server serialises it.
//!
//! Times are wall-clock UTC (RFC 3339); the loop converts its monotonic deadlines when it
//! publishes them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::reconciler::{Holder, Mode};
use crate::config::Diagnostic;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done, nothing failed (and, in report mode, no drift).
    Success,
    /// Report mode: done, and the CRM differs from what the config asks for.
    Drift,
    /// Nothing done: another applier holds the binding's lease.
    Skipped,
    /// Done, but some records failed.
    Partial,
    /// The run failed as a whole.
    Failure,
    /// Cut short by shutdown.
    Cancelled,
}

impl Outcome {
    /// The label value used in metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Drift => "drift",
            Self::Skipped => "skipped",
            Self::Partial => "partial",
            Self::Failure => "failure",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the binding was reconciled by this run (its "last success").
    #[must_use]
    pub fn is_success(self) -> bool {
        matches!(self, Self::Success | Self::Drift)
    }

    /// Whether the binding counts as healthy after it (no retry backoff).
    #[must_use]
    pub fn is_ok(self) -> bool {
        matches!(self, Self::Success | Self::Drift | Self::Skipped)
    }
}

/// Why a run started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The first pass after start.
    Start,
    /// The config file changed.
    Config,
    /// The interval elapsed.
    Interval,
    /// A retry after a failure.
    Retry,
    /// The source data changed while the binding was backing off after a failure.
    NewData,
    /// SIGHUP or `POST /reconcile`.
    Manual,
}

/// The whole document.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Apply or report.
    pub mode: Mode,
    /// Shutdown has begun: no new runs start.
    pub shutting_down: bool,
    /// The config file.
    pub config: ConfigStatus,
    /// Every binding of the config in force, by name.
    pub bindings: Vec<BindingStatus>,
}

/// The config file: what is in force and whether the file on disk is valid.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigStatus {
    /// The file watched.
    pub path: String,
    /// Digest of the config in force (the last good one).
    pub digest: Option<String>,
    /// When the config in force was loaded.
    pub loaded_at: Option<DateTime<Utc>>,
    /// The file on disk is the config in force (no rejected edit pending).
    pub valid: bool,
    /// The rejected edit, until the file is fixed.
    pub error: Option<ConfigError>,
}

/// A rejected edit.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigError {
    /// When it was first seen.
    pub since: DateTime<Utc>,
    /// Compiler-style text: `file:line:column: error: message` lines.
    pub message: String,
    /// Each finding with its line and column (empty when the file could not be read).
    pub diagnostics: Vec<Diagnostic>,
}

/// One binding.
#[derive(Debug, Clone, Serialize)]
pub struct BindingStatus {
    /// Its name.
    pub name: String,
    /// `suspend: true` in the config.
    pub suspended: bool,
    /// A run is in progress.
    pub running: bool,
    /// Consecutive failures on the same input (0 when healthy).
    pub consecutive_failures: u32,
    /// When the next run is planned (`None`: suspended, or shutting down).
    pub next_run: Option<DateTime<Utc>>,
    /// The last successful run's end.
    pub last_success: Option<DateTime<Utc>>,
    /// The last run (the current one while running).
    pub last_run: Option<RunStatus>,
    /// Runs skipped because another process held the binding's lease.
    pub lease_skips: u64,
    /// The other process's lease that made the last run skip (`None` once a run got it).
    pub held_by: Option<Holder>,
}

/// One run.
#[derive(Debug, Clone, Serialize)]
pub struct RunStatus {
    /// Why it started.
    pub trigger: Trigger,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End (`None` while running).
    pub finished_at: Option<DateTime<Utc>>,
    /// Length in seconds (`None` while running).
    pub duration_seconds: Option<f64>,
    /// How it ended (`None` while running).
    pub outcome: Option<Outcome>,
    /// Changes by kind: applied (apply mode) or pending (report mode).
    pub changes: BTreeMap<String, u64>,
    /// Records that failed.
    pub failures: u64,
    /// Report mode: drift was found.
    pub drift: bool,
    /// The error of a failed run.
    pub error: Option<String>,
    /// Why a skipped run did nothing (who holds the lease).
    pub skipped: Option<String>,
}

impl RunStatus {
    /// A run that just started.
    #[must_use]
    pub fn started(trigger: Trigger, at: DateTime<Utc>) -> Self {
        Self {
            trigger,
            started_at: at,
            finished_at: None,
            duration_seconds: None,
            outcome: None,
            changes: BTreeMap::new(),
            failures: 0,
            drift: false,
            error: None,
            skipped: None,
        }
    }
}

impl Status {
    /// An empty document for `path` in `mode`.
    #[must_use]
    pub fn new(path: String, mode: Mode) -> Self {
        Self {
            mode,
            shutting_down: false,
            config: ConfigStatus {
                path,
                digest: None,
                loaded_at: None,
                valid: false,
                error: None,
            },
            bindings: Vec::new(),
        }
    }

    /// The binding named `name`.
    pub fn binding_mut(&mut self, name: &str) -> Option<&mut BindingStatus> {
        self.bindings.iter_mut().find(|b| b.name == name)
    }

    /// Whether a binding of that name exists.
    #[must_use]
    pub fn has_binding(&self, name: &str) -> bool {
        self.bindings.iter().any(|b| b.name == name)
    }
}
