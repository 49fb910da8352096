//! The apply lease across processes (issue 14): the real binary against the in-process sandbox,
//! with 3-second leases renewed every second. A holder that stopped renewing — on another host,
//! or as PID 1 of a PID namespace like a restarted container — is taken over within the lease
//! time plus one renewal interval; a holder paused with SIGSTOP past its lease loses it, and
//! after SIGCONT writes nothing and exits non-zero saying so.

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use api_sandbox::dataverse::Faults;
use api_sandbox::{GenerateSpec, Options, Sandbox};
use audience_sync::apply::lease;
use audience_sync::dataverse::tables::{Lease, ToolTables};
use chrono::Utc;
use serde_json::Value;

use super::common;

/// The lease term the tests run with, and its renewal interval (a third).
const TERM: &str = "3s";
const RENEWAL: Duration = Duration::from_secs(1);

struct Env {
    sandbox: Sandbox,
    _dir: tempfile::TempDir,
    config: std::path::PathBuf,
    audience: String,
}

async fn start(members: usize) -> Env {
    let sandbox = Sandbox::start(Options {
        generate: Some(GenerateSpec {
            members,
            tags: 2,
            seed: 5,
            audiences: 1,
            shared: 0,
        }),
        ..audience_sync::commands::sandbox::options()
    })
    .await
    .expect("sandbox starts");
    let (audience, name) = sandbox.mailchimp.audiences().remove(0);
    let dir = tempfile::tempdir().expect("temp dir");
    let binding = format!(
        "  - name: main\n    audience:\n      id: \"{audience}\"\n    marketing_list:\n      name: \"{name}\"\n      member_type: contact\n      create: true"
    );
    let config = common::sandbox_config(dir.path(), &binding);
    Env {
        sandbox,
        _dir: dir,
        config,
        audience,
    }
}

impl Env {
    fn var(&self, key: &str) -> String {
        self.sandbox
            .env()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .unwrap_or_default()
    }

    /// The binary (or `wrapper` followed by it) with the sandbox's variables and short leases.
    fn command(&self, wrapper: &[&str], args: &[&str]) -> Command {
        let bin = common::bin();
        let mut command = match wrapper.split_first() {
            None => bin,
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin.get_program());
                c.current_dir(common::root()).env("NO_COLOR", "1");
                c
            }
        };
        for (k, v) in self.sandbox.env() {
            command.env(k, v);
        }
        command.env("AUDIENCE_SYNC_LEASE_TERM", TERM);
        command.args(args);
        command
    }

    fn spawn_apply(&self, wrapper: &[&str], extra: &[&str]) -> Child {
        let config = self.config.to_str().expect("utf-8 path");
        let mut args = vec!["apply", config, "--auto-approve", "--format", "json"];
        args.extend(extra);
        self.command(wrapper, &args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("apply starts")
    }

    async fn plan_code(&self) -> i32 {
        let config = self.config.to_str().expect("utf-8 path");
        let mut command = self.command(&[], &["plan", config, "--detailed-exitcode"]);
        let out = tokio::task::spawn_blocking(move || command.output().expect("runs"))
            .await
            .expect("joined");
        out.status.code().unwrap_or(-1)
    }

    fn tables(&self) -> ToolTables {
        let client = audience_sync::dataverse::Client::builder()
            .url(self.var("DATAVERSE_URL"))
            .tenant_id(self.var("DATAVERSE_TENANT_ID"))
            .client_id(self.var("DATAVERSE_CLIENT_ID"))
            .client_secret(self.var("DATAVERSE_CLIENT_SECRET").into())
            .token_url(Some(self.var("DATAVERSE_TOKEN_URL")))
            .build()
            .expect("client");
        ToolTables::new(client, audience_sync::dataverse::schema::Schema::default())
    }

    /// The lease recorded on the binding's Audience record.
    async fn lease(&self, tables: &ToolTables) -> Option<Lease> {
        lease::find_record(tables, &self.audience)
            .await
            .expect("the CRM answers")
            .and_then(|r| r.lease)
    }

    /// A lease taken as `owner` and never renewed: a holder that died just now.
    async fn dead_holder(&self, tables: &ToolTables, owner: String) -> Lease {
        let claim = lease::Claim {
            owner,
            operation: "apply".to_owned(),
            wait: Duration::ZERO,
            term: lease::MIN_TERM,
        };
        let name = format!("Audience {}", self.audience);
        let create = Some((
            audience_sync::plan::ids::audience_record(&self.audience),
            name.as_str(),
        ));
        lease::acquire(tables, "main", &self.audience, create, &claim)
            .await
            .expect("lease taken")
            .lease
    }
}

