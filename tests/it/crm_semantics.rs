//! CRM semantics through the binary against the sandbox, read back through the Web API: one
//! person in two audiences is one contact on both lists and plans settle; an inactive contact is
//! never reactivated, listed or duplicated, and the plan names it; a member archived in
//! Mailchimp leaves the list (with and without the `RemoveMemberList` action); a locked list is
//! refused at plan time.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Output;

use api_sandbox::mailchimp::MemberStatus;
use api_sandbox::{Options, Sandbox, Seed};
use audience_sync::dataverse::Client;
use audience_sync::dataverse::query::Query;
use serde_json::Value;
use uuid::Uuid;

use super::common;

const NEWS: &str = "a1a1a1a1a1";
const EVENTS: &str = "b2b2b2b2b2";

/// A sandbox from a YAML seed, and a config of these bindings.
struct Env {
    sandbox: Sandbox,
    _dir: tempfile::TempDir,
    config: PathBuf,
}

impl Env {
    async fn start(seed: &str, bindings: &str) -> Self {
        let seed = Seed::from_text(seed).expect("the seed parses");
        let sandbox = Sandbox::start(Options {
            seed,
            ..audience_sync::commands::sandbox::options()
        })
        .await
        .expect("sandbox starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let config = common::sandbox_config(dir.path(), bindings);
        Self {
            sandbox,
            _dir: dir,
            config,
        }
    }

    fn config(&self) -> &str {
        self.config.to_str().expect("utf-8 path")
    }

    async fn run(&self, args: &[&str]) -> Output {
        common::run_in(&self.sandbox, args).await
    }

    async fn apply(&self) {
        let out = self.run(&["apply", self.config(), "--auto-approve"]).await;
        let (stdout, stderr) = common::texts(&out);
        assert!(out.status.success(), "apply failed:\n{stdout}\n{stderr}");
    }

    /// `plan --detailed-exitcode`: the code and the text.
    async fn plan_code(&self) -> (i32, String) {
        common::plan_code(&self.sandbox, self.config()).await
    }

    async fn plan_json(&self) -> Value {
        let out = self.run(&["plan", self.config(), "--format", "json"]).await;
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("plan JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)))
    }

    fn client(&self) -> Client {
        common::crm_client(&self.sandbox)
    }

    /// Active and inactive contacts by lower-cased e-mail, read through the Web API.
    async fn contacts(&self) -> HashMap<String, Vec<(Uuid, i64)>> {
        let query = Query::new("contacts").select(["contactid", "emailaddress1", "statecode"]);
        let rows: Vec<Value> = self.client().collect(&query).await.expect("contacts");
        let mut by_email: HashMap<String, Vec<(Uuid, i64)>> = HashMap::new();
        for row in rows {
            let email = row["emailaddress1"].as_str().unwrap_or_default();
            let id = row["contactid"].as_str().and_then(|s| s.parse().ok());
            let state = row["statecode"].as_i64().unwrap_or(-1);
            if let Some(id) = id {
                by_email
                    .entry(email.to_lowercase())
                    .or_default()
                    .push((id, state));
            }
        }
        by_email
    }

    /// The members of the list of this name, read through the Web API (`listmembers`).
    async fn list_members(&self, name: &str) -> HashSet<Uuid> {
        let lists = self
            .client()
            .marketing_lists_named(name, "mcsync_audienceid")
            .await
            .expect("lists");
        assert_eq!(lists.len(), 1, "one list named `{name}`");
        let query = Query::new("listmembers")
            .select(["_entityid_value"])
            .filter(audience_sync::dataverse::query::Filter::eq(
                "_listid_value",
                lists[0].id,
            ));
        let rows: Vec<Value> = self.client().collect(&query).await.expect("list members");
        rows.iter()
            .filter_map(|r| r["_entityid_value"].as_str().and_then(|s| s.parse().ok()))
            .collect()
    }
}

/// A seed of one audience `News` with these members' addresses, and this `dataverse:` section.
fn news_seed(emails: &[&str], dataverse: &str) -> String {
    let members: String = emails
        .iter()
        .map(|e| format!("        - email: {e}\n"))
        .collect();
    format!(
        "mailchimp:\n  audiences:\n    - name: News\n      id: {NEWS}\n      members:\n{members}dataverse:\n{dataverse}"
    )
}

fn binding(name: &str, audience: &str, list: &str, extra: &str) -> String {
    format!(
        "  - name: {name}
    audience:
      id: \"{audience}\"
    marketing_list:
      name: \"{list}\"
      member_type: contact
      create: true
{extra}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_audiences_sharing_people_give_one_contact_each_on_both_lists_and_settle() {
    let seed = format!(
        "mailchimp:
  audiences:
    - name: News
      id: {NEWS}
      members:
        - email: ada@example.com
          merge_fields: {{FNAME: Ada, LNAME: Lovelace}}
        - email: grace@example.com
          merge_fields: {{FNAME: Grace, LNAME: Hopper}}
        - email: only.news@example.com
    - name: Events
      id: {EVENTS}
      members:
        - email: ada@example.com
          merge_fields: {{FNAME: Ada, LNAME: King}}
        - email: Grace@Example.COM
          merge_fields: {{FNAME: Grace, LNAME: Murray}}
        - email: only.events@example.com
dataverse: {{}}
"
    );
    let bindings =
        binding("news", NEWS, "News list", "") + &binding("events", EVENTS, "Events list", "");
    let env = Env::start(&seed, &bindings).await;
    env.apply().await;

    let check = |contacts: &HashMap<String, Vec<(Uuid, i64)>>| {
        for email in ["ada@example.com", "grace@example.com"] {
            assert_eq!(
                contacts.get(email).map(Vec::len),
                Some(1),
                "one contact for {email}: {contacts:?}"
            );
        }
        assert_eq!(contacts.len(), 4, "{contacts:?}");
    };
    let contacts = env.contacts().await;
    check(&contacts);
    let news = env.list_members("News list").await;
    let events = env.list_members("Events list").await;
    for email in ["ada@example.com", "grace@example.com"] {
        let id = contacts[email][0].0;
        assert!(
            news.contains(&id) && events.contains(&id),
            "{email} on both lists"
        );
    }
    assert_eq!((news.len(), events.len()), (3, 3));
    let (code, text) = env.plan_code().await;
    assert_eq!(code, 0, "the plan after one apply is not empty:\n{text}");

    for round in 1..=3 {
        env.apply().await;
        let (code, text) = env.plan_code().await;
        assert_eq!(code, 0, "round {round}: the plan is not empty:\n{text}");
    }
    check(&env.contacts().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inactive_contact_stays_inactive_off_the_list_not_duplicated_and_named_in_the_plan() {
    let inactive = "6f1c5a9e-0000-4000-8000-00000000000a";
    let seed = news_seed(
        &["ada@example.com", "gone@example.com"],
        &format!(
            "  contacts:
    - contactid: {inactive}
      emailaddress1: Gone@Example.com
      lastname: Left
      statecode: 1
      statuscode: 2
"
        ),
    );
    let env = Env::start(&seed, &binding("news", NEWS, "News list", "")).await;
    let plan = env.plan_json().await;
    let text = plan.to_string();
    assert!(
        text.contains("inactive_record") && text.contains(inactive),
        "the plan names the inactive record: {plan}"
    );
    let out = env.run(&["apply", env.config(), "--auto-approve"]).await;
    let (stdout, _) = common::texts(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the skipped member makes the run fail, saying why:\n{stdout}"
    );
    assert!(stdout.contains("inactive_record"), "{stdout}");
    let contacts = env.contacts().await;
    assert_eq!(
        contacts.get("gone@example.com"),
        Some(&vec![(inactive.parse().unwrap(), 1)]),
        "still one contact, still inactive: {contacts:?}"
    );
    let members = env.list_members("News list").await;
    assert!(!members.contains(&inactive.parse().unwrap()));
    assert_eq!(members.len(), 1, "only ada is listed");
    let (_, text) = env.plan_code().await;
    assert!(
        text.contains("inactive"),
        "the plan still says why:\n{text}"
    );
}

async fn archived_member_leaves_the_list(without_remove_member_list: bool) {
    let seed = news_seed(
        &["ada@example.com", "grace@example.com"],
        &format!("  without_remove_member_list: {without_remove_member_list}\n"),
    );
    let env = Env::start(
        &seed,
        &binding(
            "news",
            NEWS,
            "News list",
            "    prune_members: true\n    max_removals: 1\n",
        ),
    )
    .await;
    env.apply().await;
    assert_eq!(env.list_members("News list").await.len(), 2);
    env.sandbox
        .mailchimp
        .set_status(NEWS, "grace@example.com", MemberStatus::Archived)
        .expect("archived");
    env.apply().await;
    let contacts = env.contacts().await;
    let grace = contacts["grace@example.com"][0].0;
    let members = env.list_members("News list").await;
    assert!(!members.contains(&grace), "archived grace is off the list");
    assert_eq!(members.len(), 1);
    assert_eq!(contacts.len(), 2, "the contact itself stays");
    let (code, text) = env.plan_code().await;
    assert_eq!(code, 0, "the removal does not reappear:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_archived_in_mailchimp_is_gone_from_the_list() {
    archived_member_leaves_the_list(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_archived_in_mailchimp_is_gone_from_the_list_without_remove_member_list() {
    archived_member_leaves_the_list(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_list_is_refused_at_plan_time() {
    let seed = news_seed(
        &["ada@example.com"],
        "  lists:
    - name: Locked list
      member_type: contact
      locked: true
",
    );
    let bindings = "  - name: news
    audience:
      id: \"a1a1a1a1a1\"
    marketing_list:
      name: \"Locked list\"
      member_type: contact
";
    let env = Env::start(&seed, bindings).await;
    let (code, text) = env.plan_code().await;
    assert_eq!(
        code, 1,
        "a plan with a list it cannot write is an error:\n{text}"
    );
    assert!(
        text.contains("locked_list") && text.contains("no changes"),
        "the plan refuses the locked list and promises nothing:\n{text}"
    );
    let plan = env.plan_json().await;
    assert!(plan.to_string().contains("locked_list"), "{plan}");
    let contacts_before = env.sandbox.dataverse.count("contact");
    let out = env.run(&["apply", env.config(), "--auto-approve"]).await;
    assert!(!out.status.success(), "apply refuses too");
    assert_eq!(env.sandbox.dataverse.count("contact"), contacts_before);
}
