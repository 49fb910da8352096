//! Apply: a binding's plan → the lease → batched writes → sync status and a Sync Run record →
//! a [`BindingReport`].
//!
//! - [`executor`]: the writes, in the plan's order, fewest requests per kind.
//! - [`lease`]: one applier at a time per binding (the lease on the Audience record).
//! - [`report`]: what was done, failed, stale or skipped (pure).
//! - [`saved`]: the checks a saved plan must pass before it is applied.
//! - [`status`]: the sync status of a binding as the CRM records it (read-only).
//!
//! Whether a plan may be applied at all (its removal guard) is decided before, by
//! [`crate::sync`]. Invariants: nothing is written for a binding with binding-level errors or
//! no changes; every write happens under the binding's lease;
//! the lease is released (with the final status) on every path once taken; one Sync Run record
//! per apply and binding, holding at most [`MAX_RUN_FAILURES`] failures — never one per member.

pub mod executor;
pub mod lease;
pub mod report;
pub mod saved;
pub mod status;

use std::collections::HashSet;
use std::fmt::Write as _;

use chrono::Utc;
use uuid::Uuid;

pub use executor::Progress;
pub use report::{BindingOutcome, BindingReport, Counts, Failure, Outcome, Report};

use crate::clients::Clients;
use crate::config::Names;
use crate::dataverse::schema::sync_status;
use crate::dataverse::tables::{AudienceStatus, SyncRun, ToolTables};
use crate::http;
use crate::plan::{Action, BindingPlan, ids};

/// Failures kept on a Sync Run record.
pub const MAX_RUN_FAILURES: usize = 100;

/// How to apply.
#[derive(Debug, Clone)]
pub struct Options {
    /// Who applies, and how long to wait for another applier.
    pub claim: lease::Claim,
    /// Identifies the plan: the Sync Run record of a binding is `run_id(plan_id, binding)`.
    pub plan_id: String,
    /// Members (subscriber hashes) whose changes are stale (see [`saved`]).
    pub stale_members: HashSet<String>,
}

/// The id of the Sync Run record of applying plan `plan_id` to `binding` (so a saved plan's
/// run can be found again, and a plan is never recorded twice).
#[must_use]
pub fn run_id(plan_id: &str, binding: &str) -> Uuid {
    Uuid::new_v5(
        &ids::NAMESPACE,
        format!("syncrun:{plan_id}:{binding}").as_bytes(),
    )
}

/// Actions that count as created, updated and removed in the status columns.
const CREATED: [Action; 3] = [Action::CreateRecord, Action::CreateTag, Action::CreateList];
const UPDATED: [Action; 4] = [
    Action::UpdateRecord,
    Action::SetDoNotEmail,
    Action::RenameTag,
    Action::UpdateAudience,
];
const REMOVED: [Action; 2] = [Action::RemoveListMember, Action::RemoveTag];

