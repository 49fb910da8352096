//! Replicas share the work (issue 14): two `watch` processes (the real binary) over four
//! bindings, one binding at a time each (`--max-parallel 1`), 3-second leases, against the
//! in-process sandbox with a slow CRM so that each apply takes a while.
//!
//! Watching the Audience records' leases: the two replicas apply two
//! bindings at once (two live leases of two different holders), never more; killing one
//! (SIGKILL, mid-apply) hands its binding to the other once its lease lapses; in the end every
//! binding is converged, and each was applied by one replica at a time.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use api_sandbox::dataverse::Faults;
use api_sandbox::{GenerateSpec, Options, Sandbox};
use audience_sync::apply::lease;
use audience_sync::dataverse::tables::ToolTables;
use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::common;

/// Bound of the whole scenario (generous: the machine is shared).
const WAIT: Duration = Duration::from_secs(90);

/// A live lease on an Audience record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Live {
    audience: String,
    owner: String,
    expires: DateTime<Utc>,
}

/// Every live lease on the Audience records of `audiences`, read through the CRM's API.
async fn live_leases(tables: &ToolTables, audiences: &[(String, String)]) -> Vec<Live> {
    let reads = audiences
        .iter()
        .map(|(id, _)| lease::find_record(tables, id));
    let now = Utc::now();
    futures::future::join_all(reads)
        .await
        .into_iter()
        .filter_map(|read| read.ok().flatten())
        .filter_map(|record| {
            let lease = record.lease?;
            Some(Live {
                audience: record.mailchimp_id,
                owner: lease.owner,
                expires: lease.expires,
            })
        })
        .filter(|l| l.expires > now)
        .collect()
}

struct Replica {
    child: Child,
    log: std::path::PathBuf,
    base: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    fn start(
        sandbox: &Sandbox,
        config: &std::path::Path,
        dir: &std::path::Path,
        tag: &str,
    ) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = dir.join(format!("replica-{tag}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let mut command = common::bin();
        for (k, v) in sandbox.env() {
            command.env(k, v);
        }
        let child = command
            .env("AUDIENCE_SYNC_LEASE_TERM", "3s")
            .args([
                "watch",
                config.to_str().expect("utf-8 path"),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--interval",
                "1h",
                "--max-parallel",
                "1",
            ])
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("watch starts");
        Self {
            child,
            log,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Whether `owner` (a lease holder) is this process (`host:pid run …`).
    fn owns(&self, owner: &str) -> bool {
        owner.contains(&format!(":{} run ", self.child.id()))
    }

    /// The bindings this replica is reconciling now (from `/status`; empty until it answers).
    async fn running(&self) -> Vec<String> {
        let status: Option<serde_json::Value> = async {
            reqwest::get(format!("{}/status", self.base))
                .await
                .ok()?
                .json()
                .await
                .ok()
        }
        .await;
        status
            .and_then(|s| s["bindings"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter(|b| b["running"] == true)
            .filter_map(|b| b["name"].as_str().map(str::to_owned))
            .collect()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_four_bindings_and_a_killed_one_hands_its_binding_over() {
    let sandbox = Sandbox::start(Options {
        generate: Some(GenerateSpec {
            members: 60,
            tags: 2,
            seed: 41,
            audiences: 4,
            shared: 0,
        }),
        ..audience_sync::commands::sandbox::options()
    })
    .await
    .expect("sandbox starts");
    let audiences = sandbox.mailchimp.audiences();
    assert_eq!(audiences.len(), 4);
    let dir = tempfile::tempdir().expect("temp dir");
    let bindings: Vec<String> = audiences
        .iter()
        .enumerate()
        .map(|(i, (id, name))| {
            format!(
                "  - name: b{i}\n    audience:\n      id: \"{id}\"\n    marketing_list:\n      name: \"{name}\"\n      member_type: contact\n      create: true"
            )
        })
        .collect();
    let config = common::sandbox_config(dir.path(), &bindings.join("\n"));
    // Slow writes: an apply takes seconds, long enough to see two at once.
    sandbox.dataverse.set_faults(Faults {
        latency_ms: 250,
        ..Faults::default()
    });

    let crm = common::crm_tables(&sandbox);
    let a = Replica::start(&sandbox, &config, dir.path(), "a");
    let mut b = Replica::start(&sandbox, &config, dir.path(), "b");
    let logs = |a: &Replica, b: &Replica| format!("--- a:\n{}\n--- b:\n{}", a.log(), b.log());

    // Phase 1: the replicas reconcile two different bindings at once, one each at most.
    let deadline = Instant::now() + WAIT;
    loop {
        let (on_a, on_b) = (a.running().await, b.running().await);
        assert!(on_a.len() <= 1 && on_b.len() <= 1, "{on_a:?} {on_b:?}");
        if matches!((on_a.first(), on_b.first()), (Some(x), Some(y)) if x != y) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never two bindings at once\n{}",
            logs(&a, &b)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Phase 2: kill replica b mid-apply (holding a lease); a takes that binding over once the
    // lease lapses.
    let orphan = loop {
        let live = live_leases(&crm, &audiences).await;
        assert!(live.len() <= 2, "more leases than replicas: {live:?}");
        if let Some(l) = live.iter().find(|l| b.owns(&l.owner)) {
            break l.clone();
        }
        assert!(
            Instant::now() < deadline,
            "b never held a lease\n{}",
            logs(&a, &b)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    b.child.kill().expect("kill -KILL");
    let _ = b.child.wait();
    let taken_over = loop {
        let live = live_leases(&crm, &audiences).await;
        if let Some(l) = live
            .iter()
            .find(|l| l.audience == orphan.audience && a.owns(&l.owner))
        {
            break (Utc::now(), l.clone());
        }
        assert!(
            Instant::now() < deadline,
            "b's binding was not taken over\n{}",
            logs(&a, &b)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        taken_over.0 >= orphan.expires,
        "taken over before b's lease ran out: {taken_over:?} vs {orphan:?}"
    );

    // Every binding converges: the replica left does the rest (the plan is empty).
    sandbox.dataverse.set_faults(Faults::default());
    let plan_clean = || {
        let mut command = common::bin();
        for (k, v) in sandbox.env() {
            command.env(k, v);
        }
        command.args([
            "plan",
            config.to_str().expect("utf-8"),
            "--detailed-exitcode",
        ]);
        command
    };
    loop {
        let mut command: Command = plan_clean();
        let out = tokio::task::spawn_blocking(move || command.output().expect("plan runs"))
            .await
            .expect("joined");
        if out.status.code() == Some(0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not converged: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            logs(&a, &b)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let log = a.log();
    assert!(
        log.contains("took over a lease its holder stopped renewing"),
        "{log}"
    );
    // Both started with the same binding: one of them skipped it, at warn, naming the holder.
    let both = logs(&a, &b);
    assert!(
        both.contains("run skipped: another process holds the binding's lease")
            && both.contains("holder="),
        "{both}"
    );
}
