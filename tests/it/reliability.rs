//! Reliability of `apply` (issue 6): the real binary is killed with SIGKILL part-way through a
//! first sync, runs under injected faults on both emulators, and races a second applier; each
//! time the end state is checked in the sandbox's own data (one contact per member with its
//! Mailchimp contact id, the list's members, each tag's links, the unrelated records untouched)
//! and a final `plan --detailed-exitcode` exits 0.
//!
//! The sandbox runs in this process and keeps its data while apply processes come and go (the
//! in-process form of a persistent sandbox).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use api_sandbox::dataverse::columns::PluginRefusal;
use api_sandbox::{GenerateSpec, Options, Sandbox, Seed};
use serde_json::{Value, json};
use uuid::Uuid;

use super::common;

/// Wait (bounded) until a lease as `status --format json` shows it has run out; nothing to wait
/// for when there is none.
async fn wait_lapsed(lease: &Value) {
    let Some(expires) = lease["expires"].as_str() else {
        return;
    };
    let expires = chrono::DateTime::parse_from_rfc3339(expires).expect("an RFC 3339 expiry");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(70);
    while chrono::Utc::now() <= expires {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lease never ran out"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Members of the generated audience: the issue's 5,000 (the file runs in about a minute on this
/// 2-core machine, most of it the kill test's eleven first syncs).
const MEMBERS: usize = 5_000;
/// Contacts and a list in the CRM that have nothing to do with the audience.
const UNRELATED: usize = 12;

struct Env {
    sandbox: Sandbox,
    _dir: tempfile::TempDir,
    config: PathBuf,
    audience: String,
}

/// The CRM rows that exist before any apply and that no apply may touch.
fn unrelated_seed() -> Seed {
    let contacts: Vec<Value> = (0..UNRELATED)
        .map(|i| {
            json!({
                "contactid": unrelated_id(i).to_string(),
                "firstname": format!("Unrelated {i}"),
                "lastname": "Bystander",
                "emailaddress1": format!("bystander{i}@unrelated.example"),
            })
        })
        .collect();
    let members: Vec<String> = (0..UNRELATED / 2)
        .map(|i| unrelated_id(i).to_string())
        .collect();
    serde_json::from_value(json!({
        "dataverse": {
            "contacts": contacts,
            "lists": [{ "name": "Unrelated List", "members": members }],
        }
    }))
    .expect("seed")
}

fn unrelated_id(i: usize) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("unrelated-{i}").as_bytes())
}

async fn start(members: usize) -> Env {
    let sandbox = Sandbox::start(Options {
        seed: unrelated_seed(),
        generate: Some(GenerateSpec {
            members,
            tags: 4,
            seed: 23,
            audiences: 1,
            shared: 0,
        }),
        ..audience_sync::commands::sandbox::options()
    })
    .await
    .expect("sandbox starts");
    let (audience, name) = sandbox.mailchimp.audiences().remove(0);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("audience-sync.yaml");
    let text = format!(
        r#"version: 1
mailchimp:
  api_key: "${{MAILCHIMP_API_KEY}}"
  base_url: "${{MAILCHIMP_BASE_URL}}"
dataverse:
  url: "${{DATAVERSE_URL}}"
  tenant_id: "${{DATAVERSE_TENANT_ID}}"
  client_id: "${{DATAVERSE_CLIENT_ID}}"
  client_secret: "${{DATAVERSE_CLIENT_SECRET}}"
  token_url: "${{DATAVERSE_TOKEN_URL}}"
bindings:
  - name: main
    audience:
      id: "{audience}"
    marketing_list:
      name: "{name}"
      member_type: contact
      create: true
"#
    );
    std::fs::write(&config, text).expect("config written");
    Env {
        sandbox,
        _dir: dir,
        config,
        audience,
    }
}

