//! What an apply did: per binding, counts of done / failed / stale / skipped changes per kind,
//! every failure with its e-mail (or name) and the service's reason, the outcome, and the lease.
//! Pure data and rendering (text, JSON): no I/O.
//!
//! Invariants: every change of a binding's plan is counted exactly once, in one of the four
//! columns of its action; `failures` holds one entry per failed or stale change, in plan order.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use uuid::Uuid;

use crate::plan::{Action, Change};

/// Counts of one kind of change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Written (or found already written).
    pub done: u64,
    /// Refused by the service.
    pub failed: u64,
    /// The record changed since the plan was made: not written.
    pub stale: u64,
    /// Not attempted (an earlier change of the same record failed, or the binding was refused).
    pub skipped: u64,
}

impl Counts {
    /// Every change counted.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.done + self.failed + self.stale + self.skipped
    }

    fn add(&mut self, other: Self) {
        self.done += other.done;
        self.failed += other.failed;
        self.stale += other.stale;
        self.skipped += other.skipped;
    }
}

/// What became of one change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written.
    Done,
    /// Refused, with the service's reason.
    Failed(String),
    /// Changed since the plan: not written (why).
    Stale(String),
    /// Not attempted (why).
    Skipped(String),
}

/// One change that was not done, for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The change's action.
    pub action: Action,
    /// The record concerned.
    pub record: Uuid,
    /// The member's e-mail address, or the name of the record (tag, list, audience).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// `failed`, `stale` or `skipped`.
    pub kind: FailureKind,
    /// The service's reason, or why the change was not attempted.
    pub reason: String,
}

/// Why a change was not done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Refused by the service.
    Failed,
    /// Changed since the plan.
    Stale,
    /// Not attempted.
    Skipped,
}

/// How a binding's apply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BindingOutcome {
    /// Every change done (stale ones skipped are not errors).
    Synced,
    /// Some changes failed; the rest were done.
    SyncedWithErrors,
    /// The binding could not be applied at all.
    Error,
    /// Not applied: another applier holds the lease, or a guard refused it.
    Skipped,
}

impl BindingOutcome {
    /// A short label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Synced => "Synced",
            Self::SyncedWithErrors => "Synced with errors",
            Self::Error => "Error",
            Self::Skipped => "Skipped",
        }
    }
}

/// What an apply did to one binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindingReport {
    /// The binding's name.
    pub binding: String,
    /// How it ended.
    pub outcome: BindingOutcome,
    /// Counts by action (only actions the plan held).
    pub counts: BTreeMap<Action, Counts>,
    /// Every change not done, in plan order.
    pub failures: Vec<Failure>,
    /// A message for a person (the error, or why it was skipped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The lease id the apply held, if it took one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<String>,
    /// The Sync Run record written, if one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_run: Option<Uuid>,
    /// Member errors of the plan (conflicts, invalid addresses): those members were skipped.
    pub plan_errors: u64,
    /// Nothing was applied because another applier held the lease and ran meanwhile: the plan
    /// is stale and the binding must be planned again before applying.
    #[serde(skip)]
    pub superseded: bool,
}

impl BindingReport {
    /// An empty report for `binding`.
    #[must_use]
    pub fn new(binding: &str) -> Self {
        Self {
            binding: binding.to_owned(),
            outcome: BindingOutcome::Synced,
            counts: BTreeMap::new(),
            failures: Vec::new(),
            message: None,
            lease_id: None,
            sync_run: None,
            plan_errors: 0,
            superseded: false,
        }
    }

    /// A binding that was not applied: every change skipped with `reason`.
    #[must_use]
    pub fn skipped(binding: &str, changes: &[Change], reason: &str) -> Self {
        let mut report = Self::new(binding);
        for change in changes {
            report.counts.entry(change.action).or_default().skipped += 1;
        }
        report.outcome = BindingOutcome::Skipped;
        report.message = Some(reason.to_owned());
        report
    }

    /// Count what became of `change`.
    pub fn record(&mut self, change: &Change, outcome: Outcome) {
        let counts = self.counts.entry(change.action).or_default();
        let (kind, reason) = match outcome {
            Outcome::Done => {
                counts.done += 1;
                return;
            }
            Outcome::Failed(r) => {
                counts.failed += 1;
                (FailureKind::Failed, r)
            }
            Outcome::Stale(r) => {
                counts.stale += 1;
                (FailureKind::Stale, r)
            }
            Outcome::Skipped(r) => {
                counts.skipped += 1;
                (FailureKind::Skipped, r)
            }
        };
        self.failures.push(Failure {
            action: change.action,
            record: change.record,
            label: label_of(change),
            kind,
            reason,
        });
    }

    /// Totals over every action.
    #[must_use]
    pub fn totals(&self) -> Counts {
        let mut t = Counts::default();
        for c in self.counts.values() {
            t.add(*c);
        }
        t
    }

    /// Done changes of these actions.
    #[must_use]
    pub fn done_of(&self, actions: &[Action]) -> u64 {
        actions
            .iter()
            .filter_map(|a| self.counts.get(a))
            .map(|c| c.done)
            .sum()
    }

