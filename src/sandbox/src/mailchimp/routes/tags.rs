//! Tags, which the API serves as static segments (`/lists/{list_id}/segments`): list, create,
//! read, rename, delete, batch add / remove members, segment members, and `tag-search`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxumState};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Answer, Query, collection, json_body, no_content, now, ok, read, write};
use crate::mailchimp::errors::Problem;
use crate::mailchimp::model::{Member, MemberStatus};
use crate::mailchimp::projection::Projection;
use crate::mailchimp::render::{collection_links, link};
use crate::mailchimp::{State, render};

// ----- segments (tags) --------------------------------------------------------------------------

fn segment_id(text: &str) -> Result<u64, Problem> {
    text.parse().map_err(|_| Problem::not_found())
}

pub(crate) async fn segments(
    AxumState(state): AxumState<Arc<State>>,
    Path(list_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let query = Query::parse(raw)?;
    let (count, offset) = query.page()?;
    let kind = query.get("type");
    let since_created = query.time("since_created_at")?;
    let before_created = query.time("before_created_at")?;
    let since_updated = query.time("since_updated_at")?;
    let before_updated = query.time("before_updated_at")?;
    let api = state.api_root();
    let data = read(&state);
    let audience = data.audience(&list_id)?;
    // Every segment here is a tag (static); saved and fuzzy segments are not emulated.
    let chosen: Vec<&crate::mailchimp::model::Tag> = audience
        .tags
        .iter()
        .filter(|_| kind.is_none_or(|k| k == "static"))
        .filter(|t| since_created.is_none_or(|s| t.created_at >= s))
        .filter(|t| before_created.is_none_or(|s| t.created_at <= s))
        .filter(|t| since_updated.is_none_or(|s| t.updated_at >= s))
        .filter(|t| before_updated.is_none_or(|s| t.updated_at <= s))
        .collect();
    let value = collection(
        query.projection(),
        "segments",
        |p| {
            chosen
                .iter()
                .skip(offset)
                .take(count)
                .map(|t| render::segment(&api, audience, t, p))
                .collect()
        },
        chosen.len(),
        vec![("list_id", Value::String(audience.id.clone()))],
        || {
            collection_links(
                &format!("{api}/lists/{list_id}/segments"),
                &format!("{api}/lists/{list_id}"),
                "Lists/Segments",
            )
        },
    );
    ok(value)
}

#[derive(Debug, Deserialize)]
struct SegmentBody {
    name: Option<String>,
    static_segment: Option<Vec<String>>,
    options: Option<Value>,
}

pub(crate) async fn create_segment(
    AxumState(state): AxumState<Arc<State>>,
    Path(list_id): Path<String>,
    body: Bytes,
) -> Answer {
    let body: SegmentBody = json_body(&body)?;
    let Some(name) = body.name else {
        return Err(Problem::missing("name", "string"));
    };
    if body.options.is_some() {
        if body.static_segment.is_some() {
            return Err(Problem::bad_request(
                "static_segment and options cannot be combined.",
            ));
        }
        return Err(Problem::bad_request(
            "Saved segments (options) are not emulated by the sandbox; create a tag with static_segment.",
        ));
    }
    let api = state.api_root();
    let mut data = write(&state);
    let (audience, ids) = data.audience_mut(&list_id)?;
    state.changed();
    let id = audience.create_tag(
        &name,
        body.static_segment.as_deref().unwrap_or(&[]),
        ids,
        now(),
    )?;
    let audience = data.audience(&list_id)?;
    let tag = audience.tag(id).ok_or_else(Problem::not_found)?;
    ok(render::segment(&api, audience, tag, Projection::all()))
}

pub(crate) async fn segment(
    AxumState(state): AxumState<Arc<State>>,
    Path((list_id, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let query = Query::parse(raw)?;
    let id = segment_id(&id)?;
    let api = state.api_root();
    let data = read(&state);
    let audience = data.audience(&list_id)?;
    let tag = audience.tag(id).ok_or_else(Problem::not_found)?;
    ok(render::segment(&api, audience, tag, query.projection()))
}

pub(crate) async fn update_segment(
    AxumState(state): AxumState<Arc<State>>,
    Path((list_id, id)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let id = segment_id(&id)?;
    let body: SegmentBody = json_body(&body)?;
    let Some(name) = body.name else {
        return Err(Problem::missing("name", "string"));
    };
    let api = state.api_root();
    let mut data = write(&state);
    let (audience, _) = data.audience_mut(&list_id)?;
    audience.update_tag(id, &name, body.static_segment.as_deref(), now())?;
    state.changed();
    let audience = data.audience(&list_id)?;
    let tag = audience.tag(id).ok_or_else(Problem::not_found)?;
    ok(render::segment(&api, audience, tag, Projection::all()))
}

pub(crate) async fn delete_segment(
    AxumState(state): AxumState<Arc<State>>,
    Path((list_id, id)): Path<(String, String)>,
) -> Answer {
    let id = segment_id(&id)?;
    let mut data = write(&state);
    let (audience, _) = data.audience_mut(&list_id)?;
    audience.delete_tag(id)?;
    state.changed();
    no_content()
}

#[derive(Debug, Deserialize)]
struct BatchBody {
    #[serde(default)]
    members_to_add: Vec<String>,
    #[serde(default)]
    members_to_remove: Vec<String>,
}

pub(crate) async fn batch_segment(
    AxumState(state): AxumState<Arc<State>>,
    Path((list_id, id)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let id = segment_id(&id)?;
    let body: BatchBody = json_body(&body)?;
    for (field, list) in [
        ("members_to_add", &body.members_to_add),
        ("members_to_remove", &body.members_to_remove),
    ] {
        if list.len() > 500 {
            return Err(Problem::invalid_field(
                field,
                "You may add or remove at most 500 members at a time.",
            ));
        }
    }
    let api = state.api_root();
    let mut data = write(&state);
    let (audience, _) = data.audience_mut(&list_id)?;
    if audience.tag(id).is_none() {
        return Err(Problem::not_found());
    }
    let at = now();
    state.changed();
    let (mut added, mut removed, mut missing) = (Vec::new(), Vec::new(), Vec::new());
    for email in &body.members_to_add {
        if audience.tag_member(id, email, at) {
            added.push(email.clone());
        } else {
            missing.push(email.clone());
        }
    }
    for email in &body.members_to_remove {
        if audience.untag_member(id, email, at) {
            removed.push(email.clone());
        } else if audience.find(email).is_none() {
            missing.push(email.clone());
        }
    }
    let audience = data.audience(&list_id)?;
    let render_all = |emails: &[String]| -> Vec<Value> {
        emails
            .iter()
            .filter_map(|e| audience.member(e).ok())
            .map(|m| render::segment_member(&api, audience, m, Projection::all()))
            .collect()
    };
    let errors: Vec<Value> = if missing.is_empty() {
        Vec::new()
    } else {
        vec![
            json!({"email_addresses": missing, "error": "Email addresses are not subscribed to the list."}),
        ]
    };
    ok(json!({
        "members_added": render_all(&added),
        "members_removed": render_all(&removed),
        "errors": errors,
        "total_added": added.len(),
        "total_removed": removed.len(),
        "error_count": missing.len(),
        "_links": [link("self", &format!("{api}/lists/{list_id}/segments/{id}"), "POST", None, None)],
    }))
}

pub(crate) async fn segment_members(
    AxumState(state): AxumState<Arc<State>>,
    Path((list_id, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let query = Query::parse(raw)?;
    let (count, offset) = query.page()?;
    let id = segment_id(&id)?;
    let cleaned = query.flag("include_cleaned")?;
    let transactional = query.flag("include_transactional")?;
    let unsubscribed = query.flag("include_unsubscribed")?;
    let api = state.api_root();
    let data = read(&state);
    let audience = data.audience(&list_id)?;
    if audience.tag(id).is_none() {
        return Err(Problem::not_found());
    }
    let chosen: Vec<&Member> = audience
        .members
        .iter()
        .filter(|m| m.tags.iter().any(|(t, _)| *t == id))
        .filter(|m| match m.status {
            MemberStatus::Subscribed | MemberStatus::Pending => true,
            MemberStatus::Cleaned => cleaned,
            MemberStatus::Transactional => transactional,
            MemberStatus::Unsubscribed => unsubscribed,
            MemberStatus::Archived => false,
        })
        .collect();
    let value = collection(
        query.projection(),
        "members",
        |p| {
            chosen
                .iter()
                .skip(offset)
                .take(count)
                .map(|m| render::segment_member(&api, audience, m, p))
                .collect()
        },
        chosen.len(),
        Vec::new(),
        || {
            json!([link(
                "self",
                &format!("{api}/lists/{list_id}/segments/{id}/members"),
                "GET",
                Some("Definitions/Lists/Segments/Members/CollectionResponse.json"),
                None
            )])
        },
    );
    ok(value)
}

#[derive(Debug, Deserialize)]
struct SegmentMemberBody {
    email_address: Option<String>,
}

pub(crate) async fn add_segment_member(
    AxumState(state): AxumState<Arc<State>>,
    Path((list_id, id)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let id = segment_id(&id)?;
    let body: SegmentMemberBody = json_body(&body)?;
    let Some(email) = body.email_address else {
        return Err(Problem::missing("email_address", "string"));
    };
    let api = state.api_root();
    let mut data = write(&state);
    let (audience, _) = data.audience_mut(&list_id)?;
    if audience.tag(id).is_none() {
        return Err(Problem::not_found());
    }
    state.changed();
    if !audience.tag_member(id, &email, now()) {
        return Err(Problem::bad_request(format!(
            "{email} is not a member of this list."
        )));
    }
    let audience = data.audience(&list_id)?;
    let member = audience.member(&email)?;
    ok(render::segment_member(
        &api,
        audience,
        member,
        Projection::all(),
    ))
}

pub(crate) async fn remove_segment_member(
    AxumState(state): AxumState<Arc<State>>,
    Path((list_id, id, key)): Path<(String, String, String)>,
) -> Answer {
    let id = segment_id(&id)?;
    let mut data = write(&state);
    let (audience, _) = data.audience_mut(&list_id)?;
    state.changed();
    if audience.tag(id).is_none() || !audience.untag_member(id, &key, now()) {
        return Err(Problem::not_found());
    }
    no_content()
}

pub(crate) async fn tag_search(
    AxumState(state): AxumState<Arc<State>>,
    Path(list_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let query = Query::parse(raw)?;
    let prefix = query.get("name").unwrap_or("").to_lowercase();
    let data = read(&state);
    let audience = data.audience(&list_id)?;
    let matching: Vec<&crate::mailchimp::model::Tag> = audience
        .tags
        .iter()
        .filter(|t| t.name.to_lowercase().starts_with(&prefix))
        .collect();
    // As reported for the real endpoint: no paging parameters, at most 10 tags.
    let tags: Vec<Value> = matching
        .iter()
        .take(10)
        .map(|t| json!({"id": t.id, "name": t.name}))
        .collect();
    ok(query
        .projection()
        .apply(json!({"tags": tags, "total_items": matching.len()})))
}