/// What the CRM must hold once a first sync has converged, read from Mailchimp's API.
struct Expected {
    /// Mailchimp contact id → e-mail, of every member the sync keeps a record of.
    records: BTreeMap<String, String>,
    /// Contact ids of the members that belong on the list.
    listed: BTreeSet<String>,
    /// Mailchimp tag id → contact ids of the members carrying it.
    tags: BTreeMap<String, BTreeSet<String>>,
}

/// The unrelated rows as they were, to compare after.
struct Untouched {
    contacts: Vec<Value>,
    list: Uuid,
    list_members: BTreeSet<Uuid>,
}

impl Env {
    fn config(&self) -> &str {
        self.config.to_str().expect("utf-8 path")
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = common::bin();
        for (k, v) in self.sandbox.env() {
            command.env(k, v);
        }
        // Short leases, so that a killed run's lease lapses within the test (long enough for
        // renewals on a loaded machine).
        command.env("AUDIENCE_SYNC_LEASE_TERM", "12s");
        command.args(args);
        command
    }

    async fn run(&self, args: &[&str]) -> Output {
        let mut command = self.command(args);
        tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
            .await
            .expect("joined")
    }

    fn spawn_apply(&self, extra: &[&str]) -> Child {
        let mut args = vec!["apply", self.config(), "--auto-approve", "--format", "json"];
        args.extend(extra);
        self.command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("apply starts")
    }

    async fn apply_json(&self) -> (Output, Value) {
        let out = self
            .run(&["apply", self.config(), "--auto-approve", "--format", "json"])
            .await;
        let report = report_of(&out);
        (out, report)
    }

    async fn plan_code(&self) -> (i32, String) {
        let out = self
            .run(&["plan", self.config(), "--detailed-exitcode"])
            .await;
        let (stdout, stderr) = common::texts(&out);
        (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
    }

    async fn plan_json(&self) -> Value {
        let out = self.run(&["plan", self.config(), "--format", "json"]).await;
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("plan JSON ({e}): {}", common::texts(&out).1))
    }

