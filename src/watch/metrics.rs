//! The `/metrics` registry, built on the Prometheus project's Rust client
//! ([`prometheus_client`]) and encoded in the Prometheus text format 0.0.4 (its
//! `prometheus_text` encoder).
//!
//! - Run series by binding (`audience_sync_runs_total`, `…_changes_applied_total`, the
//!   `…_run_duration_seconds` histogram, …), config series, API call counters.
//! - Lease series: this process's leases held, renewals, leases lost and lapsed leases taken
//!   over (read at each scrape from [`crate::apply::lease::stats`]), and the runs skipped because
//!   another process held the binding's lease (`audience_sync_lease_skips_total`).
//! - Gauges of bindings gone from the config are removed ([`Metrics::retain_bindings`]);
//!   counters stay (they only grow).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::reconciler::{ApiCalls, Mode};
use super::status::Outcome;

/// Upper bounds (seconds) of the run-duration histogram buckets.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// The `Content-Type` of [`Metrics::render`].
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    version: String,
    mode: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BindingLabel {
    binding: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    binding: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    binding: String,
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabel {
    service: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

type Float = Gauge<f64, AtomicU64>;

fn durations() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// One finished run, as the metrics see it.
#[derive(Debug)]
pub struct RunRecord<'a> {
    /// The binding.
    pub binding: &'a str,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it took.
    pub duration: Duration,
    /// Changes by kind (applied, or pending in report mode).
    pub changes: &'a BTreeMap<String, u64>,
    /// Records that failed.
    pub failures: u64,
    /// Report mode: drift found (`None` when the run did not get that far).
    pub drift: Option<bool>,
    /// API calls by service.
    pub api: &'a BTreeMap<String, ApiCalls>,
    /// End, in Unix seconds.
    pub finished_unix: f64,
    /// Consecutive failures after it.
    pub consecutive_failures: u32,
    /// Skipped because another process held the binding's lease.
    pub lease_held: bool,
}

/// Result label of `audience_sync_config_reloads_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// A new valid config was taken into force.
    Applied,
    /// The file changed but was invalid; the last good config stays.
    Rejected,
}

/// The families, cheap to update from the loop (each series is an atomic).
#[derive(Debug, Default)]
struct Families {
    runs: Family<RunLabels, Counter>,
    changes: Family<KindLabels, Counter>,
    pending: Family<KindLabels, Gauge>,
    drift: Family<BindingLabel, Gauge>,
    record_failures: Family<BindingLabel, Counter>,
    lease_skips: Family<BindingLabel, Counter>,
    consecutive_failures: Family<BindingLabel, Gauge>,
    running: Family<BindingLabel, Gauge>,
    api_requests: Family<ServiceLabel, Counter>,
    api_throttled: Family<ServiceLabel, Counter>,
    last_run: Family<BindingLabel, Float>,
    last_success: Family<BindingLabel, Float>,
    config_valid: Gauge,
    config_reloads: Family<ResultLabel, Counter>,
    config_loaded: Float,
}

/// The lease series, read from [`crate::apply::lease::stats`] at each scrape.
#[derive(Debug)]
struct LeaseCollector;

