//! The JSON shapes of the spec: member, segment member, list, segment (tag), merge field, member
//! tag, with `_links` (`rel`, `href`, `method`, `targetSchema`, `schema`). Date-time fields are
//! left out rather than sent empty, so every value matches its schema's format, except a
//! member's `timestamp_signup`, which the real API sends as `""` when unset (imported members)
//! and clients must read. A member's `merge_fields` hold every merge field of the audience. Renderers take a
//! [`Projection`] and build only what it keeps.

use serde_json::{Map, Value, json};

use super::model::MemberStatus;
use super::model::{Audience, Member, MergeField, Tag, format_time};
use super::projection::{Projection, put};

const SCHEMA_ROOT: &str = "https://us21.api.mailchimp.com/schema/3.0";

/// One `_links` item.
#[must_use]
pub fn link(
    rel: &str,
    href: &str,
    method: &str,
    target: Option<&str>,
    schema: Option<&str>,
) -> Value {
    let mut map = Map::new();
    map.insert("rel".into(), rel.into());
    map.insert("href".into(), href.into());
    map.insert("method".into(), method.into());
    if let Some(target) = target {
        map.insert(
            "targetSchema".into(),
            format!("{SCHEMA_ROOT}/{target}").into(),
        );
    }
    if let Some(schema) = schema {
        map.insert("schema".into(), format!("{SCHEMA_ROOT}/{schema}").into());
    }
    Value::Object(map)
}

/// The `_links` of a collection at `href`.
#[must_use]
pub fn collection_links(href: &str, parent: &str, item_schema: &str) -> Value {
    json!([
        link(
            "self",
            href,
            "GET",
            Some(&format!(
                "Definitions/{item_schema}/CollectionResponse.json"
            )),
            Some("Paths/Lists/Collection.json")
        ),
        link("parent", parent, "GET", None, None),
        link(
            "create",
            href,
            "POST",
            Some(&format!("Definitions/{item_schema}/Response.json")),
            Some(&format!("Definitions/{item_schema}/POST.json"))
        ),
    ])
}

fn status_str(status: MemberStatus) -> &'static str {
    status.as_str()
}

/// A member's `merge_fields`: every merge field of the audience, `""` when empty (an unset
/// `ADDRESS` too, which is an object when set), as the real API answers (the merge-fields
/// guide, /work/shared/docs); values stored for tags the audience no longer has are not shown.
fn merge_fields(audience: &Audience, m: &Member) -> Value {
    Value::Object(
        audience
            .merge_fields
            .iter()
            .map(|f| {
                let value = match m.merge_fields.get(&f.tag) {
                    None | Some(Value::Null) => Value::String(String::new()),
                    Some(v) => v.clone(),
                };
                (f.tag.clone(), value)
            })
            .collect(),
    )
}