    async fn status_json(&self) -> Value {
        let out = self
            .run(&["status", self.config(), "--format", "json"])
            .await;
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("status JSON ({e}): {}", common::texts(&out).1))
    }

    fn env_var(&self, key: &str) -> String {
        self.sandbox
            .env()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .unwrap_or_default()
    }

    /// The audience's members and tags through Mailchimp's API, and from the first plan which
    /// members get a record and a list membership.
    async fn expected(&self) -> Expected {
        let plan = self.plan_json().await;
        let changes = plan["bindings"][0]["changes"].as_array().expect("changes");
        let emails_of = |action: &str| -> BTreeSet<String> {
            changes
                .iter()
                .filter(|c| c["action"] == action)
                .filter_map(|c| c["member"]["email"].as_str().map(str::to_lowercase))
                .collect()
        };
        let created = emails_of("create_record");
        let added = emails_of("add_list_member");
        assert!(created.len() > MEMBERS.min(1_000) / 2, "{}", created.len());

        let http = reqwest::Client::new();
        let base = self.env_var("MAILCHIMP_BASE_URL");
        let key = self.env_var("MAILCHIMP_API_KEY");
        let mut members = Vec::new();
        loop {
            let page: Value = http
                .get(format!("{base}/lists/{}/members", self.audience))
                .basic_auth("test", Some(&key))
                .query(&[
                    ("count", "1000".to_owned()),
                    ("offset", members.len().to_string()),
                    (
                        "fields",
                        "total_items,members.email_address,members.contact_id,members.status,members.tags"
                            .to_owned(),
                    ),
                ])
                .send()
                .await
                .expect("mailchimp answers")
                .json()
                .await
                .expect("members JSON");
            let batch = page["members"].as_array().cloned().unwrap_or_default();
            let total = page["total_items"].as_u64().unwrap_or(0) as usize;
            let empty = batch.is_empty();
            members.extend(batch);
            if empty || members.len() >= total {
                break;
            }
        }
        let mut expected = Expected {
            records: BTreeMap::new(),
            listed: BTreeSet::new(),
            tags: BTreeMap::new(),
        };
        for m in &members {
            let email = m["email_address"]
                .as_str()
                .unwrap_or_default()
                .to_lowercase();
            let contact = m["contact_id"].as_str().unwrap_or_default().to_owned();
            if !created.contains(&email) {
                continue;
            }
            if added.contains(&email) {
                assert_eq!(
                    m["status"], "subscribed",
                    "only subscribed members are listed"
                );
                expected.listed.insert(contact.clone());
            }
            for tag in m["tags"].as_array().into_iter().flatten() {
                let id = tag["id"]
                    .as_u64()
                    .map(|i| i.to_string())
                    .unwrap_or_default();
                expected.tags.entry(id).or_default().insert(contact.clone());
            }
            expected.records.insert(contact, email);
        }
        let subscribed = members
            .iter()
            .filter(|m| m["status"] == "subscribed")
            .count();
        assert_eq!(
            expected.listed.len(),
            subscribed,
            "every subscribed member is planned onto the list"
        );
        expected
    }

    fn untouched(&self) -> Untouched {
        let dv = &self.sandbox.dataverse;
        let list = self
            .sandbox
            .dataverse
            .with_store(|s| {
                s.table("list").and_then(|t| {
                    t.rows
                        .keys()
                        .copied()
                        .find(|id| dv_record_name(s, *id).as_deref() == Some("Unrelated List"))
                })
            })
            .expect("the unrelated list");
        Untouched {
            contacts: (0..UNRELATED)
                .map(|i| dv.record("contact", unrelated_id(i)).expect("seeded"))
                .collect(),
            list,
            list_members: dv.list_members(list).into_iter().collect(),
        }
    }

    /// The converged end state, checked in the sandbox's data.
    async fn assert_converged(&self, expected: &Expected, untouched: &Untouched, when: &str) {
        let dv = &self.sandbox.dataverse;
        // One contact per member, carrying its Mailchimp contact id; the rest are the bystanders.
        let ids: Vec<Uuid> = dv.with_store(|s| {
            s.table("contact")
                .map(|t| t.rows.keys().copied().collect())
                .unwrap_or_default()
        });
        assert_eq!(
            ids.len(),
            expected.records.len() + UNRELATED,
            "{when}: exactly one contact per member"
        );
        let mut by_mailchimp: BTreeMap<String, Uuid> = BTreeMap::new();
        for id in ids {
            let row = dv.record("contact", id).expect("row");
            let Some(mc) = row["mcsync_mailchimpcontactid"].as_str() else {
                continue;
            };
            let email = row["emailaddress1"]
                .as_str()
                .unwrap_or_default()
                .to_lowercase();
            assert_eq!(
                expected.records.get(mc),
                Some(&email),
                "{when}: contact {id} has Mailchimp id `{mc}` and e-mail `{email}`"
            );
            assert!(
                by_mailchimp.insert(mc.to_owned(), id).is_none(),
                "{when}: two contacts for Mailchimp contact `{mc}`"
            );
        }
        assert_eq!(
            by_mailchimp.len(),
            expected.records.len(),
            "{when}: every member has a record with its Mailchimp contact id"
        );
        // The list holds exactly the selected members.
        let list = self.bound_list();
        let members: BTreeSet<Uuid> = dv.list_members(list).into_iter().collect();
        let want: BTreeSet<Uuid> = expected.listed.iter().map(|c| by_mailchimp[c]).collect();
        assert_eq!(members.len(), want.len(), "{when}: list member count");
        assert!(members == want, "{when}: the list's members differ");
        // Each Mailchimp tag has one Tag record, linked to exactly its members' contacts.
        let tags: Vec<(Uuid, String)> = dv
            .with_store(|s| {
                s.table("mcsync_tag")
                    .map(|t| t.rows.keys().copied().collect::<Vec<_>>())
                    .unwrap_or_default()
            })
            .into_iter()
            .filter_map(|id| {
                let row = dv.record("mcsync_tag", id)?;
                Some((id, row["mcsync_mailchimptagid"].as_str()?.to_owned()))
            })
            .collect();
        let tag_ids: BTreeSet<&str> = tags.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(tag_ids.len(), tags.len(), "{when}: one Tag record per tag");
        for (tag, contacts) in &expected.tags {
            let (record, _) = tags
                .iter()
                .find(|(_, t)| t == tag)
                .unwrap_or_else(|| panic!("{when}: no Tag record for tag `{tag}`"));
            let linked: BTreeSet<Uuid> = dv
                .linked("mcsync_tag_contact", *record)
                .into_iter()
                .collect();
            let want: BTreeSet<Uuid> = contacts.iter().map(|c| by_mailchimp[c]).collect();
            assert_eq!(linked.len(), want.len(), "{when}: links of tag `{tag}`");
            assert!(linked == want, "{when}: the contacts of tag `{tag}` differ");
        }
        // Nothing else touched.
        for (i, before) in untouched.contacts.iter().enumerate() {
            let now = dv.record("contact", unrelated_id(i)).expect("still there");
            assert_eq!(&now, before, "{when}: unrelated contact {i} changed");
            for (record, _) in &tags {
                assert!(
                    !dv.linked("mcsync_tag_contact", *record)
                        .contains(&unrelated_id(i)),
                    "{when}: an unrelated contact got a tag"
                );
            }
        }
        let now: BTreeSet<Uuid> = dv.list_members(untouched.list).into_iter().collect();
        assert_eq!(
            now, untouched.list_members,
            "{when}: the unrelated list changed"
        );

        let (code, text) = self.plan_code().await;
        assert_eq!(
            code, 0,
            "{when}: the plan after convergence is not empty:\n{text}"
        );
    }

    /// The marketing list of the binding (named like the audience).
    fn bound_list(&self) -> Uuid {
        let name = self.sandbox.mailchimp.audiences().remove(0).1;
        let dv = &self.sandbox.dataverse;
        let lists: Vec<Uuid> = dv.with_store(|s| {
            s.table("list")
                .map(|t| {
                    t.rows
                        .keys()
                        .copied()
                        .filter(|id| dv_record_name(s, *id).as_deref() == Some(name.as_str()))
                        .collect()
                })
                .unwrap_or_default()
        });
        assert_eq!(lists.len(), 1, "one list named `{name}`");
        lists[0]
    }

    /// Data requests the Dataverse emulator has answered so far.
    fn dataverse_requests(&self) -> u64 {
        self.sandbox.dataverse.counters().http_requests
    }
}

