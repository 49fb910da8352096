//! `watch` with the real reconciler, as a process (the built binary) against the in-process
//! sandbox over HTTP: `--once` converges, a file edit reconciles again, SIGTERM mid-apply exits
//! 0 with the lease released, two processes on one binding never apply at once, and the live
//! `/metrics` parses and counts runs and API requests.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use api_sandbox::dataverse::Faults;
use api_sandbox::{GenerateSpec, Options, Sandbox};
use audience_sync::apply::lease;
use audience_sync::dataverse::tables::ToolTables;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::time::Instant;

use super::common;

/// Bound of every wait (generous: the machine is shared).
const WAIT: Duration = Duration::from_secs(40);

struct Env {
    sandbox: Sandbox,
    dir: tempfile::TempDir,
    config: PathBuf,
    audiences: Vec<(String, String)>,
}

fn get(env: &[(String, String)], key: &str) -> String {
    env.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

async fn start(members: usize) -> Env {
    let sandbox = Sandbox::start(Options {
        generate: Some(GenerateSpec {
            members,
            tags: 3,
            seed: 23,
            audiences: 2,
            shared: 0,
        }),
        ..audience_sync::commands::sandbox::options()
    })
    .await
    .expect("sandbox starts");
    let audiences = sandbox.mailchimp.audiences();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("audience-sync.yaml");
    let env = Env {
        sandbox,
        dir,
        config,
        audiences,
    };
    env.write_config(1);
    env
}

impl Env {
    /// A config binding the first `bindings` audiences (`main`, then `second`).
    fn write_config(&self, bindings: usize) {
        self.write_config_with(bindings, false);
    }

    /// As [`Env::write_config`]; with `literal_secrets` the secrets are written into the file
    /// (for `watch` run as a library, in this process, whose environment the tests leave alone).
    fn write_config_with(&self, bindings: usize, literal_secrets: bool) {
        let env = self.sandbox.env();
        let secret = |var: &str| {
            if literal_secrets {
                get(&env, var)
            } else {
                format!("${{{var}}}")
            }
        };
        let mut text = format!(
            r#"version: 1
mailchimp:
  api_key: "{}"
  base_url: "{}"
dataverse:
  url: "{}"
  tenant_id: "{}"
  client_id: "{}"
  client_secret: "{}"
  token_url: "{}"
bindings:
"#,
            secret("MAILCHIMP_API_KEY"),
            get(&env, "MAILCHIMP_BASE_URL"),
            get(&env, "DATAVERSE_URL"),
            get(&env, "DATAVERSE_TENANT_ID"),
            get(&env, "DATAVERSE_CLIENT_ID"),
            secret("DATAVERSE_CLIENT_SECRET"),
            get(&env, "DATAVERSE_TOKEN_URL"),
        );
        for (i, name) in ["main", "second"].iter().take(bindings).enumerate() {
            let (id, list) = &self.audiences[i];
            text.push_str(&format!(
                "  - name: {name}\n    audience:\n      id: \"{id}\"\n    marketing_list:\n      name: \"{list}\"\n      member_type: contact\n      create: true\n"
            ));
        }
        // Write then rename, as editors do: the watcher never sees a half-written file.
        let tmp = self.dir.path().join(".audience-sync.yaml.tmp");
        std::fs::write(&tmp, text).expect("config written");
        std::fs::rename(&tmp, &self.config).expect("config renamed");
    }

    fn config(&self) -> &str {
        self.config.to_str().expect("utf-8 path")
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = common::bin();
        for (k, v) in self.sandbox.env() {
            command.env(k, v);
        }
        command.args(args);
        command
    }

    async fn run(&self, args: &[&str]) -> std::process::Output {
        let mut command = self.command(args);
        tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
            .await
            .expect("joined")
    }

    /// Start `watch` on a free loopback port, logging to a file in the temp dir.
    fn watch(&self, tag: &str) -> Watch {
        self.watch_with(tag, &[])
    }

    /// [`Env::watch`] with extra arguments.
    fn watch_with(&self, tag: &str, extra: &[&str]) -> Watch {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = self.dir.path().join(format!("watch-{tag}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = self
            .command(&[
                "watch",
                self.config(),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--interval",
                "1h",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("watch starts");
        Watch {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            http: reqwest::Client::new(),
        }
    }

    /// The tool's CRM tables, through a client of the sandbox.
    fn tables(&self) -> ToolTables {
        common::crm_tables(&self.sandbox)
    }

    /// Every Sync Run record: (start, end).
    fn sync_runs(&self) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let ids: Vec<uuid::Uuid> = self.sandbox.dataverse.with_store(|s| {
            s.table("mcsync_syncrun")
                .map(|t| t.rows.keys().copied().collect())
                .unwrap_or_default()
        });
        let time = |row: &Value, col: &str| {
            row[col]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|| panic!("`{col}` is a time: {row}"))
        };
        ids.into_iter()
            .filter_map(|id| self.sandbox.dataverse.record("mcsync_syncrun", id))
            .map(|row| (time(&row, "mcsync_started"), time(&row, "mcsync_ended")))
            .collect()
    }
}

struct Watch {
    child: Child,
    base: String,
    log: PathBuf,
    http: reqwest::Client,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Watch {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn get(&self, path: &str) -> Option<String> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .ok()?;
        response.status().is_success().then_some(())?;
        response.text().await.ok()
    }

    async fn status(&self) -> Option<Value> {
        serde_json::from_str(&self.get("/status").await?).ok()
    }

    /// The last run of a binding, once it has finished.
    async fn finished_run(&self, binding: &str) -> Option<Value> {
        let status = self.status().await?;
        let b = status["bindings"]
            .as_array()?
            .iter()
            .find(|b| b["name"] == binding)?
            .clone();
        let run = b["last_run"].clone();
        (!run["finished_at"].is_null()).then_some(run)
    }

    fn signal(&self, name: &str) {
        let ok = std::process::Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Wait (bounded) for the process to exit.
    async fn exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("waitable") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "watch did not exit within {within:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Poll `probe` until it gives a value, within [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn plan_code(env: &Env) -> (i32, String) {
    let out = env
        .run(&["plan", env.config(), "--detailed-exitcode"])
        .await;
    let (stdout, stderr) = common::texts(&out);
    (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_applies_and_the_plan_after_it_is_empty() {
    let env = start(60).await;
    let (code, text) = plan_code(&env).await;
    assert_eq!(code, 2, "there is something to do first:\n{text}");
    let out = env.run(&["watch", env.config(), "--once"]).await;
    assert!(out.status.success(), "{}", common::texts(&out).1);
    let (code, text) = plan_code(&env).await;
    assert_eq!(
        code, 0,
        "the plan after `watch --once` is not empty:\n{text}"
    );
    assert_eq!(env.sync_runs().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_watch_reconciles_at_start_and_after_an_edit_and_serves_metrics() {
    let env = start(40).await;
    let watch = env.watch("edit");
    let first = eventually("the first run of `main`", || watch.finished_run("main")).await;
    assert_eq!(first["outcome"], "success", "{first}\n{}", watch.log());
    assert!(
        first["changes"]["create_record"].as_u64() > Some(0),
        "{first}"
    );

    // Ready: the config is valid and both APIs answer the real probe (ping, WhoAmI).
    eventually("/readyz", || watch.get("/readyz")).await;

    let edited = Utc::now();
    env.write_config(2);
    let second = eventually("the run of the new binding", || {
        watch.finished_run("second")
    })
    .await;
    assert_eq!(second["outcome"], "success", "{second}\n{}", watch.log());
    assert_eq!(second["trigger"], "config", "{second}");
    let started: DateTime<Utc> = second["started_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("a start time");
    let delay = (started - edited).num_milliseconds();
    assert!(
        delay < 2000,
        "the edit was reconciled {delay} ms after it was saved"
    );
    let (code, text) = plan_code(&env).await;
    assert_eq!(code, 0, "both bindings converge:\n{text}");

    // /metrics of the live process: Prometheus text, counting the runs and the API requests.
    let metrics = watch.get("/metrics").await.expect("/metrics answers");
    let mut samples = std::collections::BTreeMap::new();
    for line in metrics
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number: {line}"));
        let name = series.split('{').next().unwrap_or(series);
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name: {line}"
        );
        samples.insert(series.to_owned(), value);
    }
    let sum = |prefix: &str, label: &str| -> f64 {
        samples
            .iter()
            .filter(|(s, _)| s.starts_with(prefix) && s.contains(label))
            .map(|(_, v)| v)
            .sum()
    };
    assert!(
        sum("audience_sync_runs_total{", "outcome=\"success\"") >= 2.0,
        "{metrics}"
    );
    assert!(
        sum("audience_sync_api_requests_total{", "service=\"mailchimp\"") >= 2.0,
        "{metrics}"
    );
    assert!(
        sum("audience_sync_api_requests_total{", "service=\"dataverse\"") >= 2.0,
        "{metrics}"
    );
    assert!(
        sum("audience_sync_changes_applied_total{", "create_record") > 0.0,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_apply_exits_0_and_releases_the_lease() {
    let env = start(60).await;
    env.sandbox.dataverse.set_faults(Faults {
        latency_ms: 150,
        ..Faults::default()
    });
    let audience = env.audiences[0].0.clone();
    let tables = env.tables();
    let mut watch = env.watch("term");
    // Mid-apply: the lease is on the Audience record.
    let held = eventually("the lease taken by watch", || async {
        let record = lease::find_record(&tables, &audience).await.ok()??;
        record.lease
    })
    .await;
    assert!(held.owner.contains(':'), "{held:?}");
    watch.signal("TERM");
    let status = watch.exit(Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}\n{}", watch.log());
    env.sandbox.dataverse.set_faults(Faults::default());
    let record = lease::find_record(&tables, &audience)
        .await
        .expect("readable")
        .expect("the Audience record");
    assert!(record.lease.is_none(), "lease left behind: {record:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_watch_processes_on_one_binding_never_apply_at_once() {
    let env = start(60).await;
    let out = env.run(&["plan", env.config(), "--format", "json"]).await;
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan JSON");
    let planned = plan["bindings"][0]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["action"] == "create_record")
        .count();
    assert!(planned > 10);
    let contacts_before = env.sandbox.dataverse.count("contact");
    env.sandbox.dataverse.set_faults(Faults {
        latency_ms: 40,
        ..Faults::default()
    });
    let a = env.watch("a");
    let b = env.watch("b");
    let run_a = eventually("the first run of process a", || a.finished_run("main")).await;
    let run_b = eventually("the first run of process b", || b.finished_run("main")).await;
    env.sandbox.dataverse.set_faults(Faults::default());
    for run in [&run_a, &run_b] {
        assert!(
            run["outcome"] == "success" || run["outcome"] == "skipped",
            "{run}\n{}\n{}",
            a.log(),
            b.log()
        );
    }
    for run in [&run_a, &run_b]
        .into_iter()
        .filter(|r| r["outcome"] == "skipped")
    {
        let why = run["skipped"].as_str().unwrap_or_default();
        assert!(why.contains("is being applied by"), "{run}");
    }
    // Every apply left a Sync Run record; no two of them overlap in time.
    let mut runs = env.sync_runs();
    runs.sort();
    assert!(!runs.is_empty());
    for pair in runs.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "two applies at once: {runs:?}");
    }
    let skipped = [&run_a, &run_b]
        .iter()
        .filter(|r| r["outcome"] == "skipped")
        .count();
    assert_eq!(runs.len() + skipped, 2, "{run_a}\n{run_b}\n{runs:?}");
    // The end state: exactly one contact per selected member, and nothing left to do.
    let (code, text) = plan_code(&env).await;
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        env.sandbox.dataverse.count("contact"),
        contacts_before + planned,
        "one contact per member, no duplicates"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cut_by_shutdown_mid_apply_releases_its_lease_and_says_so() {
    use audience_sync::dataverse::schema::sync_status;
    use audience_sync::watch::Outcome;
    use audience_sync::watch::{self, LiveReconciler};

    let env = start(60).await;
    env.write_config_with(1, true);
    env.sandbox.dataverse.set_faults(Faults {
        latency_ms: 250,
        ..Faults::default()
    });
    let mut options = watch::Options::new(env.config.clone());
    options.listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    options.watch_config = false;
    options.shutdown_grace = Duration::from_millis(100);
    options.cancel_grace = Duration::from_secs(20);
    let running = watch::start(options, std::sync::Arc::new(LiveReconciler::new()))
        .await
        .expect("watch starts");
    let audience = env.audiences[0].0.clone();
    let tables = env.tables();
    eventually("the lease taken by the run", || async {
        lease::find_record(&tables, &audience).await.ok()??.lease
    })
    .await;
    running.shutdown();
    let status = tokio::time::timeout(WAIT, running.wait())
        .await
        .expect("watch returns after shutdown");
    assert_eq!(status, Outcome::Success);
    env.sandbox.dataverse.set_faults(Faults::default());
    let record = lease::find_record(&tables, &audience)
        .await
        .expect("readable")
        .expect("the Audience record");
    assert!(record.lease.is_none(), "lease left behind: {record:?}");
    assert_eq!(record.status.sync_status, sync_status::FAILED, "{record:?}");
    let message = record.status.last_message.unwrap_or_default();
    assert!(message.contains("cut by shutdown"), "{message}");
    // What was cut is completed by the next run.
    let out = env.run(&["watch", env.config(), "--once"]).await;
    assert!(out.status.success(), "{}", common::texts(&out).1);
    let (code, text) = plan_code(&env).await;
    assert_eq!(code, 0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_mode_reports_drift_and_writes_nothing() {
    let env = start(40).await;
    let contacts = env.sandbox.dataverse.count("contact");
    let watch = env.watch_with("report", &["--mode", "report"]);
    let run = eventually("the report run", || watch.finished_run("main")).await;
    assert_eq!(run["outcome"], "drift", "{run}\n{}", watch.log());
    assert!(run["drift"].as_bool().unwrap_or(false), "{run}");
    assert!(run["changes"]["create_record"].as_u64() > Some(0), "{run}");
    assert_eq!(env.sandbox.dataverse.count("contact"), contacts);
    assert!(env.sync_runs().is_empty());
    let (code, text) = plan_code(&env).await;
    assert_eq!(code, 2, "nothing was applied:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_edit_keeps_the_running_config_and_shows_the_error_with_its_position() {
    let env = start(20).await;
    let watch = env.watch("invalid");
    let first = eventually("the first run of `main`", || watch.finished_run("main")).await;
    assert_eq!(first["outcome"], "success", "{first}\n{}", watch.log());

    // An editor saves a broken file: an unknown key on line 2.
    let good = std::fs::read_to_string(&env.config).expect("config readable");
    let broken = good.replacen("version: 1\n", "version: 1\nmailchimps: {}\n", 1);
    assert_ne!(broken, good, "the edit changes the file");
    let tmp = env.dir.path().join(".broken.tmp");
    std::fs::write(&tmp, &broken).expect("written");
    std::fs::rename(&tmp, &env.config).expect("renamed");

    let config = eventually("the config error in /status", || async {
        let status = watch.status().await?;
        (!status["config"]["error"].is_null()).then(|| status["config"].clone())
    })
    .await;
    let error = config["error"]["message"].as_str().unwrap_or_default();
    assert!(
        error.contains(":2:1: error: unknown key `mailchimps`"),
        "{config}"
    );
    // The binding of the last good config is still served and still reconciles.
    let status = watch.status().await.expect("/status answers");
    assert!(status.to_string().contains("\"main\""), "{status}");
    // "Reconcile now" (SIGHUP) still runs the binding, with the last good config.
    let asked = Utc::now();
    watch.signal("HUP");
    let rerun = eventually("a run after SIGHUP", || async {
        let run = watch.finished_run("main").await?;
        let started: DateTime<Utc> = run["started_at"].as_str()?.parse().ok()?;
        (started >= asked).then_some(run)
    })
    .await;
    assert_eq!(rerun["outcome"], "success", "{rerun}\n{}", watch.log());

    // Fixing the file clears the error.
    std::fs::write(&tmp, &good).expect("written");
    std::fs::rename(&tmp, &env.config).expect("renamed");
    eventually("the error to clear", || async {
        let status = watch.status().await?;
        status["config"]["error"].is_null().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_digest_is_what_runs_saw_and_moves_with_new_mailchimp_data() {
    use audience_sync::watch::{LiveReconciler, Mode, Reconciler};

    let env = start(30).await;
    env.write_config_with(1, true);
    let loaded =
        std::sync::Arc::new(audience_sync::config::load(&env.config).expect("valid config"));
    let reconciler = LiveReconciler::new();
    let first = reconciler
        .source_digest(loaded.clone(), "main".to_owned())
        .await
        .expect("a source digest");
    assert_eq!(
        reconciler
            .source_digest(loaded.clone(), "main".to_owned())
            .await
            .as_deref(),
        Some(first.as_str()),
        "stable while nothing changes"
    );

    // A run reports the same value, so the loop can tell "same input" from "new data".
    let run = reconciler
        .reconcile(
            loaded.clone(),
            "main".to_owned(),
            Mode::Report,
            tokio_util::sync::CancellationToken::new(),
        )
        .await
        .expect("report run");
    assert_eq!(run.source_digest.as_deref(), Some(first.as_str()));

    // New data in Mailchimp moves it: a new member, then a renamed tag.
    let list = env.audiences[0].0.clone();
    let member =
        serde_json::from_value(serde_json::json!({"email": "new.one@example.com"})).expect("seed");
    env.sandbox
        .mailchimp
        .add_member(&list, &member)
        .expect("member added");
    let second = reconciler
        .source_digest(loaded.clone(), "main".to_owned())
        .await
        .expect("a source digest");
    assert_ne!(second, first, "a new member is new data");
    let tags = reqwest::Client::new()
        .get(format!(
            "{}/3.0/lists/{list}/segments?type=static&count=1000",
            env.sandbox.base_url()
        ))
        .basic_auth("x", Some(env.sandbox.mailchimp.api_key()))
        .send()
        .await
        .expect("segments")
        .json::<serde_json::Value>()
        .await
        .expect("JSON");
    let tag = tags["segments"][0]["name"]
        .as_str()
        .expect("a tag")
        .to_owned();
    env.sandbox
        .mailchimp
        .rename_tag(&list, &tag, "Renamed tag")
        .expect("renamed");
    let third = reconciler
        .source_digest(loaded.clone(), "main".to_owned())
        .await
        .expect("a source digest");
    assert_ne!(third, second, "a renamed tag is new data");
}
