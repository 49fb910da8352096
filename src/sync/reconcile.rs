//! One binding in a [`Mode`], cancellable: what `watch` runs on its schedule.
//!
//! - The cheap source version is read first ([`crate::observe::source_version`]): if it changes
//!   while a failure backs off, the loop tries again at once. Without it, the plan's digest of
//!   the Mailchimp side stands in.
//! - `cancel` is checked before each step and raced against the reads. The apply is raced too:
//!   when `cancel` wins, the apply future is dropped at its current request (every write is
//!   idempotent: deterministic ids, `If-Match`, so the next run converges) and the lease this
//!   process holds on the Audience record is released here, with the status "failed: cut by
//!   shutdown" — nothing is left half-owned.
//! - Another applier holding the lease is not waited for (`watch` spreads replicas apart by
//!   its interval and jitter): the apply reports the binding as skipped.

use tokio_util::sync::CancellationToken;

use super::{Session, Settings, guard};
use crate::apply::{BindingReport, lease};
use crate::clients::Clients;
use crate::config::Binding;
use crate::dataverse::schema::sync_status;
use crate::output::error_chain;
use crate::plan::BindingPlan;

/// What a reconcile does after planning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Observe and diff; write nothing (`watch --mode report` reports the drift).
    Plan,
    /// Then apply, under the lease, never beyond a removal guard.
    Apply,
}

/// A finished reconcile.
#[derive(Debug)]
pub enum Reconciled {
    /// The binding is suspended in the config: nothing was read.
    Suspended,
    /// Planned ([`Mode::Plan`]), or planned and applied ([`Mode::Apply`]).
    Done {
        /// The plan.
        plan: Box<BindingPlan>,
        /// The version of the source data the plan was made from.
        source_version: String,
        /// The apply's report ([`Mode::Apply`] only).
        applied: Option<BindingReport>,
    },
}

/// A reconcile that failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Failed {
    /// What went wrong, causes included; no secrets.
    pub message: String,
    /// The version of the source data it failed on, when it was read.
    pub source_version: Option<String>,
}

impl Failed {
    fn new(message: String, source_version: Option<&str>) -> Self {
        Self {
            message,
            source_version: source_version.map(str::to_owned),
        }
    }
}

fn cancelled(binding: &str) -> String {
    format!("the run of binding `{binding}` was cut by shutdown")
}

impl Session<'_> {
    /// Reconcile `binding` in `mode`; `cancel` cuts it (see the module doc).
    ///
    /// # Errors
    /// Cut by `cancel`, a side could not be read, or the removal guard refuses.
    pub async fn reconcile(
        &self,
        binding: &Binding,
        mode: Mode,
        lease_term: std::time::Duration,
        cancel: &CancellationToken,
    ) -> Result<Reconciled, Failed> {
        let name = binding.name.as_str();
        if binding.suspend {
            return Ok(Reconciled::Suspended);
        }
        if cancel.is_cancelled() {
            return Err(Failed::new(cancelled(name), None));
        }
        let version = self.source_version(binding).await;
        let plan = tokio::select! {
            plan = self.plan_one(binding) => plan,
            () = cancel.cancelled() => return Err(Failed::new(cancelled(name), None)),
        };
        let plan = plan.map_err(|err| Failed::new(error_chain(&err), version.as_deref()))?;
        let source_version = version.unwrap_or_else(|| plan.digests.mailchimp.clone());
        if mode == Mode::Plan {
            return Ok(Reconciled::Done {
                plan: Box::new(plan),
                source_version,
                applied: None,
            });
        }
        let settings = Settings {
            operation: "watch",
            wait: std::time::Duration::ZERO,
            term: lease_term,
            guard: guard::Policy::refuse(),
        };
        if let Err(refused) = settings.guard.check([&plan]) {
            let message = refused
                .bindings
                .into_iter()
                .next()
                .map_or_else(String::new, |(_, m)| m);
            return Err(Failed::new(message, Some(&source_version)));
        }
        if cancel.is_cancelled() {
            return Err(Failed::new(cancelled(name), Some(&source_version)));
        }
        let plan_id = format!("watch:{}", uuid::Uuid::new_v4());
        let options = settings.options(&plan_id, std::collections::HashSet::new());
        let report = tokio::select! {
            report = self.apply_one(&plan, &options) => report,
            () = cancel.cancelled() => {
                let mut message = cancelled(name);
                if let Err(err) = release_own_lease(self.clients, &plan, &options.claim.owner).await {
                    message.push_str(&format!(
                        "; releasing the lease failed ({err}): it lapses by itself"
                    ));
                }
                return Err(Failed::new(message, Some(&source_version)));
            }
        };
        Ok(Reconciled::Done {
            plan: Box::new(plan),
            source_version,
            applied: Some(report),
        })
    }
}

/// After a cut apply: release the lease on the binding's Audience record if this process
/// holds it, marking the status failed.
async fn release_own_lease(
    clients: &Clients,
    plan: &BindingPlan,
    owner: &str,
) -> Result<(), String> {
    let tables = &clients.tables;
    let record = lease::find_record(tables, &plan.audience.id)
        .await
        .map_err(|err| error_chain(&err))?;
    let Some(record) = record else {
        return Ok(());
    };
    let Some(held) = record.lease.as_ref().filter(|l| l.owner == owner) else {
        return Ok(());
    };
    let mut status = record.status.clone();
    status.sync_status = sync_status::FAILED;
    status.last_sync_end = Some(chrono::Utc::now());
    status.last_message = Some(format!(
        "the run (lease `{}`) was cut by shutdown before it finished; the next run completes it",
        held.id
    ));
    let released = lease::release(tables, record.id, &held.id, &status, record.etag.as_deref())
        .await
        .map_err(|err| error_chain(&err))?;
    tracing::info!(
        binding = %plan.name,
        lease = %held.id,
        released,
        "cut run: lease released"
    );
    Ok(())
}
