//! The `/metrics` registry, rendered by hand in the Prometheus text exposition format (0.0.4).
//!
//! No metrics crate: the set is small and fixed, and rendering it ourselves keeps the output
//! deterministic (families in a fixed order, series sorted by label values) and testable.
//!
//! # Invariants
//! - Every family has `# HELP` and `# TYPE` before its samples, and its samples are contiguous.
//! - Counters end in `_total`; the histogram has cumulative `_bucket{le=…}` series ending in
//!   `le="+Inf"`, equal to `_count`.
//! - Label values are escaped (`\\`, `\"`, `\n`); binding names come from the config.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use super::reconciler::{ApiCalls, Mode};
use super::status::Outcome;

/// Upper bounds (seconds) of the run-duration histogram buckets.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

#[derive(Debug, Clone, Default)]
struct Histogram {
    /// Per bucket (not cumulative), the same length as `DURATION_BUCKETS`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, value: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; DURATION_BUCKETS.len()];
        }
        if let Some(i) = DURATION_BUCKETS.iter().position(|le| value <= *le) {
            self.counts[i] += 1;
        }
        self.sum += value;
        self.count += 1;
    }
}

#[derive(Debug, Default)]
struct Inner {
    mode: Option<Mode>,
    runs: BTreeMap<(String, Outcome), u64>,
    changes: BTreeMap<(String, String), u64>,
    pending: BTreeMap<String, BTreeMap<String, u64>>,
    drift: BTreeMap<String, bool>,
    record_failures: BTreeMap<String, u64>,
    api: BTreeMap<String, ApiCalls>,
    durations: BTreeMap<String, Histogram>,
    last_run: BTreeMap<String, f64>,
    last_success: BTreeMap<String, f64>,
    consecutive_failures: BTreeMap<String, u32>,
    running: BTreeMap<String, bool>,
    config_valid: bool,
    config_reloads: BTreeMap<&'static str, u64>,
    config_loaded_at: Option<f64>,
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
}

/// The registry. Cheap to update from the loop, rendered on each scrape.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// Result label of `audience_sync_config_reloads_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// A new valid config was taken into force.
    Applied,
    /// The file changed but was invalid; the last good config stays.
    Rejected,
}

