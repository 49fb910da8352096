//! The real [`Reconciler`]: observe a binding, compute its plan, and in [`Mode::Apply`] apply
//! it under the binding's CRM lease ([`crate::apply::apply_binding`]).
//!
//! - One [`Clients`] per config digest: built on first use, reused while the config is the
//!   same (connection pools, the Dataverse token), rebuilt when the config changes.
//! - A run checks `cancel` before each step. Apply itself cannot be cancelled, so a run in
//!   apply races it against `cancel`: when `cancel` wins, the apply future is dropped at its
//!   current request (every write is idempotent: deterministic ids, `If-Match`, so the next run
//!   converges) and the lease this process holds on the Audience record is released here, with
//!   the status "failed: cut by shutdown" — nothing is left half-owned.
//! - Another applier holding the lease is [`RunOutcome::skipped`], never a failure; the lease
//!   is not waited for (the loop's interval and jitter spread replicas apart).
//! - A removal guard that refuses is a failure with the guard's message: `watch` never
//!   applies removals beyond the guard.
//! - API calls: the clients' [`HttpStats`] are shared by every run of one config, so each run
//!   reports what the counters moved since the previous report ([`Tally`]). Summed over runs
//!   that is exact; with parallel runs, a call may be attributed to the run next to it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::reconciler::{ApiCalls, Mode, Reconciler, RunError, RunOutcome};
use crate::apply::{self, BindingOutcome, BindingReport, lease};
use crate::config::{Binding, Loaded};
use crate::dataverse::schema::sync_status;
use crate::http::HttpStats;
use crate::mailchimp;
use crate::observe::{self, Clients};
use crate::plan::{self, BindingPlan};

/// The reconciler `audience-sync watch` runs.
pub struct LiveReconciler {
    connected: Mutex<Option<Connected>>,
    lease_term: std::time::Duration,
}

impl Default for LiveReconciler {
    fn default() -> Self {
        Self {
            connected: Mutex::default(),
            lease_term: lease::DEFAULT_TERM,
        }
    }
}

/// The clients of one config, and what their counters read at the last report.
struct Connected {
    digest: String,
    clients: Clients,
    tally: Arc<Tally>,
}

/// Counter readings already reported, by service.
#[derive(Debug, Default)]
pub struct Tally {
    reported: Mutex<BTreeMap<String, ApiCalls>>,
}

impl Tally {
    /// What the counters moved since the last call, by service; the readings become the new
    /// baseline.
    pub fn delta(&self, now: &[(&str, ApiCalls)]) -> BTreeMap<String, ApiCalls> {
        let mut reported = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
        now.iter()
            .map(|(service, calls)| {
                let before = reported.insert((*service).to_owned(), *calls);
                let before = before.unwrap_or_default();
                (
                    (*service).to_owned(),
                    ApiCalls {
                        requests: calls.requests.saturating_sub(before.requests),
                        throttled: calls.throttled.saturating_sub(before.throttled),
                    },
                )
            })
            .collect()
    }
}

fn reading(stats: &HttpStats) -> ApiCalls {
    ApiCalls {
        requests: stats.requests(),
        throttled: stats.throttled(),
    }
}

/// One run's view of the clients.
struct Session {
    clients: Clients,
    tally: Arc<Tally>,
}

impl Session {
    fn api(&self) -> BTreeMap<String, ApiCalls> {
        self.tally.delta(&[
            ("mailchimp", reading(&self.clients.mailchimp.stats())),
            ("dataverse", reading(&self.clients.dataverse.stats())),
        ])
    }

    fn fail(&self, message: String, source_digest: Option<&str>) -> RunError {
        RunError {
            message,
            source_digest: source_digest.map(str::to_owned),
            api: self.api(),
        }
    }
}

impl LiveReconciler {
    /// A reconciler with no clients yet (they are built on first use).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Take leases of `term` (see [`lease::Claim::term`]).
    #[must_use]
    pub fn with_lease_term(mut self, term: std::time::Duration) -> Self {
        self.lease_term = term;
        self
    }