/// Apply one binding's plan. Never fails as a whole: what went wrong is in the report
/// (outcome [`BindingOutcome::Error`] and its message).
pub async fn apply_binding(
    clients: &Clients,
    names: &Names,
    plan: &BindingPlan,
    options: &Options,
    progress: Progress<'_>,
) -> BindingReport {
    let binding = plan.name.as_str();
    if plan.changes.is_empty() && !plan.errors.is_empty() {
        let mut report = BindingReport::new(binding);
        report.outcome = BindingOutcome::Error;
        report.message = Some(
            plan.errors
                .iter()
                .map(|e| e.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        );
        return report;
    }
    let mut report = BindingReport::new(binding);
    report.plan_errors = plan.errors.len() as u64;
    if plan.changes.is_empty() {
        report.message = Some("no changes".to_owned());
        close_left_over(&clients.tables, binding, plan, options, &mut report).await;
        report.settle();
        return report;
    }

    let tables = &clients.tables;
    let create = plan
        .changes
        .iter()
        .find(|c| c.action == Action::CreateAudience)
        .map(|c| (c.record, plan.audience.name.as_str()));
    let create = create.or(Some((
        ids::audience_record(&plan.audience.id),
        plan.audience.name.as_str(),
    )));
    let held =
        match lease::acquire(tables, binding, &plan.audience.id, create, &options.claim).await {
            Ok(held) => held,
            Err(err @ lease::Error::Held { .. }) => {
                return BindingReport::skipped(binding, &plan.changes, &err.to_string());
            }
            Err(err) => {
                let mut report = BindingReport::new(binding);
                report.outcome = BindingOutcome::Error;
                report.message = Some(crate::output::error_chain(&err));
                return report;
            }
        };
    if let Some(holder) = &held.waited_for {
        // Another applier ran while this one waited: what was planned before may be done or
        // changed, so the plan is stale; give the lease back untouched and let the caller plan
        // again ([`BindingReport::superseded`]).
        if let Err(err) = lease::release(
            tables,
            held.record.id,
            &held.lease.id,
            &held.record.status,
            held.etag.as_deref(),
        )
        .await
        {
            tracing::warn!(binding, error = %err, "could not release the lease");
        }
        let mut report = BindingReport::skipped(
            binding,
            &plan.changes,
            &format!(
                "the plan is stale: `{holder}` applied this binding while this apply waited for the lease; plan again"
            ),
        );
        report.superseded = true;
        return report;
    }
    let guard = lease::Guard::hold(tables.clone(), binding, held, options.claim.term);
    let held = guard.held();
    report.lease_id = Some(held.lease.id.clone());
    if let Some(old) = &held.taken_over {
        report.message = Some(format!(
            "took over the lease `{}` of `{}`, which stopped renewing it",
            old.id, old.owner
        ));
    }
    let started = Utc::now();
    let audience_id = held.record.id;
    let previous = held.record.status.clone();
    let running = AudienceStatus {
        sync_status: sync_status::IN_PROGRESS,
        last_sync_start: Some(started),
        last_sync_end: None,
        last_message: Some(format!(
            "applying {} changes (lease `{}` of `{}`)",
            plan.changes.len(),
            held.lease.id,
            held.lease.owner
        )),
        ..previous
    };
    if let Err(err) = guard.set_status(&running).await {
        tracing::warn!(binding, error = %err, "could not write the in-progress status");
    }

    let target = executor::Target {
        plan,
        names,
        audience: executor::AudienceHold {
            id: audience_id,
            seen_etag: if held.created {
                None
            } else {
                held.record.etag.clone()
            },
            etag: guard.etag().await,
        },
        stale_members: &options.stale_members,
    };
    // Every write runs under the lease's gate: once the lease is lost, nothing more is sent.
    let signal = guard.signal();
    http::gate::guarded(
        guard.gate(),
        executor::execute(clients, target, &mut report, progress),
    )
    .await;
    report.settle();
    if let Some(reason) = signal.reason() {
        // The record may be someone else's now: no status, no Sync Run, no release.
        report.outcome = BindingOutcome::Error;
        report.message = Some(reason);
        return report;
    }

    let ended = Utc::now();
    let message = run_message(&report, plan);
    let status_code = match report.outcome {
        BindingOutcome::Synced => sync_status::SUCCEEDED,
        BindingOutcome::SyncedWithErrors => sync_status::PARTIAL,
        BindingOutcome::Error | BindingOutcome::Skipped => sync_status::FAILED,
    };
    let added = report.done_of(&[Action::AddListMember]);
    let removed_members = report.done_of(&[Action::RemoveListMember]);
    let member_count = (plan.read.list_members + added).saturating_sub(removed_members);
    let count = |v: u64| Some(i64::try_from(v).unwrap_or(i64::MAX));
    let failed = report.totals().failed;
    let final_status = AudienceStatus {
        sync_status: status_code,
        last_sync_start: Some(started),
        last_sync_end: Some(ended),
        member_count: count(member_count),
        created: count(report.done_of(&CREATED)),
        updated: count(report.done_of(&UPDATED)),
        removed: count(report.done_of(&REMOVED)),
        failed: count(failed),
        last_message: Some(report.summary()),
    };
    let run = SyncRun {
        id: run_id(&options.plan_id, binding),
        name: format!(
            "{binding} {}",
            started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        audience: audience_id,
        started,
        ended: Some(ended),
        status: status_code,
        created: final_status.created.unwrap_or(0),
        updated: final_status.updated.unwrap_or(0),
        removed: final_status.removed.unwrap_or(0),
        failed: final_status.failed.unwrap_or(0),
        message: Some(message),
    };
    match http::gate::guarded(guard.gate(), tables.save_sync_run(&run)).await {
        Ok(()) => report.sync_run = Some(run.id),
        Err(err) => {
            tracing::warn!(binding, error = %err, "could not write the Sync Run record");
        }
    }
    let lease_id = held.lease.id.clone();
    let note = match guard.release(&final_status).await {
        Ok(lease::Released::Released) => None,
        Ok(lease::Released::NotOurs) => {
            Some("the lease was released by someone else (force-unlock) during the run".to_owned())
        }
        Ok(lease::Released::Lost(reason)) => {
            report.outcome = BindingOutcome::Error;
            Some(reason)
        }
        Err(err) => {
            tracing::warn!(binding, error = %err, "could not release the lease");
            Some(format!(
                "the lease `{lease_id}` could not be released ({}); it lapses by itself",
                crate::output::error_chain(&err)
            ))
        }
    };
    if let Some(note) = note {
        report.message = Some(match report.message.take() {
            Some(m) => format!("{m}; {note}"),
            None => note,
        });
    }
    report
}

/// A run killed after its last write leaves its lease and the In Progress status behind, and
/// the rerun finds nothing to do: take such a left-over lease over (once it has lapsed: its
/// holder stopped renewing it) and close the status as Synced, so that `status` does not show a run in
/// progress. A live holder is left alone.
async fn close_left_over(
    tables: &ToolTables,
    binding: &str,
    plan: &BindingPlan,
    options: &Options,
    report: &mut BindingReport,
) {
    let record = match lease::find_record(tables, &plan.audience.id).await {
        Ok(Some(record)) => record,
        Ok(None) => return,
        Err(err) => {
            tracing::warn!(binding, error = %err, "could not read the Audience record");
            return;
        }
    };
    let Some(old) = record.lease.filter(|l| lease::left_over(l, Utc::now())) else {
        return;
    };
    let claim = lease::Claim {
        wait: std::time::Duration::ZERO,
        ..options.claim.clone()
    };
    let held = match lease::acquire(tables, binding, &plan.audience.id, None, &claim).await {
        Ok(held) => held,
        Err(err) => {
            tracing::warn!(binding, error = %err, "could not take over a left-over lease");
            return;
        }
    };
    let message = format!(
        "no changes; took over the lease `{}` of `{}`, a run that did not finish",
        old.id, old.owner
    );
    let status = AudienceStatus {
        sync_status: sync_status::SUCCEEDED,
        last_sync_end: Some(Utc::now()),
        last_message: Some(message.clone()),
        ..held.record.status.clone()
    };
    match lease::release(
        tables,
        held.record.id,
        &held.lease.id,
        &status,
        held.etag.as_deref(),
    )
    .await
    {
        Ok(_) => report.message = Some(message),
        Err(err) => tracing::warn!(binding, error = %err, "could not release the lease"),
    }
}

/// The Sync Run message: the summary, then the first failures with their reasons.
fn run_message(report: &BindingReport, plan: &BindingPlan) -> String {
    let mut text = report.summary();
    if !plan.errors.is_empty() {
        let _ = write!(
            text,
            "\nplan errors: {} (members skipped until fixed in the CRM)",
            plan.errors.len()
        );
    }
    for f in report.failures.iter().take(MAX_RUN_FAILURES) {
        let _ = write!(
            text,
            "\n{:?} {} {}: {}",
            f.kind,
            f.action.code(),
            f.label.as_deref().unwrap_or(&f.record.to_string()),
            f.reason
        );
    }
    text
}