/// A list row's `listname`, read straight from the store.
fn dv_record_name(s: &api_sandbox::dataverse::store::Store, id: Uuid) -> Option<String> {
    let t = s.table("list")?;
    let row = t.rows.get(&id)?;
    let projection = api_sandbox::dataverse::query::projection(&t.meta, &[]).ok()?;
    let rendered = api_sandbox::dataverse::query::render(&t.meta, row, &projection);
    rendered
        .get("listname")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn report_of(out: &Output) -> Value {
    let (stdout, stderr) = common::texts(out);
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("report is JSON ({e}): {stdout}\nstderr: {stderr}"))
}

/// Wait (bounded) until `done` holds or the child has ended; true when `done` held.
async fn wait_for(child: &mut Child, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        if done() {
            return true;
        }
        if child.try_wait().expect("child status").is_some() {
            return false;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the apply neither reached the point nor ended"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn wait_child(child: Child) -> Output {
    tokio::task::spawn_blocking(move || child.wait_with_output().expect("child waited"))
        .await
        .expect("joined")
}

/// Two applies started together on one binding, both willing to wait for the lease: one holds
/// it, the other waits (`--lock-timeout`), then plans again (its first plan is stale) and finds
/// nothing left to do. One contact per member, and one Sync Run, of the apply that did the work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_applies_at_once_one_waits_and_the_end_state_is_right() {
    let env = start(MEMBERS).await;
    let expected = env.expected().await;
    let untouched = env.untouched();
    let started = std::time::Instant::now();
    let a = env.spawn_apply(&["--lock-timeout", "120s"]);
    let b = env.spawn_apply(&["--lock-timeout", "120s"]);
    let (a, b) = tokio::join!(wait_child(a), wait_child(b));
    eprintln!(
        "two applies: {:?}, {} dataverse requests",
        started.elapsed(),
        env.dataverse_requests()
    );
    let (ra, rb) = (report_of(&a), report_of(&b));
    assert!(a.status.success(), "{ra}\n{}", common::texts(&a).1);
    assert!(b.status.success(), "{rb}\n{}", common::texts(&b).1);
    let done = |r: &Value| r["totals"]["done"].as_u64().unwrap_or(0);
    let failed = |r: &Value| r["totals"]["failed"].as_u64().unwrap_or(u64::MAX);
    assert_eq!((failed(&ra), failed(&rb)), (0, 0), "{ra}\n{rb}");
    assert!(
        done(&ra).min(done(&rb)) == 0 && done(&ra).max(done(&rb)) > 0,
        "one apply did the work, the other found it done: {ra}\n{rb}"
    );
    let waiter = if done(&ra) == 0 { &a } else { &b };
    let (_, stderr) = common::texts(waiter);
    assert!(
        stderr.contains("another applier ran while this one waited; planning again"),
        "the second apply waited for the lease and planned again: {stderr}"
    );
    // The waiter planned again once the lease was free, found nothing to do, and so wrote no
    // Sync Run: one record, of the apply that did the work.
    assert_eq!(env.sandbox.dataverse.count("mcsync_syncrun"), 1);
    env.assert_converged(&expected, &untouched, "after two applies")
        .await;
}

