//! Saved plans (`plan -out FILE`, then `apply FILE`) against the sandbox, through the binary:
//! each tampering of issue 15 (an e-mail changed, unmapped columns, an ETag precondition
//! removed, removals where the binding does not prune, removals added past `max_removals`, the
//! guard deleted, the list id swapped, a change targeting a record of another binding, an unknown
//! `format_version`) is refused, named, exits 1, and nothing foreign is written — read back
//! through the Web API; damaged files are named as damaged plans; the untampered plan applies;
//! the applied plan re-serialised is not applied again; saved plans are `0600`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Output;

use api_sandbox::{GenerateSpec, Options, Sandbox};
use audience_sync::dataverse::Client;
use futures::TryStreamExt as _;
use serde_json::{Value, json};
use uuid::Uuid;

use super::common;

struct Env {
    sandbox: Sandbox,
    dir: tempfile::TempDir,
    config: PathBuf,
    client: Client,
    /// The Mailchimp audiences of `main` and `other`.
    audiences: [String; 2],
}

impl Env {
    /// Two bindings: `main` (does not prune) and `other` (prunes, at most 10 % removals).
    async fn start() -> Self {
        let sandbox = Sandbox::start(Options {
            generate: Some(GenerateSpec {
                members: 40,
                tags: 2,
                seed: 11,
                audiences: 2,
                shared: 0,
            }),
            ..audience_sync::commands::sandbox::options()
        })
        .await
        .expect("sandbox starts");
        let audiences = sandbox.mailchimp.audiences();
        let binding = |name: &str, (id, list): &(String, String), extra: &str| {
            format!(
                "  - name: {name}\n    audience: {{id: \"{id}\"}}\n    marketing_list: {{name: \"{list}\", member_type: contact, create: true}}\n{extra}"
            )
        };
        let bindings = binding("main", &audiences[0], "")
            + &binding(
                "other",
                &audiences[1],
                "    prune_members: true\n    max_removals: \"10%\"\n",
            );
        let dir = tempfile::tempdir().expect("temp dir");
        let config = common::sandbox_config(dir.path(), &bindings);
        let client = common::crm_client(&sandbox);
        Self {
            audiences: [audiences[0].0.clone(), audiences[1].0.clone()],
            sandbox,
            dir,
            config,
            client,
        }
    }

    async fn run(&self, args: &[&str]) -> Output {
        common::run_in(&self.sandbox, args).await
    }

    fn config(&self) -> &str {
        self.config.to_str().expect("utf-8 path")
    }

    /// `plan -out NAME`: the file and its JSON.
    async fn save_plan(&self, name: &str) -> (PathBuf, Value) {
        let path = self.dir.path().join(name);
        let out = self
            .run(&["plan", self.config(), "-out", path.to_str().unwrap()])
            .await;
        assert!(out.status.success(), "{}", common::texts(&out).1);
        let plan = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        (path, plan)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("written");
        path
    }

    /// `apply FILE --format json`: exit code, report (null when none), stderr.
    async fn apply(&self, file: &Path) -> (i32, Value, String) {
        let out = self
            .run(&[
                "apply",
                file.to_str().unwrap(),
                "--config",
                self.config(),
                "--format",
                "json",
            ])
            .await;
        let (stdout, stderr) = common::texts(&out);
        let report = serde_json::from_str(&stdout).unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), report, stderr)
    }

    /// A tampered plan, applied: it must exit 1 and name the refused change with `reason`.
    async fn refused(&self, name: &str, plan: &Value, reason: &str) -> Value {
        let file = self.write(name, &serde_json::to_string_pretty(plan).unwrap());
        let (code, report, stderr) = self.apply(&file).await;
        assert_eq!(code, 1, "{name}: {report}\n{stderr}");
        let named = report["bindings"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|b| b["failures"].as_array().cloned().unwrap_or_default())
            .any(|f| f["reason"].as_str().is_some_and(|r| r.contains(reason)));
        assert!(
            named || stderr.contains(reason),
            "{name}: `{reason}` not named: {report}\n{stderr}"
        );
        report
    }

    /// A contact as the CRM's Web API returns it (`None`: no such record).
    async fn contact(&self, id: Uuid) -> Option<Value> {
        let columns = [
            "firstname",
            "lastname",
            "jobtitle",
            "donotbulkemail",
            "emailaddress1",
        ];
        self.client
            .retrieve("contacts", id, &columns)
            .await
            .expect("contact read")
            .map(Value::Object)
    }

    /// The records on a list, through the Web API.
    async fn list(&self, list: Uuid) -> HashSet<Uuid> {
        let pages: Vec<_> = self.client.list_members(list).try_concat().await.unwrap();
        pages.into_iter().map(|m| m.entity_id).collect()
    }
}

