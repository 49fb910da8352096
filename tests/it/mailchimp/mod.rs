//! The Mailchimp client against the Mailchimp emulator over real HTTP, the emulator's own
//! behaviours (errors, rules, limits), and the `audiences`, `init` and `sandbox` commands.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use api_sandbox::mailchimp::MemberStatus as SeedStatus;
use api_sandbox::mailchimp::{AudienceSeed, Burst, Faults, MemberSeed, MergeFieldSeed};
use api_sandbox::{GenerateSpec, Options, Sandbox, Seed};
use audience_sync::config::MemberStatus;
use audience_sync::http::RetryPolicy;
use audience_sync::mailchimp::{AudienceSelector, Client, Error, Member, MemberQuery};
use futures::StreamExt;
use secrecy::SecretString;
use serde_json::{Value, json};

mod commands;
mod emulator;

const MEMBERS_ROUTE: &str = "GET /3.0/lists/{list_id}/members";
const MEMBER_TAGS_ROUTE: &str = "GET /3.0/lists/{list_id}/members/{subscriber_hash}/tags";

async fn start(seed: Seed, generate: Option<&str>) -> Sandbox {
    Sandbox::start(Options {
        seed,
        generate: generate.map(|g| g.parse::<GenerateSpec>().expect("generate spec")),
        ..audience_sync::commands::sandbox::options()
    })
    .await
    .expect("sandbox starts")
}

fn env_of(sandbox: &Sandbox, key: &str) -> String {
    sandbox
        .env()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("{key} missing from the sandbox env"))
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(40),
        max_retry_after: Duration::from_secs(1),
    }
}

fn client_with_key(sandbox: &Sandbox, key: &str) -> Client {
    Client::builder()
        .api_key(SecretString::from(key.to_owned()))
        .base_url(Some(env_of(sandbox, "MAILCHIMP_BASE_URL")))
        .retry_policy(fast_retries())
        .build()
        .expect("client builds")
}

fn client_for(sandbox: &Sandbox) -> Client {
    client_with_key(sandbox, &env_of(sandbox, "MAILCHIMP_API_KEY"))
}

fn first_audience(sandbox: &Sandbox) -> String {
    sandbox.mailchimp.audiences()[0].0.clone()
}

async fn read_all(
    client: &Client,
    list_id: &str,
    query: MemberQuery,
) -> Result<Vec<Member>, Error> {
    let mut pages = client.members(list_id, query);
    let mut all = Vec::new();
    while let Some(page) = pages.next().await {
        all.extend(page?);
    }
    Ok(all)
}

/// An audience of `n` members, none archived: mostly subscribed, some unsubscribed, cleaned and
/// pending; every third member tagged, every member with a first name.
fn plain_audience(n: usize) -> AudienceSeed {
    let statuses = [
        SeedStatus::Subscribed,
        SeedStatus::Subscribed,
        SeedStatus::Subscribed,
        SeedStatus::Unsubscribed,
        SeedStatus::Cleaned,
        SeedStatus::Pending,
    ];
    AudienceSeed {
        name: "Plain".into(),
        tags: vec!["Every third".into(), "Nobody".into()],
        members: (0..n)
            .map(|i| {
                let mut m = MemberSeed::new(&format!("member{i}@example.com"));
                m.status = statuses[i % statuses.len()];
                m.merge_fields
                    .insert("FNAME".into(), json!(format!("Member {i}")));
                if i % 3 == 0 {
                    m.tags = vec!["Every third".into()];
                }
                m
            })
            .collect(),
        ..AudienceSeed::default()
    }
}