/// SIGKILL at 10 points of a first sync, each on a fresh sandbox (same generated data), each
/// followed by a rerun that must converge.
///
/// The points are deterministic: a reference first sync counts the data requests `R` the
/// Dataverse emulator answers; run `k` is killed once the emulator has answered `k·R/11` of
/// them (a bounded wait on that counter), which spreads the kills from the first reads through
/// the `$batch` writes to the status and Sync Run writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_sync_killed_at_ten_points_converges_on_each_rerun() {
    let reference = start(MEMBERS).await;
    let expected = reference.expected().await;
    let untouched = reference.untouched();
    let before = reference.dataverse_requests();
    let (out, report) = reference.apply_json().await;
    assert!(out.status.success(), "{report}");
    let requests = reference.dataverse_requests() - before;
    reference
        .assert_converged(&expected, &untouched, "the reference run")
        .await;
    drop(reference);

    let mut taken_over = 0;
    for k in 1..=10u64 {
        let env = start(MEMBERS).await;
        let untouched = env.untouched();
        let base = env.dataverse_requests();
        let point = base + k * requests / 11;
        let mut child = env.spawn_apply(&[]);
        let reached = wait_for(&mut child, || env.dataverse_requests() >= point).await;
        assert!(reached, "kill {k}: the apply ended before request {point}");
        child.kill().expect("SIGKILL");
        let killed = wait_child(child).await;
        assert!(!killed.status.success(), "kill {k}: the apply was killed");
        let contacts = env.sandbox.dataverse.count("contact");
        let status = env.status_json().await;
        let lease = status[0]["lease"].clone();
        // The rerun: no force-unlock; a lease the killed run left is no longer renewed, and is
        // taken over once it has run out.
        wait_lapsed(&lease).await;
        let (out, report) = env.apply_json().await;
        assert!(
            out.status.success(),
            "kill {k}: the rerun failed: {report}\n{}",
            common::texts(&out).1
        );
        if !lease.is_null() {
            taken_over += 1;
            assert_ne!(
                report["bindings"][0]["lease_id"], lease["id"],
                "kill {k}: the rerun holds a lease of its own"
            );
        }
        eprintln!(
            "kill {k}: at request {} of {requests}, {} contacts, lease left: {}",
            point - base,
            contacts,
            !lease.is_null()
        );
        env.assert_converged(&expected, &untouched, &format!("after kill {k}"))
            .await;
        // The status is closed and the lease gone, even when the killed run had done every
        // write and the rerun found nothing to do; at most one Sync Run (the killed run's, if
        // it got that far, or the rerun's, which shares its id when it applies the same plan).
        let status = env.status_json().await;
        assert!(status[0]["lease"].is_null(), "kill {k}: {status}");
        assert_eq!(status[0]["status"], "Synced", "kill {k}: {status}");
        let runs = env.sandbox.dataverse.count("mcsync_syncrun");
        let rerun_did = report["totals"]["done"].as_u64().unwrap_or(0) > 0;
        assert!(
            runs <= 1 && (runs == 1 || !rerun_did),
            "kill {k}: {runs} Sync Runs"
        );
    }
    assert!(taken_over > 0, "no kill left a lease to take over");
}

