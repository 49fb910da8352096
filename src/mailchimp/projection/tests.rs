//! The projection against the reference: [`crate::observe::member_value`] of the whole member.

use super::*;
use crate::mailchimp::Member;
use crate::observe::member_value;

/// Every kind of path a binding may name, and some no field answers.
const PATHS: &[&str] = &[
    "email_address",
    "status",
    "contact_id",
    "last_changed",
    "tags",
    "unique_email_id",
    "full_name",
    "email_type",
    "language",
    "unsubscribe_reason",
    "ip_signup",
    "ip_opt",
    "source",
    "vip",
    "member_rating",
    "web_id",
    "timestamp_signup",
    "timestamp_opt",
    "merge_fields.FNAME",
    "merge_fields.LNAME",
    "merge_fields.AGE",
    "merge_fields.SCORE",
    "merge_fields.NEG",
    "merge_fields.OPT",
    "merge_fields.EMPTY",
    "merge_fields.NULL",
    "merge_fields.LIST",
    "merge_fields.ADDRESS",
    "merge_fields.ADDRESS.addr1",
    "merge_fields.ADDRESS.city",
    "merge_fields.ADDRESS.zip",
    "merge_fields.ADDRESS.none",
    "merge_fields.ADDRESS.nested",
    "merge_fields.FNAME.part",
    "merge_fields.MISSING",
    "merge_fields.",
    "location.country_code",
    "location.latitude",
    "location.longitude",
    "location.timezone",
    "location.region",
    "location.other",
    "id",
    "tags_count",
    "merge_fields",
    "location",
    "nothing",
];

const MEMBERS: &[&str] = &[
    r#"{"id":"h1","email_address":"a@example.com","status":"subscribed","contact_id":"c1",
        "unique_email_id":"u1","full_name":"A \"Q\" B","email_type":"html","language":"",
        "unsubscribe_reason":null,"ip_signup":"1.2.3.4","ip_opt":"","source":"API - Generic",
        "vip":true,"member_rating":4,"web_id":123456789,
        "timestamp_signup":"2021-03-04T05:06:07+00:00","timestamp_opt":"2021-03-04T05:06:07Z",
        "last_changed":"2022-02-23T19:31:55+00:00",
        "merge_fields":{"FNAME":"Ann","LNAME":"L\u00e9a","AGE":42,"SCORE":1.50,"NEG":-7,
            "OPT":false,"EMPTY":"","NULL":null,"LIST":[1,2],"X":{"a":1},
            "ADDRESS":{"addr1":"1 Main St","city":"Town","zip":12345,"none":"","nested":{"a":1},
                "country":"US"},"":"blank tag"},
        "location":{"country_code":"US","latitude":0,"longitude":-1.25,"timezone":"",
            "region":"CA","gmtoff":0},
        "tags_count":2,"tags":[{"id":7,"name":"Customers"},{"id":3,"name":"VIP, \"gold\""}],
        "unknown":{"deep":[{"x":1}]}}"#,
    r#"{"email_address":"b@example.com","status":"archived","id":"h2","contact_id":"",
        "timestamp_signup":"","last_changed":"2022-02-23T21:31:55.250+02:00",
        "timestamp_opt":"2022-02-23 19:31:55+00:00",
        "merge_fields":{"FNAME":"Bo","ADDRESS":"","AGE":"","SCORE":1e3,"OPT":true},
        "location":null,"tags":[]}"#,
    r#"{"id":"h3","email_address":"c@example.com","status":"cleaned","vip":false,
        "merge_fields":{"ADDRESS":{"addr1":"x"},"ADDRESS":"","FNAME":"first","FNAME":"second"},
        "location":{"latitude":12.5},"member_rating":null,"web_id":null}"#,
    r#"{"id":"h4","email_address":"d@example.com","status":"pending"}"#,
];

fn page(members: &[&str]) -> String {
    format!(
        r#"{{"members":[{}],"total_items":{},"_links":[{{"rel":"self"}}]}}"#,
        members.join(","),
        members.len()
    )
}