fn changes(plan: &Value, binding: usize) -> &Vec<Value> {
    plan["bindings"][binding]["changes"]
        .as_array()
        .expect("changes")
}

/// The first change of `binding` with `action` (and the e-mail, if given).
fn change(plan: &Value, binding: usize, action: &str, email: Option<&str>) -> Value {
    changes(plan, binding)
        .iter()
        .find(|c| c["action"] == action && email.is_none_or(|e| c["member"]["email"] == e))
        .cloned()
        .unwrap_or_else(|| panic!("no {action} {email:?} in {plan}"))
}

fn uuid_of(v: &Value) -> Uuid {
    v.as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .expect("a uuid")
}

fn list_id(plan: &Value, binding: usize) -> Uuid {
    uuid_of(&plan["bindings"][binding]["list"]["id"])
}

/// `plan` holding only `binding`, with these changes.
fn only(plan: &Value, binding: usize, changes: Vec<Value>) -> Value {
    let mut out = plan.clone();
    let mut b = plan["bindings"][binding].clone();
    b["changes"] = Value::Array(changes);
    out["bindings"] = json!([b]);
    out
}

/// E-mail → record of the members a plan adds to a binding's list.
fn added(plan: &Value, binding: usize) -> Vec<(String, Uuid)> {
    changes(plan, binding)
        .iter()
        .filter(|c| c["action"] == "add_list_member")
        .filter_map(|c| {
            Some((
                c["member"]["email"].as_str()?.to_owned(),
                uuid_of(&c["record"]),
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_saved_plans_write_nothing_foreign_and_the_reviewed_plan_applies_once() {
    let env = Env::start().await;
    let (_, first) = env.save_plan("first.json").await;
    let (main_members, other_members) = (added(&first, 0), added(&first, 1));
    assert!(main_members.len() >= 10 && other_members.len() >= 10);
    let out = env
        .run(&["apply", env.config(), "--auto-approve", "--format", "json"])
        .await;
    assert!(out.status.success(), "{}", common::texts(&out).1);

    // Mailchimp moves: two first names, a newcomer in `main`; one member leaves `other`.
    let mc = &env.sandbox.mailchimp;
    let (x1, x2) = (&main_members[0], &main_members[1]);
    for (email, _) in [x1, x2] {
        mc.set_merge_field(&env.audiences[0], email, "FNAME", json!("Planned"))
            .expect("merge field");
    }
    let newcomer = api_sandbox::mailchimp::MemberSeed::new("newcomer@example.org");
    mc.add_member(&env.audiences[0], &newcomer)
        .expect("newcomer");
    let (leaver, leaver_record) = &other_members[0];
    mc.delete_member_permanently(&env.audiences[1], leaver)
        .expect("deleted");

    let (file, plan) = env.save_plan("plan.json").await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "a saved plan holds personal data");
    }
    let (main_list, other_list) = (list_id(&plan, 0), list_id(&plan, 1));
    let create = change(&plan, 0, "create_record", Some("newcomer@example.org"));
    let newcomer_record = uuid_of(&create["record"]);
    let add_newcomer = change(&plan, 0, "add_list_member", Some("newcomer@example.org"));
    let update_x1 = change(&plan, 0, "update_record", Some(&x1.0));
    let update_x2 = change(&plan, 0, "update_record", Some(&x2.0));
    let removal = change(&plan, 1, "remove_list_member", None);
    assert_eq!(uuid_of(&removal["record"]), *leaver_record);
    let other_before = env.list(other_list).await;
    let main_before = env.list(main_list).await;

    // After the plan, someone edits x1 in the CRM.
    env.client
        .update(
            "contacts",
            x1.1,
            &json!({ "lastname": "Edited in the CRM" }),
            None,
        )
        .await
        .expect("contact edited");

    // An e-mail changed: the record is not created, and nothing of it is written.
    let mut c = create.clone();
    c["member"]["email"] = json!("attacker@evil.example");
    for f in c["fields"].as_array_mut().unwrap() {
        if f["column"] == "emailaddress1" {
            f["after"] = json!("attacker@evil.example");
        }
    }
    env.refused(
        "email.json",
        &only(&plan, 0, vec![c, add_newcomer.clone()]),
        "differ from what binding `main` demands now",
    )
    .await;
    assert_eq!(env.contact(newcomer_record).await, None);
    assert!(!env.list(main_list).await.contains(&newcomer_record));

    // Columns the config does not map.
    let mut c = update_x2.clone();
    let fields = c["fields"].as_array_mut().unwrap();
    fields.push(json!({ "column": "jobtitle", "after": "CEO" }));
    fields.push(json!({ "column": "donotbulkemail", "before": false, "after": true }));
    env.refused(
        "columns.json",
        &only(&plan, 0, vec![c]),
        "which binding `main` does not map",
    )
    .await;
    let x2_now = env.contact(x2.1).await.expect("x2");
    assert_ne!(x2_now["jobtitle"], "CEO", "{x2_now}");
    assert_ne!(x2_now["donotbulkemail"], true, "{x2_now}");
    assert_ne!(x2_now["firstname"], "Planned", "{x2_now}");

    // The ETag precondition removed: the CRM edit is not overwritten.
    let mut c = update_x1.clone();
    c["precondition"].as_object_mut().unwrap().remove("etag");
    env.refused(
        "etag.json",
        &only(&plan, 0, vec![c]),
        "ETag precondition is missing",
    )
    .await;
    let x1_now = env.contact(x1.1).await.expect("x1");
    assert_eq!(x1_now["lastname"], "Edited in the CRM", "{x1_now}");
    assert_ne!(x1_now["firstname"], "Planned", "{x1_now}");

    // A removal where the binding does not prune.
    let mut c = removal.clone();
    c["record"] = json!(x2.1);
    c["name"] = json!(x2.0);
    env.refused(
        "prune.json",
        &only(&plan, 0, vec![c]),
        "does not prune members",
    )
    .await;
    assert!(env.list(main_list).await.contains(&x2.1));

    // Removals added past max_removals (60 % of the list), guard and all.
    let fake: Vec<Value> = other_members[1..]
        .iter()
        .take(other_members.len() * 6 / 10)
        .map(|(email, record)| {
            let mut c = removal.clone();
            c["record"] = json!(record);
            c["name"] = json!(email);
            c
        })
        .collect();
    env.refused(
        "removals.json",
        &only(&plan, 1, fake),
        "does not need this change now",
    )
    .await;
    assert_eq!(env.list(other_list).await, other_before, "no one removed");

    // A change that targets a record of another binding.
    let mut c = add_newcomer.clone();
    c["record"] = json!(other_members[1].1);
    env.refused(
        "foreign.json",
        &only(&plan, 0, vec![c]),
        "does not need this change now",
    )
    .await;
    assert!(!env.list(main_list).await.contains(&other_members[1].1));

    // The list id swapped for the other binding's list: none of `main`'s changes go anywhere.
    let mut swapped = only(&plan, 0, changes(&plan, 0).clone());
    swapped["bindings"][0]["list"]["id"] = json!(other_list);
    env.refused("swapped.json", &swapped, "bound to list").await;
    assert_eq!(env.list(other_list).await, other_before);
    assert_eq!(env.list(main_list).await, main_before);
    assert_eq!(env.contact(newcomer_record).await, None);

    // Format versions this build does not read; damaged files.
    let text = std::fs::read_to_string(&file).unwrap();
    let mut half = text.len() / 2;
    while !text.is_char_boundary(half) {
        half -= 1;
    }
    // As `1.99` and `1.0.0` were for format 1.0: a newer minor, and three parts.
    let current = plan["format_version"].as_str().unwrap();
    let major = current.split('.').next().unwrap();
    let version = format!("\"{current}\"");
    for (name, bad, says) in [
        (
            "minor.json",
            text.replacen(&version, &format!("\"{major}.99\""), 1),
            "not supported",
        ),
        (
            "three.json",
            text.replacen(&version, &format!("\"{current}.0\""), 1),
            "not supported",
        ),
        ("truncated.json", text[..half].to_owned(), "damaged plan"),
        ("empty.json", String::new(), "damaged plan"),
        (
            "versionless.json",
            text.replacen(&format!("\"format_version\": {version},"), "", 1),
            "damaged plan",
        ),
    ] {
        let (code, _, stderr) = env.apply(&env.write(name, &bad)).await;
        assert_eq!(code, 1, "{name}: {stderr}");
        assert!(stderr.contains(says), "{name}: {stderr}");
        assert!(
            !stderr.contains("config"),
            "{name} is not read as a config: {stderr}"
        );
    }
    assert_eq!(env.contact(newcomer_record).await, None, "nothing applied");

    // The untampered plan applies: x1's change is stale (edited in the CRM), the rest is done.
    let (code, report, stderr) = env.apply(&file).await;
    assert_eq!(code, 0, "{report}\n{stderr}");
    let newcomer_now = env.contact(newcomer_record).await.expect("created");
    assert_eq!(newcomer_now["emailaddress1"], "newcomer@example.org");
    assert!(env.list(main_list).await.contains(&newcomer_record));
    assert_eq!(env.contact(x2.1).await.unwrap()["firstname"], "Planned");
    let x1_now = env.contact(x1.1).await.unwrap();
    assert_eq!(x1_now["lastname"], "Edited in the CRM", "never overwritten");
    assert!(!env.list(other_list).await.contains(leaver_record));
    assert_eq!(report["bindings"][0]["counts"]["update_record"]["stale"], 1);

    // Re-serialised (compact, another date) it is the same plan: not applied again.
    let mut again = plan.clone();
    again["created_at"] = json!("2031-01-01T00:00:00Z");
    let copy = env.write("again.json", &serde_json::to_string(&again).unwrap());
    let (code, _, stderr) = env.apply(&copy).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("already applied"), "{stderr}");

    // The guard deleted from a plan of many removals: recomputed, it refuses.
    let other_now = env.list(other_list).await;
    for (email, _) in &other_members[1..other_members.len() / 2] {
        mc.delete_member_permanently(&env.audiences[1], email)
            .expect("deleted");
    }
    let (_, guarded) = env.save_plan("guarded.json").await;
    assert!(guarded["bindings"][1]["guard"].is_object(), "{guarded}");
    let mut unguarded = guarded.clone();
    unguarded["bindings"][1]
        .as_object_mut()
        .unwrap()
        .remove("guard");
    unguarded["summary"]["refused_bindings"] = json!([]);
    env.refused("unguarded.json", &unguarded, "--allow-removals")
        .await;
    assert_eq!(env.list(other_list).await, other_now, "no one removed");
}