#[tokio::test]
async fn a_2500_member_audience_is_read_completely_in_three_pages() {
    let sandbox = start(seed_with(plain_audience(2500)), None).await;
    let client = client_for(&sandbox);
    let list_id = first_audience(&sandbox);
    sandbox.mailchimp.reset_requests();
    let members = read_all(&client, &list_id, MemberQuery::default())
        .await
        .unwrap();
    assert_eq!(members.len(), 2500);
    let ids: HashSet<&str> = members.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), 2500, "no member twice");
    assert_eq!(sandbox.mailchimp.requests_to(MEMBERS_ROUTE), 3);
    assert_eq!(
        sandbox.mailchimp.requests().total,
        3,
        "{:?}",
        sandbox.mailchimp.requests()
    );
    for m in &members {
        assert_eq!(
            m.id,
            api_sandbox::mailchimp::subscriber_hash(&m.email_address)
        );
        assert!(m.contact_id.as_deref().is_some_and(|c| c.len() == 32));
        assert_eq!(m.tags_count, Some(m.tags.len() as u64));
        assert!(m.merge_fields.contains_key("FNAME") && m.last_changed.is_some());
    }
    let statuses: HashSet<MemberStatus> = members.iter().map(|m| m.status).collect();
    assert_eq!(statuses.len(), 4);
    assert_eq!(members.iter().filter(|m| !m.tags.is_empty()).count(), 834);

    let audience = client
        .find_audience(&AudienceSelector::Id(list_id.clone()))
        .await
        .unwrap();
    let subscribed = read_all(
        &client,
        &list_id,
        MemberQuery {
            statuses: vec![MemberStatus::Subscribed],
            ..MemberQuery::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(subscribed.len() as u64, audience.member_count);
    assert!(
        subscribed
            .iter()
            .all(|m| m.status == MemberStatus::Subscribed)
    );
    assert_eq!(audience.total_contacts, Some(2500));
}

#[tokio::test]
async fn archived_members_come_only_when_asked_for() {
    let sandbox = start(Seed::default(), Some("members=600,tags=2,seed=4")).await;
    let client = client_for(&sandbox);
    let list_id = first_audience(&sandbox);
    let default = read_all(&client, &list_id, MemberQuery::default())
        .await
        .unwrap();
    assert!(default.iter().all(|m| m.status != MemberStatus::Archived));
    let all = read_all(
        &client,
        &list_id,
        MemberQuery {
            statuses: audience_sync::mailchimp::ALL_STATUSES.to_vec(),
            ..MemberQuery::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(all.len(), 600);
    let archived = all
        .iter()
        .filter(|m| m.status == MemberStatus::Archived)
        .count();
    assert!(archived > 0);
    assert_eq!(default.len() + archived, 600);
}

#[tokio::test]
async fn narrow_fields_are_requested_and_honoured() {
    let sandbox = start(seed_with(plain_audience(30)), None).await;
    let client = client_for(&sandbox);
    let list_id = first_audience(&sandbox);
    let members = read_all(
        &client,
        &list_id,
        MemberQuery {
            fields: Some(vec!["last_changed".into()]),
            ..MemberQuery::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(members.len(), 30);
    assert!(
        members
            .iter()
            .all(|m| m.merge_fields.is_empty() && m.tags.is_empty() && m.last_changed.is_some())
    );
}

fn seed_with(audience: AudienceSeed) -> Seed {
    let mut seed = Seed::default();
    seed.mailchimp.audiences.push(audience);
    seed
}

#[tokio::test]
async fn tags_and_merge_fields_are_read_completely() {
    let sandbox = start(Seed::default(), Some("members=20,tags=1200,seed=5")).await;
    let client = client_for(&sandbox);
    let list_id = first_audience(&sandbox);
    sandbox.mailchimp.reset_requests();
    let tags = client.tags(&list_id).await.unwrap();
    assert_eq!(tags.len(), 1200);
    assert_eq!(
        tags.iter().map(|t| t.id).collect::<HashSet<_>>().len(),
        1200
    );
    assert_eq!(
        sandbox
            .mailchimp
            .requests_to("GET /3.0/lists/{list_id}/segments"),
        2
    );
    assert_eq!(client.tag_count(&list_id).await.unwrap(), 1200);

    let mut audience = AudienceSeed {
        name: "Shop".into(),
        id: Some("0a1b2c3d4e".into()),
        merge_fields: Some(vec![
            MergeFieldSeed {
                tag: "FNAME".into(),
                name: Some("First Name".into()),
                field_type: "text".into(),
                required: false,
            },
            MergeFieldSeed {
                tag: "COMPANY".into(),
                name: None,
                field_type: "text".into(),
                required: true,
            },
        ]),
        tags: vec!["Empty tag".into()],
        ..AudienceSeed::default()
    };
    let mut ada = MemberSeed::new("ada@example.com");
    ada.tags = vec!["VIP".into()];
    let mut bob = MemberSeed::new("bob@example.com");
    bob.status = SeedStatus::Unsubscribed;
    bob.tags = vec!["VIP".into()];
    audience.members = vec![ada, bob];
    let sandbox = start(seed_with(audience), None).await;
    let client = client_for(&sandbox);
    let fields = client.merge_fields("0a1b2c3d4e").await.unwrap();
    let described: Vec<(&str, &str, bool)> = fields
        .iter()
        .map(|f| (f.tag.as_str(), f.field_type.as_str(), f.required))
        .collect();
    assert_eq!(
        described,
        vec![("FNAME", "text", false), ("COMPANY", "text", true)]
    );
    let tags = client.tags("0a1b2c3d4e").await.unwrap();
    let counts: Vec<(&str, u64)> = tags
        .iter()
        .map(|t| (t.name.as_str(), t.member_count))
        .collect();
    assert_eq!(
        counts,
        vec![("Empty tag", 0), ("VIP", 1)],
        "member_count counts subscribed members only"
    );
}

#[tokio::test]
async fn a_member_with_more_than_50_tags_gets_all_of_them() {
    let mut many = MemberSeed::new("many@example.com");
    many.tags = (1..=63).map(|n| format!("Tag {n:02}")).collect();
    let mut few = MemberSeed::new("few@example.com");
    few.tags = vec!["Tag 01".into()];
    let audience = AudienceSeed {
        name: "Tagged".into(),
        members: vec![many, few],
        ..AudienceSeed::default()
    };
    let sandbox = start(seed_with(audience), None).await;
    let client = client_for(&sandbox);
    let list_id = first_audience(&sandbox);

    // The emulator caps the member object at 50, as Mailchimp does.
    let raw: Value = reqwest::Client::new()
        .get(format!(
            "{}/lists/{list_id}/members/many@example.com",
            env_of(&sandbox, "MAILCHIMP_BASE_URL")
        ))
        .basic_auth("x", Some(env_of(&sandbox, "MAILCHIMP_API_KEY")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["tags"].as_array().map(Vec::len), Some(50));
    assert_eq!(raw["tags_count"], 63);

    sandbox.mailchimp.reset_requests();
    let members = read_all(&client, &list_id, MemberQuery::default())
        .await
        .unwrap();
    let many = members
        .iter()
        .find(|m| m.email_address == "many@example.com")
        .unwrap();
    assert_eq!(many.tags.len(), 63);
    assert_eq!(many.tags_count, Some(63));
    let names: HashSet<&str> = many.tags.iter().map(|t| t.name.as_str()).collect();
    assert!(names.contains("Tag 63") && names.contains("Tag 01"));
    assert_eq!(
        sandbox.mailchimp.requests_to(MEMBER_TAGS_ROUTE),
        1,
        "only the member above 50 tags"
    );
}

#[tokio::test]
async fn a_wrong_key_gets_a_clear_401_message() {
    let sandbox = start(Seed::default(), Some("members=5,seed=1")).await;
    let client = client_with_key(&sandbox, "00000000000000000000000000000000-us21");
    let err = client.ping().await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("401 `API Key Invalid`"), "{message}");
    assert!(message.contains("MAILCHIMP_API_KEY"), "{message}");
    assert!(
        !message.contains("00000000000000000000000000000000"),
        "the key is never shown"
    );
    let err = client.lists().await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    client_with_key(&sandbox, &env_of(&sandbox, "MAILCHIMP_API_KEY"))
        .ping()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_403_names_the_refused_call() {
    let sandbox = start(Seed::default(), Some("members=5,seed=1")).await;
    let client = client_for(&sandbox);
    sandbox.mailchimp.set_faults(Faults {
        bursts: vec![Burst {
            status: 403,
            count: 1,
        }],
        ..Faults::default()
    });
    let err = client.lists().await.unwrap_err();
    assert!(matches!(err, Error::Forbidden { .. }), "{err:?}");
    assert!(
        err.to_string().contains("`GET /lists` (403 `Forbidden`)"),
        "{err}"
    );
    assert_eq!(client.stats().retries(), 0, "a 403 is not retried");
}

#[tokio::test]
async fn an_unknown_audience_gets_a_404_message_naming_it() {
    let sandbox = start(Seed::default(), Some("members=5,seed=1")).await;
    let client = client_for(&sandbox);
    let err = client
        .find_audience(&AudienceSelector::Id("0123456789".into()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AudienceNotFound { .. }), "{err:?}");
    assert!(
        err.to_string().contains("`0123456789` was not found"),
        "{err}"
    );
    let err = read_all(&client, "0123456789", MemberQuery::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`0123456789`"), "{err}");
    let err = client.tags("0123456789").await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    let err = client
        .find_audience(&AudienceSelector::Name("Nope".into()))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no Mailchimp audience is named `Nope` (audiences: `Generated Audience 1`)"
    );
    let found = client
        .find_audience(&AudienceSelector::Name("Generated Audience 1".into()))
        .await
        .unwrap();
    assert_eq!(found.id, first_audience(&sandbox));
}

#[tokio::test]
async fn bursts_of_429_503_and_dropped_connections_are_survived() {
    let sandbox = start(seed_with(plain_audience(2500)), None).await;
    let client = client_for(&sandbox);
    let list_id = first_audience(&sandbox);
    sandbox.mailchimp.set_faults(Faults {
        bursts: vec![
            Burst {
                status: 429,
                count: 3,
            },
            Burst {
                status: 503,
                count: 3,
            },
            Burst {
                status: 0,
                count: 2,
            },
            Burst {
                status: 500,
                count: 1,
            },
        ],
        ..Faults::default()
    });
    sandbox.mailchimp.reset_requests();
    let members = read_all(&client, &list_id, MemberQuery::default())
        .await
        .unwrap();
    assert_eq!(members.len(), 2500);
    assert_eq!(
        members.iter().map(|m| &m.id).collect::<HashSet<_>>().len(),
        2500
    );
    assert!(
        sandbox.mailchimp.faults().bursts.is_empty(),
        "every fault was served"
    );
    assert_eq!(sandbox.mailchimp.requests_to(MEMBERS_ROUTE), 3 + 9);
    assert!(client.stats().throttled() >= 3);
    assert!(
        client.stats().retries() >= 7,
        "{}",
        client.stats().retries()
    );

    // Random shares, as a run-time setting over HTTP.
    let http = reqwest::Client::new();
    let base = sandbox.base_url();
    let set: Value = http
        .put(format!("{base}/_sandbox/mailchimp/faults"))
        .json(&json!({"rate_429": 0.2, "rate_503": 0.1, "seed": 4}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(set["rate_429"], 0.2);
    let members = read_all(&client, &list_id, MemberQuery::default())
        .await
        .unwrap();
    assert_eq!(members.len(), 2500);
    let counts: Value = http
        .get(format!("{base}/_sandbox/mailchimp/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        counts["routes"][MEMBERS_ROUTE].as_u64().unwrap() > 12,
        "{counts}"
    );
}

#[tokio::test]
async fn never_more_than_10_requests_in_flight() {
    let sandbox = start(
        Seed::default(),
        Some("members=20,tags=2,seed=1,audiences=3"),
    )
    .await;
    let client = client_for(&sandbox);
    sandbox.mailchimp.set_faults(Faults {
        latency_ms: 250,
        ..Faults::default()
    });
    sandbox.mailchimp.reset_requests();
    let tasks: Vec<_> = (0..40)
        .map(|n| {
            let client = client.clone();
            let ids: Vec<String> = sandbox
                .mailchimp
                .audiences()
                .into_iter()
                .map(|a| a.0)
                .collect();
            tokio::spawn(async move {
                match n % 3 {
                    0 => client.ping().await.map(|()| 0),
                    1 => client.tag_count(&ids[n % ids.len()]).await,
                    _ => client
                        .merge_fields(&ids[n % ids.len()])
                        .await
                        .map(|f| f.len()),
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let counts = sandbox.mailchimp.requests();
    assert_eq!(counts.total, 40);
    assert_eq!(counts.refused_concurrency, 0);
    assert_eq!(
        counts.max_in_flight,
        audience_sync::mailchimp::DEFAULT_CONNECTIONS,
        "the client used its budget (8 by default) and not more"
    );

    // The emulator itself refuses the 11th simultaneous request of a key with 429.
    sandbox.mailchimp.reset_requests();
    let http = reqwest::Client::new();
    let url = format!("{}/ping", env_of(&sandbox, "MAILCHIMP_BASE_URL"));
    let key = env_of(&sandbox, "MAILCHIMP_API_KEY");
    let answers = futures::future::join_all(
        (0..14).map(|_| http.get(&url).basic_auth("x", Some(&key)).send()),
    )
    .await;
    let refused = answers
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|r| r.status() == 429))
        .count();
    assert_eq!(refused, 4, "14 at once: 10 served, 4 refused");
    assert_eq!(sandbox.mailchimp.requests().refused_concurrency, 4);
}

#[tokio::test]
async fn members_added_during_a_read_shift_nothing_out_of_it() {
    let sandbox = start(seed_with(plain_audience(2500)), None).await;
    let client = client_for(&sandbox);
    let list_id = first_audience(&sandbox);
    let mut pages = client.members(&list_id, MemberQuery::default());
    let first = pages.next().await.unwrap().unwrap();
    assert_eq!(first.len(), 1000);
    sandbox
        .mailchimp
        .add_member(&list_id, &MemberSeed::new("late@example.com"))
        .unwrap();
    let mut ids: Vec<String> = first.into_iter().map(|m| m.id).collect();
    while let Some(page) = pages.next().await {
        ids.extend(page.expect("no drift error").into_iter().map(|m| m.id));
    }
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no member twice");
    assert!(
        ids.len() >= 2500,
        "every member that stayed is read ({})",
        ids.len()
    );
}

#[tokio::test]
async fn status_and_since_last_changed_filter_members() {
    let members = [
        (
            "old@example.com",
            SeedStatus::Subscribed,
            "2024-01-01T00:00:00+00:00",
        ),
        (
            "new@example.com",
            SeedStatus::Subscribed,
            "2025-06-01T00:00:00+00:00",
        ),
        (
            "gone@example.com",
            SeedStatus::Unsubscribed,
            "2025-07-01T00:00:00+00:00",
        ),
        (
            "arch@example.com",
            SeedStatus::Archived,
            "2025-08-01T00:00:00+00:00",
        ),
    ];
    let audience = AudienceSeed {
        name: "Filters".into(),
        members: members
            .iter()
            .map(|(email, status, changed)| {
                let mut m = MemberSeed::new(email);
                m.status = *status;
                m.last_changed = Some((*changed).into());
                m
            })
            .collect(),
        ..AudienceSeed::default()
    };
    let sandbox = start(seed_with(audience), None).await;
    let client = client_for(&sandbox);
    let list_id = first_audience(&sandbox);
    let since = chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
        .unwrap()
        .to_utc();
    let emails = |ms: Vec<Member>| ms.into_iter().map(|m| m.email_address).collect::<Vec<_>>();
    let got = read_all(
        &client,
        &list_id,
        MemberQuery {
            since_last_changed: Some(since),
            ..MemberQuery::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        emails(got),
        vec!["new@example.com", "gone@example.com"],
        "archived members only come with status=archived"
    );
    let got = read_all(
        &client,
        &list_id,
        MemberQuery {
            statuses: vec![MemberStatus::Subscribed, MemberStatus::Archived],
            since_last_changed: Some(since),
            ..MemberQuery::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(emails(got), vec!["new@example.com", "arch@example.com"]);
}