    /// Settle the outcome from the counts (unless already `Error` or `Skipped`): nothing done and
    /// something failed is `Error`.
    pub fn settle(&mut self) {
        if matches!(
            self.outcome,
            BindingOutcome::Error | BindingOutcome::Skipped
        ) {
            return;
        }
        let t = self.totals();
        self.outcome = if t.failed > 0 && t.done == 0 {
            BindingOutcome::Error
        } else if t.failed > 0 || t.skipped > 0 || self.plan_errors > 0 {
            BindingOutcome::SyncedWithErrors
        } else {
            BindingOutcome::Synced
        };
    }

    /// One line: what was done, what was not.
    #[must_use]
    pub fn summary(&self) -> String {
        let t = self.totals();
        let mut line = format!(
            "{}: {} done, {} failed, {} stale, {} skipped",
            self.outcome.label(),
            t.done,
            t.failed,
            t.stale,
            t.skipped
        );
        if let Some(message) = &self.message {
            let _ = write!(line, " ({message})");
        }
        line
    }
}

fn label_of(change: &Change) -> Option<String> {
    change
        .member
        .as_ref()
        .map(|m| m.email().to_owned())
        .or_else(|| change.name.as_deref().map(str::to_owned))
}

/// What one apply did, over every binding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// One entry per binding applied or skipped, in config order.
    pub bindings: Vec<BindingReport>,
    /// Totals.
    pub totals: Counts,
}

impl Report {
    /// Assemble and total.
    #[must_use]
    pub fn new(bindings: Vec<BindingReport>) -> Self {
        let mut totals = Counts::default();
        for b in &bindings {
            totals.add(b.totals());
        }
        Self { bindings, totals }
    }

    /// Something failed: a binding ended in error or a change was refused.
    #[must_use]
    pub fn has_failures(&self) -> bool {
        self.totals.failed > 0
            || self.bindings.iter().any(|b| {
                matches!(b.outcome, BindingOutcome::Error | BindingOutcome::Skipped)
                    || b.plan_errors > 0
            })
    }

    /// The report as text: one block per binding, with up to `max_failures` failures each.
    #[must_use]
    pub fn text(&self, max_failures: usize) -> String {
        let mut out = String::new();
        for b in &self.bindings {
            let _ = writeln!(out, "{}: {}", b.binding, b.summary());
            for (action, c) in &b.counts {
                let _ = writeln!(
                    out,
                    "  {:<24} {:>8} done {:>6} failed {:>6} stale {:>6} skipped",
                    action.label(),
                    c.done,
                    c.failed,
                    c.stale,
                    c.skipped
                );
            }
            for f in b.failures.iter().take(max_failures) {
                let kind = match f.kind {
                    FailureKind::Failed => "failed",
                    FailureKind::Stale => "stale",
                    FailureKind::Skipped => "skipped",
                };
                let _ = writeln!(
                    out,
                    "  {kind}: {} {}: {}",
                    f.action.label(),
                    f.label.as_deref().unwrap_or(&f.record.to_string()),
                    f.reason
                );
            }
            if b.failures.len() > max_failures {
                let _ = writeln!(
                    out,
                    "  … and {} more (use --format json for all)",
                    b.failures.len() - max_failures
                );
            }
        }
        let t = self.totals;
        let _ = writeln!(
            out,
            "Apply complete: {} done, {} failed, {} stale, {} skipped.",
            t.done, t.failed, t.stale, t.skipped
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{MemberRef, Precondition, Reason};

    fn change(action: Action, email: &str) -> Change {
        Change {
            action,
            reason: Reason::MemberMissingInCrm,
            record: Uuid::from_u128(7),
            member: Some(crate::plan::model::Shared(std::sync::Arc::new(
                MemberRef::new("h", "c", email, crate::config::MemberStatus::Subscribed),
            ))),
            name: None,
            fields: crate::plan::Fields::default(),
            tags: Box::default(),
            precondition: Precondition::default(),
        }
    }

    #[test]
    fn outcomes_are_counted_once_and_failures_named_by_email() {
        let mut r = BindingReport::new("b");
        r.record(&change(Action::CreateRecord, "a@x.org"), Outcome::Done);
        r.record(
            &change(Action::CreateRecord, "b@x.org"),
            Outcome::Failed("400: bad".into()),
        );
        r.record(
            &change(Action::UpdateRecord, "c@x.org"),
            Outcome::Stale("changed".into()),
        );
        r.settle();
        assert_eq!(r.outcome, BindingOutcome::SyncedWithErrors);
        assert_eq!(r.totals().total(), 3);
        assert_eq!(r.failures.len(), 2);
        assert_eq!(r.failures[0].label.as_deref(), Some("b@x.org"));
        let report = Report::new(vec![r]);
        assert!(report.has_failures());
        let text = report.text(10);
        assert!(
            text.contains("failed: create record b@x.org: 400: bad"),
            "{text}"
        );
    }

    #[test]
    fn nothing_done_and_something_failed_is_an_error() {
        let mut r = BindingReport::new("b");
        r.record(
            &change(Action::CreateRecord, "b@x.org"),
            Outcome::Failed("503: down".into()),
        );
        r.settle();
        assert_eq!(r.outcome, BindingOutcome::Error);
    }

    #[test]
    fn stale_changes_alone_are_not_failures() {
        let mut r = BindingReport::new("b");
        r.record(
            &change(Action::UpdateRecord, "c@x.org"),
            Outcome::Stale("changed".into()),
        );
        r.settle();
        assert_eq!(r.outcome, BindingOutcome::Synced);
        assert!(!Report::new(vec![r]).has_failures());
    }
}