impl Collector for LeaseCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = crate::apply::lease::stats();
        let held =
            ConstGauge::new(i64::try_from(stats.held.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
        held.encode(encoder.encode_descriptor(
            "leases_held",
            "Binding leases this process holds now.",
            None,
            held.metric_type(),
        )?)?;
        for (name, help, value) in [
            (
                "lease_renewals",
                "Lease renewals (heartbeats) that succeeded.",
                &stats.renewals,
            ),
            (
                "leases_lost",
                "Leases this process lost: not renewed before they ran out, or taken from it; its writes stopped.",
                &stats.lost,
            ),
            (
                "leases_taken_over",
                "Lapsed leases of other holders (that stopped renewing) taken over.",
                &stats.taken_over,
            ),
        ] {
            let counter = ConstCounter::new(value.load(Ordering::Relaxed));
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

/// The registry. Updated by the loop, encoded on each scrape.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    families: Families,
    durations: Family<BindingLabel, Histogram, fn() -> Histogram>,
    report: bool,
    /// The kinds of each binding's pending-changes series (replaced on each report-mode run).
    pending_kinds: Mutex<BTreeMap<String, BTreeSet<String>>>,
    /// Bindings with series (a family cannot list its label sets).
    bindings: Mutex<BTreeSet<String>>,
}

impl Metrics {
    /// A registry for a loop in `mode`.
    #[must_use]
    pub fn new(mode: Mode) -> Self {
        let families = Families::default();
        let durations: Family<BindingLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(durations);
        let mut registry = Registry::with_prefix("audience_sync");
        let info: Family<InfoLabels, Gauge> = Family::default();
        info.get_or_create(&InfoLabels {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            mode: mode.as_str().to_owned(),
        })
        .set(1);
        let f = &families;
        registry.register(
            "info",
            "Always 1; the labels say how this process runs.",
            info,
        );
        registry.register("config_valid", "1 when the config file on disk is the config in force, 0 while an invalid edit is pending.", f.config_valid.clone());
        registry.register(
            "config_reloads",
            "Changes of the config file, by whether they were applied or rejected as invalid.",
            f.config_reloads.clone(),
        );
        registry.register(
            "config_loaded_timestamp_seconds",
            "When the config in force was loaded (Unix time).",
            f.config_loaded.clone(),
        );
        registry.register("runs", "Finished reconcile runs, by binding and outcome (success, drift, skipped, partial, failure, cancelled).", f.runs.clone());
        registry.register(
            "lease_skips",
            "Runs skipped because another process held the binding's lease, by binding.",
            f.lease_skips.clone(),
        );
        registry.register(
            "changes_applied",
            "Changes applied to the CRM, by binding and kind.",
            f.changes.clone(),
        );
        registry.register(
            "drift",
            "1 when the last run found the CRM differing from the config (report mode), else 0.",
            f.drift.clone(),
        );
        registry.register(
            "pending_changes",
            "Changes the last report-mode plan found, by binding and kind.",
            f.pending.clone(),
        );
        registry.register(
            "record_failures",
            "Records whose write failed, by binding.",
            f.record_failures.clone(),
        );
        registry.register(
            "consecutive_failures",
            "Consecutive failed runs of a binding on the same input (0 when healthy).",
            f.consecutive_failures.clone(),
        );
        registry.register(
            "running",
            "1 while a run of the binding is in progress.",
            f.running.clone(),
        );
        registry.register(
            "api_requests",
            "HTTP requests sent to each service, retries included.",
            f.api_requests.clone(),
        );
        registry.register(
            "api_throttled",
            "Responses with status 429 (too many requests) from each service.",
            f.api_throttled.clone(),
        );
        registry.register(
            "last_run_timestamp_seconds",
            "When the binding's last run ended (Unix time).",
            f.last_run.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "When the binding's last successful run ended (Unix time).",
            f.last_success.clone(),
        );
        registry.register(
            "run_duration_seconds",
            "How long reconcile runs take, by binding.",
            durations.clone(),
        );
        registry.register_collector(Box::new(LeaseCollector));
        for result in ["applied", "rejected"] {
            let _ = families.config_reloads.get_or_create(&ResultLabel {
                result: result.to_owned(),
            });
        }
        Self {
            registry,
            families,
            durations,
            report: mode == Mode::Report,
            pending_kinds: Mutex::default(),
            bindings: Mutex::default(),
        }
    }

    /// A run started or ended.
    pub fn set_running(&self, binding: &str, running: bool) {
        self.bindings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(binding.to_owned());
        self.families
            .running
            .get_or_create(&by(binding))
            .set(i64::from(running));
    }

    /// A run finished.
    pub fn record_run(&self, run: &RunRecord<'_>) {
        let f = &self.families;
        let b = by(run.binding);
        self.bindings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(run.binding.to_owned());
        f.runs
            .get_or_create(&RunLabels {
                binding: run.binding.to_owned(),
                outcome: run.outcome.as_str().to_owned(),
            })
            .inc();
        if run.lease_held {
            f.lease_skips.get_or_create(&b).inc();
        }
        if self.report {
            if run.drift.is_some() {
                self.set_pending(run.binding, run.changes);
            }
        } else {
            for (kind, n) in run.changes {
                f.changes
                    .get_or_create(&kind_of(run.binding, kind))
                    .inc_by(*n);
            }
        }
        if let Some(drift) = run.drift {
            f.drift.get_or_create(&b).set(i64::from(drift));
        }
        f.record_failures.get_or_create(&b).inc_by(run.failures);
        for (service, calls) in run.api {
            let service = ServiceLabel {
                service: service.clone(),
            };
            f.api_requests
                .get_or_create(&service)
                .inc_by(calls.requests);
            f.api_throttled
                .get_or_create(&service)
                .inc_by(calls.throttled);
        }
        self.durations
            .get_or_create(&b)
            .observe(run.duration.as_secs_f64());
        f.last_run.get_or_create(&b).set(run.finished_unix);
        if run.outcome.is_success() {
            f.last_success.get_or_create(&b).set(run.finished_unix);
        }
        f.consecutive_failures
            .get_or_create(&b)
            .set(i64::from(run.consecutive_failures));
        f.running.get_or_create(&b).set(0);
    }

    /// Replace the pending-changes series of `binding`.
    fn set_pending(&self, binding: &str, changes: &BTreeMap<String, u64>) {
        let mut kinds = self
            .pending_kinds
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let known = kinds.entry(binding.to_owned()).or_default();
        for kind in known.iter().filter(|k| !changes.contains_key(*k)) {
            self.families.pending.remove(&kind_of(binding, kind));
        }
        *known = changes.keys().cloned().collect();
        for (kind, n) in changes {
            self.families
                .pending
                .get_or_create(&kind_of(binding, kind))
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
    }

    /// The config file was (re)read.
    pub fn record_reload(&self, result: Reload, now_unix: f64) {
        let label = match result {
            Reload::Applied => "applied",
            Reload::Rejected => "rejected",
        };
        self.families
            .config_reloads
            .get_or_create(&ResultLabel {
                result: label.to_owned(),
            })
            .inc();
        self.set_config_valid(result == Reload::Applied);
        if result == Reload::Applied {
            self.families.config_loaded.set(now_unix);
        }
    }

    /// The file on disk is valid again (reverted to the config in force).
    pub fn set_config_valid(&self, valid: bool) {
        self.families.config_valid.set(i64::from(valid));
    }

    /// Forget the gauges of bindings no longer in the config (they would otherwise be reported
    /// forever).
    pub fn retain_bindings(&self, keep: &[String]) {
        let mut kinds = self
            .pending_kinds
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let gone: Vec<String> = kinds
            .keys()
            .filter(|b| !keep.contains(b))
            .cloned()
            .collect();
        for binding in gone {
            for kind in kinds.remove(&binding).unwrap_or_default() {
                self.families.pending.remove(&kind_of(&binding, &kind));
            }
        }
        drop(kinds);
        let f = &self.families;
        let mut bindings = self.bindings.lock().unwrap_or_else(PoisonError::into_inner);
        let gone: Vec<String> = bindings
            .iter()
            .filter(|b| !keep.contains(b))
            .cloned()
            .collect();
        for binding in gone {
            bindings.remove(&binding);
            let b = by(&binding);
            f.drift.remove(&b);
            f.consecutive_failures.remove(&b);
            f.running.remove(&b);
            f.last_run.remove(&b);
            f.last_success.remove(&b);
        }
    }

    /// The text exposition of every metric.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(err) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::error!(error = %err, "cannot encode the metrics");
        }
        out
    }
}

fn by(binding: &str) -> BindingLabel {
    BindingLabel {
        binding: binding.to_owned(),
    }
}

fn kind_of(binding: &str, kind: &str) -> KindLabels {
    KindLabels {
        binding: binding.to_owned(),
        kind: kind.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(
        binding: &'a str,
        outcome: Outcome,
        secs: f64,
        changes: &'a BTreeMap<String, u64>,
        api: &'a BTreeMap<String, ApiCalls>,
    ) -> RunRecord<'a> {
        RunRecord {
            binding,
            outcome,
            duration: Duration::from_secs_f64(secs),
            changes,
            failures: 2,
            drift: Some(!changes.is_empty()),
            api,
            finished_unix: 1_700_000_000.5,
            consecutive_failures: 0,
            lease_held: false,
        }
    }

    #[test]
    fn runs_accumulate_and_histogram_is_cumulative() {
        let metrics = Metrics::new(Mode::Apply);
        let changes = BTreeMap::from([("create_contact".to_owned(), 3)]);
        let api = BTreeMap::from([(
            "mailchimp".to_owned(),
            ApiCalls {
                requests: 5,
                throttled: 1,
            },
        )]);
        metrics.record_run(&record("news", Outcome::Success, 0.3, &changes, &api));
        metrics.record_run(&record("news", Outcome::Failure, 42.0, &changes, &api));
        let text = metrics.render();
        for line in [
            "audience_sync_runs_total{binding=\"news\",outcome=\"success\"} 1",
            "audience_sync_runs_total{binding=\"news\",outcome=\"failure\"} 1",
            "audience_sync_changes_applied_total{binding=\"news\",kind=\"create_contact\"} 6",
            "audience_sync_record_failures_total{binding=\"news\"} 4",
            "audience_sync_api_requests_total{service=\"mailchimp\"} 10",
            "audience_sync_api_throttled_total{service=\"mailchimp\"} 2",
            "audience_sync_run_duration_seconds_bucket{binding=\"news\",le=\"0.1\"} 0",
            "audience_sync_run_duration_seconds_bucket{binding=\"news\",le=\"0.5\"} 1",
            "audience_sync_run_duration_seconds_bucket{binding=\"news\",le=\"30\"} 1",
            "audience_sync_run_duration_seconds_bucket{binding=\"news\",le=\"60\"} 2",
            "audience_sync_run_duration_seconds_bucket{binding=\"news\",le=\"+Inf\"} 2",
            "audience_sync_run_duration_seconds_count{binding=\"news\"} 2",
            "audience_sync_run_duration_seconds_sum{binding=\"news\"} 42.3",
            "audience_sync_last_success_timestamp_seconds{binding=\"news\"} 1700000000.5",
            "audience_sync_config_reloads_total{result=\"rejected\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in\n{text}"
            );
        }
        assert!(!text.contains("audience_sync_pending_changes{"));
    }

    #[test]
    fn lease_skips_and_lease_series_are_exposed() {
        let metrics = Metrics::new(Mode::Apply);
        let (changes, api) = (BTreeMap::new(), BTreeMap::new());
        let mut skipped = record("news", Outcome::Skipped, 0.1, &changes, &api);
        skipped.lease_held = true;
        metrics.record_run(&skipped);
        metrics.record_run(&skipped);
        let text = metrics.render();
        assert!(
            text.contains("audience_sync_lease_skips_total{binding=\"news\"} 2\n"),
            "{text}"
        );
        for family in [
            "# TYPE audience_sync_leases_held gauge",
            "# TYPE audience_sync_lease_renewals_total counter",
            "# TYPE audience_sync_leases_lost_total counter",
            "# TYPE audience_sync_leases_taken_over_total counter",
        ] {
            assert!(text.contains(family), "missing `{family}` in\n{text}");
        }
    }

    #[test]
    fn a_binding_gone_from_the_config_loses_its_gauges_not_its_counters() {
        let metrics = Metrics::new(Mode::Report);
        let changes = BTreeMap::from([("add_list_member".to_owned(), 7)]);
        let api = BTreeMap::new();
        metrics.record_run(&record("news", Outcome::Drift, 1.0, &changes, &api));
        metrics.retain_bindings(&[]);
        let text = metrics.render();
        assert!(!text.contains("audience_sync_drift{"), "{text}");
        assert!(!text.contains("audience_sync_pending_changes{"), "{text}");
        assert!(
            text.contains("audience_sync_runs_total{binding=\"news\""),
            "{text}"
        );
    }

    #[test]
    fn report_mode_counts_pending_changes_not_applied_ones() {
        let metrics = Metrics::new(Mode::Report);
        let changes = BTreeMap::from([("add_list_member".to_owned(), 7)]);
        let api = BTreeMap::new();
        metrics.record_run(&record("news", Outcome::Drift, 1.0, &changes, &api));
        let text = metrics.render();
        assert!(text.contains("audience_sync_drift{binding=\"news\"} 1\n"));
        assert!(text.contains(
            "audience_sync_pending_changes{binding=\"news\",kind=\"add_list_member\"} 7\n"
        ));
        assert!(!text.contains("audience_sync_changes_applied_total{"));
        assert!(text.contains("mode=\"report\""));
        // A later plan with other kinds replaces the series.
        let other = BTreeMap::from([("remove_list_member".to_owned(), 2)]);
        metrics.record_run(&record("news", Outcome::Drift, 1.0, &other, &api));
        let text = metrics.render();
        assert!(!text.contains("kind=\"add_list_member\""), "{text}");
        assert!(text.contains("kind=\"remove_list_member\"} 2\n"), "{text}");
    }

    #[test]
    fn every_family_is_declared_once_before_its_samples() {
        let metrics = Metrics::new(Mode::Apply);
        let changes = BTreeMap::from([("k".to_owned(), 1)]);
        let api = BTreeMap::new();
        metrics.record_run(&record("a", Outcome::Success, 1.0, &changes, &api));
        metrics.record_reload(Reload::Applied, 1.0);
        let text = metrics.render();
        let mut declared: Vec<&str> = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap_or_default();
                assert!(!declared.contains(&name), "`{name}` declared twice");
                declared.push(name);
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap_or_default();
                let last = declared.last().copied().unwrap_or_default();
                assert!(
                    name.starts_with(last),
                    "`{name}` outside its family `{last}`"
                );
            }
        }
    }
}
