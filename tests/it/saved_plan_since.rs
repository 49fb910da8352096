//! `apply PLANFILE` checks a saved plan against Mailchimp cheaply: it reads the members changed
//! since the plan's read and the few members the plan names, not the audience. On a
//! 10,000-member audience with five changes since the plan, it reads at most 8 member pages
//! (one per status of what changed) and a few members one by one — whatever the audience's
//! size; the plan itself reads more than twice as many pages (at 100,000 members: over 100; see
//! `examples/bench_live_read.rs`) — applies what is still needed and skips the stale change.

use std::time::Duration;

use api_sandbox::Sandbox;
use api_sandbox::mailchimp::{MemberSeed, MemberStatus};
use serde_json::{Value, json};

use super::common;

const MEMBERS: usize = 10_000;

/// The e-mail addresses of the first `n` subscribed members.
fn subscribed(sandbox: &Sandbox, list_id: &str, n: usize) -> Vec<String> {
    sandbox
        .mailchimp
        .members_now(list_id)
        .into_iter()
        .filter(|(_, _, _, s)| *s == MemberStatus::Subscribed)
        .take(n)
        .map(|(_, _, email, _)| email)
        .collect()
}

fn member_pages(requests: &api_sandbox::mailchimp::RequestCounts) -> u64 {
    requests
        .routes
        .get("GET /3.0/lists/{list_id}/members")
        .copied()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_planfile_reads_what_changed_since_the_plan_not_the_audience() {
    let (sandbox, dir) = super::live_churn::generated(MEMBERS, 3).await;
    let (list_id, name) = sandbox.mailchimp.audiences().remove(0);
    let config = common::sandbox_config(dir.path(), &super::live_churn::binding(&list_id, &name));
    let config = config.to_str().expect("utf-8 path");
    let out = common::run_in(&sandbox, &["apply", config, "--auto-approve"]).await;
    assert!(out.status.success(), "{}", common::texts(&out).1);

    // The plan: three contacts edited in the CRM (Mailchimp's values win back), one sign-up.
    let mc = &sandbox.mailchimp;
    let crm = common::crm_client(&sandbox);
    let lookup = audience_sync::dataverse::schema::Schema::default()
        .names
        .list_audience_lookup;
    let list = crm
        .marketing_lists_named(&name, &lookup)
        .await
        .expect("lists")
        .first()
        .map(|l| l.id)
        .expect("the list exists");
    let mut planned = Vec::new();
    for id in sandbox.dataverse.list_members(list).into_iter().take(3) {
        let contact = sandbox.dataverse.record("contact", id).expect("contact");
        let email = contact["emailaddress1"]
            .as_str()
            .expect("e-mail")
            .to_owned();
        crm.update(
            "contacts",
            id,
            &json!({"firstname": "Edited in the CRM"}),
            None,
        )
        .await
        .expect("contact edited");
        planned.push(email);
    }
    mc.add_member(&list_id, &MemberSeed::new("planned.signup@example.org"))
        .expect("sign-up");
    let file = dir.path().join("plan.json");
    let file = file.to_str().expect("utf-8 path");
    mc.reset_requests();
    let out = common::run_in(&sandbox, &["plan", config, "-out", file]).await;
    let plan_pages = member_pages(&mc.requests());
    assert!(out.status.success(), "{}", common::texts(&out).1);
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(file).expect("plan")).expect("JSON");
    let changes = plan["bindings"][0]["changes"]
        .as_array()
        .expect("changes")
        .len();
    assert!((4..=8).contains(&changes), "{changes} changes planned");

    // `last_changed` has whole seconds: wait (bounded) for the next one so that changes made
    // from now on are visibly newer than the plan's versions.
    let second = chrono::Utc::now().timestamp();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while chrono::Utc::now().timestamp() <= second {
        assert!(tokio::time::Instant::now() < deadline, "the clock moves");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Five changes since the plan: a planned member changes in Mailchimp (stale), two others
    // edit, one unsubscribes, one signs up.
    mc.set_merge_field(
        &list_id,
        &planned[0],
        "FNAME",
        Value::String("Later".into()),
    )
    .expect("merge field");
    let others: Vec<String> = subscribed(&sandbox, &list_id, 10)
        .into_iter()
        .filter(|e| !planned.contains(e))
        .take(3)
        .collect();
    for email in &others[..2] {
        mc.set_merge_field(&list_id, email, "LNAME", Value::String("Since".into()))
            .expect("merge field");
    }
    mc.set_status(&list_id, &others[2], MemberStatus::Unsubscribed)
        .expect("unsubscribe");
    mc.add_member(&list_id, &MemberSeed::new("later.signup@example.org"))
        .expect("sign-up");

    mc.reset_requests();
    let out = common::run_in(
        &sandbox,
        &["apply", file, "--config", config, "--format", "json"],
    )
    .await;
    let (stdout, stderr) = common::texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("report");
    let counts = &report["bindings"][0]["counts"];
    assert_eq!(counts["update_record"]["stale"], 1, "{report}");
    assert_eq!(counts["update_record"]["done"], 2, "{report}");
    assert_eq!(counts["create_record"]["done"], 1, "{report}");

    let requests = mc.requests();
    let pages = member_pages(&requests);
    let one_by_one = requests
        .routes
        .get("GET /3.0/lists/{list_id}/members/{subscriber_hash}")
        .copied()
        .unwrap_or(0);
    // One page per status of what changed since the plan (six statuses), and the members the
    // plan names one by one (its changes' members and their records' ids and addresses).
    assert!(pages <= 8, "{pages} member pages read: {requests:?}");
    assert!(
        pages * 2 < plan_pages,
        "{pages} member pages read, {plan_pages} by the plan"
    );
    assert!(
        (1..=6).contains(&one_by_one),
        "{one_by_one} single members read: {requests:?}"
    );
    assert!(
        requests.total <= 30,
        "{} Mailchimp requests: {requests:?}",
        requests.total
    );
}
