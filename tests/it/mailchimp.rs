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
        counts.max_in_flight, 10,
        "the client used its limit and not more"
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
async fn members_added_during_a_read_are_reported_as_drift() {
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
    let mut outcome = Vec::new();
    while let Some(page) = pages.next().await {
        outcome.push(page.map(|p| p.len()));
    }
    let err = outcome
        .into_iter()
        .find_map(Result::err)
        .expect("drift is reported");
    assert!(
        matches!(
            err,
            Error::Drift {
                before: 2500,
                after: 2501,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("read it again"), "{err}");
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

// ----- the emulator's own behaviour, raw HTTP -------------------------------------------------

struct Raw {
    http: reqwest::Client,
    api: String,
    key: String,
}

impl Raw {
    fn new(sandbox: &Sandbox) -> Self {
        Self {
            http: reqwest::Client::new(),
            api: env_of(sandbox, "MAILCHIMP_BASE_URL"),
            key: env_of(sandbox, "MAILCHIMP_API_KEY"),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.api))
            .basic_auth("x", Some(&self.key));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, value, headers)
    }
}

fn assert_problem(value: &Value, status: u16, title: &str) {
    assert_eq!(value["status"], status, "{value}");
    assert_eq!(value["title"], title, "{value}");
    for key in ["type", "detail", "instance"] {
        assert!(value[key].is_string(), "`{key}` missing in {value}");
    }
}

#[tokio::test]
async fn the_emulator_follows_mailchimps_paging_projection_and_error_rules() {
    use reqwest::Method;
    let sandbox = start(seed_with(plain_audience(1500)), None).await;
    let raw = Raw::new(&sandbox);
    let list_id = first_audience(&sandbox);
    let members = format!("/lists/{list_id}/members");

    let (status, page, _) = raw.send(Method::GET, &members, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        page["members"].as_array().unwrap().len(),
        10,
        "count defaults to 10"
    );
    assert_eq!(page["total_items"], 1500);
    assert!(
        page["_links"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["rel"].is_string() && l["method"].is_string())
    );
    let (_, page, _) = raw
        .send(
            Method::GET,
            &format!("{members}?count=5000&offset=1000"),
            None,
        )
        .await;
    assert_eq!(
        page["members"].as_array().unwrap().len(),
        500,
        "count is capped at 1000"
    );
    let (_, page, _) = raw
        .send(
            Method::GET,
            &format!("{members}?count=2&fields=members.email_address,total_items"),
            None,
        )
        .await;
    assert_eq!(
        page,
        json!({"members": [{"email_address": page["members"][0]["email_address"]}, {"email_address": page["members"][1]["email_address"]}], "total_items": 1500})
    );
    let (status, problem, _) = raw
        .send(
            Method::GET,
            &format!("{members}?fields=total_items&exclude_fields=members"),
            None,
        )
        .await;
    assert_eq!(status, 400);
    assert_problem(&problem, 400, "Bad Request");
    let (status, problem, _) = raw
        .send(Method::GET, &format!("{members}?status=active"), None)
        .await;
    assert_eq!(status, 400);
    assert_problem(&problem, 400, "Invalid Resource");

    let (status, problem, headers) = raw.send(Method::GET, "/lists/nope", None).await;
    assert_eq!(status, 404);
    assert_problem(&problem, 404, "Resource Not Found");
    assert_eq!(
        headers["content-type"],
        "application/problem+json; charset=utf-8"
    );
    assert!(headers.contains_key("x-request-id"));
    let response = raw
        .http
        .get(format!("{}/ping", raw.api))
        .basic_auth("x", Some(&raw.key))
        .header("X-Trigger-Error", "APIKeyMissing")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_problem(
        &response.json::<Value>().await.unwrap(),
        401,
        "API Key Missing",
    );
    let response = raw
        .http
        .get(format!("{}/ping", raw.api))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "no credentials");
    let response = raw
        .http
        .get(format!("{}/ping", raw.api))
        .bearer_auth(&raw.key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "a Bearer token works as in Mailchimp"
    );
    let (status, problem, _) = raw.send(Method::DELETE, "/ping", None).await;
    assert_eq!(status, 405);
    assert_problem(&problem, 405, "Method Not Allowed");
}

