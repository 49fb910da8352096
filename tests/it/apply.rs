//! `apply` against the in-process sandbox, through the binary: plan → apply → plan is empty, a
//! second apply does nothing, Mailchimp-side changes converge, the confirmation and guard
//! refusals, saved plans (stale as a whole), and the lease (held, force-unlock).

use std::path::PathBuf;
use std::process::Output;

use api_sandbox::dataverse::columns::PluginRefusal;
use api_sandbox::mailchimp::{MemberSeed, MemberStatus};
use api_sandbox::{GenerateSpec, Options, Sandbox};
use serde_json::Value;

use super::common;

struct Env {
    sandbox: Sandbox,
    dir: tempfile::TempDir,
    config: PathBuf,
    audience: String,
}

async fn start(members: usize) -> Env {
    start_with(members, "").await
}

/// A sandbox and a config of one binding `main`; `extra` is appended to the binding.
async fn start_with(members: usize, extra: &str) -> Env {
    let sandbox = Sandbox::start(Options {
        generate: Some(GenerateSpec {
            members,
            tags: 3,
            seed: 11,
            audiences: 1,
            shared: 0,
        }),
        ..audience_sync::commands::sandbox::options()
    })
    .await
    .expect("sandbox starts");
    let (audience, name) = sandbox.mailchimp.audiences().remove(0);
    let env = sandbox.env();
    let get = |k: &str| {
        env.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("audience-sync.yaml");
    let text = format!(
        r#"version: 1
mailchimp:
  api_key: "${{MAILCHIMP_API_KEY}}"
  base_url: "{}"
dataverse:
  url: "{}"
  tenant_id: "{}"
  client_id: "{}"
  client_secret: "${{DATAVERSE_CLIENT_SECRET}}"
  token_url: "{}"
bindings:
  - name: main
    audience:
      id: "{audience}"
    marketing_list:
      name: "{name}"
      member_type: contact
      create: true
{extra}"#,
        get("MAILCHIMP_BASE_URL"),
        get("DATAVERSE_URL"),
        get("DATAVERSE_TENANT_ID"),
        get("DATAVERSE_CLIENT_ID"),
        get("DATAVERSE_TOKEN_URL"),
    );
    std::fs::write(&config, text).expect("config written");
    Env {
        sandbox,
        dir,
        config,
        audience,
    }
}

impl Env {
    /// Run the binary with the sandbox's secrets in the environment.
    async fn run(&self, args: &[&str]) -> Output {
        let mut command = common::bin();
        for (k, v) in self.sandbox.env() {
            command.env(k, v);
        }
        command.args(args);
        tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
            .await
            .expect("joined")
    }

    /// The tool's CRM tables, through a client of the sandbox (as another applier would).
    fn tables(&self) -> audience_sync::dataverse::tables::ToolTables {
        let client = common::crm_client(&self.sandbox);
        audience_sync::dataverse::tables::ToolTables::new(
            client,
            audience_sync::dataverse::schema::Schema::default(),
        )
    }

    fn config(&self) -> &str {
        self.config.to_str().expect("utf-8 path")
    }

    async fn apply_json(&self, extra: &[&str]) -> (Output, Value) {
        let mut args = vec!["apply", self.config(), "--auto-approve", "--format", "json"];
        args.extend(extra);
        let out = self.run(&args).await;
        let (stdout, stderr) = common::texts(&out);
        let report = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("report is JSON ({e}): {stdout}\nstderr: {stderr}"));
        (out, report)
    }

    /// `plan --detailed-exitcode`: 0 when there is nothing to do.
    async fn plan_code(&self) -> (i32, String) {
        let out = self
            .run(&["plan", self.config(), "--detailed-exitcode"])
            .await;
        let (stdout, stderr) = common::texts(&out);
        (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
    }

    async fn plan_json(&self) -> Value {
        let out = self.run(&["plan", self.config(), "--format", "json"]).await;
        serde_json::from_slice(&out.stdout).expect("plan JSON")
    }
}

fn totals(report: &Value) -> (u64, u64, u64, u64) {
    let t = &report["totals"];
    let n = |k: &str| t[k].as_u64().unwrap_or(u64::MAX);
    (n("done"), n("failed"), n("stale"), n("skipped"))
}

/// E-mail addresses of members the plan creates records for.
fn planned_emails(plan: &Value) -> Vec<String> {
    plan["bindings"][0]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["action"] == "create_record")
        .filter_map(|c| c["member"]["email"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_converges_and_a_second_apply_does_nothing() {
    let env = start(400).await;
    let contacts_before = env.sandbox.dataverse.count("contact");
    let (out, report) = env.apply_json(&[]).await;
    assert!(out.status.success(), "{}", common::texts(&out).1);
    let (done, failed, stale, skipped) = totals(&report);
    assert!(done > 300, "{report}");
    assert_eq!((failed, stale, skipped), (0, 0, 0), "{report}");
    let binding = &report["bindings"][0];
    assert_eq!(binding["outcome"], "synced");
    let created = binding["counts"]["create_record"]["done"].as_u64().unwrap();
    assert_eq!(
        env.sandbox.dataverse.count("contact"),
        contacts_before + created as usize
    );
    let (code, text) = env.plan_code().await;
    assert_eq!(code, 0, "the plan after apply is not empty:\n{text}");

    // The status and exactly one Sync Run record are in the CRM.
    assert_eq!(env.sandbox.dataverse.count("mcsync_syncrun"), 1);
    let status = env.run(&["status", env.config(), "--format", "json"]).await;
    let (stdout, stderr) = common::texts(&status);
    assert!(status.status.success(), "{stderr}");
    let status: Value = serde_json::from_str(&stdout).expect("status JSON");
    assert_eq!(status[0]["status"], "Synced", "{status}");
    assert_eq!(
        status[0]["last_run"]["failed"].as_i64(),
        Some(0),
        "{status}"
    );
    assert!(
        status[0]["lease"].is_null(),
        "the lease is released: {status}"
    );

    let contacts = env.sandbox.dataverse.count("contact");
    let (out, report) = env.apply_json(&[]).await;
    assert!(out.status.success());
    assert_eq!(totals(&report), (0, 0, 0, 0), "{report}");
    assert_eq!(env.sandbox.dataverse.count("contact"), contacts);
    assert_eq!(env.sandbox.dataverse.count("mcsync_syncrun"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailchimp_changes_are_planned_applied_and_converge() {
    let env = start(120).await;
    let plan = env.plan_json().await;
    let emails = planned_emails(&plan);
    let old = plan["bindings"][0]["tags"][0]["name"]
        .as_str()
        .expect("a tag")
        .to_owned();
    assert!(emails.len() > 10);
    let (out, _) = env.apply_json(&[]).await;
    assert!(out.status.success(), "{}", common::texts(&out).1);

    let mc = &env.sandbox.mailchimp;
    let id = env.audience.as_str();
    mc.set_status(id, &emails[0], MemberStatus::Unsubscribed)
        .expect("unsubscribe");
    let mut new = MemberSeed::new("newcomer@example.org");
    new.tags = vec!["Brand New".to_owned()];
    mc.add_member(id, &new).expect("new member");
    mc.set_tag(id, &emails[1], "Brand New", true).expect("tag");
    mc.rename_tag(id, &old, "Renamed Tag").expect("rename");

    let plan = env.plan_json().await;
    let actions: Vec<&str> = plan["bindings"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["action"].as_str())
        .collect();
    for expected in ["create_tag", "rename_tag", "create_record", "link_tags"] {
        assert!(
            actions.contains(&expected),
            "{expected} missing: {actions:?}"
        );
    }
    let (out, report) = env.apply_json(&[]).await;
    assert!(out.status.success(), "{report}");
    assert_eq!(totals(&report).1, 0, "{report}");
    let (code, text) = env.plan_code().await;
    assert_eq!(code, 0, "the plan after apply is not empty:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_terminal_or_auto_approve_apply_refuses_and_writes_nothing() {
    let env = start(30).await;
    let contacts = env.sandbox.dataverse.count("contact");
    let out = env.run(&["apply", env.config()]).await;
    let (_, stderr) = common::texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("--auto-approve"), "{stderr}");
    assert_eq!(env.sandbox.dataverse.count("contact"), contacts);
    assert_eq!(env.sandbox.dataverse.count("mcsync_audience"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_plan_is_applied_once_and_then_stale() {
    let env = start(50).await;
    let file = env.dir.path().join("plan.json");
    let file = file.to_str().unwrap();
    let out = env.run(&["plan", env.config(), "-out", file]).await;
    assert!(out.status.success(), "{}", common::texts(&out).1);
    let out = env
        .run(&["apply", file, "--config", env.config(), "--format", "json"])
        .await;
    assert!(out.status.success(), "{}", common::texts(&out).1);
    let (code, text) = env.plan_code().await;
    assert_eq!(code, 0, "{text}");

    let out = env.run(&["apply", file, "--config", env.config()]).await;
    let (_, stderr) = common::texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("saved plan is stale"), "{stderr}");
    assert!(stderr.contains("already applied"), "{stderr}");

    // A plan of another config is stale too.
    let out = env.run(&["plan", env.config(), "-out", file]).await;
    assert!(out.status.success());
    let mut text = std::fs::read_to_string(env.config()).unwrap();
    text.push_str("# edited\n");
    std::fs::write(env.config(), text).unwrap();
    let out = env.run(&["apply", file, "--config", env.config()]).await;
    let (_, stderr) = common::texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("saved plan is stale: the config changed"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lease_refuses_with_its_holder_until_force_unlocked() {
    use audience_sync::apply::lease;
    let env = start(40).await;
    let emails = planned_emails(&env.plan_json().await);
    let (out, _) = env.apply_json(&[]).await;
    assert!(out.status.success());
    let tables = env.tables();
    let claim = lease::Claim {
        owner: "other-pipeline".to_owned(),
        operation: "apply".to_owned(),
        wait: std::time::Duration::ZERO,
        term: lease::DEFAULT_TERM,
    };
    let held = lease::acquire(&tables, "main", &env.audience, None, &claim)
        .await
        .expect("lease taken");
    env.sandbox
        .mailchimp
        .set_tag(&env.audience, &emails[0], "Held", true)
        .expect("tag");

    let (out, report) = env.apply_json(&[]).await;
    assert_eq!(out.status.code(), Some(1), "{report}");
    let message = report["bindings"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("other-pipeline"), "{message}");
    assert!(message.contains(&held.lease.id), "{message}");

    let out = env
        .run(&[
            "force-unlock",
            "main",
            &held.lease.id,
            "--config",
            env.config(),
        ])
        .await;
    assert!(out.status.success(), "{}", common::texts(&out).1);
    let (out, report) = env.apply_json(&[]).await;
    assert!(out.status.success(), "{report}");
    let (code, text) = env.plan_code().await;
    assert_eq!(code, 0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_record_is_reported_with_its_email_and_the_rest_goes_on() {
    let env = start(60).await;
    let emails = planned_emails(&env.plan_json().await);
    let bad = emails[3].clone();
    // A plug-in on the CRM refuses this member's record (400 0x80040265) on every run.
    env.sandbox.dataverse.add_plugin_refusal(PluginRefusal {
        table: "contact".into(),
        column: "emailaddress1".into(),
        value: Value::String(bad.clone()),
        message: "This address is blocked by a compliance plug-in.".into(),
    });
    let (out, report) = env.apply_json(&[]).await;
    assert_eq!(out.status.code(), Some(1), "{report}");
    let binding = &report["bindings"][0];
    assert_eq!(binding["outcome"], "synced_with_errors", "{report}");
    assert_eq!(binding["counts"]["create_record"]["failed"], 1, "{report}");
    assert_eq!(
        binding["counts"]["create_record"]["done"].as_u64(),
        Some(emails.len() as u64 - 1)
    );
    assert_eq!(
        binding["counts"]["add_list_member"]["skipped"], 1,
        "{report}"
    );
    let failure = &binding["failures"][0];
    assert_eq!(failure["label"], bad.as_str());
    assert!(
        failure["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("blocked by a compliance plug-in"),
        "{failure}"
    );
    // Only the failed member is left to do.
    let plan = env.plan_json().await;
    let left: Vec<&str> = plan["bindings"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["member"]["email"].as_str())
        .collect();
    assert!(
        !left.is_empty() && left.iter().all(|e| *e == bad),
        "{left:?}"
    );
    let status = env.run(&["status", env.config()]).await;
    let (stdout, _) = common::texts(&status);
    assert!(stdout.contains("Synced with errors"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removals_over_max_removals_are_refused_unless_allowed() {
    let env = start_with(80, "    prune_members: true\n    max_removals: 1\n").await;
    let emails = planned_emails(&env.plan_json().await);
    let (out, _) = env.apply_json(&[]).await;
    assert!(out.status.success(), "{}", common::texts(&out).1);
    for email in &emails[..3] {
        env.sandbox
            .mailchimp
            .set_status(&env.audience, email, MemberStatus::Unsubscribed)
            .expect("unsubscribe");
    }
    let members = env.sandbox.dataverse.count("listmember");
    let out = env.run(&["apply", env.config(), "--auto-approve"]).await;
    let (_, stderr) = common::texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("--allow-removals"), "{stderr}");
    assert_eq!(env.sandbox.dataverse.count("listmember"), members);

    let (out, report) = env.apply_json(&["--allow-removals"]).await;
    assert!(out.status.success(), "{report}");
    assert_eq!(
        report["bindings"][0]["counts"]["remove_list_member"]["done"], 3,
        "{report}"
    );
    assert_eq!(env.sandbox.dataverse.count("listmember"), members - 3);
    let (code, text) = env.plan_code().await;
    assert_eq!(code, 0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_applier_waits_for_the_lease_within_the_lock_timeout() {
    use audience_sync::apply::lease;
    let env = start(30).await;
    let emails = planned_emails(&env.plan_json().await);
    let (out, _) = env.apply_json(&[]).await;
    assert!(out.status.success());
    let tables = env.tables();
    let claim = lease::Claim {
        owner: "first-applier".to_owned(),
        operation: "apply".to_owned(),
        wait: std::time::Duration::ZERO,
        term: lease::DEFAULT_TERM,
    };
    let held = lease::acquire(&tables, "main", &env.audience, None, &claim)
        .await
        .expect("lease taken");
    env.sandbox
        .mailchimp
        .set_tag(&env.audience, &emails[0], "Waited", true)
        .expect("tag");
    let reads = || {
        env.sandbox
            .dataverse
            .counters()
            .routes
            .get("GET mcsync_audiences")
            .copied()
            .unwrap_or(0)
    };
    let before = reads();
    let mut command = common::bin();
    for (k, v) in env.sandbox.env() {
        command.env(k, v);
    }
    command.args([
        "apply",
        env.config(),
        "--auto-approve",
        "--lock-timeout",
        "120s",
    ]);
    let child = tokio::task::spawn_blocking(move || command.output().expect("runs"));
    // The second applier has observed (one read) and found the lease held (a second read).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while reads() < before + 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second apply never looked at the lease"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let released = lease::release(
        &tables,
        held.record.id,
        &held.lease.id,
        &held.record.status,
        None,
    )
    .await
    .expect("released");
    assert!(released);
    let out = child.await.expect("joined");
    assert!(out.status.success(), "{}", common::texts(&out).1);
    let (code, text) = env.plan_code().await;
    assert_eq!(code, 0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_injected_faults_apply_finishes_or_names_failures_and_a_rerun_converges() {
    use api_sandbox::dataverse::Faults;
    let env = start(300).await;
    let creates = planned_emails(&env.plan_json().await).len();
    let contacts = env.sandbox.dataverse.count("contact");
    env.sandbox.dataverse.set_faults(Faults {
        rate_500: 0.1,
        rate_503: 0.1,
        rate_429: 0.05,
        retry_after_secs: 0,
        ..Faults::default()
    });
    let out = env
        .run(&["apply", env.config(), "--auto-approve", "--format", "json"])
        .await;
    let (stdout, stderr) = common::texts(&out);
    if !out.status.success() {
        // Either the run could not even read, or it names what failed.
        let named = serde_json::from_str::<Value>(&stdout)
            .map(|r| {
                r["bindings"][0]["failures"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty())
            })
            .unwrap_or(false);
        assert!(named || stderr.contains("error"), "{stdout}\n{stderr}");
    }
    env.sandbox.dataverse.set_faults(Faults::default());
    // A lease the faulted run could not release belongs to a process of this host that is gone:
    // the rerun takes it over.
    let (out, report) = env.apply_json(&[]).await;
    assert!(out.status.success(), "{report}");
    let (code, text) = env.plan_code().await;
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        env.sandbox.dataverse.count("contact"),
        contacts + creates,
        "exactly one contact per member"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_plan_skips_records_changed_since_as_stale() {
    let env = start(40).await;
    let emails = planned_emails(&env.plan_json().await);
    let (out, _) = env.apply_json(&[]).await;
    assert!(out.status.success());
    let (a, b, c) = (&emails[0], &emails[1], &emails[2]);
    let mc = &env.sandbox.mailchimp;
    for email in [a, b, c] {
        mc.set_merge_field(
            &env.audience,
            email,
            "FNAME",
            Value::String("Planned".into()),
        )
        .expect("merge field");
    }
    let file = env.dir.path().join("plan.json");
    let file = file.to_str().unwrap();
    let out = env.run(&["plan", env.config(), "-out", file]).await;
    assert!(out.status.success());
    let plan: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let record_of = |email: &str| {
        plan["bindings"][0]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|ch| ch["action"] == "update_record" && ch["member"]["email"] == email)
            .and_then(|ch| ch["record"].as_str())
            .and_then(|id| uuid::Uuid::parse_str(id).ok())
            .expect("an update of the member's record")
    };
    let b_record = record_of(b);
    // Mailchimp's `last_changed` has whole seconds: a change is only visible as one from the
    // next second on, so wait (bounded) until the clock has passed the planned version.
    let planned: chrono::DateTime<chrono::Utc> = plan["bindings"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ch| ch["member"]["email"] == a.as_str())
        .and_then(|ch| ch["precondition"]["member_last_changed"].as_str())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .expect("the planned version")
        .with_timezone(&chrono::Utc);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while chrono::Utc::now().timestamp() <= planned.timestamp() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the clock does not move"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // After the plan: `a` changes again in Mailchimp, `b`'s contact is edited in the CRM.
    mc.set_merge_field(&env.audience, a, "FNAME", Value::String("Later".into()))
        .expect("merge field");
    env.tables()
        .client
        .update(
            "contacts",
            b_record,
            &serde_json::json!({ "lastname": "Edited in the CRM" }),
            None,
        )
        .await
        .expect("contact edited");

    let out = env
        .run(&["apply", file, "--config", env.config(), "--format", "json"])
        .await;
    let (stdout, stderr) = common::texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("report");
    let binding = &report["bindings"][0];
    assert_eq!(binding["counts"]["update_record"]["stale"], 2, "{report}");
    assert_eq!(binding["counts"]["update_record"]["done"], 1, "{report}");
    let stale: Vec<&str> = binding["failures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "stale")
        .filter_map(|f| f["label"].as_str())
        .collect();
    assert!(
        stale.contains(&a.as_str()) && stale.contains(&b.as_str()),
        "{stale:?}"
    );
    let contact = env
        .sandbox
        .dataverse
        .record("contact", b_record)
        .expect("contact");
    assert_eq!(
        contact["lastname"], "Edited in the CRM",
        "never overwritten"
    );
    assert_ne!(
        contact["firstname"], "Planned",
        "the stale change was not written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_members_are_added_in_requests_of_the_full_size() {
    // The executor hands every member to the client in one call, so each AddListMembersList
    // request carries the sizer's full size (1,000, grown by the creates before it); handing
    // them over 1,000 at a time split each thousand over the 4 requests in flight (4x the
    // requests).
    let env = start(5000).await;
    let plan = env.plan_json().await;
    let adds = plan["bindings"][0]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["action"] == "add_list_member")
        .count();
    assert!(adds > 3000, "{adds} members to add");
    let (out, report) = env.apply_json(&[]).await;
    assert!(out.status.success(), "{report}");
    let requests = env
        .sandbox
        .dataverse
        .counters()
        .routes
        .get("POST AddListMembersList")
        .copied()
        .expect("AddListMembersList was sent");
    assert!(
        requests <= adds.div_ceil(1000) as u64 + 1,
        "{requests} AddListMembersList requests for {adds} members"
    );
    assert_eq!(env.sandbox.dataverse.count("listmember"), adds);
}