async fn wait_child(child: Child) -> Output {
    let waited = tokio::task::spawn_blocking(move || child.wait_with_output());
    tokio::time::timeout(Duration::from_secs(120), waited)
        .await
        .expect("the apply ends within two minutes")
        .expect("joined")
        .expect("waited")
}

/// Poll `check` every 20 ms for up to `limit`; whether it came true.
async fn wait_until<F: std::future::Future<Output = bool>>(
    limit: Duration,
    mut check: impl FnMut() -> F,
) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid}");
}

/// The dead holder's lease is taken over by an apply started under `wrapper`, within the lease
/// time plus one renewal interval of its expiry; the apply then converges.
async fn dead_holder_is_taken_over(owner: impl FnOnce(u32) -> String, wrapper: &[&str]) {
    let env = start(30).await;
    let tables = env.tables();
    let dead = env.dead_holder(&tables, owner(1)).await;
    let mut child = env.spawn_apply(wrapper, &["--lock-timeout", "30s"]);
    let mut taken_at = None;
    // Watch until the lease changes hands or the apply ends (a loaded machine starts it late).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while taken_at.is_none()
        && tokio::time::Instant::now() < deadline
        && matches!(child.try_wait(), Ok(None))
    {
        let now = Utc::now();
        if env.lease(&tables).await.is_some_and(|l| l.id != dead.id) {
            taken_at = Some(now);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = wait_child(child).await;
    let (stdout, stderr) = common::texts(&out);
    let Some(taken_at) = taken_at else {
        panic!("the lease was not taken over: {stdout}\n{stderr}");
    };
    let late = (taken_at - dead.expires).to_std().unwrap_or(Duration::ZERO);
    assert!(
        late <= RENEWAL,
        "taken over {late:?} after the dead holder's lease ran out"
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(env.plan_code().await, 0, "the apply converged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_killed_on_another_host_is_taken_over_when_its_lease_runs_out() {
    dead_holder_is_taken_over(
        |_| format!("ci-runner-7:4242 run {}", uuid::Uuid::new_v4()),
        &[],
    )
    .await;
}

/// A container restarted after an OOM kill is PID 1 again on the same host name: the old run's
/// lease names `host:1` too, and is still taken over (by run id, not recognised as "ours").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_killed_as_pid_1_is_taken_over_by_the_next_pid_1() {
    let probe = Command::new("unshare")
        .args(["-Urpf", "sh", "-c", "echo $$"])
        .output()
        .expect("unshare runs (util-linux)");
    assert_eq!(
        String::from_utf8_lossy(&probe.stdout).trim(),
        "1",
        "a PID namespace can be made: {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let host = lease::host_name();
    dead_holder_is_taken_over(
        |pid| format!("{host}:{pid} run {}", uuid::Uuid::new_v4()),
        &["unshare", "-Urpf"],
    )
    .await;
}

/// An apply paused (SIGSTOP) part-way past its lease: another apply takes the lease over and
/// converges; resumed (SIGCONT), the paused one sends no further request to the CRM and exits
/// non-zero saying it lost the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_holder_loses_its_lease_and_writes_nothing_after_resuming() {
    let env = start(600).await;
    // Slow enough that the first apply is still writing when it is paused.
    env.sandbox.dataverse.set_faults(Faults {
        latency_ms: 60,
        ..Faults::default()
    });
    let a = env.spawn_apply(&[], &[]);
    let pid = a.id();
    let writing = wait_until(Duration::from_secs(60), || async {
        env.sandbox.dataverse.count("contact") > 0
    })
    .await;
    assert!(writing, "the first apply started writing");
    signal(pid, "STOP");
    let tables = env.tables();
    let held = env
        .lease(&tables)
        .await
        .expect("the paused apply holds the lease");

    env.sandbox.dataverse.set_faults(Faults::default());
    let b = env.spawn_apply(&[], &["--lock-timeout", "30s"]);
    let b = wait_child(b).await;
    let (stdout, stderr) = common::texts(&b);
    assert!(b.status.success(), "the second apply: {stdout}\n{stderr}");
    assert!(Utc::now() > held.expires, "the second apply waited it out");
    assert_eq!(env.plan_code().await, 0, "the second apply converged");

    let before = env.sandbox.dataverse.counters().counted_requests;
    signal(pid, "CONT");
    let a = wait_child(a).await;
    let (stdout, stderr) = common::texts(&a);
    assert_eq!(
        env.sandbox.dataverse.counters().counted_requests,
        before,
        "the resumed apply sent nothing: {stderr}"
    );
    assert_eq!(a.status.code(), Some(1), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("a JSON report");
    let message = report["bindings"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("lost the lease") && message.contains(&held.id),
        "{message}"
    );
    assert_eq!(env.plan_code().await, 0, "nothing was undone");
}
