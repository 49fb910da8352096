//! One binding, end to end: observe both sides → diff → guard → apply under the lease. This is
//! the product's central operation, written once; `plan`, `apply` and `watch` are drivers that
//! differ only in *when* they run it and *how* they report ([`Reporter`]).
//!
//! - [`Session::plan_one`] / [`Session::plan_all`]: observe and diff (read-only). Suspended
//!   bindings are skipped here and nowhere else.
//! - [`Session::apply_planned`]: a plan's bindings under their leases, after the removal guard
//!   ([`guard::Policy`], the one place that decides it); [`Session::replan_superseded`] plans
//!   again and applies the bindings that another applier ran while this one waited.
//! - [`Session::check_saved`]: a saved plan checked against a fresh plan and the config: what
//!   of it may be applied.
//! - [`Session::reconcile`]: one binding in a [`Mode`], cancellable (`watch`).
//!
//! Every future here is `Send`, so a caller may spawn it.

pub mod guard;
mod reconcile;
mod report;
mod saved;

use std::collections::HashSet;
use std::time::Duration;

/// The account's audiences with their tag counts: what bindings can be written for.
pub use crate::observe::{AudienceSummary, AudiencesError, audiences};
pub use reconcile::{Failed, Leasing, Mode, Reconciled};
pub use report::{Event, Phase, Reporter, Silent, Tracing};
pub use saved::{CheckedPlan, Error as SavedError, StaleMembers};

use crate::apply::{self, BindingReport, Report, lease};
use crate::clients::Clients;
use crate::config::{Binding, Loaded};
use crate::observe;
use crate::plan::{self, BindingPlan, Plan, PlanMeta};

/// What every step needs: the config, its clients, and where to report.
#[derive(Clone, Copy)]
pub struct Session<'a> {
    /// The loaded config.
    pub loaded: &'a Loaded,
    /// Its clients.
    pub clients: &'a Clients,
    /// Where progress and events go.
    pub reporter: &'a dyn Reporter,
}

/// How to apply: who applies, how long to wait for another applier, and the guard policy.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Recorded on the lease: `apply` or `watch`.
    pub operation: &'static str,
    /// How long to wait for another applier's lease (`--lock-timeout`; zero: do not wait).
    pub wait: Duration,
    /// How long a lease lasts without renewal (`--lease-term`).
    pub term: Duration,
    /// Whether removals beyond a guard may be applied.
    pub guard: guard::Policy,
}

impl Settings {
    /// The apply options of one binding: the only place they are built.
    fn options(&self, plan_id: &str, stale_members: HashSet<String>) -> apply::Options {
        apply::Options {
            claim: lease::Claim::new(self.operation, self.wait, self.term),
            plan_id: plan_id.to_owned(),
            stale_members,
        }
    }
}

/// A plan of several bindings, and how many could not be read.
#[derive(Debug)]
pub struct Planned {
    /// The plan of the bindings that were read.
    pub plan: Plan,
    /// Bindings that could not be read (each reported as [`Event::ReadFailed`]).
    pub failed: usize,
}

/// The plan's metadata: tool version, config digest, creation time.
#[must_use]
pub fn meta(config_digest: &str) -> PlanMeta {
    PlanMeta {
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        config_digest: format!("sha256:{config_digest}"),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }
}

/// The identity of a plan (its Sync Run records derive from it): the digest of its JSON.
///
/// # Errors
/// The plan cannot be written as JSON.
pub fn plan_id(plan: &Plan) -> serde_json::Result<String> {
    apply::saved::plan_id_of(plan)
}