/// A member as `GET /lists/{list_id}/members/{subscriber_hash}` returns it.
#[must_use]
pub fn member(api: &str, audience: &Audience, m: &Member, proj: Projection<'_>) -> Value {
    let mut map = Map::new();
    put(&mut map, proj, "id", || m.hash.clone().into());
    put(&mut map, proj, "email_address", || m.email.clone().into());
    put(&mut map, proj, "unique_email_id", || {
        m.unique_email_id.clone().into()
    });
    put(&mut map, proj, "contact_id", || m.contact_id.clone().into());
    put(&mut map, proj, "full_name", || full_name(m).into());
    put(&mut map, proj, "web_id", || m.web_id.into());
    put(&mut map, proj, "email_type", || m.email_type.clone().into());
    put(&mut map, proj, "status", || status_str(m.status).into());
    if let Some(reason) = &m.unsubscribe_reason {
        put(&mut map, proj, "unsubscribe_reason", || {
            reason.clone().into()
        });
    }
    put(&mut map, proj, "consents_to_one_to_one_messaging", || {
        true.into()
    });
    put_profile(&mut map, proj, audience, m);
    put(&mut map, proj, "location", || location(m));
    put(&mut map, proj, "source", || m.source.clone().into());
    put(&mut map, proj, "tags_count", || m.tags.len().into());
    put(&mut map, proj, "tags", || {
        // A member object carries at most 50 tags; the rest only through …/tags.
        Value::Array(
            m.tags
                .iter()
                .take(50)
                .filter_map(|(id, _)| audience.tag(*id))
                .map(|t| json!({"id": t.id, "name": t.name}))
                .collect(),
        )
    });
    put(&mut map, proj, "list_id", || audience.id.clone().into());
    put(&mut map, proj, "_links", || {
        let href = format!("{api}/lists/{}/members/{}", audience.id, m.hash);
        let parent = format!("{api}/lists/{}/members", audience.id);
        json!([
            link(
                "self",
                &href,
                "GET",
                Some("Definitions/Lists/Members/Response.json"),
                Some("Paths/Lists/Members/Instance.json")
            ),
            link(
                "parent",
                &parent,
                "GET",
                Some("Definitions/Lists/Members/CollectionResponse.json"),
                Some("Paths/Lists/Members/Collection.json")
            ),
            link(
                "update",
                &href,
                "PATCH",
                Some("Definitions/Lists/Members/Response.json"),
                Some("Definitions/Lists/Members/PATCH.json")
            ),
            link(
                "upsert",
                &href,
                "PUT",
                Some("Definitions/Lists/Members/Response.json"),
                Some("Definitions/Lists/Members/PUT.json")
            ),
            link("delete", &href, "DELETE", None, None),
            link(
                "tags",
                &format!("{href}/tags"),
                "GET",
                Some("Definitions/Lists/Members/Tags/CollectionResponse.json"),
                None
            ),
            link(
                "delete_permanent",
                &format!("{href}/actions/delete-permanent"),
                "POST",
                None,
                None
            ),
        ])
    });
    Value::Object(map)
}

/// The fields both member shapes share, from `merge_fields` to `email_client`, in the spec's
/// order.
fn put_profile(
    map: &mut Map<String, Value>,
    proj: Projection<'_>,
    audience: &Audience,
    m: &Member,
) {
    put(map, proj, "merge_fields", || merge_fields(audience, m));
    put(
        map,
        proj,
        "stats",
        || json!({"avg_open_rate": 0, "avg_click_rate": 0}),
    );
    put(map, proj, "ip_signup", || "".into());
    put(map, proj, "timestamp_signup", || {
        m.timestamp_signup
            .map_or_else(|| "".into(), |t| format_time(t).into())
    });
    put(map, proj, "ip_opt", || "".into());
    if let Some(t) = m.timestamp_opt {
        put(map, proj, "timestamp_opt", || format_time(t).into());
    }
    put(map, proj, "member_rating", || 2.into());
    put(map, proj, "last_changed", || {
        format_time(m.last_changed).into()
    });
    put(map, proj, "language", || m.language.clone().into());
    put(map, proj, "vip", || m.vip.into());
    put(map, proj, "email_client", || "".into());
}

/// A member as the segment-members collection returns it (a smaller shape, no tags).
#[must_use]
pub fn segment_member(api: &str, audience: &Audience, m: &Member, proj: Projection<'_>) -> Value {
    let mut map = Map::new();
    put(&mut map, proj, "id", || m.hash.clone().into());
    put(&mut map, proj, "email_address", || m.email.clone().into());
    put(&mut map, proj, "unique_email_id", || {
        m.unique_email_id.clone().into()
    });
    put(&mut map, proj, "email_type", || m.email_type.clone().into());
    put(&mut map, proj, "status", || status_str(m.status).into());
    put_profile(&mut map, proj, audience, m);
    put(&mut map, proj, "location", || {
        let mut loc = location(m);
        if let Some(obj) = loc.as_object_mut() {
            obj.remove("region");
        }
        loc
    });
    put(&mut map, proj, "list_id", || audience.id.clone().into());
    put(&mut map, proj, "_links", || {
        let href = format!("{api}/lists/{}/members/{}", audience.id, m.hash);
        json!([link(
            "self",
            &href,
            "GET",
            Some("Definitions/Lists/Members/Response.json"),
            None
        )])
    });
    Value::Object(map)
}