    /// The clients for this config: the cached ones while its digest is the same.
    fn session(&self, config: &Loaded) -> Result<Session, String> {
        let mut connected = self
            .connected
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = connected.as_ref().filter(|c| c.digest == config.digest) {
            return Ok(Session {
                clients: c.clients.clone(),
                tally: c.tally.clone(),
            });
        }
        let clients = Clients::connect(config).map_err(|err| crate::output::error_chain(&err))?;
        let tally = Arc::new(Tally::default());
        *connected = Some(Connected {
            digest: config.digest.clone(),
            clients: clients.clone(),
            tally: tally.clone(),
        });
        Ok(Session { clients, tally })
    }

    async fn run(
        &self,
        config: Arc<Loaded>,
        name: String,
        mode: Mode,
        cancel: CancellationToken,
    ) -> Result<RunOutcome, RunError> {
        let Some(binding) = config.bindings.iter().find(|b| b.name == name) else {
            return Err(RunError::new(format!(
                "binding `{name}` is not in the config"
            )));
        };
        let session = self.session(&config).map_err(RunError::new)?;
        if cancel.is_cancelled() {
            return Err(session.fail(cancelled(&name), None));
        }
        // The source version is read first: if it changes while a failure backs off, the loop
        // tries again at once.
        let version = source_version(&session.clients.mailchimp, binding)
            .await
            .ok();
        let snapshot = tokio::select! {
            snapshot = observe::observe(binding, &config.names, &session.clients) => snapshot,
            () = cancel.cancelled() => return Err(session.fail(cancelled(&name), None)),
        };
        let snapshot = snapshot
            .map_err(|err| session.fail(crate::output::error_chain(&err), version.as_deref()))?;
        let plan = plan::compute(binding, &config.names, &snapshot);
        drop(snapshot);
        let digest = version.unwrap_or_else(|| plan.digests.mailchimp.clone());
        if mode == Mode::Report {
            return Ok(RunOutcome {
                changes: planned(&plan),
                drift: !plan.changes.is_empty(),
                source_digest: Some(digest),
                api: session.api(),
                ..RunOutcome::default()
            });
        }
        if let Some(guard) = &plan.guard {
            return Err(session.fail(guard.message.clone(), Some(&digest)));
        }
        if cancel.is_cancelled() {
            return Err(session.fail(cancelled(&name), Some(&digest)));
        }
        let options = apply::Options {
            claim: lease::Claim::new("watch", std::time::Duration::ZERO, self.lease_term),
            allow_removals: false,
            plan_id: format!("watch:{}", uuid::Uuid::new_v4()),
            stale_members: std::collections::HashSet::new(),
        };
        let Some(report) =
            apply_cancellable(&session.clients, &config, &plan, &options, &cancel).await
        else {
            let released = release_own_lease(&session.clients, &plan, &options.claim.owner).await;
            let mut message = cancelled(&name);
            if let Err(err) = released {
                message.push_str(&format!(
                    "; releasing the lease failed ({err}): it lapses by itself"
                ));
            }
            return Err(session.fail(message, Some(&digest)));
        };
        outcome(&report, &plan, digest, session.api())
    }
}

/// Apply, unless `cancel` fires first (then `None`: the apply was dropped at its current
/// request). The apply runs on a blocking thread of its own, driven by the runtime's handle:
/// its future is not provably `Send` (a compiler limit with higher-ranked closures inside the
/// executor), and the loop needs a `Send` run.
async fn apply_cancellable(
    clients: &Clients,
    config: &Arc<Loaded>,
    plan: &BindingPlan,
    options: &apply::Options,
    cancel: &CancellationToken,
) -> Option<BindingReport> {
    let handle = tokio::runtime::Handle::current();
    let (clients, config, plan, options, cancel) = (
        clients.clone(),
        config.clone(),
        plan.clone(),
        options.clone(),
        cancel.clone(),
    );
    let name = plan.name.clone();
    let task = tokio::task::spawn_blocking(move || {
        handle.block_on(async {
            let progress = |_: plan::Action, _: usize| {};
            tokio::select! {
                report = apply::apply_binding(&clients, &config.names, &plan, &options, &progress) => Some(report),
                () = cancel.cancelled() => None,
            }
        })
    });
    match task.await {
        Ok(report) => report,
        Err(err) => Some(BindingReport {
            outcome: BindingOutcome::Error,
            message: Some(format!("the apply task failed: {err}")),
            ..BindingReport::new(&name)
        }),
    }
}

fn cancelled(binding: &str) -> String {
    format!("the run of binding `{binding}` was cut by shutdown")
}

