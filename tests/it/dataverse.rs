//! The Dataverse client against the sandbox's Dataverse emulator, over HTTP: token flow and
//! refresh, paging, `$batch` with change sets, bulk actions, 429 with `Retry-After`, 412 as
//! stale, list membership, tag links, and `crm bootstrap` / `crm check`.

use std::time::Duration;

use api_sandbox::{Options, Sandbox, Seed};
use audience_sync::dataverse::batch::{OpOutcome, Operation, Part};
use audience_sync::dataverse::metadata;
use audience_sync::dataverse::query::{Filter, Query};
use audience_sync::dataverse::records::{BulkAction, Created, Outcome, Row};
use audience_sync::dataverse::schema::Schema;
use audience_sync::dataverse::tables::{Lease, LeaseOutcome, ToolTables};
use audience_sync::dataverse::tag_links::TagLink;
use audience_sync::dataverse::{Client, Error};
use audience_sync::domain::MemberType;
use audience_sync::http::RetryPolicy;
use futures::TryStreamExt;
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use uuid::Uuid;

async fn sandbox_with(seed: Value) -> Sandbox {
    let dataverse = serde_json::from_value(seed).expect("dataverse seed");
    Sandbox::start(Options {
        seed: Seed {
            dataverse,
            ..Seed::default()
        },
        ..audience_sync::commands::sandbox::options()
    })
    .await
    .expect("sandbox starts")
}

fn env(sandbox: &Sandbox, key: &str) -> String {
    sandbox
        .env()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("sandbox env has no {key}"))
}

fn client_for(sandbox: &Sandbox, secret: &str) -> Client {
    Client::builder()
        .url(env(sandbox, "DATAVERSE_URL"))
        .tenant_id(env(sandbox, "DATAVERSE_TENANT_ID"))
        .client_id(env(sandbox, "DATAVERSE_CLIENT_ID"))
        .client_secret(SecretString::from(secret.to_owned()))
        .token_url(Some(env(sandbox, "DATAVERSE_TOKEN_URL")))
        .retry_policy(RetryPolicy {
            max_attempts: 12,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(30),
        })
        .build()
        .expect("client builds")
}

fn client(sandbox: &Sandbox) -> Client {
    client_for(sandbox, &env(sandbox, "DATAVERSE_CLIENT_SECRET"))
}

async fn counters(sandbox: &Sandbox) -> Value {
    reqwest::get(format!(
        "{}/_sandbox/dataverse/requests",
        sandbox.base_url()
    ))
    .await
    .expect("counters answer")
    .json()
    .await
    .expect("counters are JSON")
}

async fn reset_counters(sandbox: &Sandbox) {
    let status = reqwest::Client::new()
        .post(format!(
            "{}/_sandbox/dataverse/requests/reset",
            sandbox.base_url()
        ))
        .send()
        .await
        .expect("reset answers")
        .status();
    assert!(status.is_success(), "reset: {status}");
}

fn counted(c: &Value) -> u64 {
    c["counted_requests"].as_u64().expect("counted_requests")
}

fn contact(id: Uuid, i: usize, last: &str) -> Map<String, Value> {
    let Value::Object(map) = json!({
        "contactid": id,
        "firstname": format!("First{i}"),
        "lastname": last,
        "emailaddress1": format!("person{i}.{last}@example.com"),
    }) else {
        unreachable!()
    };
    map
}

async fn create_contacts(client: &Client, n: usize, last: &str) -> Vec<Uuid> {
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
    let targets = ids
        .iter()
        .enumerate()
        .map(|(i, id)| contact(*id, i, last))
        .collect();
    let created = client
        .bulk(BulkAction::Create, "contacts", "contact", targets)
        .await
        .expect("CreateMultiple");
    assert_eq!(created, ids);
    ids
}

