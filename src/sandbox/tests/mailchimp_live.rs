//! The Mailchimp emulator as a live audience, over real HTTP: members rendered as the real API
//! renders them (every merge field, `""` when empty; `unique_email_id` per address), the
//! `last_changed` filters and sorting (bounds on the sort field read as a range of it), offset
//! paging that shifts when a member leaves the filtered set, list and tag counts that follow
//! every change, and churn switched on and off through `/_sandbox/mailchimp/churn` with its
//! journal.

use api_sandbox::mailchimp::{AudienceSeed, MemberSeed, MemberStatus, Seed as McSeed};
use api_sandbox::{Sandbox, Seed};
use reqwest::StatusCode;
use serde_json::{Value, json};

mod support;

const LIST: &str = "a1b2c3d4e5";

async fn start(members: Vec<MemberSeed>) -> (Sandbox, reqwest::Client) {
    let seed = Seed {
        mailchimp: McSeed {
            audiences: vec![AudienceSeed {
                name: "Live".into(),
                id: Some(LIST.into()),
                members,
                ..AudienceSeed::default()
            }],
            ..McSeed::default()
        },
        ..Seed::default()
    };
    let sandbox = Sandbox::start(api_sandbox::Options {
        seed,
        ..support::bootstrapped()
    })
    .await
    .expect("sandbox starts");
    (sandbox, reqwest::Client::new())
}