/// Changes of a plan by kind.
fn planned(plan: &BindingPlan) -> BTreeMap<String, u64> {
    plan.counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(action, n)| (action.code().to_owned(), *n))
        .collect()
}

/// The loop's view of an apply report (pure).
fn outcome(
    report: &BindingReport,
    plan: &BindingPlan,
    source_digest: String,
    api: BTreeMap<String, ApiCalls>,
) -> Result<RunOutcome, RunError> {
    let message = || {
        report
            .message
            .clone()
            .unwrap_or_else(|| report.outcome.label().to_owned())
    };
    match report.outcome {
        BindingOutcome::Error => Err(RunError {
            message: message(),
            source_digest: Some(source_digest),
            api,
        }),
        outcome => {
            let changes = report
                .counts
                .iter()
                .filter(|(_, c)| c.done > 0)
                .map(|(action, c)| (action.code().to_owned(), c.done))
                .collect();
            Ok(RunOutcome {
                changes,
                failures: report.totals().failed + report.plan_errors,
                drift: !plan.changes.is_empty(),
                source_digest: Some(source_digest),
                api,
                skipped: (outcome == BindingOutcome::Skipped).then(message),
            })
        }
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
        .map_err(|err| crate::output::error_chain(&err))?;
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
        .map_err(|err| crate::output::error_chain(&err))?;
    tracing::info!(
        binding = %plan.name,
        lease = %held.id,
        released,
        "cut run: lease released"
    );
    Ok(())
}

impl Reconciler for LiveReconciler {
    fn reconcile(
        &self,
        config: Arc<Loaded>,
        binding: String,
        mode: Mode,
        cancel: CancellationToken,
    ) -> BoxFuture<'_, Result<RunOutcome, RunError>> {
        Box::pin(self.run(config, binding, mode, cancel))
    }

    fn source_digest(&self, config: Arc<Loaded>, binding: String) -> BoxFuture<'_, Option<String>> {
        Box::pin(async move {
            let session = self.session(&config).ok()?;
            let binding = config.bindings.iter().find(|b| b.name == binding)?;
            source_version(&session.clients.mailchimp, binding)
                .await
                .ok()
        })
    }

    fn probe(&self, config: Arc<Loaded>) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let session = self.session(&config)?;
            let (mailchimp, dataverse) = futures::join!(
                session.clients.mailchimp.ping(),
                session.clients.dataverse.who_am_i()
            );
            mailchimp.map_err(|err| format!("Mailchimp: {}", crate::output::error_chain(&err)))?;
            dataverse.map_err(|err| format!("Dataverse: {}", crate::output::error_chain(&err)))?;
            Ok(())
        })
    }
}

/// A cheap version of a binding's Mailchimp side (three small requests: the audience, its most
/// recently changed member with the member count, its tags). Runs report it as their source
/// digest and the loop asks for it while a failing binding backs off, so that new data is
/// tried at once while the same failing input is not retried in a hot loop.
async fn source_version(
    client: &mailchimp::Client,
    binding: &Binding,
) -> Result<String, mailchimp::Error> {
    use sha2::{Digest as _, Sha256};
    let audience = client.find_audience(&binding.audience).await?;
    let (members, latest) = client.latest_change(&audience.id).await?;
    let mut tags: Vec<(u64, String)> = client
        .tags(&audience.id)
        .await?
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect();
    tags.sort();
    let mut hash = Sha256::new();
    hash.update(format!(
        "{}\n{members}\n{}\n",
        audience.id,
        latest.unwrap_or_default()
    ));
    for (id, name) in tags {
        hash.update(format!("{id}\t{name}\n"));
    }
    Ok(format!("sha256:{}", hex::encode(hash.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls(requests: u64, throttled: u64) -> ApiCalls {
        ApiCalls {
            requests,
            throttled,
        }
    }

    #[test]
    fn each_report_gets_what_the_counters_moved_since_the_last_one() {
        let tally = Tally::default();
        let first = tally.delta(&[("mailchimp", calls(5, 1)), ("dataverse", calls(10, 0))]);
        assert_eq!(first["mailchimp"], calls(5, 1));
        assert_eq!(first["dataverse"], calls(10, 0));
        let second = tally.delta(&[("mailchimp", calls(7, 1)), ("dataverse", calls(10, 3))]);
        assert_eq!(second["mailchimp"], calls(2, 0));
        assert_eq!(second["dataverse"], calls(0, 3));
    }
}