#[tokio::test]
async fn a_token_is_cached_refreshed_when_short_lived_and_after_a_401() {
    let sandbox = sandbox_with(json!({ "token_lifetime_secs": 1 })).await;
    let client = client(&sandbox);
    client.who_am_i().await.expect("first call");
    client.who_am_i().await.expect("second call");
    assert_eq!(client.token_stats().requests(), 1, "the token is cached");
    // A one-second token is refreshed 0.1 s before it lapses: keep calling until it has been.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while client.token_stats().requests() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no refresh within 10 s"
        );
        client
            .who_am_i()
            .await
            .expect("calls keep working across refreshes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A token the service no longer accepts (401) is replaced once, and the call succeeds.
    sandbox
        .dataverse
        .set_token_lifetime(Duration::from_secs(3600));
    let long_lived = self::client(&sandbox);
    long_lived.who_am_i().await.expect("first call");
    sandbox.dataverse.revoke_tokens();
    long_lived
        .who_am_i()
        .await
        .expect("a 401 refreshes the token");
    assert_eq!(long_lived.token_stats().requests(), 2);
    assert_eq!(
        long_lived.stats().requests(),
        3,
        "the refused call was sent again once"
    );
    let c = counters(&sandbox).await;
    assert!(c["token_requests"].as_u64().unwrap() >= 3, "{c}");
}

#[tokio::test]
async fn a_wrong_secret_names_the_setting_to_check() {
    let sandbox = sandbox_with(json!({})).await;
    let client = client_for(&sandbox, "not-the-secret");
    let err = client.who_am_i().await.expect_err("refused");
    let text = err.to_string();
    assert!(matches!(err, Error::Token { .. }), "{text}");
    assert!(text.contains("invalid_client"), "{text}");
    assert!(text.contains("`dataverse.client_secret`"), "{text}");
    assert!(!text.contains("not-the-secret"), "{text}");
}