fn full_name(m: &Member) -> String {
    let part = |k: &str| {
        m.merge_fields
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_owned()
    };
    let (first, last) = (part("FNAME"), part("LNAME"));
    format!("{first} {last}").trim().to_owned()
}

fn location(m: &Member) -> Value {
    json!({
        "latitude": m.location.latitude,
        "longitude": m.location.longitude,
        "gmtoff": 0,
        "dstoff": 0,
        "country_code": m.location.country_code,
        "timezone": m.location.timezone,
        "region": "",
    })
}

/// An audience as `GET /lists/{list_id}` returns it.
#[must_use]
pub fn list(api: &str, audience: &Audience, include_total: bool, proj: Projection<'_>) -> Value {
    let mut map = Map::new();
    let slug = &audience.id;
    put(&mut map, proj, "id", || audience.id.clone().into());
    put(&mut map, proj, "web_id", || audience.web_id.into());
    put(&mut map, proj, "name", || audience.name.clone().into());
    put(&mut map, proj, "contact", || {
        json!({"company": "Sandbox Inc.", "address1": "1 Sandbox Way", "address2": "", "city": "Atlanta",
               "state": "GA", "zip": "30308", "country": "US", "phone": ""})
    });
    put(&mut map, proj, "permission_reminder", || {
        "You signed up on our website.".into()
    });
    put(&mut map, proj, "use_archive_bar", || true.into());
    put(
        &mut map,
        proj,
        "campaign_defaults",
        || json!({"from_name": "Sandbox", "from_email": "news@example.com", "subject": "", "language": "en"}),
    );
    put(&mut map, proj, "notify_on_subscribe", || "".into());
    put(&mut map, proj, "notify_on_unsubscribe", || "".into());
    put(&mut map, proj, "date_created", || {
        format_time(audience.date_created).into()
    });
    put(&mut map, proj, "list_rating", || 0.into());
    put(&mut map, proj, "email_type_option", || false.into());
    put(&mut map, proj, "subscribe_url_short", || {
        format!("https://eepurl.com/{slug}").into()
    });
    put(&mut map, proj, "subscribe_url_long", || {
        format!("https://sandbox.us21.list-manage.com/subscribe?u=0&id={slug}").into()
    });
    put(&mut map, proj, "beamer_address", || {
        format!("us21-{slug}@inbound.mailchimp.com").into()
    });
    put(&mut map, proj, "visibility", || "prv".into());
    put(&mut map, proj, "double_optin", || false.into());
    put(&mut map, proj, "has_welcome", || false.into());
    put(&mut map, proj, "marketing_permissions", || false.into());
    put(&mut map, proj, "modules", || json!([]));
    put(&mut map, proj, "stats", || {
        let s = audience.counts();
        let mut stats = json!({
            "member_count": s.subscribed,
            "unsubscribe_count": s.unsubscribed,
            "cleaned_count": s.cleaned,
            "member_count_since_send": s.subscribed,
            "unsubscribe_count_since_send": s.unsubscribed,
            "cleaned_count_since_send": s.cleaned,
            "campaign_count": 0,
            "merge_field_count": audience.merge_fields.len(),
            "avg_sub_rate": 0,
            "avg_unsub_rate": 0,
            "target_sub_rate": 0,
            "open_rate": 0,
            "click_rate": 0,
        });
        if include_total && let Some(obj) = stats.as_object_mut() {
            obj.insert("total_contacts".into(), s.total.into());
        }
        stats
    });
    put(&mut map, proj, "_links", || {
        let href = format!("{api}/lists/{}", audience.id);
        json!([
            link(
                "self",
                &href,
                "GET",
                Some("Definitions/Lists/Response.json"),
                Some("Paths/Lists/Instance.json")
            ),
            link(
                "parent",
                &format!("{api}/lists"),
                "GET",
                Some("Definitions/Lists/CollectionResponse.json"),
                Some("Paths/Lists/Collection.json")
            ),
            link(
                "members",
                &format!("{href}/members"),
                "GET",
                Some("Definitions/Lists/Members/CollectionResponse.json"),
                Some("Paths/Lists/Members/Collection.json")
            ),
            link(
                "segments",
                &format!("{href}/segments"),
                "GET",
                Some("Definitions/Lists/Segments/CollectionResponse.json"),
                Some("Paths/Lists/Segments/Collection.json")
            ),
            link(
                "merge-fields",
                &format!("{href}/merge-fields"),
                "GET",
                Some("Definitions/Lists/MergeFields/CollectionResponse.json"),
                Some("Paths/Lists/MergeFields/Collection.json")
            ),
        ])
    });
    Value::Object(map)
}