async fn get(sb: &Sandbox, http: &reqwest::Client, path: &str) -> (StatusCode, Value) {
    let resp = http
        .get(format!("{}/3.0{path}", sb.base_url()))
        .basic_auth("test", Some(sb.mailchimp.api_key()))
        .send()
        .await
        .expect("answer");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn emails(page: &Value) -> Vec<String> {
    page["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["email_address"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn member(email: &str, last_changed: &str) -> MemberSeed {
    MemberSeed {
        last_changed: Some(last_changed.into()),
        ..MemberSeed::new(email)
    }
}

#[tokio::test]
async fn members_carry_every_merge_field_and_a_unique_email_id_per_address() {
    let mut ada = MemberSeed::new("ada@example.com");
    ada.merge_fields.insert("FNAME".into(), json!("Ada"));
    let (sb, http) = start(vec![ada]).await;
    let (status, m) = get(
        &sb,
        &http,
        &format!("/lists/{LIST}/members/ada@example.com"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let fields = m["merge_fields"].as_object().expect("merge fields");
    assert_eq!(fields["FNAME"], "Ada");
    for tag in ["LNAME", "ADDRESS", "PHONE", "BIRTHDAY"] {
        assert_eq!(fields[tag], "", "{tag} is an empty string when unset");
    }
    assert!(m["timestamp_signup"].is_string());
    let (contact, unique) = (m["contact_id"].clone(), m["unique_email_id"].clone());
    sb.mailchimp
        .change_email(LIST, "ada@example.com", "ada@example.org")
        .expect("e-mail changed");
    let (_, moved) = get(
        &sb,
        &http,
        &format!("/lists/{LIST}/members/ada@example.org"),
    )
    .await;
    assert_eq!(moved["contact_id"], contact, "the contact stays");
    assert_ne!(
        moved["unique_email_id"], unique,
        "the address's id is the new address's"
    );
}

#[tokio::test]
async fn last_changed_filters_and_sorting_follow_the_spec() {
    let (sb, http) = start(vec![
        member("a@example.com", "2026-01-03T00:00:00+00:00"),
        member("b@example.com", "2026-01-01T00:00:00+00:00"),
        member("c@example.com", "2026-01-02T00:00:00+00:00"),
    ])
    .await;
    let path = |q: &str| format!("/lists/{LIST}/members?count=10&{q}");
    let (_, page) = get(&sb, &http, &path("sort_field=last_changed&sort_dir=DESC")).await;
    assert_eq!(
        emails(&page),
        ["a@example.com", "c@example.com", "b@example.com"]
    );
    let (_, page) = get(&sb, &http, &path("sort_field=last_changed&sort_dir=ASC")).await;
    assert_eq!(
        emails(&page),
        ["b@example.com", "c@example.com", "a@example.com"]
    );
    let (_, page) = get(
        &sb,
        &http,
        &path("since_last_changed=2026-01-02T00:00:00%2B00:00&sort_field=last_changed"),
    )
    .await;
    assert_eq!(emails(&page), ["c@example.com", "a@example.com"]);
    assert_eq!(page["total_items"], 2);
    let (_, page) = get(
        &sb,
        &http,
        &path("before_last_changed=2026-01-02T12:00:00%2B00:00"),
    )
    .await;
    assert_eq!(emails(&page), ["b@example.com", "c@example.com"]);
    let (status, problem) = get(&sb, &http, &path("sort_field=last_changed&sort_dir=UP")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    let (status, _) = get(&sb, &http, &path("sort_field=email")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_member_leaving_the_filtered_set_shifts_later_offsets_by_one() {
    let (sb, http) = start(
        (0..6)
            .map(|i| MemberSeed::new(&format!("m{i}@example.com")))
            .collect(),
    )
    .await;
    let page =
        |offset: usize| format!("/lists/{LIST}/members?status=subscribed&count=2&offset={offset}");
    let (_, before) = get(&sb, &http, &page(2)).await;
    assert_eq!(emails(&before), ["m2@example.com", "m3@example.com"]);
    sb.mailchimp
        .set_status(LIST, "m0@example.com", MemberStatus::Unsubscribed)
        .expect("unsubscribed");
    let (_, after) = get(&sb, &http, &page(2)).await;
    assert_eq!(emails(&after), ["m3@example.com", "m4@example.com"]);
    assert_eq!(after["total_items"], 5);
    sb.mailchimp
        .add_member(LIST, &MemberSeed::new("new@example.com"))
        .expect("signed up");
    let (_, last) = get(&sb, &http, &page(4)).await;
    assert_eq!(
        emails(&last),
        ["m5@example.com", "new@example.com"],
        "a sign-up comes last"
    );
}

#[tokio::test]
async fn churn_is_switched_on_and_off_at_run_time_and_journaled() {
    let (sb, http) = start(
        (0..50)
            .map(|i| MemberSeed::new(&format!("m{i}@example.com")))
            .collect(),
    )
    .await;
    let url = |p: &str| format!("{}/_sandbox/mailchimp/{p}", sb.base_url());
    let set = http
        .put(url("churn"))
        .json(&json!({"per_request": 2, "seed": 4, "audience": LIST}))
        .send()
        .await
        .expect("answer");
    assert_eq!(set.status(), StatusCode::OK);
    for _ in 0..5 {
        let (status, _) = get(&sb, &http, "/ping").await;
        assert_eq!(status, StatusCode::OK);
    }
    let journal: Vec<Value> = http
        .get(url("journal"))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("JSON");
    assert_eq!(journal.len(), 10, "two changes at each of five requests");
    for entry in &journal {
        assert_eq!(entry["audience"], LIST);
        for key in ["at", "contact_id", "member_id", "kind", "email"] {
            assert!(entry.get(key).is_some(), "{key} in {entry}");
        }
    }
    let unknown = http
        .put(url("churn"))
        .json(&json!({"rate": 1, "speed": 2}))
        .send()
        .await
        .expect("answer");
    assert!(
        unknown.status().is_client_error(),
        "unknown settings are refused"
    );
    http.put(url("churn"))
        .json(&json!({}))
        .send()
        .await
        .expect("answer");
    let (status, _) = get(&sb, &http, "/ping").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sb.mailchimp.journal().len(), 10, "churn is off");
}

/// The list's `member_count` and `unsubscribe_count` and the first tag's `member_count`.
async fn counts(sb: &Sandbox, http: &reqwest::Client) -> (Value, Value, Value) {
    let (_, list) = get(sb, http, &format!("/lists/{LIST}?fields=stats")).await;
    let (_, tags) = get(sb, http, &format!("/lists/{LIST}/segments?type=static")).await;
    (
        list["stats"]["member_count"].clone(),
        list["stats"]["unsubscribe_count"].clone(),
        tags["segments"][0]["member_count"].clone(),
    )
}

#[tokio::test]
async fn bounds_on_the_sort_field_and_the_counts_follow_every_change() {
    let tagged = |email: &str, at: &str| MemberSeed {
        tags: vec!["vip".into()],
        ..member(email, at)
    };
    let (sb, http) = start(vec![
        tagged("a@example.com", "2026-01-03T00:00:00+00:00"),
        tagged("b@example.com", "2026-01-01T00:00:00+00:00"),
        member("c@example.com", "2026-01-02T00:00:00+00:00"),
        member("d@example.com", "2026-01-04T00:00:00+00:00"),
    ])
    .await;
    let path = |q: &str| format!("/lists/{LIST}/members?sort_field=last_changed&{q}");
    let (_, page) = get(
        &sb,
        &http,
        &path(
            "since_last_changed=2026-01-02T00:00:00%2B00:00\
             &before_last_changed=2026-01-03T00:00:00%2B00:00&sort_dir=DESC",
        ),
    )
    .await;
    assert_eq!(emails(&page), ["a@example.com", "c@example.com"]);
    assert_eq!(page["total_items"], 2, "both bounds are inclusive");
    let (_, page) = get(
        &sb,
        &http,
        &path("since_last_changed=2026-01-02T00:00:00%2B00:00&count=1&offset=1"),
    )
    .await;
    assert_eq!(emails(&page), ["a@example.com"]);
    assert_eq!(page["total_items"], 3);
    assert_eq!(counts(&sb, &http).await, (json!(4), json!(0), json!(2)));
    sb.mailchimp
        .set_status(LIST, "b@example.com", MemberStatus::Unsubscribed)
        .expect("unsubscribed");
    assert_eq!(
        counts(&sb, &http).await,
        (json!(3), json!(1), json!(1)),
        "a tag counts subscribed members only"
    );
    sb.mailchimp
        .set_tag(LIST, "c@example.com", "vip", true)
        .expect("tagged");
    assert_eq!(counts(&sb, &http).await, (json!(3), json!(1), json!(2)));
    // A catch-up read after the change: only what changed since.
    let (_, page) = get(
        &sb,
        &http,
        &path("since_last_changed=2026-06-01T00:00:00%2B00:00&status=unsubscribed"),
    )
    .await;
    assert_eq!(emails(&page), ["b@example.com"]);
}