#[tokio::test]
async fn twelve_thousand_contacts_are_read_in_three_requests() {
    let sandbox = sandbox_with(json!({})).await;
    let client = client(&sandbox);
    for _ in 0..12 {
        create_contacts(&client, 1000, "Paged").await;
    }
    reset_counters(&sandbox).await;
    let query = Query::new("contacts")
        .select(["contactid", "emailaddress1"])
        .filter(Filter::eq("lastname", "Paged"));
    let mut pages = std::pin::pin!(client.pages::<Row>(&query));
    let mut sizes = Vec::new();
    let mut seen = std::collections::HashSet::new();
    while let Some(page) = pages.try_next().await.expect("page") {
        sizes.push(page.len());
        for row in &page {
            assert!(
                row.contains_key("@odata.etag"),
                "every row carries its ETag"
            );
            seen.insert(row["contactid"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(sizes, vec![5000, 5000, 2000]);
    assert_eq!(seen.len(), 12_000);
    let c = counters(&sandbox).await;
    assert_eq!(counted(&c), 3, "{c}");
}

#[tokio::test]
async fn a_thousand_creates_take_one_request() {
    let sandbox = sandbox_with(json!({})).await;
    let client = client(&sandbox);
    assert!(
        client
            .supports_bulk("contact", BulkAction::Create)
            .await
            .unwrap()
    );
    reset_counters(&sandbox).await;
    let ids = create_contacts(&client, 1000, "Bulk").await;
    let c = counters(&sandbox).await;
    assert_eq!(counted(&c), 1, "{c}");
    assert_eq!(c["operations"].as_u64(), Some(1000), "{c}");
    let row = client
        .retrieve("contacts", ids[999], &["lastname"])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row["lastname"], "Bulk");
    // A repeated create with the same id cannot duplicate.
    let again = client
        .create("contacts", &Value::Object(contact(ids[0], 0, "Bulk")))
        .await
        .unwrap();
    assert_eq!(again, Created::AlreadyExists);
    // write_many redoes a refused bulk chunk as a batch: one existing id fails nothing else.
    let mut targets = vec![contact(ids[1], 1, "Bulk")];
    let fresh = Uuid::new_v4();
    targets.push(contact(fresh, 2, "Bulk"));
    let results = client
        .write_many(
            BulkAction::Create,
            "contacts",
            "contact",
            "contactid",
            targets,
            std::convert::identity,
        )
        .await
        .unwrap();
    assert_eq!(results, vec![None, None]);
    assert!(
        client
            .retrieve("contacts", fresh, &[])
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_change_set_failing_in_the_middle_leaves_nothing_behind() {
    let sandbox = sandbox_with(json!({})).await;
    let client = client(&sandbox);
    let (a, b, missing) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let parts = vec![
        Part::ChangeSet(vec![
            Operation::post("contacts", Value::Object(contact(a, 1, "Atomic")), true),
            Operation::patch(format!("contacts({missing})"), json!({"lastname": "X"}))
                .header("If-Match", "*"),
            Operation::post("contacts", Value::Object(contact(b, 2, "Atomic")), true),
        ]),
        Part::Single(Operation::get("contacts?$select=contactid&$top=1")),
    ];
    let outcomes = client
        .execute_batch(&parts, true)
        .await
        .expect("batch answered");
    assert_eq!(outcomes.len(), 4);
    assert!(
        !outcomes[0].is_ok() && !outcomes[1].is_ok() && !outcomes[2].is_ok(),
        "{outcomes:?}"
    );
    assert!(
        matches!(&outcomes[1], OpOutcome::Failed(r) if r.status == 404)
            || matches!(&outcomes[0], OpOutcome::RolledBack(r) if r.status == 404),
        "{outcomes:?}"
    );
    assert!(
        outcomes[3].is_ok(),
        "continue-on-error runs the next part: {outcomes:?}"
    );
    assert!(client.retrieve("contacts", a, &[]).await.unwrap().is_none());
    assert!(client.retrieve("contacts", b, &[]).await.unwrap().is_none());
    // Without continue-on-error the batch stops at the failed change set.
    let outcomes = client
        .execute_batch(&parts, false)
        .await
        .expect("batch answered");
    assert_eq!(outcomes[3], OpOutcome::NotExecuted, "{outcomes:?}");
}

#[tokio::test]
async fn a_429_storm_is_survived_with_retry_after_honoured() {
    let sandbox = sandbox_with(json!({})).await;
    let client = client(&sandbox);
    // A deterministic storm: the next six requests are answered 429 with `Retry-After: 1`.
    let storm = json!({ "next_429": 6, "retry_after_secs": 1 });
    let status = reqwest::Client::new()
        .put(format!("{}/_sandbox/dataverse/faults", sandbox.base_url()))
        .json(&storm)
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");
    let started = std::time::Instant::now();
    let calls = (0..15).map(|_| client.who_am_i());
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let stats = client.stats();
    assert_eq!(stats.throttled(), 6, "the storm hit six requests");
    assert_eq!(
        stats.requests(),
        21,
        "each throttled request was sent once more"
    );
    // The client's own backoff starts at 20 ms; only honouring Retry-After makes it wait 1 s.
    assert!(started.elapsed() >= Duration::from_secs(1));
    let c = counters(&sandbox).await;
    assert_eq!(c["throttled"].as_u64(), Some(6), "{c}");
}

#[tokio::test]
async fn a_412_on_if_match_is_stale_not_an_error() {
    let sandbox = sandbox_with(json!({})).await;
    let client = client(&sandbox);
    let id = Uuid::new_v4();
    client
        .create("contacts", &Value::Object(contact(id, 1, "Stale")))
        .await
        .unwrap();
    let row = client
        .retrieve("contacts", id, &["lastname"])
        .await
        .unwrap()
        .unwrap();
    let seen = row["@odata.etag"].as_str().unwrap().to_owned();
    let first = client
        .update(
            "contacts",
            id,
            &json!({"firstname": "Changed"}),
            Some(&seen),
        )
        .await
        .unwrap();
    assert!(matches!(first, Outcome::Written { .. }), "{first:?}");
    let second = client
        .update("contacts", id, &json!({"firstname": "Again"}), Some(&seen))
        .await
        .unwrap();
    assert_eq!(second, Outcome::Stale);
    let row = client
        .retrieve("contacts", id, &["firstname"])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row["firstname"], "Changed");
    let parts = vec![Part::Single(
        Operation::patch(format!("contacts({id})"), json!({"firstname": "Batch"}))
            .header("If-Match", &seen),
    )];
    let outcomes = client.execute_batch(&parts, true).await.unwrap();
    assert!(outcomes[0].is_stale(), "{outcomes:?}");
    let missing = client
        .update("contacts", Uuid::new_v4(), &json!({"firstname": "x"}), None)
        .await
        .expect_err("no accidental create");
    assert!(missing.is_not_found(), "{missing}");
}

#[tokio::test]
async fn list_membership_is_added_read_and_removed() {
    let sandbox = sandbox_with(json!({})).await;
    let client = client(&sandbox);
    let list_id = Uuid::new_v4();
    let created = client
        .create_static_list(list_id, "audience-sync test", MemberType::Contact, None)
        .await
        .unwrap();
    assert_eq!(created, Created::Created);
    let list = client
        .marketing_list(list_id, "mcsync_audienceid")
        .await
        .unwrap()
        .expect("list exists");
    assert!(!list.dynamic && list.active && list.member_type() == Some(MemberType::Contact));
    assert_eq!(
        client
            .marketing_lists_named("audience-sync test", "mcsync_audienceid")
            .await
            .unwrap()
            .len(),
        1
    );
    let people = create_contacts(&client, 2500, "Member").await;
    reset_counters(&sandbox).await;
    client
        .add_list_members(list_id, MemberType::Contact, &people[..2499])
        .await
        .unwrap();
    // Adaptive sizing (`dataverse::batch::Sizer`): the requests double while fast, and are
    // spread over the requests in flight (at most ceil(2,499 / parallelism) each), so a few
    // more than the 3 that 1,000 each would take, never one per member.
    let requests = counted(&counters(&sandbox).await);
    assert!(
        (3..=16).contains(&requests),
        "AddListMembersList in requests growing and spread: {requests}"
    );
    let single = client.add_list_member(list_id, people[2499]).await.unwrap();
    client
        .add_list_members(list_id, MemberType::Contact, &people[..10])
        .await
        .expect("adding members again is harmless");
    let members: Vec<_> = client.list_members(list_id).try_concat().await.unwrap();
    assert_eq!(members.len(), 2500);
    assert!(
        members
            .iter()
            .any(|m| m.id == single && m.entity_id == people[2499])
    );
    let in_list: Vec<_> = client
        .people_in_list(MemberType::Contact, list_id, &["emailaddress1"])
        .try_concat()
        .await
        .unwrap();
    assert_eq!(in_list.len(), 2500);
    let remove: Vec<Uuid> = members.iter().take(1200).map(|m| m.id).collect();
    let failures = client.remove_list_members(&remove).await.unwrap();
    assert!(failures.iter().all(Option::is_none), "{failures:?}");
    assert!(
        !client.remove_list_member(remove[0]).await.unwrap(),
        "already gone"
    );
    let members: Vec<_> = client.list_members(list_id).try_concat().await.unwrap();
    assert_eq!(members.len(), 1300);
}

#[tokio::test]
async fn people_are_found_by_email_with_quotes_and_plus_signs() {
    let sandbox = sandbox_with(json!({})).await;
    let client = client(&sandbox);
    let id = Uuid::new_v4();
    let body = json!({"contactid": id, "lastname": "O'Brien", "emailaddress1": "o'brien+news@example.com"});
    client.create("contacts", &body).await.unwrap();
    let mut emails: Vec<String> = (0..25_000)
        .map(|i| format!("nobody{i}+x@example.com"))
        .collect();
    emails.push("O'Brien+News@example.com".to_owned());
    let values: Vec<_> = emails.iter().map(|e| e.as_str().into()).collect();
    let queries = audience_sync::dataverse::query::in_chunks(
        "emailaddress1",
        &values,
        audience_sync::dataverse::people::MAX_FILTER_CHARS,
        audience_sync::dataverse::people::MAX_IN_VALUES,
    )
    .len();
    let batches = queries.div_ceil(audience_sync::dataverse::people::READS_PER_BATCH);
    assert!(batches >= 2, "{queries} queries");
    reset_counters(&sandbox).await;
    let found: Vec<_> = client
        .people_by_emails(
            MemberType::Contact,
            emails.clone(),
            &["emailaddress1", "lastname"],
        )
        .try_concat()
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "found case-insensitively");
    assert_eq!(found[0].id, id);
    assert_eq!(found[0].text("lastname"), Some("O'Brien"));
    let c = counters(&sandbox).await;
    assert_eq!(
        counted(&c) as usize,
        batches,
        "{queries} lookups in {batches} batches: {c}"
    );
}

#[tokio::test]
async fn tag_links_cost_one_counted_request_per_thousand() {
    let sandbox = sandbox_with(json!({})).await;
    let client = client(&sandbox);
    let tables = ToolTables::new(client.clone(), Schema::default());
    let audience = Uuid::new_v4();
    tables
        .create_audience(audience, "News", "mc-list-1")
        .await
        .unwrap();
    let tag = Uuid::new_v4();
    tables
        .create_tag(tag, "VIP", "101", audience)
        .await
        .unwrap();
    assert_eq!(tables.tags(audience).await.unwrap()[0].name, "VIP");
    let people = create_contacts(&client, 2500, "Tagged").await;
    let links: Vec<TagLink> = people.iter().map(|p| TagLink { tag, person: *p }).collect();
    reset_counters(&sandbox).await;
    let failures = tables.link_tags(MemberType::Contact, &links).await.unwrap();
    assert!(
        failures.iter().all(Option::is_none),
        "{:?}",
        failures.iter().flatten().next()
    );
    let c = counters(&sandbox).await;
    assert!(
        (3..=9).contains(&counted(&c)),
        "2,500 links in $batch requests growing to 1000: {c}"
    );
    assert_eq!(c["operations"].as_u64(), Some(2500), "{c}");
    let members: Vec<Uuid> = tables
        .tag_members(MemberType::Contact, tag)
        .try_concat()
        .await
        .unwrap();
    assert_eq!(members.len(), 2500);
    let again = tables
        .link_tags(MemberType::Contact, &links[..10])
        .await
        .unwrap();
    assert!(
        again.iter().all(Option::is_none),
        "linking twice is fine: {again:?}"
    );
    let gone = tables
        .unlink_tags(MemberType::Contact, &links[..500])
        .await
        .unwrap();
    assert!(gone.iter().all(Option::is_none), "{gone:?}");
    let members: Vec<Uuid> = tables
        .tag_members(MemberType::Contact, tag)
        .try_concat()
        .await
        .unwrap();
    assert_eq!(members.len(), 2000);
}

#[tokio::test]
async fn the_lease_is_taken_once_and_refused_to_a_second_holder() {
    let sandbox = sandbox_with(json!({})).await;
    let tables = ToolTables::new(client(&sandbox), Schema::default());
    let id = Uuid::new_v4();
    tables.create_audience(id, "News", "mc-1").await.unwrap();
    let record = tables.audience(id).await.unwrap().unwrap();
    let now = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 0);
    let lease = |holder: &str| Lease {
        owner: holder.to_owned(),
        id: format!("lease-{holder}"),
        operation: "apply".to_owned(),
        expires: now + chrono::Duration::minutes(10),
    };
    let first = tables
        .acquire_lease(&record, &lease("a"), now)
        .await
        .unwrap();
    assert!(matches!(first, LeaseOutcome::Acquired { .. }), "{first:?}");
    // A second applier that read the record before the lease was taken loses the race …
    let second = tables
        .acquire_lease(&record, &lease("b"), now)
        .await
        .unwrap();
    assert_eq!(second, LeaseOutcome::Stale);
    // … and one that reads it now sees who holds it.
    let fresh = tables.audience(id).await.unwrap().unwrap();
    let third = tables
        .acquire_lease(&fresh, &lease("b"), now)
        .await
        .unwrap();
    assert_eq!(third, LeaseOutcome::HeldBy(lease("a")));
    // The holder releases it with the version it wrote; then anyone may take it.
    let done = audience_sync::dataverse::tables::AudienceStatus {
        sync_status: audience_sync::dataverse::schema::sync_status::SUCCEEDED,
        ..Default::default()
    };
    let released = tables
        .release_lease(id, &done, fresh.etag.as_deref())
        .await
        .unwrap();
    assert!(matches!(released, Outcome::Written { .. }), "{released:?}");
    let after = tables.audience(id).await.unwrap().unwrap();
    assert_eq!(after.lease, None);
    assert_eq!(after.status.sync_status, done.sync_status);
    let taken = tables
        .acquire_lease(&after, &lease("b"), now)
        .await
        .unwrap();
    assert!(matches!(taken, LeaseOutcome::Acquired { .. }), "{taken:?}");
}

#[tokio::test]
async fn bootstrap_twice_creates_once_and_check_then_passes() {
    let sandbox = sandbox_with(json!({ "schema": "bare" })).await;
    let client = client(&sandbox);
    let schema = Schema::default();
    let before = metadata::check(&client, &schema).await.unwrap();
    assert!(!before.healthy());
    assert!(!before.plan.steps.is_empty());
    let dry = metadata::bootstrap(&client, &schema, true, &mut |_| panic!("dry run creates"))
        .await
        .unwrap();
    assert_eq!(dry.plan.steps, before.plan.steps);
    let mut created = Vec::new();
    let first = metadata::bootstrap(&client, &schema, false, &mut |s| {
        created.push(s.to_string())
    })
    .await
    .unwrap();
    assert!(first.plan.problems.is_empty(), "{:?}", first.plan.problems);
    assert!(
        dry.solution.publisher_missing && dry.solution.solution_missing,
        "a bare environment has neither the publisher nor the solution: {:?}",
        dry.solution
    );
    assert!(first.solution.publisher_missing && first.solution.solution_missing);
    assert_eq!(created.len(), first.plan.steps.len());
    assert!(
        created.iter().any(|s| s.contains("mcsync_tag_contact")),
        "{created:?}"
    );
    let second = metadata::bootstrap(&client, &schema, false, &mut |s| {
        panic!("created twice: {s}")
    })
    .await
    .unwrap();
    assert!(second.plan.steps.is_empty(), "{:?}", second.plan.steps);
    assert!(
        !second.solution.publisher_missing && !second.solution.solution_missing,
        "{:?}",
        second.solution
    );
    let after = metadata::check(&client, &schema).await.unwrap();
    assert!(after.healthy(), "{after:?}");
    // Every tool table is in the tool's solution (and, as everything, in the Default Solution).
    assert_eq!(after.solutions.len(), schema.tables.len(), "{after:?}");
    for holding in after.solutions.values() {
        assert_eq!(holding, &["AudienceSync", "Default"], "{after:?}");
    }
    // The tables bootstrap made are usable at once.
    let tables = ToolTables::new(client, schema);
    let audience = Uuid::new_v4();
    assert_eq!(
        tables.create_audience(audience, "A", "mc").await.unwrap(),
        Created::Created
    );
}

#[tokio::test]
async fn the_crm_commands_run_from_the_command_line() {
    let sandbox = sandbox_with(json!({ "schema": "bare" })).await;
    let dir = tempfile::tempdir().unwrap();
    let config = crate::common::sandbox_config(dir.path(), "");
    let run = |args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_audience-sync"));
        command.args(args).arg(&config);
        for (key, value) in sandbox.env() {
            command.env(key, value);
        }
        command
    };
    let url = sandbox.base_url();
    let output = tokio::task::spawn_blocking({
        let mut dry = run(&["crm", "bootstrap", "--dry-run"]);
        let mut real = run(&["crm", "bootstrap"]);
        let mut again = run(&["crm", "bootstrap"]);
        let mut check = run(&["crm", "check"]);
        move || {
            [
                dry.output().unwrap(),
                real.output().unwrap(),
                again.output().unwrap(),
                check.output().unwrap(),
            ]
        }
    })
    .await
    .unwrap();
    let text = |i: usize| String::from_utf8_lossy(&output[i].stdout).into_owned();
    assert!(output[0].status.success(), "{}", text(0));
    assert!(text(0).contains("Would create"), "{}", text(0));
    assert!(text(0).contains(&url));
    assert!(
        output[1].status.success(),
        "{}{}",
        text(1),
        String::from_utf8_lossy(&output[1].stderr)
    );
    assert!(
        text(1).contains("+ created table `mcsync_audience`"),
        "{}",
        text(1)
    );
    assert!(
        text(1).contains("+ created publisher `mcsync`")
            && text(1).contains("+ created solution `AudienceSync`"),
        "{}",
        text(1)
    );
    assert!(text(2).contains("Nothing to do"), "{}", text(2));
    assert!(!text(2).contains("+ created"), "{}", text(2));
    assert!(output[3].status.success(), "{}", text(3));
    assert!(
        text(3).contains("ok table `mcsync_audience` is in solution `AudienceSync`"),
        "{}",
        text(3)
    );
    assert!(text(3).contains("ok create and delete"), "{}", text(3));
}

#[tokio::test]
async fn tool_tables_leads_and_upserts_round_trip() {
    let sandbox = sandbox_with(json!({})).await;
    let client = client(&sandbox);
    let schema = Schema::default();
    let tables = ToolTables::new(client.clone(), schema.clone());
    let audience = Uuid::new_v4();
    tables
        .create_audience(audience, "Leads audience", "mc-leads")
        .await
        .unwrap();
    assert_eq!(
        tables.audiences_by_mailchimp_id("mc-leads").await.unwrap()[0].id,
        audience
    );

    // A static lead list pointing at its Audience record.
    let list_id = Uuid::new_v4();
    let binding = audience_sync::dataverse::lists::AudienceBinding {
        lookup: &schema.names.list_audience_lookup,
        entity_set: &schema.audience().entity_set,
        id: audience,
    };
    client
        .create_static_list(list_id, "Leads", MemberType::Lead, Some(binding))
        .await
        .unwrap();
    let list = client
        .marketing_list(list_id, &schema.names.list_audience_lookup)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(list.audience, Some(audience));
    assert_eq!(list.member_type(), Some(MemberType::Lead));

    // Leads written with write_many: create, then update and upsert through the same call.
    let mc = &schema.names.lead_mailchimp_id_column;
    let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    let lead = |i: usize, last: &str| {
        let Value::Object(map) = json!({
            "leadid": ids[i], "lastname": last, "subject": "Mailchimp",
            "emailaddress1": format!("lead{i}@example.com"), mc.clone(): format!("mc{i}"),
        }) else {
            unreachable!()
        };
        map
    };
    let created = client
        .write_many(
            BulkAction::Create,
            "leads",
            "lead",
            "leadid",
            (0..3).map(|i| lead(i, "One")).collect(),
            std::convert::identity,
        )
        .await
        .unwrap();
    assert_eq!(created, vec![None, None, None]);
    let updated = client
        .write_many(
            BulkAction::Update,
            "leads",
            "lead",
            "leadid",
            vec![lead(0, "Two")],
            std::convert::identity,
        )
        .await
        .unwrap();
    assert_eq!(updated, vec![None]);
    let fresh = Uuid::new_v4();
    client
        .upsert("leads", fresh, &json!({"lastname": "Upserted"}))
        .await
        .unwrap();
    client
        .upsert("leads", fresh, &json!({"firstname": "Again"}))
        .await
        .unwrap();
    let row = client
        .retrieve("leads", fresh, &["lastname", "firstname"])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row["lastname"].as_str(), row["firstname"].as_str()),
        (Some("Upserted"), Some("Again"))
    );

    let by_mc: Vec<_> = client
        .people_where_in(
            MemberType::Lead,
            mc,
            vec!["mc0".into(), "mc2".into()],
            &["lastname", mc],
        )
        .try_concat()
        .await
        .unwrap();
    let mut found: Vec<(Uuid, Option<&str>)> =
        by_mc.iter().map(|p| (p.id, p.text("lastname"))).collect();
    found.sort();
    let mut expected = vec![(ids[0], Some("Two")), (ids[2], Some("One"))];
    expected.sort();
    assert_eq!(found, expected);
    let by_id: Vec<_> = client
        .people_by_ids(MemberType::Lead, &ids, &[])
        .try_concat()
        .await
        .unwrap();
    assert_eq!(by_id.len(), 3);

    client
        .add_list_members(list_id, MemberType::Lead, &ids)
        .await
        .unwrap();
    let in_list: Vec<_> = client
        .people_in_list(MemberType::Lead, list_id, &["lastname"])
        .try_concat()
        .await
        .unwrap();
    assert_eq!(in_list.len(), 3);

    // Tags of leads, renamed and deleted.
    let tag = Uuid::new_v4();
    tables.create_tag(tag, "Hot", "7", audience).await.unwrap();
    let links: Vec<TagLink> = ids.iter().map(|p| TagLink { tag, person: *p }).collect();
    assert!(
        tables
            .link_tags(MemberType::Lead, &links)
            .await
            .unwrap()
            .iter()
            .all(Option::is_none)
    );
    let members: Vec<Uuid> = tables
        .tag_members(MemberType::Lead, tag)
        .try_concat()
        .await
        .unwrap();
    assert_eq!(members.len(), 3);
    tables.rename_tag(tag, "Very hot", None).await.unwrap();
    assert_eq!(tables.tags(audience).await.unwrap()[0].name, "Very hot");
    assert!(tables.delete_tag(tag).await.unwrap());
    assert!(tables.tags(audience).await.unwrap().is_empty());

    // Status and sync runs.
    let now = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 0);
    let status = audience_sync::dataverse::tables::AudienceStatus {
        sync_status: audience_sync::dataverse::schema::sync_status::SUCCEEDED,
        last_sync_start: Some(now),
        last_sync_end: Some(now),
        member_count: Some(3),
        created: Some(3),
        updated: Some(1),
        removed: Some(0),
        failed: Some(0),
        last_message: Some("ok".into()),
    };
    tables
        .set_audience_status(audience, &status, None)
        .await
        .unwrap();
    assert_eq!(
        tables.audience(audience).await.unwrap().unwrap().status,
        status
    );
    let run = audience_sync::dataverse::tables::SyncRun {
        id: Uuid::new_v4(),
        name: "run 1".into(),
        audience,
        started: now,
        ended: Some(now),
        status: audience_sync::dataverse::schema::sync_status::SUCCEEDED,
        created: 3,
        updated: 1,
        removed: 0,
        failed: 0,
        message: None,
    };
    tables.save_sync_run(&run).await.unwrap();
    tables.save_sync_run(&run).await.unwrap();
    assert_eq!(sandbox.dataverse.count("mcsync_syncrun"), 1);
}

