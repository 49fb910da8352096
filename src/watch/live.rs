//! The real [`Reconciler`]: one binding through [`crate::sync`] (observe, plan, and in
//! [`Mode::Apply`] apply under the binding's CRM lease; cancellation and the lease release after
//! a cut are described there), with this module keeping what only `watch` needs:
//!
//! - One [`Clients`] per config digest: built on first use, reused while the config is the
//!   same (connection pools, the Dataverse token), rebuilt when the config changes.
//! - Another applier holding the lease is [`RunOutcome::skipped`] with [`RunOutcome::held_by`],
//!   never a failure (unless `--lock-timeout` was waited out in `--once`); a removal
//!   guard that refuses is a failure with the guard's message: `watch` never applies removals
//!   beyond the guard.
//! - API calls: the clients' [`HttpStats`] are shared by every run of one config, so each run
//!   reports what the counters moved since the previous report ([`Tally`]). Summed over runs
//!   that is exact; with parallel runs, a call may be attributed to the run next to it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::reconciler::{ApiCalls, Mode, Reconciler, RunError, RunOutcome};
use crate::apply::{BindingOutcome, BindingReport};
use crate::plan::BindingPlan;
use crate::sync::{self, Reconciled};
use crate::{clients::Clients, config::Loaded, http::HttpStats};

/// The reconciler `audience-sync watch` runs.
pub struct LiveReconciler {
    connected: Mutex<Option<Connected>>,
    leasing: sync::Leasing,
}

impl Default for LiveReconciler {
    fn default() -> Self {
        Self {
            connected: Mutex::default(),
            leasing: sync::Leasing {
                term: crate::apply::lease::DEFAULT_TERM,
                wait: std::time::Duration::ZERO,
            },
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

    fn fail(&self, failed: sync::Failed) -> RunError {
        RunError {
            message: failed.message,
            source_digest: failed.source_version,
            api: self.api(),
        }
    }

    fn sync<'a>(&'a self, config: &'a Loaded) -> sync::Session<'a> {
        sync::Session {
            loaded: config,
            clients: &self.clients,
            reporter: &sync::Tracing,
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
        self.leasing.term = term;
        self
    }

    /// Wait up to `wait` for another holder's lease before skipping a binding
    /// (`watch --once --lock-timeout`; replicas do not wait).
    #[must_use]
    pub fn with_lock_wait(mut self, wait: std::time::Duration) -> Self {
        self.leasing.wait = wait;
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
        let reconciled = session
            .sync(&config)
            .reconcile(binding, mode.into(), self.leasing, &cancel)
            .await
            .map_err(|failed| session.fail(failed))?;
        match reconciled {
            Reconciled::Suspended => Ok(RunOutcome {
                skipped: Some(format!("binding `{name}` is suspended")),
                api: session.api(),
                ..RunOutcome::default()
            }),
            Reconciled::Held(holder) => Ok(RunOutcome {
                skipped: Some(
                    crate::apply::lease::Error::Held {
                        binding: name,
                        holder: holder.clone(),
                    }
                    .to_string(),
                ),
                held_by: Some(holder.into()),
                api: session.api(),
                ..RunOutcome::default()
            }),
            Reconciled::Done {
                plan,
                source_version,
                applied: None,
            } => Ok(RunOutcome {
                changes: planned(&plan),
                drift: !plan.changes.is_empty(),
                source_digest: Some(source_version),
                api: session.api(),
                ..RunOutcome::default()
            }),
            Reconciled::Done {
                plan,
                source_version,
                applied: Some(report),
            } => outcome(&report, &plan, source_version, session.api()),
        }
    }
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
                held_by: None,
            })
        }
    }
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
            session.sync(&config).source_version(binding).await
        })
    }

    fn probe(&self, config: Arc<Loaded>) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let session = self.session(&config)?;
            session.clients.probe().await
        })
    }
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
