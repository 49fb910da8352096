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
//! - Replicas share the work: in [`Mode::Apply`] the binding's lease is looked at *before*
//!   anything is read. A live lease of another holder (a second replica, a pipeline) makes the
//!   run [`Reconciled::Held`] at once, naming the holder and its expiry, so the replica moves on
//!   to a binding nobody holds; the loop looks again just after that expiry, which is how a dead
//!   replica's bindings are taken over within the lease time. `lock_wait` (`watch --once
//!   --lock-timeout`) waits for the holder instead, up to that long. Two replicas that look at
//!   the same free binding at once both plan it; the lease (a conditional write) lets one apply
//!   and the other ends [`Reconciled::Held`] too.

use tokio_util::sync::CancellationToken;

use std::time::Duration;

use chrono::Utc;

use super::{Session, Settings, guard};
use crate::apply::{BindingReport, lease};
use crate::clients::Clients;
use crate::config::Binding;
use crate::dataverse::schema::sync_status;
use crate::dataverse::tables::Lease;
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
    /// Another process holds the binding's lease (and did past `lock_wait`): nothing written.
    Held(Lease),
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
        lease: Leasing,
        cancel: &CancellationToken,
    ) -> Result<Reconciled, Failed> {
        let name = binding.name.as_str();
        if binding.suspend {
            return Ok(Reconciled::Suspended);
        }
        if cancel.is_cancelled() {
            return Err(Failed::new(cancelled(name), None));
        }
        if mode == Mode::Apply {
            let holder = tokio::select! {
                holder = self.holder_after(binding, lease.wait) => holder,
                () = cancel.cancelled() => return Err(Failed::new(cancelled(name), None)),
            };
            if let Some(holder) = holder? {
                return Ok(Reconciled::Held(holder));
            }
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
            wait: Duration::ZERO,
            term: lease.term,
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
        if report.outcome == crate::apply::BindingOutcome::Skipped && report.lease_id.is_none() {
            // Lost the race for the lease to another process that looked at the same moment.
            if let Ok(Some(holder)) = self.holder_after(binding, Duration::ZERO).await {
                return Ok(Reconciled::Held(holder));
            }
        }
        Ok(Reconciled::Done {
            plan: Box::new(plan),
            source_version,
            applied: Some(report),
        })
    }

    /// The live lease another process holds on `binding` after waiting up to `wait` for it to
    /// be released or to lapse; `None` when nobody holds it (or the record does not exist yet).
    async fn holder_after(
        &self,
        binding: &Binding,
        wait: Duration,
    ) -> Result<Option<Lease>, Failed> {
        let read = |err: &dyn std::error::Error| Failed::new(error_chain(err), None);
        let audience = self.audience_id(binding).await.map_err(|e| read(&e))?;
        let started = tokio::time::Instant::now();
        loop {
            let record = lease::find_record(&self.clients.tables, &audience)
                .await
                .map_err(|e| read(&e))?;
            let now = Utc::now();
            let Some(holder) = record
                .and_then(|r| r.lease)
                .filter(|l| !lease::left_over(l, now))
            else {
                return Ok(None);
            };
            let waited = started.elapsed();
            if waited >= wait {
                return Ok(Some(holder));
            }
            let until_expiry = (holder.expires - now).to_std().unwrap_or(Duration::ZERO);
            let pause = (until_expiry + Duration::from_millis(100))
                .min(Duration::from_secs(2))
                .min(wait - waited);
            tracing::info!(binding = %binding.name, owner = %holder.owner, lease = %holder.id, "the lease is held; waiting (--lock-timeout)");
            tokio::time::sleep(pause).await;
        }
    }
}

/// The lease settings of a reconcile.
#[derive(Debug, Clone, Copy)]
pub struct Leasing {
    /// How long a lease lasts without renewal (`--lease-term`).
    pub term: Duration,
    /// How long to wait for another holder before reporting [`Reconciled::Held`] (zero: not at
    /// all, as a replica does).
    pub wait: Duration,
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
