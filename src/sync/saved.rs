//! Checking a saved plan (`plan -out FILE`, then `apply FILE`) against the config and both
//! services, before it is applied: every binding it names is in the config (and not suspended),
//! it was not applied already (its Sync Run record), each binding is planned again now — from the
//! CRM read in full and, on the Mailchimp side, only the members changed since the plan's read
//! and those its changes depend on ([`observe::since`]; a full read when that is not cheaper) —
//! and every saved change is checked against that fresh plan and the config
//! ([`crate::apply::saved::check_binding`]): what is applied is at most what was reviewed and
//! what the config demands now. The whole-plan check that needs nothing but the config is
//! [`crate::apply::saved::check_plan`].

use std::collections::{HashMap, HashSet};

use super::{Event, Session};
use crate::apply::saved::{self, Stale};
use crate::apply::{BindingReport, Outcome, Report};
use crate::config::Binding;
use crate::plan::{BindingPlan, Change, Plan};
use crate::{dataverse, observe};

/// Stale members (subscriber hashes) by binding.
pub type StaleMembers = HashMap<String, HashSet<String>>;

/// Why a saved plan is not applied.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The plan as a whole is stale.
    #[error(transparent)]
    Stale(#[from] Stale),
    /// A binding's Mailchimp side could not be read.
    #[error("binding `{binding}`")]
    Read {
        /// The binding.
        binding: String,
        /// Why.
        #[source]
        source: observe::Error,
    },
    /// The CRM could not be read.
    #[error(transparent)]
    Crm(#[from] dataverse::Error),
}

/// A saved plan, checked: what may be applied, and what may not (by binding).
#[derive(Debug)]
pub struct CheckedPlan {
    /// The plan to apply: per binding the fresh plan's binding with the saved changes that
    /// passed, its guard recomputed.
    pub plan: Plan,
    /// The changes not applied, with their outcomes, by binding.
    pub not_applied: HashMap<String, Vec<(Change, Outcome)>>,
    /// How many changes failed a check (the apply is incomplete).
    pub rejected: usize,
}

impl CheckedPlan {
    /// `report` (of applying [`Self::plan`]) with the changes not applied added to their
    /// bindings.
    #[must_use]
    pub fn complete(&self, report: Report) -> Report {
        let bindings = report
            .bindings
            .into_iter()
            .map(|mut b| {
                if let Some(not_applied) = self.not_applied.get(&b.binding) {
                    add(&mut b, not_applied);
                }
                b
            })
            .collect();
        Report::new(bindings)
    }
}

fn add(report: &mut BindingReport, not_applied: &[(Change, Outcome)]) {
    for (change, outcome) in not_applied {
        report.record(change, outcome.clone());
    }
    report.settle();
}

impl Session<'_> {
    /// `binding` planned now for checking the saved `b`, with the members of `b` that are
    /// stale: from the members changed since `b`'s read and those `b` names
    /// ([`observe::since`]), or, when that is not possible or not cheaper, a full plan.
    async fn fresh(
        &self,
        binding: &Binding,
        b: &BindingPlan,
    ) -> Result<(BindingPlan, HashSet<String>), observe::Error> {
        let names = &self.loaded.names;
        if let Some(since) = observe::since::observe_since(binding, names, self.clients, b).await? {
            let mut fresh = crate::plan::compute(binding, names, &since.snapshot);
            since.settle(&mut fresh, b);
            return Ok((fresh, since.stale));
        }
        let fresh = self.plan_one(binding).await?;
        let stale = if b.changes.is_empty() || b.audience.id != fresh.audience.id {
            HashSet::new()
        } else {
            observe::stale_members(&self.clients.mailchimp, binding, b).await?
        };
        Ok((fresh, stale))
    }

    /// Check a saved plan (identified by `plan_id`, its content) against the config and both
    /// services; stale members are reported as [`Event::StaleMembers`].
    ///
    /// # Errors
    /// The plan is stale as a whole, or a service could not be read.
    pub async fn check_saved(&self, plan: &Plan, plan_id: &str) -> Result<CheckedPlan, Error> {
        let mut checked = CheckedPlan {
            plan: Plan::new(super::meta(&self.loaded.digest), Vec::new()),
            not_applied: HashMap::new(),
            rejected: 0,
        };
        let mut bindings = Vec::with_capacity(plan.bindings.len());
        for b in &plan.bindings {
            let Some(binding) = self.loaded.bindings.iter().find(|x| x.name == b.name) else {
                return Err(Stale::UnknownBinding(b.name.clone()).into());
            };
            if binding.suspend {
                return Err(Stale::Suspended(b.name.clone()).into());
            }
            if let Some(run) =
                saved::already_applied(&self.clients.tables, plan_id, &b.name).await?
            {
                return Err(Stale::AlreadyApplied {
                    binding: b.name.clone(),
                    run,
                }
                .into());
            }
            bindings.push((binding, b));
        }
        for (binding, b) in bindings {
            let read = |source| Error::Read {
                binding: b.name.clone(),
                source,
            };
            let (fresh, stale) = self.fresh(binding, b).await.map_err(read)?;
            if !stale.is_empty() {
                self.reporter
                    .event(&b.name, &Event::StaleMembers(stale.len()));
            }
            let one = saved::check_binding(binding, b, &fresh, &stale);
            checked.rejected += one.rejected;
            checked.not_applied.insert(b.name.clone(), one.not_applied);
            checked.plan.bindings.push(one.plan);
        }
        checked.plan.summary = crate::plan::Summary::of(&checked.plan.bindings);
        Ok(checked)
    }
}
