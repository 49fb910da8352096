//! The real binary against a live audience: with the emulator's churn on (members sign up,
//! leave, bounce, are archived or deleted, change address, merge fields and tags while every
//! request is served), `plan` three times and `apply` once all succeed; once churn stops, one
//! more `apply` and `plan --detailed-exitcode` exits 0, and the marketing list holds exactly the
//! subscribed members, read back through the sandbox's Dataverse Web API.

use std::collections::HashSet;

use api_sandbox::mailchimp::{Churn, MemberStatus};
use api_sandbox::{GenerateSpec, Options, Sandbox};
use futures::TryStreamExt as _;
use uuid::Uuid;

use super::common;

/// A sandbox with one generated audience of `members` members, and a temporary directory.
pub(super) async fn generated(members: usize, seed: u64) -> (Sandbox, tempfile::TempDir) {
    let sandbox = Sandbox::start(Options {
        generate: Some(GenerateSpec {
            members,
            tags: 2,
            seed,
            audiences: 1,
            shared: 0,
        }),
        ..audience_sync::commands::sandbox::options()
    })
    .await
    .expect("sandbox starts");
    (sandbox, tempfile::tempdir().expect("temp dir"))
}

/// The binding `main` of audience `id` to the contact list `name` (created), pruning members.
pub(super) fn binding(id: &str, name: &str) -> String {
    format!(
        "  - name: main\n    audience: {{id: \"{id}\"}}\n    marketing_list: {{name: \"{name}\", member_type: contact, create: true}}\n    prune_members: true\n"
    )
}

#[tokio::test]
async fn plan_and_apply_succeed_while_the_audience_churns_and_converge_after() {
    let (sandbox, dir) = generated(400, 5).await;
    let (audience, name) = sandbox.mailchimp.audiences().remove(0);
    let config = common::sandbox_config(
        dir.path(),
        &format!("{}    max_removals: \"100%\"\n", binding(&audience, &name)),
    );
    let config = config.to_str().expect("utf-8 path");
    // Churn as the sandbox setting does it: a rate per second, plus one change at every
    // request so that every run meets changes whatever the machine's speed.
    sandbox.mailchimp.set_churn(Churn {
        rate: 20.0,
        per_request: 1,
        seed: 9,
        audience: Some(audience.clone()),
        ..Churn::default()
    });
    for round in 0..3 {
        let before = sandbox.mailchimp.journal().len();
        let out = common::run_in(&sandbox, &["plan", config]).await;
        let (stdout, stderr) = common::texts(&out);
        assert!(
            out.status.success(),
            "plan {round} during churn: {stdout}\n{stderr}"
        );
        assert!(
            sandbox.mailchimp.journal().len() > before,
            "plan {round}: the audience changed during it"
        );
    }
    let before = sandbox.mailchimp.journal().len();
    let out = common::run_in(&sandbox, &["apply", config, "--auto-approve"]).await;
    let (stdout, stderr) = common::texts(&out);
    assert!(
        out.status.success(),
        "apply during churn: {stdout}\n{stderr}"
    );
    assert!(sandbox.mailchimp.journal().len() > before, "churn ran");
    sandbox.mailchimp.set_churn(Churn::default());

    let out = common::run_in(&sandbox, &["apply", config, "--auto-approve"]).await;
    let (stdout, stderr) = common::texts(&out);
    assert!(
        out.status.success(),
        "apply after churn: {stdout}\n{stderr}"
    );
    let out = common::run_in(&sandbox, &["plan", config, "--detailed-exitcode"]).await;
    let (stdout, stderr) = common::texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");

    let subscribed: HashSet<String> = sandbox
        .mailchimp
        .members_now(&audience)
        .into_iter()
        .filter(|(_, _, _, status)| *status == MemberStatus::Subscribed)
        .map(|(_, _, email, _)| email.to_lowercase())
        .collect();
    let kinds: HashSet<_> = sandbox.mailchimp.journal().iter().map(|e| e.kind).collect();
    assert!(kinds.len() >= 5, "churn varied: {kinds:?}");
    let on_list = list_emails(&sandbox, &name).await;
    assert!(on_list.len() > 100, "{} on the list", on_list.len());
    assert_eq!(
        on_list, subscribed,
        "the list holds exactly the subscribed members"
    );
}

/// The e-mail addresses of the contacts on the marketing list named `name`, through the Web API.
async fn list_emails(sandbox: &Sandbox, name: &str) -> HashSet<String> {
    let client = common::crm_client(sandbox);
    let lookup = audience_sync::dataverse::schema::Schema::default()
        .names
        .list_audience_lookup;
    let lists = client
        .marketing_lists_named(name, &lookup)
        .await
        .expect("lists read");
    let list: Uuid = lists.first().map(|l| l.id).expect("the list exists");
    let members: Vec<_> = client
        .list_members(list)
        .try_concat()
        .await
        .expect("members");
    let mut emails = HashSet::new();
    for m in members {
        let row = client
            .retrieve("contacts", m.entity_id, &["emailaddress1"])
            .await
            .expect("contact read")
            .expect("the contact exists");
        if let Some(email) = row.get("emailaddress1").and_then(|v| v.as_str()) {
            emails.insert(email.to_lowercase());
        }
    }
    emails
}