/// A tag as `GET /lists/{list_id}/segments/{segment_id}` returns it.
#[must_use]
pub fn segment(api: &str, audience: &Audience, tag: &Tag, proj: Projection<'_>) -> Value {
    let mut map = Map::new();
    put(&mut map, proj, "id", || tag.id.into());
    put(&mut map, proj, "name", || tag.name.clone().into());
    put(&mut map, proj, "member_count", || {
        audience.tag_member_count(tag.id).into()
    });
    put(&mut map, proj, "type", || "static".into());
    put(&mut map, proj, "created_at", || {
        format_time(tag.created_at).into()
    });
    put(&mut map, proj, "updated_at", || {
        format_time(tag.updated_at).into()
    });
    put(&mut map, proj, "list_id", || audience.id.clone().into());
    put(&mut map, proj, "_links", || {
        let href = format!("{api}/lists/{}/segments/{}", audience.id, tag.id);
        json!([
            link(
                "self",
                &href,
                "GET",
                Some("Definitions/Lists/Segments/Response.json"),
                None
            ),
            link(
                "parent",
                &format!("{api}/lists/{}/segments", audience.id),
                "GET",
                Some("Definitions/Lists/Segments/CollectionResponse.json"),
                None
            ),
            link("delete", &href, "DELETE", None, None),
            link(
                "update",
                &href,
                "PATCH",
                Some("Definitions/Lists/Segments/Response.json"),
                Some("Definitions/Lists/Segments/PATCH.json")
            ),
            link(
                "members",
                &format!("{href}/members"),
                "GET",
                Some("Definitions/Lists/Segments/Members/CollectionResponse.json"),
                None
            ),
        ])
    });
    Value::Object(map)
}

/// A merge field as `GET /lists/{list_id}/merge-fields/{merge_id}` returns it.
#[must_use]
pub fn merge_field(api: &str, list_id: &str, f: &MergeField, proj: Projection<'_>) -> Value {
    let mut map = Map::new();
    put(&mut map, proj, "merge_id", || f.merge_id.into());
    put(&mut map, proj, "tag", || f.tag.clone().into());
    put(&mut map, proj, "name", || f.name.clone().into());
    put(&mut map, proj, "type", || f.field_type.clone().into());
    put(&mut map, proj, "required", || f.required.into());
    put(&mut map, proj, "default_value", || "".into());
    put(&mut map, proj, "public", || true.into());
    put(&mut map, proj, "display_order", || f.display_order.into());
    put(&mut map, proj, "options", || match f.field_type.as_str() {
        "address" => json!({"default_country": 164}),
        "phone" => json!({"phone_format": "none"}),
        "birthday" => json!({"date_format": "MM/DD"}),
        "text" => json!({"size": 25}),
        _ => json!({}),
    });
    put(&mut map, proj, "help_text", || "".into());
    put(&mut map, proj, "list_id", || list_id.into());
    put(&mut map, proj, "_links", || {
        let href = format!("{api}/lists/{list_id}/merge-fields/{}", f.merge_id);
        json!([
            link(
                "self",
                &href,
                "GET",
                Some("Definitions/Lists/MergeFields/Response.json"),
                None
            ),
            link(
                "parent",
                &format!("{api}/lists/{list_id}/merge-fields"),
                "GET",
                Some("Definitions/Lists/MergeFields/CollectionResponse.json"),
                None
            ),
        ])
    });
    Value::Object(map)
}
