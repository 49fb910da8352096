//! The reconcile loop: one task that owns every binding's schedule and starts runs.
//!
//! # Expected flow
//! 1. Every binding that is not suspended is due at start.
//! 2. The loop starts due bindings (at most `max_parallel` at once, each binding at most once at
//!    a time) as tasks, and waits for whichever comes first: a run ending, a config change, a
//!    command (SIGHUP, `POST /reconcile`), the next deadline, or shutdown.
//! 3. A run's end schedules the binding's next run ([`Schedule`]): an interval later after a
//!    success, a backoff later after a failure. A config change or a manual request during a
//!    run makes it run again right after. While a binding backs off, the loop asks the
//!    reconciler every `retry_interval` for a cheap source digest
//!    ([`Reconciler::source_digest`](super::Reconciler::source_digest)); new data runs it at
//!    once, the same data waits for the backoff.
//! 4. A config change re-reads the file. Unchanged digest: nothing to do (an error shown for a
//!    previous invalid edit is cleared). Valid and new: it goes into force and every binding is
//!    due at once. Invalid: the last good config stays in force; the error (with
//!    `file:line:column`) is logged and shown in `/status` until the file is fixed.
//! 5. Shutdown: no new run starts; running ones get `shutdown_grace` to finish, then their
//!    cancellation token fires and they get `cancel_grace` to return; then they are abandoned.
//!
//! # Guarantees
//! - One binding's failure (or panic) does not stop the others.
//! - The loop returns within `shutdown_grace + cancel_grace` of shutdown (plus scheduling noise).

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt as _;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::metrics::RunRecord;
use super::reconciler::{Mode, RunError, RunOutcome};
use super::schedule::{Input, Policy, Schedule};
use super::shared::{Command, Shared, lock};
use super::status::{BindingStatus, Outcome, RunStatus, Trigger};
use crate::config::Loaded;

mod reload;

/// The loop's settings (taken from [`super::Options`]).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The config file.
    pub path: PathBuf,
    /// Apply or report.
    pub mode: Mode,
    /// Timing.
    pub policy: Policy,
    /// Run every binding once, then return.
    pub once: bool,
    /// Runs at once.
    pub max_parallel: usize,
    /// Wait for running passes at shutdown.
    pub shutdown_grace: Duration,
    /// Wait for cancelled passes to return.
    pub cancel_grace: Duration,
}

/// One binding as the loop tracks it.
#[derive(Debug)]
struct Slot {
    schedule: Schedule,
    suspended: bool,
    running: bool,
    /// Why it must run as soon as it can (set by config changes and manual requests).
    pending: Option<Trigger>,
    /// Gone from the config while running: drop it when the run ends.
    removed: bool,
    /// While backing off: when to ask the reconciler for a cheap source digest.
    next_check: Option<Instant>,
    /// A source-digest check is in flight.
    checking: bool,
}

/// What a run task hands back.
struct Finished {
    binding: String,
    trigger: Trigger,
    started: Instant,
    config_digest: String,
    result: Result<RunOutcome, RunError>,
}

/// What a source-digest check hands back.
struct Checked {
    binding: String,
    config_digest: String,
    source_digest: Option<String>,
}

/// The loop.
pub struct Loop {
    shared: Arc<Shared>,
    settings: Settings,
    config: Arc<Loaded>,
    slots: BTreeMap<String, Slot>,
    runs: JoinSet<Finished>,
    checks: JoinSet<Checked>,
    commands: mpsc::Receiver<Command>,
    changes: Option<mpsc::Receiver<()>>,
    shutdown: CancellationToken,
    cut: CancellationToken,
    any_failed: bool,
}

fn unit() -> f64 {
    rand::random::<f64>()
}

/// Wall-clock time of a monotonic deadline.
fn wall(at: Instant) -> DateTime<Utc> {
    let now = Instant::now();
    let offset = if at >= now {
        chrono::Duration::from_std(at - now).unwrap_or(chrono::Duration::MAX)
    } else {
        -chrono::Duration::from_std(now - at).unwrap_or(chrono::Duration::zero())
    };
    Utc::now() + offset
}