impl Session<'_> {
    /// Observe `binding` and diff it.
    ///
    /// # Errors
    /// A side could not be read.
    pub async fn plan_one(&self, binding: &Binding) -> Result<BindingPlan, observe::Error> {
        let snapshot = observe::observe(binding, &self.loaded.names, self.clients).await?;
        Ok(plan::compute(binding, &self.loaded.names, &snapshot))
    }

    /// The cheap version of `binding`'s source data ([`observe::source_version`]); `None` when
    /// it cannot be read.
    pub async fn source_version(&self, binding: &Binding) -> Option<String> {
        observe::source_version(&self.clients.mailchimp, binding)
            .await
            .ok()
    }

    /// The Mailchimp audience id of `binding` (looked up when the config names it by name).
    ///
    /// # Errors
    /// Mailchimp could not be read, or has no such audience.
    pub async fn audience_id(&self, binding: &Binding) -> Result<String, crate::mailchimp::Error> {
        observe::audience_id(&self.clients.mailchimp, binding).await
    }

    /// Plan each binding that is not suspended; one that cannot be read is reported and
    /// counted, the others are still planned.
    pub async fn plan_all(&self, bindings: &[&Binding]) -> Planned {
        let reporter = self.reporter;
        reporter.begin(Phase::Plan, bindings.len());
        let mut plans = Vec::new();
        let mut failed = 0;
        for binding in bindings {
            if binding.suspend {
                reporter.event(&binding.name, &Event::Suspended);
                continue;
            }
            reporter.binding(Phase::Plan, &binding.name);
            match self.plan_one(binding).await {
                Ok(plan) => plans.push(plan),
                Err(err) => {
                    failed += 1;
                    reporter.event(&binding.name, &Event::ReadFailed(&err));
                }
            }
            reporter.advance(1);
        }
        reporter.end();
        Planned {
            plan: Plan::new(meta(&self.loaded.digest), plans),
            failed,
        }
    }

    /// Apply every binding of `plan` (recorded as plan `plan_id`), each under its lease; the
    /// changes of `stale` members (by binding) are skipped as stale. Never fails as a whole once
    /// started: what went wrong is in the report.
    ///
    /// # Errors
    /// A binding's removal guard refuses and `settings` does not allow removals: nothing is
    /// applied.
    pub async fn apply_planned(
        &self,
        plan: &Plan,
        plan_id: &str,
        settings: &Settings,
        stale: &StaleMembers,
    ) -> Result<Report, guard::Refused> {
        settings.guard.check(&plan.bindings)?;
        let reporter = self.reporter;
        reporter.begin(
            Phase::Apply,
            plan.bindings.iter().map(|b| b.changes.len()).sum(),
        );
        let mut reports = Vec::with_capacity(plan.bindings.len());
        for b in &plan.bindings {
            reporter.binding(Phase::Apply, &b.name);
            let stale = stale.get(&b.name).cloned().unwrap_or_default();
            reports.push(self.apply_one(b, &settings.options(plan_id, stale)).await);
        }
        reporter.end();
        Ok(Report::new(reports))
    }

    /// Plan again and apply (once) each binding whose apply found its plan superseded:
    /// another applier held the lease, and ran, while this one waited (`--lock-timeout`).
    /// A binding that cannot be read again keeps its first report.
    ///
    /// # Errors
    /// A fresh plan cannot be written as JSON (for its id).
    pub async fn replan_superseded(
        &self,
        report: Report,
        settings: &Settings,
    ) -> serde_json::Result<Report> {
        if !report.bindings.iter().any(|r| r.superseded) {
            return Ok(report);
        }
        let mut reports = Vec::with_capacity(report.bindings.len());
        for old in report.bindings {
            let Some(binding) = old
                .superseded
                .then(|| self.loaded.bindings.iter().find(|b| b.name == old.binding))
                .flatten()
            else {
                reports.push(old);
                continue;
            };
            self.reporter.event(&binding.name, &Event::Superseded);
            let fresh = match self.plan_one(binding).await {
                Ok(plan) => Plan::new(meta(&self.loaded.digest), vec![plan]),
                Err(err) => {
                    self.reporter.event(&binding.name, &Event::ReadFailed(&err));
                    reports.push(old);
                    continue;
                }
            };
            let options = settings.options(&plan_id(&fresh)?, HashSet::new());
            for b in &fresh.bindings {
                let report = match settings.guard.check([b]) {
                    Ok(()) => self.apply_one(b, &options).await,
                    Err(refused) => refused_report(b, &refused),
                };
                reports.push(report);
            }
        }
        Ok(Report::new(reports))
    }

    /// Apply one binding's plan (its guard already decided), progress to the reporter.
    async fn apply_one(&self, plan: &BindingPlan, options: &apply::Options) -> BindingReport {
        let reporter = self.reporter;
        let progress = |_: plan::Action, n: usize| reporter.advance(n);
        apply::apply_binding(self.clients, &self.loaded.names, plan, options, &progress).await
    }
}

/// The report of a binding its guard stopped: every change skipped, with the guard's message.
fn refused_report(plan: &BindingPlan, refused: &guard::Refused) -> BindingReport {
    let message = refused
        .bindings
        .iter()
        .find(|(name, _)| *name == plan.name)
        .map_or_else(|| refused.to_string(), |(_, m)| m.clone());
    BindingReport::skipped(&plan.name, &plan.changes, &message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-binding future is `Send`, so `watch` can spawn it (no blocking thread).
    #[allow(dead_code, reason = "compile-time check only")]
    fn reconcile_is_send(session: Session<'_>, binding: &Binding) {
        fn send<T: Send>(_: T) {}
        let cancel = tokio_util::sync::CancellationToken::new();
        send(session.reconcile(
            binding,
            Mode::Apply,
            Leasing {
                term: std::time::Duration::ZERO,
                wait: std::time::Duration::ZERO,
            },
            &cancel,
        ));
        send(session.plan_all(&[]));
    }
}
