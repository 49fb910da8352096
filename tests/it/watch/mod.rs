//! `watch` as a library over real HTTP on an ephemeral loopback port, with a scripted fake
//! reconciler (the real one needs plan and apply): file edits, invalid edits, /metrics as
//! Prometheus text, shutdown mid-run, the bearer token, report mode, backoff, `--once`.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use audience_sync::config::Loaded;
use audience_sync::watch::Outcome;
use audience_sync::watch::{
    self, ApiCalls, Holder, Mode, Options, Reconciler, RunError, RunOutcome, Running,
};
use futures::future::BoxFuture;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod deploy;
mod metrics;

use metrics::{parse_prometheus, sample};

// ---------------------------------------------------------------- the fake reconciler

/// What the fake does when asked to reconcile one binding.
#[derive(Debug, Clone)]
enum Script {
    /// Apply mode: "apply" these changes; report mode: report them as drift.
    Changes(BTreeMap<String, u64>),
    /// Fail, having read source data with this digest.
    Fail(&'static str),
    /// Work until cancelled, then release the (pretend) lease and return.
    UntilCancelled,
    /// Another applier holds the lease.
    LeaseHeld,
    /// Work until the test releases the gate (or until cancelled), then succeed.
    UntilReleased,
}

#[derive(Debug, Clone)]
struct Call {
    binding: String,
    mode: Mode,
    digest: String,
}

#[derive(Debug, Default)]
struct Fake {
    calls: Mutex<Vec<Call>>,
    scripts: Mutex<BTreeMap<String, Script>>,
    applied: AtomicUsize,
    cancelled: AtomicUsize,
    leases_held: AtomicUsize,
    probe_error: Mutex<Option<String>>,
    /// What the cheap source-digest check answers (`None`: not supported).
    cheap_digest: Mutex<Option<String>>,
    digest_checks: AtomicUsize,
    gate: tokio::sync::Notify,
    finished: AtomicUsize,
}

impl Fake {
    fn new(scripts: &[(&str, Script)]) -> Arc<Self> {
        let fake = Self::default();
        for (name, script) in scripts {
            fake.script(name, script.clone());
        }
        Arc::new(fake)
    }

    fn script(&self, binding: &str, script: Script) {
        self.scripts
            .lock()
            .unwrap()
            .insert(binding.to_owned(), script);
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn calls_of(&self, binding: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.binding == binding)
            .collect()
    }
}

fn api(requests: u64, throttled: u64) -> BTreeMap<String, ApiCalls> {
    BTreeMap::from([
        (
            "mailchimp".to_owned(),
            ApiCalls {
                requests,
                throttled,
            },
        ),
        (
            "dataverse".to_owned(),
            ApiCalls {
                requests: requests * 2,
                throttled: 0,
            },
        ),
    ])
}

impl Reconciler for Fake {
    fn reconcile(
        &self,
        config: Arc<Loaded>,
        binding: String,
        mode: Mode,
        cancel: CancellationToken,
    ) -> BoxFuture<'_, Result<RunOutcome, RunError>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(Call {
                binding: binding.clone(),
                mode,
                digest: config.digest.clone(),
            });
            let script = self
                .scripts
                .lock()
                .unwrap()
                .get(&binding)
                .cloned()
                .unwrap_or(Script::Changes(BTreeMap::new()));
            match script {
                Script::Changes(changes) => {
                    if mode == Mode::Apply {
                        self.applied.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(RunOutcome {
                        drift: !changes.is_empty(),
                        changes,
                        failures: 0,
                        source_digest: Some("s0".to_owned()),
                        api: api(3, 1),
                        skipped: None,
                        held_by: None,
                    })
                }
                Script::UntilReleased => {
                    tokio::select! {
                        () = self.gate.notified() => {
                            self.finished.fetch_add(1, Ordering::SeqCst);
                            Ok(RunOutcome::default())
                        }
                        () = cancel.cancelled() => {
                            self.cancelled.fetch_add(1, Ordering::SeqCst);
                            Err(RunError::new("cancelled"))
                        }
                    }
                }
                Script::LeaseHeld => Ok(RunOutcome {
                    skipped: Some("lease held by `replica-b` until 04:30:00Z".to_owned()),
                    held_by: Some(Holder {
                        owner: "replica-b".to_owned(),
                        lease: "l-1".to_owned(),
                        expires: chrono::Utc::now() + chrono::Duration::seconds(30),
                    }),
                    api: api(1, 0),
                    ..RunOutcome::default()
                }),
                Script::Fail(source) => Err(RunError {
                    message: format!("mailchimp answered 500 for binding `{binding}`"),
                    source_digest: Some(source.to_owned()),
                    api: api(1, 0),
                }),
                Script::UntilCancelled => {
                    self.leases_held.fetch_add(1, Ordering::SeqCst);
                    cancel.cancelled().await;
                    self.cancelled.fetch_add(1, Ordering::SeqCst);
                    self.leases_held.fetch_sub(1, Ordering::SeqCst);
                    Err(RunError::new("cancelled; lease released"))
                }
            }
        })
    }

    fn source_digest(
        &self,
        _config: Arc<Loaded>,
        _binding: String,
    ) -> BoxFuture<'_, Option<String>> {
        Box::pin(async move {
            self.digest_checks.fetch_add(1, Ordering::SeqCst);
            self.cheap_digest.lock().unwrap().clone()
        })
    }

    fn probe(&self, _config: Arc<Loaded>) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            match self.probe_error.lock().unwrap().clone() {
                Some(reason) => Err(reason),
                None => Ok(()),
            }
        })
    }
}