/// Faults on both emulators during a first sync: 5% 500s and 5% 503s (10% in all), 2% dropped
/// connections, and 429 bursts (Mailchimp answers its first requests 429, 429, 429, drop, drop;
/// Dataverse throttles its next four). The run either finishes or names every record it did
/// not write (each member missing from the CRM, or from the list, is among its failures), or,
/// when it could not even read, writes nothing; a record it reports failed is indeed absent. One
/// member the CRM always refuses (a plug-in refusing its address) makes sure failures are named. A
/// rerun without faults (and without that plug-in) converges, with no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_faults_on_both_emulators_apply_names_what_failed_and_a_rerun_converges() {
    use api_sandbox::dataverse::Faults as DvFaults;
    use api_sandbox::mailchimp::{Burst, Faults as McFaults};
    let env = start(MEMBERS).await;
    let expected = env.expected().await;
    let untouched = env.untouched();
    // One member the CRM refuses whatever the faults (a plug-in refuses its e-mail address), so
    // the naming of failures is always exercised; the plug-in is removed before the rerun.
    let (bad_id, bad) = expected.records.iter().next().expect("a member");
    let (bad_id, bad) = (bad_id.clone(), bad.clone());
    env.sandbox.dataverse.add_plugin_refusal(PluginRefusal {
        table: "contact".into(),
        column: "emailaddress1".into(),
        value: Value::String(bad.clone()),
        message: "This address is blocked by a compliance plug-in.".into(),
    });
    env.sandbox.mailchimp.set_faults(McFaults {
        rate_500: 0.05,
        rate_503: 0.05,
        drop_rate: 0.02,
        bursts: vec![
            Burst {
                status: 429,
                count: 3,
            },
            Burst {
                status: 0,
                count: 2,
            },
        ],
        seed: 7,
        ..McFaults::default()
    });
    env.sandbox.dataverse.set_faults(DvFaults {
        rate_500: 0.05,
        rate_503: 0.05,
        drop_rate: 0.02,
        next_429: 4,
        retry_after_secs: 0,
        ..DvFaults::default()
    });
    let out = env
        .run(&["apply", env.config(), "--auto-approve", "--format", "json"])
        .await;
    // The faults were met: the bursts are used up, the throttling counted.
    assert!(env.sandbox.mailchimp.faults().bursts.is_empty());
    assert!(env.sandbox.dataverse.counters().throttled >= 4);
    env.sandbox.mailchimp.set_faults(McFaults::default());
    env.sandbox.dataverse.set_faults(DvFaults::default());
    let (stdout, stderr) = common::texts(&out);
    let dv = &env.sandbox.dataverse;
    match serde_json::from_str::<Value>(&stdout) {
        Ok(report) => {
            let binding = &report["bindings"][0];
            let failures = binding["failures"].as_array().cloned().unwrap_or_default();
            let named: BTreeSet<String> = failures
                .iter()
                .filter_map(|f| f["label"].as_str().map(str::to_lowercase))
                .collect();
            let failed = report["totals"]["failed"].as_u64().unwrap_or(u64::MAX);
            let not_done = failures.len() as u64;
            eprintln!(
                "under faults: exit {:?}, {failed} failed, {not_done} not done",
                out.status.code()
            );
            assert_eq!(
                out.status.success(),
                failed == 0 && binding["outcome"] == "synced",
                "{report}"
            );
            for f in &failures {
                assert!(
                    f["reason"].as_str().is_some_and(|r| !r.is_empty()),
                    "a failure without its reason: {f}"
                );
            }
            // Every member whose record or list membership is missing is named.
            let mut by_mailchimp = BTreeMap::new();
            let ids: Vec<Uuid> = dv.with_store(|s| {
                s.table("contact")
                    .map(|t| t.rows.keys().copied().collect())
                    .unwrap_or_default()
            });
            for id in ids {
                let row = dv.record("contact", id).expect("row");
                if let Some(mc) = row["mcsync_mailchimpcontactid"].as_str() {
                    assert!(
                        by_mailchimp.insert(mc.to_owned(), id).is_none(),
                        "two contacts for `{mc}` under faults"
                    );
                }
            }
            let listed: BTreeSet<Uuid> = if dv.count("list") > 1 {
                dv.list_members(env.bound_list()).into_iter().collect()
            } else {
                BTreeSet::new()
            };
            if binding["outcome"] != "error" && binding["outcome"] != "skipped" {
                assert!(!out.status.success(), "{report}");
                assert!(named.contains(&bad), "`{bad}` is not named: {report}");
                assert!(!by_mailchimp.contains_key(&bad_id), "{report}");
                // Exactly: a record reported as not created is indeed absent.
                for f in failures.iter().filter(|f| f["action"] == "create_record") {
                    let label = f["label"].as_str().unwrap_or_default().to_lowercase();
                    let written = expected
                        .records
                        .iter()
                        .any(|(mc, e)| *e == label && by_mailchimp.contains_key(mc));
                    assert!(
                        !written,
                        "`{label}` is reported failed but was written: {f}"
                    );
                }
                for (mc, email) in &expected.records {
                    let present = by_mailchimp.get(mc);
                    assert!(
                        present.is_some() || named.contains(email),
                        "`{email}` has no record and is not named among the failures: {report}"
                    );
                    if expected.listed.contains(mc) {
                        assert!(
                            present.is_some_and(|id| listed.contains(id)) || named.contains(email),
                            "`{email}` is not on the list and not named among the failures"
                        );
                    }
                }
            } else {
                assert!(!out.status.success(), "{report}");
                assert!(binding["message"].is_string(), "{report}");
            }
        }
        Err(_) => {
            // It could not even read: it says so and writes nothing.
            assert!(!out.status.success(), "{stdout}\n{stderr}");
            assert!(stderr.contains("error"), "{stderr}");
            assert_eq!(dv.count("contact"), UNRELATED, "{stderr}");
        }
    }

    dv.with_store(|store| store.plugin_refusals.clear());
    let (out, report) = env.apply_json().await;
    assert!(out.status.success(), "the rerun failed: {report}");
    env.assert_converged(&expected, &untouched, "after the faulted run and a rerun")
        .await;
}