#[tokio::test]
async fn member_writes_follow_mailchimps_rules() {
    use reqwest::Method;
    let sandbox = start(Seed::default(), Some("members=3,seed=1")).await;
    let raw = Raw::new(&sandbox);
    let list_id = first_audience(&sandbox);
    let members = format!("/lists/{list_id}/members");
    let hash = api_sandbox::mailchimp::subscriber_hash("Ann@Example.com");

    let (status, ann, _) = raw
        .send(Method::POST, &members, Some(json!({"email_address": "Ann@Example.com", "status": "subscribed", "merge_fields": {"FNAME": "Ann"}, "tags": ["Fans"]})))
        .await;
    assert_eq!(status, 200, "{ann}");
    assert_eq!(ann["id"], hash);
    assert_eq!(ann["tags"][0]["name"], "Fans");
    let contact_id = ann["contact_id"].clone();
    let (status, problem, _) = raw
        .send(
            Method::POST,
            &members,
            Some(json!({"email_address": "ann@example.com", "status": "subscribed"})),
        )
        .await;
    assert_eq!(status, 400);
    assert_problem(&problem, 400, "Member Exists");
    let (_, problem, _) = raw
        .send(
            Method::POST,
            &members,
            Some(json!({"email_address": "x@example.com"})),
        )
        .await;
    assert_problem(&problem, 400, "Invalid Resource");
    assert_eq!(problem["errors"][0]["field"], "status");

    let (status, _, _) = raw
        .send(
            Method::PATCH,
            &format!("{members}/{hash}"),
            Some(json!({"status": "unsubscribed"})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, problem, _) = raw
        .send(
            Method::PATCH,
            &format!("{members}/{hash}"),
            Some(json!({"status": "subscribed"})),
        )
        .await;
    assert_problem(&problem, 400, "Member In Compliance State");

    let (status, body, _) = raw.send(Method::POST, &format!("{members}/{hash}/tags"), Some(json!({"tags": [{"name": "Fans", "status": "inactive"}, {"name": "New", "status": "active"}]}))).await;
    assert_eq!((status, body), (204, Value::Null));
    let (_, tags, _) = raw
        .send(Method::GET, &format!("{members}/{hash}/tags"), None)
        .await;
    assert_eq!(tags["total_items"], 1);
    assert_eq!(tags["tags"][0]["name"], "New");
    assert!(tags["tags"][0]["date_added"].is_string());

    let (status, _, _) = raw
        .send(Method::DELETE, &format!("{members}/{hash}"), None)
        .await;
    assert_eq!(status, 204);
    let (_, archived, _) = raw
        .send(Method::GET, &format!("{members}/{hash}"), None)
        .await;
    assert_eq!(archived["status"], "archived");
    let (status, back, _) = raw
        .send(Method::PUT, &format!("{members}/{hash}"), Some(json!({"email_address": "ann@example.com", "status_if_new": "subscribed", "status": "pending"})))
        .await;
    assert_eq!(
        (status, back["status"].clone(), back["contact_id"].clone()),
        (200, json!("pending"), contact_id)
    );

    let (status, _, _) = raw
        .send(
            Method::POST,
            &format!("{members}/{hash}/actions/delete-permanent"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, problem, _) = raw
        .send(
            Method::POST,
            &members,
            Some(json!({"email_address": "ann@example.com", "status": "subscribed"})),
        )
        .await;
    assert_eq!(status, 400);
    assert_problem(&problem, 400, "Forgotten Email Not Subscribed");

    sandbox
        .mailchimp
        .set_merge_field_required(&list_id, "LNAME", true)
        .unwrap();
    let (_, problem, _) = raw
        .send(
            Method::POST,
            &members,
            Some(json!({"email_address": "req@example.com", "status": "subscribed"})),
        )
        .await;
    assert_problem(&problem, 400, "Invalid Resource");
    assert_eq!(
        problem["errors"],
        json!([{"field": "LNAME", "message": "Please enter a value"}])
    );
}

#[tokio::test]
async fn tags_are_static_segments_with_their_own_endpoints() {
    use reqwest::Method;
    let sandbox = start(seed_with(plain_audience(5)), None).await;
    let raw = Raw::new(&sandbox);
    let list_id = first_audience(&sandbox);
    let (_, page, _) = raw
        .send(
            Method::GET,
            &format!("/lists/{list_id}/members?count=5&fields=members.email_address"),
            None,
        )
        .await;
    let emails: Vec<String> = page["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email_address"].as_str().unwrap().to_owned())
        .collect();

    let (status, tag, _) = raw
        .send(
            Method::POST,
            &format!("/lists/{list_id}/segments"),
            Some(json!({"name": "Spring", "static_segment": [emails[0]]})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(tag["type"], "static");
    let id = tag["id"].as_u64().unwrap();
    let seg = format!("/lists/{list_id}/segments/{id}");
    let (_, result, _) = raw.send(Method::POST, &seg, Some(json!({"members_to_add": [emails[1], "stranger@example.com"], "members_to_remove": [emails[0]]}))).await;
    assert_eq!(
        (
            result["total_added"].clone(),
            result["total_removed"].clone(),
            result["error_count"].clone()
        ),
        (json!(1), json!(1), json!(1))
    );
    let (_, renamed, _) = raw
        .send(Method::PATCH, &seg, Some(json!({"name": "Spring 2026"})))
        .await;
    assert_eq!(renamed["name"], "Spring 2026");
    let (_, found, _) = raw
        .send(
            Method::GET,
            &format!("/lists/{list_id}/tag-search?name=spr"),
            None,
        )
        .await;
    assert_eq!(found["tags"], json!([{"id": id, "name": "Spring 2026"}]));
    let (_, seg_members, _) = raw.send(Method::GET, &format!("{seg}/members"), None).await;
    assert_eq!(
        seg_members["members"].as_array().map(Vec::len),
        Some(usize::from(seg_members["total_items"] == 1))
    );
    let (status, _, _) = raw.send(Method::DELETE, &seg, None).await;
    assert_eq!(status, 204);
    let (status, _, _) = raw.send(Method::GET, &seg, None).await;
    assert_eq!(status, 404);

    // Direct changes for tests, as later plan/apply tests need them.
    let state = &sandbox.mailchimp;
    state.set_tag(&list_id, &emails[2], "Direct", true).unwrap();
    state.rename_tag(&list_id, "Direct", "Renamed").unwrap();
    state
        .set_status(&list_id, &emails[3], SeedStatus::Unsubscribed)
        .unwrap();
    let new_hash = state
        .change_email(&list_id, &emails[4], "changed@example.com")
        .unwrap();
    let client = client_for(&sandbox);
    let all = read_all(&client, &list_id, MemberQuery::default())
        .await
        .unwrap();
    let by_email = |e: &str| all.iter().find(|m| m.email_address == e).unwrap().clone();
    assert_eq!(
        by_email(&emails[2])
            .tags
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        vec!["Renamed"]
    );
    assert_eq!(by_email(&emails[3]).status, MemberStatus::Unsubscribed);
    assert_eq!(by_email("changed@example.com").id, new_hash);
}

#[tokio::test]
async fn a_state_directory_keeps_the_data_between_runs() {
    use reqwest::Method;
    let dir = tempfile::tempdir().unwrap();
    let mut seed = Seed::default();
    seed.mailchimp.audiences.push(AudienceSeed {
        name: "Kept".into(),
        id: Some("abcdef0123".into()),
        tags: vec!["Old".into()],
        members: vec![MemberSeed::new("first@example.com")],
        ..AudienceSeed::default()
    });
    let options = |seed: Seed| Options {
        seed,
        state_dir: Some(dir.path().to_owned()),
        ..audience_sync::commands::sandbox::options()
    };
    let sandbox = Sandbox::start(options(seed)).await.unwrap();
    let raw = Raw::new(&sandbox);
    let (status, _, _) = raw
        .send(
            Method::POST,
            "/lists/abcdef0123/members",
            Some(json!({"email_address": "second@example.com", "status": "subscribed", "tags": ["New"]})),
        )
        .await;
    assert_eq!(status, 200);
    sandbox
        .mailchimp
        .rename_tag("abcdef0123", "Old", "Renamed")
        .unwrap();
    sandbox.mailchimp.flush().unwrap();
    let tag_ids = client_for(&sandbox).tags("abcdef0123").await.unwrap();
    sandbox.shutdown().await;

    // A second run with no seed at all finds everything, with the same ids.
    let sandbox = Sandbox::start(options(Seed::default())).await.unwrap();
    let client = client_for(&sandbox);
    let members = read_all(&client, "abcdef0123", MemberQuery::default())
        .await
        .unwrap();
    let emails: Vec<&str> = members.iter().map(|m| m.email_address.as_str()).collect();
    assert_eq!(emails, vec!["first@example.com", "second@example.com"]);
    assert_eq!(client.tags("abcdef0123").await.unwrap(), tag_ids);
    assert!(tag_ids.iter().any(|t| t.name == "Renamed"));
}

// ----- commands ---------------------------------------------------------------------------------

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_audience-sync"))
}

#[tokio::test]
async fn audiences_lists_id_name_members_and_tags() {
    let sandbox = start(
        Seed::default(),
        Some("members=40,tags=3,seed=1,audiences=2"),
    )
    .await;
    let (api, key) = (
        env_of(&sandbox, "MAILCHIMP_BASE_URL"),
        env_of(&sandbox, "MAILCHIMP_API_KEY"),
    );
    let output = tokio::task::spawn_blocking(move || {
        bin()
            .arg("audiences")
            .env("MAILCHIMP_BASE_URL", api)
            .env("MAILCHIMP_API_KEY", key)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with("ID ")
            && lines[0].contains("NAME")
            && lines[0].contains("MEMBERS")
            && lines[0].ends_with("TAGS")
    );
    for ((id, name), line) in sandbox.mailchimp.audiences().iter().zip(&lines[1..]) {
        assert!(
            line.starts_with(id.as_str()) && line.contains(name.as_str()) && line.ends_with(" 3"),
            "{line}"
        );
    }

    let api = env_of(&sandbox, "MAILCHIMP_BASE_URL");
    let output = tokio::task::spawn_blocking(move || {
        bin()
            .args(["audiences", "--format", "json"])
            .env("MAILCHIMP_BASE_URL", api)
            .env("MAILCHIMP_API_KEY", "ffffffffffffffffffffffffffffffff-us21")
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("401 `API Key Invalid`"), "{stderr}");
    assert!(!stderr.contains("ffffffffffffffff"), "{stderr}");
    assert!(output.stdout.is_empty());

    // `--config` takes the connection from a config file, `${VAR}` references expanded.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("audience-sync.yaml");
    std::fs::write(
        &config,
        format!(
            "version: 1\nmailchimp:\n  api_key: \"${{MC_KEY_FOR_TEST}}\"\n  base_url: {}\n",
            env_of(&sandbox, "MAILCHIMP_BASE_URL")
        ),
    )
    .unwrap();
    let key = env_of(&sandbox, "MAILCHIMP_API_KEY");
    let output = tokio::task::spawn_blocking(move || {
        bin()
            .args(["audiences", "--format", "json", "--config"])
            .arg(&config)
            .env_remove("MAILCHIMP_BASE_URL")
            .env_remove("MAILCHIMP_API_KEY")
            .env("MC_KEY_FOR_TEST", key)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    assert_eq!(listed[0]["tag_count"], 3);
    assert!(listed[0]["member_count"].as_u64().unwrap() > 20);
}

#[tokio::test]
async fn init_writes_a_starter_config_that_becomes_valid_when_a_binding_is_uncommented() {
    let sandbox = start(
        Seed::default(),
        Some("members=10,tags=2,seed=1,audiences=2"),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("audience-sync.yaml");
    let (api, key, out2) = (
        env_of(&sandbox, "MAILCHIMP_BASE_URL"),
        env_of(&sandbox, "MAILCHIMP_API_KEY"),
        out.clone(),
    );
    let run = move || {
        bin()
            .args(["init", "--out"])
            .arg(&out2)
            .env("MAILCHIMP_BASE_URL", &api)
            .env("MAILCHIMP_API_KEY", &key)
            .env_remove("DATAVERSE_URL")
            .output()
    };
    let first = tokio::task::spawn_blocking(run.clone())
        .await
        .unwrap()
        .unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        !text.contains(&env_of(&sandbox, "MAILCHIMP_API_KEY")),
        "no secret in the file"
    );
    let again = tokio::task::spawn_blocking(run).await.unwrap().unwrap();
    assert_eq!(
        again.status.code(),
        Some(1),
        "an existing file is not overwritten without --force"
    );
    let (id, _) = &sandbox.mailchimp.audiences()[1];
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains(&format!("id: \"{id}\"")))
        .unwrap()
        - 2;
    let edited: String = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if (at..at + 7).contains(&i) {
                l.replacen("# ", "", 1)
            } else {
                (*l).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let value = audience_sync::config::yaml::parse_value(&edited).unwrap();
    let config: audience_sync::config::Config = serde_json::from_value(value).unwrap();
    assert_eq!(config.bindings.len(), 1);
    assert_eq!(config.bindings[0].name, "generated-audience-2");
    assert_eq!(config.bindings[0].audience.id.as_deref(), Some(id.as_str()));
    assert_eq!(
        config.mailchimp.base_url.as_deref(),
        Some("${MAILCHIMP_BASE_URL}")
    );
}

#[tokio::test]
async fn sandbox_prints_its_env_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("sandbox.yaml");
    let mut child = bin()
        .args([
            "sandbox",
            "--generate",
            "members=1200,tags=2,seed=1",
            "--listen",
            "127.0.0.1:0",
            "--print-config",
        ])
        .arg(&config_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut env = std::collections::HashMap::new();
    while !(env.contains_key("MAILCHIMP_BASE_URL") && env.contains_key("MAILCHIMP_API_KEY")) {
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(err) => {
                let _ = child.kill();
                panic!("the sandbox printed no env in time: {err}");
            }
        };
        let (key, value) = line.split_once('=').expect("KEY=value lines");
        env.insert(key.to_owned(), value.to_owned());
    }
    let client = Client::builder()
        .api_key(SecretString::from(env["MAILCHIMP_API_KEY"].clone()))
        .base_url(Some(env["MAILCHIMP_BASE_URL"].clone()))
        .build()
        .unwrap();
    let served = async {
        let lists = client.lists().await?;
        let all = MemberQuery {
            statuses: audience_sync::mailchimp::ALL_STATUSES.to_vec(),
            ..MemberQuery::default()
        };
        let members = read_all(&client, &lists[0].id, all).await?;
        Ok::<_, Error>((lists.len(), members.len()))
    }
    .await;
    #[cfg(unix)]
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let stopped = Arc::new(std::sync::Mutex::new(None));
    for _ in 0..100 {
        if let Ok(Some(status)) = child.try_wait() {
            *stopped.lock().unwrap() = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = *stopped.lock().unwrap();
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert_eq!(served.unwrap(), (1, 1200));
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM stops the sandbox cleanly: {status:?}"
    );
    let text = std::fs::read_to_string(&config_path).expect("--print-config wrote the file");
    let value = audience_sync::config::yaml::parse_value(&text).unwrap();
    let config: audience_sync::config::Config = serde_json::from_value(value).unwrap();
    assert_eq!(config.bindings.len(), 1, "one active binding per audience");
    assert_eq!(
        config.mailchimp.base_url.as_deref(),
        Some(env["MAILCHIMP_BASE_URL"].as_str())
    );
}

/// Whether a process has ended (gone, or a zombie nobody has reaped yet).
#[cfg(target_os = "linux")]
fn ended(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn sandbox_in_the_background_lets_eval_return() {
    let script = format!(
        "eval \"$('{}' sandbox --generate members=5,seed=1 2>/dev/null &)\"; \
         echo \"$MAILCHIMP_BASE_URL $MAILCHIMP_API_KEY $AUDIENCE_SYNC_SANDBOX_PID\"",
        env!("CARGO_BIN_EXE_audience-sync")
    );
    let mut shell = Command::new("bash")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut returned = false;
    for _ in 0..300 {
        if shell.try_wait().unwrap().is_some() {
            returned = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !returned {
        let _ = shell.kill();
    }
    let output = shell.wait_with_output().unwrap();
    assert!(
        returned,
        "eval \"$(audience-sync sandbox … &)\" did not return"
    );
    let line = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let parts: Vec<&str> = line.split(' ').collect();
    assert_eq!(parts.len(), 3, "{line}");
    let (base_url, key, pid) = (parts[0], parts[1], parts[2]);
    let client = Client::builder()
        .api_key(SecretString::from(key.to_owned()))
        .base_url(Some(base_url.to_owned()))
        .build()
        .unwrap();
    let pinged = client.ping().await;
    let _ = Command::new("kill").args(["-TERM", pid]).status();
    let mut stopped = false;
    for _ in 0..100 {
        if ended(pid) {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !stopped {
        let _ = Command::new("kill").args(["-KILL", pid]).status();
    }
    pinged.unwrap();
    assert!(stopped, "the sandbox stops on SIGTERM");
}