// ---------------------------------------------------------------- config files

/// A valid config; `marker` changes its digest, `beta_type` may be made invalid.
fn config_text(marker: &str, beta_type: &str) -> String {
    format!(
        "# {marker}
version: 1
mailchimp:
  api_key: ${{MAILCHIMP_API_KEY}}
dataverse:
  url: https://contoso.crm.dynamics.com
  tenant_id: ${{DATAVERSE_TENANT_ID}}
  client_id: ${{DATAVERSE_CLIENT_ID}}
  client_secret: ${{DATAVERSE_CLIENT_SECRET}}
bindings:
  - name: alpha
    audience: {{ id: a1b2c3d4e5 }}
    marketing_list: {{ name: Alpha, member_type: contact, create: true }}
  - name: beta
    audience: {{ id: b1b2c3d4e5 }}
    marketing_list: {{ name: Beta, member_type: {beta_type}, create: true }}
  - name: gamma
    suspend: true
    audience: {{ id: c1b2c3d4e5 }}
    marketing_list: {{ name: Gamma, member_type: contact, create: true }}
"
    )
}

fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Save as editors that write a temporary file and rename it over the original do.
fn save_by_rename(path: &Path, text: &str) {
    let temp = path.with_file_name(".sync.yaml.tmp");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

/// Save as editors that truncate the file and write it in place do (same inode).
fn save_by_truncate(path: &Path, text: &str) {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file.sync_all().unwrap();
}

// ---------------------------------------------------------------- harness

struct Harness {
    _dir: tempfile::TempDir,
    path: PathBuf,
    running: Option<Running>,
    base: String,
    http: reqwest::Client,
}

fn options(path: &Path) -> Options {
    let mut options = Options::new(path.to_owned());
    options.listen = Some("127.0.0.1:0".parse().unwrap());
    options.interval = Duration::from_secs(3600);
    options.retry_interval = Duration::from_millis(200);
    options.debounce = Duration::from_millis(100);
    options.probe_ttl = Duration::ZERO;
    options
}

async fn start(fake: &Arc<Fake>, tweak: impl FnOnce(&mut Options)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sync.yaml");
    std::fs::write(&path, config_text("v1", "contact")).unwrap();
    let mut options = options(&path);
    tweak(&mut options);
    let running = watch::start(options, fake.clone()).await.unwrap();
    let base = format!("http://{}", running.local_addr().unwrap());
    Harness {
        _dir: dir,
        path,
        running: Some(running),
        base,
        http: reqwest::Client::new(),
    }
}

impl Harness {
    async fn get(&self, route: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{route}", self.base))
            .send()
            .await
            .unwrap()
    }

    async fn status(&self) -> Value {
        let response = self.get("/status").await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn binding(&self, name: &str) -> Value {
        let status = self.status().await;
        status["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no binding `{name}` in {status:#}"))
    }

    async fn stop(mut self) -> Outcome {
        let running = self.running.take().unwrap();
        running.shutdown();
        tokio::time::timeout(Duration::from_secs(10), running.wait())
            .await
            .expect("watch stops within 10 s")
    }
}

/// Poll `probe` until it yields a value, for at most `timeout`.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const WAIT: Duration = Duration::from_secs(10);

async fn initial_runs_done(h: &Harness, fake: &Fake) {
    eventually("the start-up runs", WAIT, || async {
        let alpha = h.binding("alpha").await;
        let beta = h.binding("beta").await;
        (!fake.calls_of("alpha").is_empty()
            && !fake.calls_of("beta").is_empty()
            && alpha["last_run"]["outcome"].is_string()
            && beta["last_run"]["outcome"].is_string())
        .then_some(())
    })
    .await;
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_edits_trigger_a_reconcile_within_2s_for_rename_and_truncate_saves() {
    let fake = Fake::new(&[]);
    let h = start(&fake, |_| {}).await;
    initial_runs_done(&h, &fake).await;
    assert!(
        fake.calls_of("gamma").is_empty(),
        "suspended bindings do not run"
    );
    let status = h.status().await;
    assert_eq!(
        status["config"]["digest"],
        digest(&config_text("v1", "contact"))
    );
    let start_trigger = &h.binding("alpha").await["last_run"]["trigger"];
    assert_eq!(start_trigger, "start");

    for (marker, save) in [
        ("v2", save_by_rename as fn(&Path, &str)),
        ("v3", save_by_truncate),
    ] {
        let text = config_text(marker, "contact");
        let expected = digest(&text);
        save(&h.path, &text);
        eventually(
            &format!("runs with the {marker} config"),
            Duration::from_secs(2),
            || {
                let ran = ["alpha", "beta"]
                    .iter()
                    .all(|b| fake.calls_of(b).iter().any(|c| c.digest == expected));
                async move { ran.then_some(()) }
            },
        )
        .await;
        let alpha = eventually("the run to end", WAIT, || async {
            let alpha = h.binding("alpha").await;
            alpha["last_run"]["outcome"].is_string().then_some(alpha)
        })
        .await;
        assert_eq!(alpha["last_run"]["trigger"], "config", "{alpha:#}");
        assert_eq!(h.status().await["config"]["digest"], expected);
    }
    assert!(fake.calls_of("gamma").is_empty());
    assert_eq!(h.stop().await, Outcome::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_edit_keeps_the_old_config_and_shows_the_error_until_fixed() {
    let fake = Fake::new(&[]);
    let h = start(&fake, |_| {}).await;
    initial_runs_done(&h, &fake).await;
    let good = digest(&config_text("v1", "contact"));
    assert_eq!(h.get("/readyz").await.status(), 200);

    let bad = config_text("v2", "contakt");
    let (line, column) = bad
        .lines()
        .enumerate()
        .find_map(|(i, l)| l.find("contakt").map(|c| (i + 1, c + 1)))
        .unwrap();
    save_by_rename(&h.path, &bad);
    let error = eventually("the config error in /status", WAIT, || async {
        let status = h.status().await;
        (!status["config"]["error"].is_null()).then_some(status["config"].clone())
    })
    .await;
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("sync.yaml:{line}:{column}: error:")),
        "{message}"
    );
    assert_eq!(error["error"]["diagnostics"][0]["line"], line);
    assert_eq!(error["error"]["diagnostics"][0]["column"], column);
    assert_eq!(error["valid"], false);
    assert_eq!(error["digest"], good, "the last good config stays in force");

    let ready = h.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["config"], "invalid", "{body}");
    assert!(
        !body.to_string().contains("contakt"),
        "the unauthenticated probe never echoes config text: {body}"
    );

    // The old config keeps running: a manual pass uses it.
    let before = fake.calls_of("beta").len();
    let response = h
        .http
        .post(format!("{}/reconcile?binding=beta", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let calls = eventually("the manual run", WAIT, || {
        let calls = fake.calls_of("beta");
        async move { (calls.len() > before).then_some(calls) }
    })
    .await;
    assert_eq!(calls.last().unwrap().digest, good);
    assert!(fake.calls().iter().all(|c| c.digest == good));

    // The fix clears the error and goes into force.
    let fixed = config_text("v3", "contact");
    save_by_truncate(&h.path, &fixed);
    let config = eventually("the error to clear", WAIT, || async {
        let status = h.status().await;
        status["config"]["error"]
            .is_null()
            .then_some(status["config"].clone())
    })
    .await;
    assert_eq!(config["valid"], true);
    assert_eq!(config["digest"], digest(&fixed));
    eventually("a run with the fixed config", WAIT, || {
        let ran = fake.calls().iter().any(|c| c.digest == digest(&fixed));
        async move { ran.then_some(()) }
    })
    .await;
    assert_eq!(h.get("/readyz").await.status(), 200);
    let metrics = h.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("audience_sync_config_reloads_total{result=\"rejected\"} 1\n"));
    assert!(metrics.contains("audience_sync_config_valid 1\n"));
    assert_eq!(h.stop().await, Outcome::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_needs_both_apis_reachable() {
    let fake = Fake::new(&[]);
    let h = start(&fake, |_| {}).await;
    assert_eq!(h.get("/healthz").await.status(), 200);
    assert_eq!(h.get("/readyz").await.status(), 200);
    *fake.probe_error.lock().unwrap() = Some(
        "dataverse: token endpoint https://app:s3cret@login.example.com/token refused".to_owned(),
    );
    let response = h.get("/readyz").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["apis"], "unreachable", "{body}");
    assert_eq!(body["service"], "dataverse", "{body}");
    let text = body.to_string();
    assert!(
        !text.contains("s3cret") && !text.contains("https://") && !text.contains("refused"),
        "the unauthenticated probe echoes no URL or detail: {text}"
    );
    assert_eq!(h.stop().await, Outcome::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_mid_run_cancels_the_pass_and_returns_success_within_a_bound() {
    let fake = Fake::new(&[("alpha", Script::UntilCancelled)]);
    let h = start(&fake, |o| {
        o.shutdown_grace = Duration::from_millis(200);
        o.cancel_grace = Duration::from_secs(5);
    })
    .await;
    eventually("alpha to be running", WAIT, || async {
        let alpha = h.binding("alpha").await;
        (alpha["running"] == true && fake.leases_held.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    let base = h.base.clone();
    // `stop` bounds the whole shutdown at 10 s (grace 0.2 s + cancel grace 5 s + slack).
    assert_eq!(h.stop().await, Outcome::Success);
    assert_eq!(
        fake.cancelled.load(Ordering::SeqCst),
        1,
        "the pass saw its cancellation"
    );
    assert_eq!(
        fake.leases_held.load(Ordering::SeqCst),
        0,
        "and released its lease"
    );
    assert!(
        reqwest::get(format!("{base}/healthz")).await.is_err(),
        "the server is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_in_progress_finish_within_the_grace_period_without_cancellation() {
    let fake = Fake::new(&[("alpha", Script::UntilReleased)]);
    let h = start(&fake, |o| o.shutdown_grace = Duration::from_secs(8)).await;
    eventually("alpha to be running", WAIT, || async {
        (h.binding("alpha").await["running"] == true).then_some(())
    })
    .await;
    h.running.as_ref().unwrap().shutdown();
    // Draining: no new work is taken, the server still answers.
    let ready = h.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["reason"], "shutting down");
    let refused = h
        .http
        .post(format!("{}/reconcile", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    let calls = fake.calls().len();
    // The pass finishes on its own, well within the grace period.
    fake.gate.notify_one();
    assert_eq!(h.stop().await, Outcome::Success);
    assert_eq!(fake.finished.load(Ordering::SeqCst), 1);
    assert_eq!(fake.cancelled.load(Ordering::SeqCst), 0, "not cut");
    assert_eq!(fake.calls().len(), calls, "nothing new started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_token_guards_status_metrics_and_reconcile() {
    let fake = Fake::new(&[]);
    let h = start(&fake, |o| o.token = Some("s3cret-t0ken".to_owned().into())).await;
    for route in ["/healthz", "/readyz"] {
        assert_eq!(
            h.get(route).await.status(),
            200,
            "{route} stays open for probes"
        );
    }
    for (method, route) in [
        (reqwest::Method::GET, "/status"),
        (reqwest::Method::GET, "/metrics"),
        (reqwest::Method::POST, "/reconcile"),
    ] {
        let url = format!("{}{route}", h.base);
        let none = h.http.request(method.clone(), &url).send().await.unwrap();
        assert_eq!(none.status(), 401, "{route} without a token");
        assert_eq!(
            none.headers()["www-authenticate"],
            "Bearer realm=\"audience-sync\""
        );
        let wrong = h
            .http
            .request(method.clone(), &url)
            .bearer_auth("s3cret-t0keN")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{route} with a wrong token");
        let basic = h
            .http
            .request(method.clone(), &url)
            .basic_auth("s3cret-t0ken", None::<&str>)
            .send()
            .await
            .unwrap();
        assert_eq!(basic.status(), 401, "{route} with basic auth");
        let right = h
            .http
            .request(method.clone(), &url)
            .bearer_auth("s3cret-t0ken")
            .send()
            .await
            .unwrap();
        assert!(
            right.status().is_success(),
            "{route} with the token: {}",
            right.status()
        );
        let body = right.text().await.unwrap();
        assert!(!body.contains("s3cret"), "{route} shows no token");
    }
    let running = h.running.as_ref().unwrap();
    assert!(!format!("{running:?}").contains("s3cret"));
    let mut h = h;
    let running = h.running.take().unwrap();
    running.shutdown();
    assert_eq!(running.wait().await, Outcome::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_mode_plans_and_reports_drift_but_never_applies() {
    let changes = BTreeMap::from([("add_list_member".to_owned(), 7)]);
    let fake = Fake::new(&[("alpha", Script::Changes(changes))]);
    let h = start(&fake, |o| o.mode = Mode::Report).await;
    initial_runs_done(&h, &fake).await;
    // A manual pass as well, then check that no call of any kind applied.
    let response = h
        .http
        .post(format!("{}/reconcile", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    eventually("the manual passes", WAIT, || {
        let n = fake.calls().len();
        async move { (n >= 4).then_some(()) }
    })
    .await;
    assert!(fake.calls().iter().all(|c| c.mode == Mode::Report));
    assert_eq!(fake.applied.load(Ordering::SeqCst), 0);

    let status = h.status().await;
    assert_eq!(status["mode"], "report");
    let alpha = h.binding("alpha").await;
    assert_eq!(alpha["last_run"]["outcome"], "drift");
    assert_eq!(alpha["last_run"]["drift"], true);
    assert_eq!(alpha["last_run"]["changes"]["add_list_member"], 7);
    assert_eq!(h.binding("beta").await["last_run"]["outcome"], "success");

    let text = h.get("/metrics").await.text().await.unwrap();
    let families = parse_prometheus(&text).unwrap();
    assert_eq!(
        sample(&families, "audience_sync_drift", &[("binding", "alpha")]),
        Some(1.0)
    );
    assert_eq!(
        sample(&families, "audience_sync_drift", &[("binding", "beta")]),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &families,
            "audience_sync_pending_changes",
            &[("binding", "alpha"), ("kind", "add_list_member")]
        ),
        Some(7.0)
    );
    assert!(
        families
            .get("audience_sync_changes_applied_total")
            .is_none_or(|f| f.samples.is_empty())
    );
    assert_eq!(h.stop().await, Outcome::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_binding_backs_off_on_the_same_input_and_does_not_stop_the_others() {
    let fake = Fake::new(&[("alpha", Script::Fail("s1"))]);
    let h = start(&fake, |o| {
        o.jitter = 0.0;
        o.retry_interval = Duration::from_millis(500);
    })
    .await;
    let alpha = eventually("three failures of alpha", WAIT, || async {
        let alpha = h.binding("alpha").await;
        (alpha["consecutive_failures"] == 3 && alpha["running"] == false).then_some(alpha)
    })
    .await;
    // No hot loop: one call per counted failure, and the next try 500 ms · 2² after the last.
    assert_eq!(fake.calls_of("alpha").len(), 3);
    let ended =
        chrono::DateTime::parse_from_rfc3339(alpha["last_run"]["finished_at"].as_str().unwrap())
            .unwrap();
    let next = chrono::DateTime::parse_from_rfc3339(alpha["next_run"].as_str().unwrap()).unwrap();
    let wait = (next - ended).num_milliseconds();
    assert!(
        (1980..=2020).contains(&wait),
        "next try {wait} ms after the third failure"
    );
    assert_eq!(alpha["last_run"]["trigger"], "retry");
    assert!(alpha["last_run"]["error"].as_str().unwrap().contains("500"));

    // The other binding ran once, succeeded, and waits for the interval.
    let beta = h.binding("beta").await;
    assert_eq!(beta["last_run"]["outcome"], "success");
    assert_eq!(beta["consecutive_failures"], 0);
    assert_eq!(fake.calls_of("beta").len(), 1);

    // New source data starts the backoff over.
    fake.script("alpha", Script::Fail("s2"));
    eventually("a failure on the new data", WAIT, || async {
        let alpha = h.binding("alpha").await;
        (alpha["consecutive_failures"] == 1).then_some(())
    })
    .await;

    // A config change is new input: tried at once, whatever the backoff, and it can succeed.
    fake.script("alpha", Script::Changes(BTreeMap::new()));
    save_by_rename(&h.path, &config_text("v2", "contact"));
    let alpha = eventually("a success after the config change", WAIT, || async {
        let alpha = h.binding("alpha").await;
        (alpha["last_run"]["outcome"] == "success").then_some(alpha)
    })
    .await;
    assert_eq!(alpha["last_run"]["trigger"], "config");
    assert_eq!(alpha["consecutive_failures"], 0);
    assert_eq!(h.stop().await, Outcome::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_now_runs_one_binding_or_all_and_refuses_unknown_or_suspended_ones() {
    let fake = Fake::new(&[]);
    let h = start(&fake, |_| {}).await;
    initial_runs_done(&h, &fake).await;
    let post = |query: &'static str| {
        let url = format!("{}/reconcile{query}", h.base);
        let http = h.http.clone();
        async move { http.post(url).send().await.unwrap() }
    };
    let response = post("?binding=alpha").await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["queued"], serde_json::json!(["alpha"]));
    let alpha = eventually("the manual run of alpha", WAIT, || async {
        let alpha = h.binding("alpha").await;
        (alpha["last_run"]["trigger"] == "manual" && alpha["last_run"]["outcome"].is_string())
            .then_some(alpha)
    })
    .await;
    assert_eq!(alpha["last_run"]["outcome"], "success");
    assert_eq!(fake.calls_of("beta").len(), 1, "only alpha ran again");

    let response = post("?binding=alpah").await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("`alpah`"));
    assert_eq!(post("?binding=gamma").await.status(), 409);
    assert_eq!(h.get("/reconcile").await.status(), 405);

    let response = post("").await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["queued"], serde_json::json!(["alpha", "beta"]));
    eventually("beta's manual run", WAIT, || {
        let n = fake.calls_of("beta").len();
        async move { (n == 2).then_some(()) }
    })
    .await;
    assert!(fake.calls_of("gamma").is_empty());
    assert_eq!(h.stop().await, Outcome::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_runs_every_binding_once_and_exits_1_when_one_failed() {
    for (beta, expected) in [
        (Script::Changes(BTreeMap::new()), Outcome::Success),
        (Script::Fail("s1"), Outcome::Failure),
        // Held by another process past `--lock-timeout`: not reconciled, so a CronJob fails.
        (Script::LeaseHeld, Outcome::Failure),
    ] {
        let fake = Fake::new(&[("beta", beta)]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sync.yaml");
        std::fs::write(&path, config_text("v1", "contact")).unwrap();
        let mut options = options(&path);
        options.once = true;
        let status = tokio::time::timeout(WAIT, watch::run(options, fake.clone()))
            .await
            .expect("--once returns")
            .unwrap();
        assert_eq!(status, expected);
        assert_eq!(fake.calls_of("alpha").len(), 1);
        assert_eq!(fake.calls_of("beta").len(), 1, "no retry with --once");
        assert!(fake.calls_of("gamma").is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_config_at_start_is_an_error_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sync.yaml");
    std::fs::write(&path, config_text("v1", "contakt")).unwrap();
    let err = watch::start(options(&path), Fake::new(&[]))
        .await
        .unwrap_err();
    let watch::Error::Config { source, .. } = &err else {
        panic!("{err:?}");
    };
    let audience_sync::config::Error::Invalid { diagnostics, .. } = source else {
        panic!("{source:?}");
    };
    assert_eq!((diagnostics[0].line, diagnostics[0].column), (16, 48));

    let mut zero = options(&path);
    zero.retry_interval = Duration::ZERO;
    let err = watch::start(zero, Fake::new(&[])).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "`--retry-interval` must be longer than zero"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_held_elsewhere_skips_the_run_without_counting_a_failure() {
    let fake = Fake::new(&[("alpha", Script::LeaseHeld)]);
    let h = start(&fake, |o| o.jitter = 0.0).await;
    initial_runs_done(&h, &fake).await;
    let alpha = h.binding("alpha").await;
    assert_eq!(alpha["last_run"]["outcome"], "skipped");
    assert!(
        alpha["last_run"]["skipped"]
            .as_str()
            .unwrap()
            .contains("replica-b")
    );
    assert_eq!(alpha["consecutive_failures"], 0);
    assert!(alpha["last_success"].is_null());
    assert_eq!(alpha["lease_skips"], 1);
    assert_eq!(alpha["held_by"]["owner"], "replica-b");
    let ended =
        chrono::DateTime::parse_from_rfc3339(alpha["last_run"]["finished_at"].as_str().unwrap())
            .unwrap();
    let next = chrono::DateTime::parse_from_rfc3339(alpha["next_run"].as_str().unwrap()).unwrap();
    let wait = (next - ended).num_milliseconds();
    assert!(
        (29_000..=31_500).contains(&wait),
        "looked at again just after the holder's lease (30 s) would lapse, not at the interval (1 h) nor the retry: {wait} ms"
    );
    let text = h.get("/metrics").await.text().await.unwrap();
    let families = parse_prometheus(&text).unwrap();
    assert_eq!(
        sample(
            &families,
            "audience_sync_runs_total",
            &[("binding", "alpha"), ("outcome", "skipped")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &families,
            "audience_sync_lease_skips_total",
            &[("binding", "alpha")]
        ),
        Some(1.0)
    );
    assert_eq!(h.stop().await, Outcome::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_source_data_during_the_backoff_is_tried_at_once() {
    let fake = Fake::new(&[("alpha", Script::Fail("s1"))]);
    *fake.cheap_digest.lock().unwrap() = Some("s1".to_owned());
    let h = start(&fake, |o| {
        o.jitter = 0.0;
        o.retry_interval = Duration::from_millis(150);
    })
    .await;
    // Four failures on the same data: the next try is 150 ms · 2³ = 1.2 s away, and the cheap
    // check (every 150 ms) keeps saying "same data", so nothing runs early.
    eventually("four failures of alpha", WAIT, || async {
        let alpha = h.binding("alpha").await;
        (alpha["consecutive_failures"] == 4 && alpha["running"] == false).then_some(())
    })
    .await;
    assert_eq!(
        fake.calls_of("alpha").len(),
        4,
        "no run between the backoff steps"
    );
    assert_eq!(h.binding("alpha").await["last_run"]["trigger"], "retry");

    // New data at the source: tried at once (trigger `new_data`), not after the backoff.
    fake.script("alpha", Script::Changes(BTreeMap::new()));
    *fake.cheap_digest.lock().unwrap() = Some("s2".to_owned());
    let alpha = eventually("alpha to succeed", WAIT, || async {
        let alpha = h.binding("alpha").await;
        (alpha["last_run"]["outcome"] == "success").then_some(alpha)
    })
    .await;
    assert_eq!(alpha["last_run"]["trigger"], "new_data");
    assert_eq!(alpha["consecutive_failures"], 0);
    assert!(fake.digest_checks.load(Ordering::SeqCst) >= 1);
    assert_eq!(h.stop().await, Outcome::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bindings_added_removed_and_suspended_by_an_edit_follow_the_config() {
    let fake = Fake::new(&[]);
    let h = start(&fake, |_| {}).await;
    initial_runs_done(&h, &fake).await;
    // alpha suspended, beta removed, gamma resumed, delta added.
    let text = config_text("v2", "contact")
        .replace("  - name: alpha\n", "  - name: alpha\n    suspend: true\n")
        .replace(
            "    suspend: true\n    audience: { id: c1",
            "    audience: { id: c1",
        )
        .replace("  - name: beta\n", "  - name: delta\n");
    save_by_rename(&h.path, &text);
    let expected = digest(&text);
    eventually("gamma and delta to run with the new config", WAIT, || {
        let ran = ["gamma", "delta"]
            .iter()
            .all(|b| fake.calls_of(b).iter().any(|c| c.digest == expected));
        async move { ran.then_some(()) }
    })
    .await;
    let status = h.status().await;
    let names: Vec<&str> = status["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "delta", "gamma"]);
    let alpha = h.binding("alpha").await;
    assert_eq!(alpha["suspended"], true);
    assert!(alpha["next_run"].is_null());
    assert!(fake.calls_of("alpha").iter().all(|c| c.digest != expected));
    assert_eq!(fake.calls_of("beta").len(), 1, "removed: not run again");
    assert_eq!(h.stop().await, Outcome::Success);
}