#[tokio::test]
async fn transient_5xx_and_dropped_connections_are_retried() {
    let sandbox = sandbox_with(json!({})).await;
    let client = client(&sandbox);
    // One request in five meets a fault; twelve tries make a lost request vanishingly rare.
    let faults = json!({ "rate_503": 0.1, "rate_500": 0.05, "drop_rate": 0.05 });
    let status = reqwest::Client::new()
        .put(format!("{}/_sandbox/dataverse/faults", sandbox.base_url()))
        .json(&faults)
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");
    let ids: Vec<Uuid> = (0..3000).map(|_| Uuid::new_v4()).collect();
    let targets = ids
        .iter()
        .enumerate()
        .map(|(i, id)| contact(*id, i, "Faulty"))
        .collect();
    let results = client
        .write_many(
            BulkAction::Create,
            "contacts",
            "contact",
            "contactid",
            targets,
            std::convert::identity,
        )
        .await
        .expect("creates survive the faults");
    assert!(
        results.iter().all(Option::is_none),
        "{:?}",
        results.iter().flatten().next()
    );
    for _ in 0..60 {
        client.who_am_i().await.expect("reads survive the faults");
    }
    let query = Query::new("contacts")
        .select(["contactid"])
        .filter(Filter::eq("lastname", "Faulty"));
    let rows: Vec<Row> = client
        .collect(&query)
        .await
        .expect("paging survives the faults");
    assert_eq!(rows.len(), 3000);
    assert!(client.stats().retries() > 0, "faults were met and retried");
}

#[tokio::test]
async fn the_request_limit_of_the_window_is_waited_out() {
    let sandbox = sandbox_with(json!({})).await;
    let client = client(&sandbox);
    // Ten counted requests per one-second window, refusals asking for one second.
    let limits = json!({ "requests_per_window": 10, "window_secs": 1, "retry_after_secs": 1 });
    let status = reqwest::Client::new()
        .put(format!("{}/_sandbox/dataverse/limits", sandbox.base_url()))
        .json(&limits)
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");
    let calls = (0..25).map(|_| client.who_am_i());
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(client.stats().throttled() > 0, "the limit was reached");
    let c = counters(&sandbox).await;
    assert_eq!(
        c["throttled"].as_u64(),
        Some(client.stats().throttled()),
        "{c}"
    );
}
