//! The Dataverse emulator as a service, over real HTTP: service protection (429 with
//! `Retry-After`, a batch counted once, concurrency and execution time), dropped connections,
//! `$expand`, `$count` and conditional reads, single-property writes, the state directory,
//! duplicate detection and principal access.

use api_sandbox::dataverse::{Faults, Limits};
use api_sandbox::{Options, Sandbox};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

mod support;

use support::{Api, bootstrapped, start};

#[tokio::test]
async fn service_protection_answers_429_with_retry_after_and_counts_a_batch_once() {
    let sb = start(json!({"limits": {"requests_per_window": 3, "window_secs": 60, "dop_hint": 6}}))
        .await;
    let api = Api::new(&sb).await;
    for _ in 0..3 {
        let resp = api
            .req(reqwest::Method::GET, "WhoAmI")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["x-ms-dop-hint"], "6");
    }
    let resp = api
        .req(reqwest::Method::GET, "WhoAmI")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=61).contains(&retry));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "0x80072322");
    assert_eq!(
        body["error"]["message"],
        "Number of requests exceeded the limit of 3 over time window of 60 seconds."
    );
    let counters = sb.dataverse.counters();
    assert_eq!((counters.counted_requests, counters.throttled), (3, 1));
    assert_eq!(counters.routes["GET WhoAmI"], 3);

    sb.dataverse.set_limits(Limits {
        max_concurrent: 52,
        ..Limits::default()
    });
    sb.dataverse.set_faults(Faults {
        next_429: 2,
        retry_after_secs: 2,
        ..Faults::default()
    });
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let resp = api
            .req(reqwest::Method::GET, "WhoAmI")
            .send()
            .await
            .unwrap();
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(resp.headers()["retry-after"], "2");
        }
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses, [429, 429, 200]);
    let faults: Value = reqwest::get(format!("{}/_sandbox/dataverse/faults", sb.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(faults["next_429"], 0);
    let counted: Value = reqwest::get(format!("{}/_sandbox/dataverse/requests", sb.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(counted["counted_requests"].as_u64().unwrap() >= 4);
}

#[tokio::test]
async fn expand_count_and_conditional_get() {
    let audience = Uuid::new_v4();
    let list = Uuid::new_v4();
    let sb = start(json!({
        "records": {"mcsync_audiences": [{"mcsync_audienceid": audience, "mcsync_name": "Main"}]},
        "contacts": [{"firstname": "A", "lastname": "X"}, {"firstname": "B", "lastname": "X"}, {"firstname": "C", "lastname": "Y"}],
        "lists": [{"id": list, "name": "L"}]
    }))
    .await;
    let api = Api::new(&sb).await;
    let (status, _, _) = api
        .send(
            reqwest::Method::PATCH,
            &format!("lists({list})"),
            &json!({"mcsync_audienceid@odata.bind": format!("/mcsync_audiences({audience})")}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, got) = api.get(&format!("lists({list})?$select=listname,_mcsync_audienceid_value&$expand=mcsync_audienceid($select=mcsync_name)")).await;
    assert_eq!(got["_mcsync_audienceid_value"], audience.to_string());
    assert_eq!(got["mcsync_audienceid"]["mcsync_name"], "Main");
    let (status, _, _) = api
        .send(
            reqwest::Method::PATCH,
            &format!("lists({list})"),
            &json!({"mcsync_audienceid": audience}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a lookup is written with @odata.bind"
    );
    let text = api
        .req(
            reqwest::Method::GET,
            "contacts/$count?$filter=lastname eq 'X'",
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "2");
    let (_, counted) = api
        .get(
            "contacts?$select=fullname&$count=true&$filter=lastname eq 'X'&$orderby=firstname desc",
        )
        .await;
    assert_eq!(counted["@odata.count"], 2);
    assert_eq!(counted["value"][0]["fullname"], "B X");
    let (_, one) = api.get(&format!("lists({list})")).await;
    let etag = one["@odata.etag"].as_str().unwrap().to_owned();
    let resp = api
        .req(reqwest::Method::GET, &format!("lists({list})"))
        .header("If-None-Match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    let metadata = api
        .req(reqwest::Method::GET, "$metadata")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metadata.contains("<EntitySet Name=\"mcsync_tags\"")
            && metadata.contains("Name=\"listcontact_association\"")
    );
}

#[tokio::test]
async fn concurrency_execution_time_and_dropped_connections() {
    let sb = start(json!({})).await;
    let api = Api::new(&sb).await;
    sb.dataverse.set_limits(Limits {
        execution_ms_per_window: 500,
        op_cost_ms: 1,
        ..Limits::default()
    });
    let targets: Vec<Value> = (0..600).map(|i| json!({"@odata.type": "Microsoft.Dynamics.CRM.contact", "firstname": format!("t{i}")})).collect();
    let (status, _, _) = api
        .send(
            reqwest::Method::POST,
            "contacts/Microsoft.Dynamics.CRM.CreateMultiple",
            &json!({"Targets": targets}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "one bulk request is admitted");
    let (status, body) = api.get("WhoAmI").await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "its execution time used up the window"
    );
    assert_eq!(body["error"]["code"], "0x80072321");

    sb.dataverse.set_limits(Limits {
        max_concurrent: 2,
        ..Limits::default()
    });
    sb.dataverse.set_faults(Faults {
        latency_ms: 1500,
        ..Faults::default()
    });
    let calls = (0..3).map(|_| api.req(reqwest::Method::GET, "WhoAmI").send());
    let results = futures::future::join_all(calls).await;
    let mut codes = Vec::new();
    for resp in results {
        let resp = resp.unwrap();
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            let body: Value = resp.json().await.unwrap();
            codes.push(body["error"]["code"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        codes,
        ["0x80072326"],
        "the third concurrent request is refused at once"
    );

    sb.dataverse.set_limits(Limits::default());
    sb.dataverse.set_faults(Faults {
        drop_rate: 1.0,
        ..Faults::default()
    });
    let dropped = async {
        api.req(reqwest::Method::GET, "WhoAmI")
            .send()
            .await?
            .bytes()
            .await
    };
    assert!(
        dropped.await.is_err(),
        "the connection is dropped mid-answer"
    );
}

#[tokio::test]
async fn a_property_is_written_alone_and_content_ids_bind_in_bodies() {
    let sb = start(json!({})).await;
    let api = Api::new(&sb).await;
    let body = "--batch_q\r\nContent-Type: multipart/mixed; boundary=changeset_q\r\n\r\n\
--changeset_q\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n\
POST /api/data/v9.2/mcsync_audiences HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"mcsync_name\":\"A\"}\r\n\
--changeset_q\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 2\r\n\r\n\
POST /api/data/v9.2/mcsync_tags HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"mcsync_name\":\"T\",\"mcsync_audienceid@odata.bind\":\"$1\"}\r\n\
--changeset_q\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 3\r\n\r\n\
PUT $2/mcsync_mailchimptagid HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"value\":\"42\"}\r\n\
--changeset_q--\r\n--batch_q--\r\n";
    let resp = api
        .req(reqwest::Method::POST, "$batch")
        .header("Content-Type", "multipart/mixed; boundary=\"batch_q\"")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (_, tags) = api
        .get("mcsync_tags?$select=mcsync_mailchimptagid,_mcsync_audienceid_value")
        .await;
    let tag = &tags["value"][0];
    assert_eq!(tag["mcsync_mailchimptagid"], "42");
    assert!(tag["_mcsync_audienceid_value"].is_string());
    let (status, _, body) = api
        .send(
            reqwest::Method::PATCH,
            &format!("mcsync_tags({})", tag["mcsync_tagid"].as_str().unwrap()),
            &json!({"mcsync_name": "x".repeat(201)}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "0x80044331");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'mcsync_tag' entity exceeded the maximum allowed length of '200'")
    );
}

#[tokio::test]
async fn a_state_directory_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let options = || Options {
        state_dir: Some(dir.path().to_owned()),
        ..bootstrapped()
    };
    let sb = Sandbox::start(options()).await.unwrap();
    let api = Api::new(&sb).await;
    let id = Uuid::new_v4();
    let (status, _, _) = api
        .send(
            reqwest::Method::POST,
            "contacts",
            &json!({"contactid": id, "firstname": "Kept"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    sb.shutdown().await;
    let again = Sandbox::start(options()).await.unwrap();
    let api = Api::new(&again).await;
    let (status, got) = api.get(&format!("contacts({id})?$select=firstname")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["firstname"], "Kept");
}

#[tokio::test]
async fn duplicate_detection_only_when_asked() {
    let sb = start(json!({"contacts": [{"emailaddress1": "dup@x.com"}]})).await;
    let api = Api::new(&sb).await;
    let (status, _, _) = api
        .send(
            reqwest::Method::POST,
            "contacts",
            &json!({"emailaddress1": "DUP@x.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "suppressed by default");
    let resp = api
        .req(reqwest::Method::POST, "contacts")
        .header("MSCRM.SuppressDuplicateDetection", "false")
        .json(&json!({"emailaddress1": "dup@x.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "0x80040333");
    assert_eq!(sb.dataverse.count("contact"), 2);
}

#[tokio::test]
async fn principal_access_answers_the_seeded_rights() {
    let contact = Uuid::new_v4();
    let sb = start(
        json!({"contacts": [{"contactid": contact}], "access_rights": "ReadAccess, WriteAccess"}),
    )
    .await;
    let api = Api::new(&sb).await;
    let (_, who) = api.get("WhoAmI").await;
    let user = who["UserId"].as_str().unwrap().to_owned();
    let alias = urlencoding::encode(&format!("{{'@odata.id':'contacts({contact})'}}")).into_owned();
    let (status, body) = api
        .get(&format!("systemusers({user})/Microsoft.Dynamics.CRM.RetrievePrincipalAccess(Target=@p1)?@p1={alias}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["AccessRights"], "ReadAccess, WriteAccess");
    let missing = urlencoding::encode(&format!("{{'@odata.id':'contacts({})'}}", Uuid::new_v4()))
        .into_owned();
    let (status, _) = api
        .get(&format!("systemusers({user})/Microsoft.Dynamics.CRM.RetrievePrincipalAccess(Target=@p1)?@p1={missing}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