#[test]
fn every_path_reads_as_the_whole_member_reads_it() {
    let paths: Vec<String> = PATHS.iter().map(|p| (*p).to_owned()).collect();
    let projection = Projection::new(&paths);
    let body = page(MEMBERS);
    let projected = projection.decode(body.as_bytes()).unwrap();
    assert_eq!(projected.total_items, MEMBERS.len());
    for (json, p) in MEMBERS.iter().zip(&projected.items) {
        let whole: Member = serde_json::from_str(json).unwrap();
        let joined = p.joined_tags(&projection);
        for (i, path) in PATHS.iter().enumerate() {
            let expected = member_value(&whole, path);
            assert_eq!(
                projection.value(p, i, joined.as_deref()),
                expected.as_deref(),
                "{} {path}",
                whole.id
            );
        }
        assert_eq!(p.id(), whole.id);
        assert_eq!(
            p.contact_id(),
            whole.contact_id.as_deref().unwrap_or_default()
        );
        assert_eq!(p.email(), whole.email_address);
        assert_eq!(p.status(), whole.status);
        let last_changed = whole
            .last_changed
            .map(|t| t.to_rfc3339())
            .unwrap_or_default();
        assert_eq!(p.last_changed(), last_changed);
        assert_eq!(MemberRow::key(p), MemberRow::key(&whole));
        assert_eq!(MemberRow::version(p), MemberRow::version(&whole));
        let ids: Vec<u64> = whole.tags.iter().map(|t| t.id).collect();
        assert_eq!(p.tag_ids(), ids);
        assert_eq!(p.tags_incomplete(), whole.tags_incomplete());
    }
}

#[test]
fn a_projection_of_no_paths_keeps_the_identity_and_skips_the_rest() {
    let projection = Projection::new(&[]);
    let page = projection.decode(page(MEMBERS).as_bytes()).unwrap();
    let ids: Vec<&str> = page.items.iter().map(MemberRow::id).collect();
    assert_eq!(ids, ["h1", "h2", "h3", "h4"]);
    assert_eq!(page.items[0].key(), "c1");
    assert_eq!(page.items[1].key(), "h2", "no contact id: the hash");
    assert_eq!(
        page.items[3].version(),
        i64::MIN,
        "no last_changed sorts first"
    );
    assert_eq!(page.items[0].joined_tags(&projection), None);
}

#[test]
fn completed_tags_replace_the_first_fifty() {
    let projection = Projection::new(&["tags".to_owned()]);
    let body = page(&[
        r#"{"id":"h","email_address":"e@x.y","status":"subscribed","tags_count":3,
            "tags":[{"id":1,"name":"a"}]}"#,
    ]);
    let mut page = projection.decode(body.as_bytes()).unwrap();
    let member = &mut page.items[0];
    assert!(member.tags_incomplete());
    member.set_tags(
        ["a", "b", "c"]
            .iter()
            .zip(1..)
            .map(|(name, id)| MemberTag {
                id,
                name: (*name).to_owned(),
            })
            .collect(),
    );
    assert!(!member.tags_incomplete());
    assert_eq!(member.tag_ids(), [1, 2, 3]);
    assert_eq!(member.joined_tags(&projection).as_deref(), Some("a, b, c"));
}

#[test]
fn what_the_whole_member_refuses_the_projection_refuses() {
    let projection = Projection::new(&[
        "vip".to_owned(),
        "member_rating".to_owned(),
        "timestamp_opt".to_owned(),
        "location.latitude".to_owned(),
    ]);
    for bad in [
        r#"{"email_address":"a@b.c","status":"subscribed"}"#,
        r#"{"id":"h","status":"subscribed"}"#,
        r#"{"id":"h","email_address":"a@b.c"}"#,
        r#"{"id":"h","email_address":"a@b.c","status":"gone"}"#,
        r#"{"id":1,"email_address":"a@b.c","status":"subscribed"}"#,
        r#"{"id":"h","email_address":"a@b.c","status":"subscribed","vip":"yes"}"#,
        r#"{"id":"h","email_address":"a@b.c","status":"subscribed","member_rating":300}"#,
        r#"{"id":"h","email_address":"a@b.c","status":"subscribed","timestamp_opt":"today"}"#,
        r#"{"id":"h","email_address":"a@b.c","status":"subscribed","last_changed":"x"}"#,
        r#"{"id":"h","email_address":"a@b.c","status":"subscribed","location":{"latitude":"n"}}"#,
        r#"{"id":"h","email_address":"a@b.c","status":"subscribed","tags":[{"id":1}]}"#,
    ] {
        assert!(serde_json::from_str::<Member>(bad).is_err(), "{bad}");
        assert!(projection.decode(page(&[bad]).as_bytes()).is_err(), "{bad}");
    }
    assert!(projection.decode(br#"{"total_items":0}"#).is_err());
    assert!(projection.decode(br#"{"members":[]} trailing"#).is_err());
}