async fn recv_change(changes: &mut Option<mpsc::Receiver<()>>) -> Option<()> {
    match changes {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Loop {
    /// A loop over `config`, whose bindings are all due now.
    #[allow(clippy::too_many_arguments)] // wiring, called once
    pub fn new(
        shared: Arc<Shared>,
        settings: Settings,
        config: Arc<Loaded>,
        commands: mpsc::Receiver<Command>,
        changes: Option<mpsc::Receiver<()>>,
        shutdown: CancellationToken,
        cut: CancellationToken,
    ) -> Self {
        let mut this = Self {
            shared,
            settings,
            config,
            slots: BTreeMap::new(),
            runs: JoinSet::new(),
            checks: JoinSet::new(),
            commands,
            changes,
            shutdown,
            cut,
            any_failed: false,
        };
        this.sync_slots(Trigger::Start);
        this
    }

    /// Make the slots and the status follow the bindings of the config in force; every binding
    /// that is not suspended becomes due (`trigger` says why).
    fn sync_slots(&mut self, trigger: Trigger) {
        let now = Instant::now();
        let names: Vec<String> = self
            .config
            .bindings
            .iter()
            .map(|b| b.name.clone())
            .collect();
        for binding in &self.config.bindings {
            let slot = self.slots.entry(binding.name.clone()).or_insert(Slot {
                schedule: Schedule::idle(),
                suspended: binding.suspend,
                running: false,
                pending: None,
                removed: false,
                next_check: None,
                checking: false,
            });
            slot.suspended = binding.suspend;
            slot.removed = false;
            if binding.suspend {
                slot.pending = None;
                slot.schedule.clear();
            } else {
                slot.pending = Some(trigger);
                if !slot.running {
                    slot.schedule.run_now(now);
                }
            }
        }
        let gone: Vec<String> = self
            .slots
            .keys()
            .filter(|name| !names.contains(name))
            .cloned()
            .collect();
        for name in gone {
            let running = self.slots.get(&name).is_some_and(|s| s.running);
            if running {
                if let Some(slot) = self.slots.get_mut(&name) {
                    slot.removed = true;
                    slot.pending = None;
                }
            } else {
                self.slots.remove(&name);
            }
        }
        self.shared.metrics.retain_bindings(&names);
        let mut status = lock(&self.shared.status);
        let mut previous: BTreeMap<String, BindingStatus> = status
            .bindings
            .drain(..)
            .map(|b| (b.name.clone(), b))
            .collect();
        for binding in &self.config.bindings {
            let mut entry = previous.remove(&binding.name).unwrap_or(BindingStatus {
                name: binding.name.clone(),
                suspended: false,
                running: false,
                consecutive_failures: 0,
                next_run: None,
                last_success: None,
                last_run: None,
                lease_skips: 0,
                held_by: None,
            });
            entry.suspended = binding.suspend;
            entry.next_run = self
                .slots
                .get(&binding.name)
                .and_then(|s| s.schedule.next())
                .map(wall);
            status.bindings.push(entry);
        }
    }

    fn running_count(&self) -> usize {
        self.slots.values().filter(|s| s.running).count()
    }

    fn capacity(&self) -> bool {
        self.running_count() < self.settings.max_parallel.max(1)
    }

    /// The earliest deadline of a binding that could start (none while at capacity).
    fn next_deadline(&self) -> Option<Instant> {
        let checks = self
            .slots
            .values()
            .filter(|s| !s.running && !s.removed && !s.checking)
            .filter_map(|s| s.next_check);
        if !self.capacity() {
            return checks.min();
        }
        self.slots
            .values()
            .filter(|s| !s.running && !s.removed)
            .filter_map(|s| s.schedule.next())
            .chain(checks)
            .min()
    }

    /// Ask for the source digest of backing-off bindings whose check is due.
    fn start_checks(&mut self) {
        let now = Instant::now();
        for (name, slot) in &mut self.slots {
            let due = slot.next_check.is_some_and(|at| at <= now);
            if !due || slot.running || slot.removed || slot.checking || slot.suspended {
                continue;
            }
            slot.next_check = None;
            slot.checking = true;
            let reconciler = self.shared.reconciler.clone();
            let config = self.config.clone();
            let binding = name.clone();
            self.checks.spawn(async move {
                let config_digest = config.digest.clone();
                let call = reconciler.source_digest(config, binding.clone());
                let source_digest = AssertUnwindSafe(call).catch_unwind().await.ok().flatten();
                Checked {
                    binding,
                    config_digest,
                    source_digest,
                }
            });
        }
    }

    /// A source-digest check came back: run at once on new data, else ask again later.
    fn checked(&mut self, joined: Result<Checked, JoinError>) {
        let Ok(checked) = joined else {
            return;
        };
        let now = Instant::now();
        let retry = self.settings.policy.retry_interval;
        let Some(slot) = self.slots.get_mut(&checked.binding) else {
            return;
        };
        slot.checking = false;
        if slot.running || slot.removed || slot.suspended || slot.schedule.failures() == 0 {
            return;
        }
        let Some(source_digest) = checked.source_digest else {
            // Not supported (or not known now): rely on the backoff until the next failure.
            return;
        };
        let input = Input {
            config_digest: checked.config_digest,
            source_digest: Some(source_digest),
        };
        if slot.schedule.is_new_input(&input) {
            tracing::info!(binding = %checked.binding, "source data changed during the backoff: retrying now");
            slot.pending = Some(Trigger::NewData);
            slot.schedule.run_now(now);
            self.publish_next_runs();
        } else if slot.schedule.next().is_some_and(|next| next > now + retry) {
            slot.next_check = Some(now + retry);
        }
    }

    fn start_due(&mut self) {
        let now = Instant::now();
        let mut due: Vec<(Instant, String)> = self
            .slots
            .iter()
            .filter(|(_, s)| !s.running && !s.removed && !s.suspended && s.schedule.is_due(now))
            .filter_map(|(name, s)| s.schedule.next().map(|at| (at, name.clone())))
            .collect();
        due.sort();
        for (_, name) in due {
            if !self.capacity() {
                break;
            }
            self.start(&name);
        }
    }

    fn start(&mut self, name: &str) {
        let Some(slot) = self.slots.get_mut(name) else {
            return;
        };
        let trigger = slot
            .pending
            .take()
            .unwrap_or(if slot.schedule.failures() > 0 {
                Trigger::Retry
            } else {
                Trigger::Interval
            });
        slot.running = true;
        slot.next_check = None;
        slot.schedule.clear();
        let started_at = Utc::now();
        if let Some(entry) = lock(&self.shared.status).binding_mut(name) {
            entry.running = true;
            entry.next_run = None;
            entry.last_run = Some(RunStatus::started(trigger, started_at));
        }
        self.shared.metrics.set_running(name, true);

        let reconciler = self.shared.reconciler.clone();
        let config = self.config.clone();
        let config_digest = config.digest.clone();
        let binding = name.to_owned();
        let mode = self.settings.mode;
        let cancel = self.cut.child_token();
        let span = tracing::info_span!("reconcile", binding = %binding, trigger = ?trigger, mode = mode.as_str());
        tracing::info!(parent: &span, "run started");
        self.runs.spawn(
            async move {
                let started = Instant::now();
                let call = reconciler.reconcile(config, binding.clone(), mode, cancel);
                let result = match AssertUnwindSafe(call).catch_unwind().await {
                    Ok(result) => result,
                    Err(_) => Err(RunError::new("the reconciler panicked")),
                };
                Finished {
                    binding,
                    trigger,
                    started,
                    config_digest,
                    result,
                }
            }
            .instrument(span),
        );
    }

    fn classify(&self, result: &Result<RunOutcome, RunError>) -> Outcome {
        match result {
            Ok(outcome) if outcome.skipped.is_some() => Outcome::Skipped,
            Ok(outcome) if outcome.failures > 0 => Outcome::Partial,
            Ok(outcome) if self.settings.mode == Mode::Report && outcome.drift => Outcome::Drift,
            Ok(_) => Outcome::Success,
            Err(_) if self.cut.is_cancelled() => Outcome::Cancelled,
            Err(_) => Outcome::Failure,
        }
    }

    fn finish(&mut self, joined: Result<Finished, JoinError>) {
        let finished = match joined {
            Ok(finished) => finished,
            Err(err) => {
                // Panics are caught inside the task; this is an abort at the end of shutdown.
                tracing::error!(error = %err, "a run task ended abnormally");
                return;
            }
        };
        let now = Instant::now();
        let finished_at = Utc::now();
        let duration = now.saturating_duration_since(finished.started);
        let outcome = self.classify(&finished.result);
        let held_by = finished
            .result
            .as_ref()
            .ok()
            .and_then(|o| o.held_by.clone());
        // `--once`: a binding left unreconciled because the lease stayed held past
        // `--lock-timeout` fails the run, so that a CronJob shows it.
        if matches!(outcome, Outcome::Partial | Outcome::Failure)
            || (self.settings.once && held_by.is_some())
        {
            self.any_failed = true;
        }
        let name = finished.binding.clone();
        let Some(slot) = self.slots.get_mut(&name) else {
            return;
        };
        slot.running = false;
        let removed = slot.removed;
        let source_digest = match &finished.result {
            Ok(o) => o.source_digest.clone(),
            Err(e) => e.source_digest.clone(),
        };
        let wait = if removed || self.settings.once || self.shutdown.is_cancelled() {
            slot.schedule.clear();
            None
        } else if let Some(holder) = &held_by {
            let margin = Duration::from_millis(500);
            let until = now
                + (holder.expires - Utc::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                + margin;
            Some(
                slot.schedule
                    .held(now, until, &self.settings.policy, unit()),
            )
        } else if outcome.is_ok() {
            Some(slot.schedule.succeeded(now, &self.settings.policy, unit()))
        } else if outcome == Outcome::Cancelled {
            slot.schedule.clear();
            None
        } else {
            let retry = self.settings.policy.retry_interval;
            if source_digest.is_some() {
                slot.next_check = Some(now + retry);
            }
            let input = Input {
                config_digest: finished.config_digest.clone(),
                source_digest,
            };
            let wait = slot
                .schedule
                .failed(now, &self.settings.policy, input, unit());
            if wait <= retry {
                slot.next_check = None;
            }
            Some(wait)
        };
        if slot.pending.is_some() && !slot.suspended && !removed && !self.shutdown.is_cancelled() {
            slot.schedule.run_now(now);
        }
        if slot.suspended {
            slot.schedule.clear();
        }
        let consecutive_failures = slot.schedule.failures();
        let next = slot.schedule.next();
        if removed {
            self.slots.remove(&name);
        }

        let empty_changes = BTreeMap::new();
        let (changes, failures, drift, api, error) = match &finished.result {
            Ok(o) => (
                &o.changes,
                o.failures,
                (self.settings.mode == Mode::Report).then_some(o.drift),
                &o.api,
                None,
            ),
            Err(e) => (&empty_changes, 0, None, &e.api, Some(e.message.clone())),
        };
        match (&error, outcome) {
            (Some(message), _) => tracing::warn!(
                binding = %name,
                outcome = outcome.as_str(),
                error = %message,
                retry_in_s = wait.map(|w| w.as_secs_f64()),
                consecutive_failures,
                "run failed"
            ),
            (None, Outcome::Partial) => tracing::warn!(
                binding = %name,
                failures,
                changes = ?changes,
                retry_in_s = wait.map(|w| w.as_secs_f64()),
                "run finished with failed records"
            ),
            (None, Outcome::Skipped) => match &held_by {
                Some(holder) => tracing::warn!(
                    binding = %name,
                    holder = %holder.owner,
                    lease = %holder.lease,
                    expires = %holder.expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    retry_in_s = wait.map(|w| w.as_secs_f64()),
                    "run skipped: another process holds the binding's lease"
                ),
                None => tracing::info!(
                    binding = %name,
                    reason = finished.result.as_ref().ok().and_then(|o| o.skipped.as_deref()),
                    "run skipped"
                ),
            },
            (None, _) => tracing::info!(
                binding = %name,
                outcome = outcome.as_str(),
                changes = ?changes,
                duration_s = duration.as_secs_f64(),
                "run finished"
            ),
        }
        self.shared.metrics.record_run(&RunRecord {
            binding: &name,
            outcome,
            duration,
            changes,
            failures,
            drift,
            api,
            finished_unix: finished_at.timestamp_millis() as f64 / 1000.0,
            consecutive_failures,
            lease_held: held_by.is_some(),
        });
        if removed {
            return;
        }
        if let Some(entry) = lock(&self.shared.status).binding_mut(&name) {
            entry.running = false;
            entry.consecutive_failures = consecutive_failures;
            entry.next_run = next.map(wall);
            if held_by.is_some() {
                entry.lease_skips += 1;
            }
            entry.held_by = held_by;
            if outcome.is_success() {
                entry.last_success = Some(finished_at);
            }
            let mut run = entry
                .last_run
                .take()
                .unwrap_or_else(|| RunStatus::started(finished.trigger, finished_at));
            run.finished_at = Some(finished_at);
            run.duration_seconds = Some(duration.as_secs_f64());
            run.outcome = Some(outcome);
            run.changes = changes.clone();
            run.failures = failures;
            run.drift = drift.unwrap_or(false);
            run.error = error;
            run.skipped = finished
                .result
                .as_ref()
                .ok()
                .and_then(|o| o.skipped.clone());
            entry.last_run = Some(run);
        }
    }

    fn command(&mut self, command: Command) {
        if self.settings.once {
            return;
        }
        let Command::Reconcile { binding } = command;
        let now = Instant::now();
        for (name, slot) in &mut self.slots {
            if slot.suspended || slot.removed || binding.as_ref().is_some_and(|b| b != name) {
                continue;
            }
            slot.pending = Some(Trigger::Manual);
            if !slot.running {
                slot.schedule.run_now(now);
            }
        }
        self.publish_next_runs();
    }

    fn publish_next_runs(&self) {
        let mut status = lock(&self.shared.status);
        for entry in &mut status.bindings {
            entry.next_run = self
                .slots
                .get(&entry.name)
                .filter(|s| !s.running)
                .and_then(|s| s.schedule.next())
                .map(wall);
        }
    }

    fn done_once(&self) -> bool {
        self.settings.once
            && self.runs.is_empty()
            && self.slots.values().all(|s| s.schedule.next().is_none())
    }

    /// Run until shutdown (or, with `once`, until every binding ran once).
    pub async fn run(mut self) -> super::Outcome {
        if self.settings.once && self.slots.values().all(|s| s.suspended) {
            tracing::warn!("every binding is suspended: nothing to do");
        }
        loop {
            if self.shutdown.is_cancelled() {
                break;
            }
            self.start_due();
            if !self.settings.once {
                self.start_checks();
            }
            if self.done_once() {
                break;
            }
            let deadline = self.next_deadline();
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break,
                Some(joined) = self.runs.join_next() => self.finish(joined),
                Some(joined) = self.checks.join_next() => self.checked(joined),
                Some(command) = self.commands.recv() => self.command(command),
                Some(()) = recv_change(&mut self.changes) => self.reload(),
                () = sleep_until(deadline) => {}
            }
        }
        self.drain().await;
        if self.any_failed && self.settings.once {
            super::Outcome::Failure
        } else {
            super::Outcome::Success
        }
    }

    /// Shutdown: let running passes finish within the grace period, then cut them.
    async fn drain(&mut self) {
        {
            let mut status = lock(&self.shared.status);
            status.shutting_down = !self.settings.once || self.shutdown.is_cancelled();
            for entry in &mut status.bindings {
                entry.next_run = None;
            }
        }
        self.checks.abort_all();
        for slot in self.slots.values_mut() {
            slot.schedule.clear();
            slot.pending = None;
            slot.next_check = None;
        }
        if self.runs.is_empty() {
            return;
        }
        tracing::info!(
            runs = self.runs.len(),
            grace_s = self.settings.shutdown_grace.as_secs_f64(),
            "waiting for running passes to finish"
        );
        let grace = tokio::time::sleep(self.settings.shutdown_grace);
        tokio::pin!(grace);
        while !self.runs.is_empty() {
            tokio::select! {
                Some(joined) = self.runs.join_next() => self.finish(joined),
                () = &mut grace => break,
                () = self.cut.cancelled() => break,
            }
        }
        if self.runs.is_empty() {
            return;
        }
        tracing::warn!(
            runs = self.runs.len(),
            "grace period over: cancelling the running passes"
        );
        self.cut.cancel();
        let deadline = tokio::time::sleep(self.settings.cancel_grace);
        tokio::pin!(deadline);
        while !self.runs.is_empty() {
            tokio::select! {
                Some(joined) = self.runs.join_next() => self.finish(joined),
                () = &mut deadline => {
                    tracing::error!(runs = self.runs.len(), "passes did not stop after cancellation: abandoning them");
                    self.runs.abort_all();
                    break;
                }
            }
        }
    }
}