/// A run killed after its last write (the lease still recorded, the status In Progress): the
/// rerun has nothing to do, and still takes the dead process's lease over and closes the status
/// as Synced. The kill test reaches this point only when the timing falls so; here it is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_with_nothing_to_do_closes_the_status_a_killed_run_left() {
    use audience_sync::apply::lease;
    let env = start(40).await;
    let (out, report) = env.apply_json().await;
    assert!(out.status.success(), "{report}");
    let client = audience_sync::dataverse::Client::builder()
        .url(env.env_var("DATAVERSE_URL"))
        .tenant_id(env.env_var("DATAVERSE_TENANT_ID"))
        .client_id(env.env_var("DATAVERSE_CLIENT_ID"))
        .client_secret(env.env_var("DATAVERSE_CLIENT_SECRET").into())
        .token_url(Some(env.env_var("DATAVERSE_TOKEN_URL")))
        .build()
        .expect("client");
    let tables = audience_sync::dataverse::tables::ToolTables::new(
        client,
        audience_sync::dataverse::schema::Schema::default(),
    );
    // A lease taken and never renewed stands for the killed apply's.
    let claim = lease::Claim {
        owner: "killed-apply".to_owned(),
        operation: "apply".to_owned(),
        wait: Duration::ZERO,
        term: lease::MIN_TERM,
    };
    let held = lease::acquire(&tables, "main", &env.audience, None, &claim)
        .await
        .expect("lease taken");
    let mut running = held.record.status.clone();
    running.sync_status = audience_sync::dataverse::schema::sync_status::IN_PROGRESS;
    lease::set_status(&tables, held.record.id, &running, held.etag.as_deref())
        .await
        .expect("status written");
    let status = env.status_json().await;
    assert_eq!(status[0]["status"], "In Progress", "{status}");
    assert_eq!(status[0]["lease"]["id"], held.lease.id.as_str(), "{status}");

    wait_lapsed(&status[0]["lease"]).await;
    let (out, report) = env.apply_json().await;
    assert!(out.status.success(), "{report}");
    assert_eq!(report["totals"]["done"], 0, "{report}");
    let message = report["bindings"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains(&held.lease.id), "{message}");
    let status = env.status_json().await;
    assert_eq!(status[0]["status"], "Synced", "{status}");
    assert!(status[0]["lease"].is_null(), "{status}");
    let (code, text) = env.plan_code().await;
    assert_eq!(code, 0, "{text}");
}