impl Metrics {
    /// A registry for a loop in `mode`.
    #[must_use]
    pub fn new(mode: Mode) -> Self {
        let metrics = Self::default();
        metrics.with(|m| m.mode = Some(mode));
        metrics
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut guard = match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// A run started or ended.
    pub fn set_running(&self, binding: &str, running: bool) {
        self.with(|m| m.running.insert(binding.to_owned(), running));
    }

    /// A run finished.
    pub fn record_run(&self, run: &RunRecord<'_>) {
        let report = matches!(self.with(|m| m.mode), Some(Mode::Report));
        self.with(|m| {
            let b = run.binding.to_owned();
            *m.runs.entry((b.clone(), run.outcome)).or_default() += 1;
            if report {
                if run.drift.is_some() {
                    m.pending.insert(b.clone(), run.changes.clone());
                }
            } else {
                for (kind, n) in run.changes {
                    *m.changes.entry((b.clone(), kind.clone())).or_default() += n;
                }
            }
            if let Some(drift) = run.drift {
                m.drift.insert(b.clone(), drift);
            }
            *m.record_failures.entry(b.clone()).or_default() += run.failures;
            for (service, calls) in run.api {
                let total = m.api.entry(service.clone()).or_default();
                total.requests += calls.requests;
                total.throttled += calls.throttled;
            }
            m.durations
                .entry(b.clone())
                .or_default()
                .observe(run.duration.as_secs_f64());
            m.last_run.insert(b.clone(), run.finished_unix);
            if run.outcome.is_success() {
                m.last_success.insert(b.clone(), run.finished_unix);
            }
            m.consecutive_failures
                .insert(b.clone(), run.consecutive_failures);
            m.running.insert(b, false);
        });
    }

    /// The config file was (re)read.
    pub fn record_reload(&self, result: Reload, now_unix: f64) {
        self.with(|m| {
            let label = match result {
                Reload::Applied => "applied",
                Reload::Rejected => "rejected",
            };
            *m.config_reloads.entry(label).or_default() += 1;
            m.config_valid = result == Reload::Applied;
            if result == Reload::Applied {
                m.config_loaded_at = Some(now_unix);
            }
        });
    }

    /// The file on disk is valid again (reverted to the config in force).
    pub fn set_config_valid(&self, valid: bool) {
        self.with(|m| m.config_valid = valid);
    }

    /// Forget the series of bindings no longer in the config (their counters would otherwise
    /// be reported forever).
    pub fn retain_bindings(&self, keep: &[String]) {
        self.with(|m| {
            let keep_name = |name: &String| keep.contains(name);
            m.pending.retain(|b, _| keep_name(b));
            m.drift.retain(|b, _| keep_name(b));
            m.consecutive_failures.retain(|b, _| keep_name(b));
            m.running.retain(|b, _| keep_name(b));
            m.last_run.retain(|b, _| keep_name(b));
            m.last_success.retain(|b, _| keep_name(b));
        });
    }

    /// The text exposition of every metric.
    #[must_use]
    pub fn render(&self) -> String {
        self.with(|m| render(m))
    }
}

/// Escape a label value.
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A sample value: integers without a fraction, `+Inf`/`-Inf`/`NaN` spelled as Prometheus does.
fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v}")
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn render(m: &Inner) -> String {
    let mut out = String::new();
    let mode = m.mode.map_or("apply", Mode::as_str);

    family(
        &mut out,
        "audience_sync_info",
        "gauge",
        "Always 1; the labels say how this process runs.",
    );
    let _ = writeln!(
        out,
        "audience_sync_info{{version=\"{}\",mode=\"{mode}\"}} 1",
        label(env!("CARGO_PKG_VERSION"))
    );

    family(
        &mut out,
        "audience_sync_config_valid",
        "gauge",
        "1 when the config file on disk is the config in force, 0 while an invalid edit is pending.",
    );
    let _ = writeln!(
        out,
        "audience_sync_config_valid {}",
        u8::from(m.config_valid)
    );

    family(
        &mut out,
        "audience_sync_config_reloads_total",
        "counter",
        "Changes of the config file, by whether they were applied or rejected as invalid.",
    );
    for result in ["applied", "rejected"] {
        let n = m.config_reloads.get(result).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "audience_sync_config_reloads_total{{result=\"{result}\"}} {n}"
        );
    }

    if let Some(at) = m.config_loaded_at {
        family(
            &mut out,
            "audience_sync_config_loaded_timestamp_seconds",
            "gauge",
            "When the config in force was loaded (Unix time).",
        );
        let _ = writeln!(
            out,
            "audience_sync_config_loaded_timestamp_seconds {}",
            value(at)
        );
    }

    family(
        &mut out,
        "audience_sync_runs_total",
        "counter",
        "Finished reconcile runs, by binding and outcome (success, drift, partial, failure, cancelled).",
    );
    for ((binding, outcome), n) in &m.runs {
        let _ = writeln!(
            out,
            "audience_sync_runs_total{{binding=\"{}\",outcome=\"{}\"}} {n}",
            label(binding),
            outcome.as_str()
        );
    }

    family(
        &mut out,
        "audience_sync_changes_applied_total",
        "counter",
        "Changes applied to the CRM, by binding and kind.",
    );
    for ((binding, kind), n) in &m.changes {
        let _ = writeln!(
            out,
            "audience_sync_changes_applied_total{{binding=\"{}\",kind=\"{}\"}} {n}",
            label(binding),
            label(kind)
        );
    }

    family(
        &mut out,
        "audience_sync_drift",
        "gauge",
        "1 when the last run found the CRM differing from the config (report mode), else 0.",
    );
    for (binding, drift) in &m.drift {
        let _ = writeln!(
            out,
            "audience_sync_drift{{binding=\"{}\"}} {}",
            label(binding),
            u8::from(*drift)
        );
    }

    family(
        &mut out,
        "audience_sync_pending_changes",
        "gauge",
        "Changes the last report-mode plan found, by binding and kind.",
    );
    for (binding, kinds) in &m.pending {
        for (kind, n) in kinds {
            let _ = writeln!(
                out,
                "audience_sync_pending_changes{{binding=\"{}\",kind=\"{}\"}} {n}",
                label(binding),
                label(kind)
            );
        }
    }

    family(
        &mut out,
        "audience_sync_record_failures_total",
        "counter",
        "Records whose write failed, by binding.",
    );
    for (binding, n) in &m.record_failures {
        let _ = writeln!(
            out,
            "audience_sync_record_failures_total{{binding=\"{}\"}} {n}",
            label(binding)
        );
    }

    family(
        &mut out,
        "audience_sync_consecutive_failures",
        "gauge",
        "Consecutive failed runs of a binding on the same input (0 when healthy).",
    );
    for (binding, n) in &m.consecutive_failures {
        let _ = writeln!(
            out,
            "audience_sync_consecutive_failures{{binding=\"{}\"}} {n}",
            label(binding)
        );
    }

    family(
        &mut out,
        "audience_sync_running",
        "gauge",
        "1 while a run of the binding is in progress.",
    );
    for (binding, running) in &m.running {
        let _ = writeln!(
            out,
            "audience_sync_running{{binding=\"{}\"}} {}",
            label(binding),
            u8::from(*running)
        );
    }

    family(
        &mut out,
        "audience_sync_api_requests_total",
        "counter",
        "HTTP requests sent to each service, retries included.",
    );
    for (service, calls) in &m.api {
        let _ = writeln!(
            out,
            "audience_sync_api_requests_total{{service=\"{}\"}} {}",
            label(service),
            calls.requests
        );
    }

    family(
        &mut out,
        "audience_sync_api_throttled_total",
        "counter",
        "Responses with status 429 (too many requests) from each service.",
    );
    for (service, calls) in &m.api {
        let _ = writeln!(
            out,
            "audience_sync_api_throttled_total{{service=\"{}\"}} {}",
            label(service),
            calls.throttled
        );
    }

    family(
        &mut out,
        "audience_sync_last_run_timestamp_seconds",
        "gauge",
        "When the binding's last run ended (Unix time).",
    );
    for (binding, at) in &m.last_run {
        let _ = writeln!(
            out,
            "audience_sync_last_run_timestamp_seconds{{binding=\"{}\"}} {}",
            label(binding),
            value(*at)
        );
    }

    family(
        &mut out,
        "audience_sync_last_success_timestamp_seconds",
        "gauge",
        "When the binding's last successful run ended (Unix time).",
    );
    for (binding, at) in &m.last_success {
        let _ = writeln!(
            out,
            "audience_sync_last_success_timestamp_seconds{{binding=\"{}\"}} {}",
            label(binding),
            value(*at)
        );
    }

    family(
        &mut out,
        "audience_sync_run_duration_seconds",
        "histogram",
        "How long reconcile runs take, by binding.",
    );
    for (binding, h) in &m.durations {
        let b = label(binding);
        let mut cumulative = 0;
        for (i, le) in DURATION_BUCKETS.iter().enumerate() {
            cumulative += h.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "audience_sync_run_duration_seconds_bucket{{binding=\"{b}\",le=\"{}\"}} {cumulative}",
                value(*le)
            );
        }
        let _ = writeln!(
            out,
            "audience_sync_run_duration_seconds_bucket{{binding=\"{b}\",le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            out,
            "audience_sync_run_duration_seconds_sum{{binding=\"{b}\"}} {}",
            value(h.sum)
        );
        let _ = writeln!(
            out,
            "audience_sync_run_duration_seconds_count{{binding=\"{b}\"}} {}",
            h.count
        );
    }
    out
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
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(label("x\ny"), "x\\ny");
    }

    #[test]
    fn values_use_prometheus_spelling() {
        assert_eq!(value(f64::INFINITY), "+Inf");
        assert_eq!(value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(value(f64::NAN), "NaN");
        assert_eq!(value(3.0), "3");
        assert_eq!(value(0.25), "0.25");
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
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in\n{text}"
            );
        }
        assert!(!text.contains("audience_sync_pending_changes{"));
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
