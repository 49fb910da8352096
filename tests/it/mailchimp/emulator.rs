//! The Mailchimp emulator's own behaviour, over raw HTTP: paging, projection, errors, writes, tags, state.

use super::*;

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