/// Two applies started together without `--lock-timeout`: the one that finds the lease held
/// refuses, naming the holder (host and process of the other apply) and the way out; the other
/// does the work. (Should the second only start once the first is done, it finds nothing to do;
/// either way exactly one apply did the work.) The end state is right, with one Sync Run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_applies_at_once_without_waiting_one_refuses_naming_the_holder() {
    let env = start(MEMBERS).await;
    let expected = env.expected().await;
    let untouched = env.untouched();
    let a = env.spawn_apply(&[]);
    let b = env.spawn_apply(&[]);
    let pids = (a.id(), b.id());
    let (a, b) = tokio::join!(wait_child(a), wait_child(b));
    let (ra, rb) = (report_of(&a), report_of(&b));
    let done = |r: &Value| r["totals"]["done"].as_u64().unwrap_or(0);
    let (worker, other, other_out, worker_pid) = if done(&ra) > 0 {
        (&ra, &rb, &b, pids.0)
    } else {
        (&rb, &ra, &a, pids.1)
    };
    assert_eq!(worker["totals"]["failed"], 0, "{worker}");
    assert_eq!(done(other), 0, "only one apply writes: {other}");
    if other_out.status.success() {
        eprintln!("the second apply started after the first was done");
    } else {
        let binding = &other["bindings"][0];
        assert_eq!(binding["outcome"], "skipped", "{other}");
        let message = binding["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!(":{worker_pid}"))
                && message.contains("--lock-timeout")
                && message.contains("force-unlock"),
            "the refusal names the holder and the way out: {message}"
        );
    }
    assert_eq!(env.sandbox.dataverse.count("mcsync_syncrun"), 1);
    env.assert_converged(&expected, &untouched, "after a refused second apply")
        .await;
}
