//! Members (`/lists/{list_id}/members`): the filtered, paged list; add, read, upsert, update,
//! archive and delete permanently; a member's tags (`/members/{hash}/tags`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxumState};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Answer, Query, collection, json_body, no_content, now, ok, read, write};
use crate::mailchimp::errors::Problem;
use crate::mailchimp::model::{
    Audience, Data, Member, MemberInput, MemberStatus, SortField, parse_time,
};
use crate::mailchimp::projection::Projection;
use crate::mailchimp::render::{collection_links, link};
use crate::mailchimp::{State, render};

// ----- members ----------------------------------------------------------------------------------

fn parse_status(key: &str, value: &str) -> Result<MemberStatus, Problem> {
    serde_json::from_value(Value::String(value.to_owned())).map_err(|_| {
        Problem::invalid_field(
            key,
            format!("The value `{value}` is not one of: subscribed, unsubscribed, cleaned, pending, transactional, archived."),
        )
    })
}

pub(crate) async fn members(
    AxumState(state): AxumState<Arc<State>>,
    Path(list_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let query = Query::parse(raw)?;
    let (count, offset) = query.page()?;
    let status = query
        .get("status")
        .map(|s| parse_status("status", s))
        .transpose()?;
    let since_changed = query.time("since_last_changed")?;
    let before_changed = query.time("before_last_changed")?;
    let since_opt = query.time("since_timestamp_opt")?;
    let before_opt = query.time("before_timestamp_opt")?;
    let unsubscribed_since = query.time("unsubscribed_since")?;
    if unsubscribed_since.is_some() && status != Some(MemberStatus::Unsubscribed) {
        return Err(Problem::invalid_resource(
            "unsubscribed_since can only be used with status=unsubscribed.",
            Vec::new(),
        ));
    }
    // As the real service answers (seen with `since_last_campaign=False`, MailChimp.Net#589):
    // the parameter's mere presence needs a status.
    if query.get("since_last_campaign").is_some() && status.is_none() {
        return Err(Problem::invalid_resource(
            "Status is required when using since_last_campaign filter.",
            Vec::new(),
        ));
    }
    let vip_only = query.flag("vip_only")?;
    let unique = query.get("unique_email_id");
    let email_type = query.get("email_type");
    let sort_field = match query.get("sort_field") {
        None => None,
        Some(field @ ("timestamp_opt" | "timestamp_signup" | "last_changed")) => {
            Some(SortField::named(field))
        }
        Some(field) => {
            return Err(Problem::invalid_field(
                "sort_field",
                format!(
                    "The value `{field}` is not one of: timestamp_opt, timestamp_signup, last_changed."
                ),
            ));
        }
    };
    let descending = match query.get("sort_dir") {
        None | Some("ASC") => false,
        Some("DESC") => true,
        Some(other) => {
            return Err(Problem::invalid_field(
                "sort_dir",
                format!("The value `{other}` is not one of: ASC, DESC."),
            ));
        }
    };
    let api = state.api_root();
    let archived_by_default = state.list_archived_without_status;
    let data = read(&state);
    let audience = data.audience(&list_id)?;
    let keep = |m: &&Member| {
        let status_ok = match status {
            Some(s) => m.status == s,
            None => archived_by_default || m.status != MemberStatus::Archived,
        };
        status_ok
            && since_changed.is_none_or(|t| m.last_changed >= t)
            && before_changed.is_none_or(|t| m.last_changed <= t)
            && since_opt.is_none_or(|t| m.timestamp_opt.is_some_and(|o| o >= t))
            && before_opt.is_none_or(|t| m.timestamp_opt.is_some_and(|o| o <= t))
            && unsubscribed_since.is_none_or(|t| m.last_changed >= t)
            && (!vip_only || m.vip)
            && unique.is_none_or(|u| m.unique_email_id == u)
            && email_type.is_none_or(|e| m.email_type == e)
    };
    let proj = query.projection();
    let plain = since_changed.is_none()
        && before_changed.is_none()
        && since_opt.is_none()
        && before_opt.is_none()
        && unsubscribed_since.is_none()
        && !vip_only
        && unique.is_none()
        && email_type.is_none();
    let (total, page): (usize, Vec<&Member>) = if plain {
        // A page of a (sorted) listing is a slice of a cached index; descending is the
        // ascending listing reversed, as a stable sort then a reversal gives.
        let sort = sort_field;
        let positions = audience.listing(status, archived_by_default, sort);
        let at = |&i: &u32| audience.members.get(i as usize);
        let page = if descending && sort.is_some() {
            positions
                .iter()
                .rev()
                .skip(offset)
                .take(count)
                .filter_map(at)
                .collect()
        } else {
            positions
                .iter()
                .skip(offset)
                .take(count)
                .filter_map(at)
                .collect()
        };
        (positions.len(), page)
    } else if sort_field.is_some() {
        // The sorted listing is cached until the audience changes; filters apply on top, to
        // the range of it that the bounds on the sort field leave.
        let sorted = audience.listing(status, archived_by_default, sort_field);
        let (lower, upper) = match sort_field {
            Some(SortField::LastChanged) => (since_changed.max(unsubscribed_since), before_changed),
            Some(SortField::TimestampOpt) => (since_opt, before_opt),
            _ => (None, None),
        };
        let sorted = key_range(&sorted, audience, sort_field, lower, upper);
        let order: Box<dyn Iterator<Item = &u32>> = if descending {
            Box::new(sorted.iter().rev())
        } else {
            Box::new(sorted.iter())
        };
        let mut total = 0;
        let mut page = Vec::with_capacity(count.min(sorted.len()));
        for m in order.filter_map(|&i| audience.members.get(i as usize)) {
            if keep(&m) {
                if total >= offset && page.len() < count {
                    page.push(m);
                }
                total += 1;
            }
        }
        (total, page)
    } else {
        let mut total = 0;
        let mut page = Vec::with_capacity(count.min(audience.members.len()));
        for m in audience.members.iter().filter(keep) {
            if total >= offset && page.len() < count {
                page.push(m);
            }
            total += 1;
        }
        (total, page)
    };
    let value = collection(
        proj,
        "members",
        |p| {
            page.iter()
                .map(|m| render::member(&api, audience, m, p))
                .collect()
        },
        total,
        vec![("list_id", Value::String(audience.id.clone()))],
        || {
            collection_links(
                &format!("{api}/lists/{list_id}/members"),
                &format!("{api}/lists/{list_id}"),
                "Lists/Members",
            )
        },
    );
    ok(value)
}

/// The part of a listing sorted (ascending) by `field` whose sort keys lie within `lower..=upper`:
/// a catch-up read (`since_last_changed`, sorted by `last_changed`) is a range of the index, not
/// a scan of it. A superset of what the filters keep (they still apply).
fn key_range<'a>(
    sorted: &'a [u32],
    audience: &Audience,
    field: Option<SortField>,
    lower: Option<DateTime<Utc>>,
    upper: Option<DateTime<Utc>>,
) -> &'a [u32] {
    let Some(field) = field else {
        return sorted;
    };
    let key = |i: &u32| audience.members.get(*i as usize).and_then(|m| field.key(m));
    let start = lower.map_or(0, |t| sorted.partition_point(|i| key(i) < Some(t)));
    let end = upper.map_or(sorted.len(), |t| {
        sorted.partition_point(|i| key(i) <= Some(t))
    });
    sorted.get(start..end.max(start)).unwrap_or_default()
}

/// The writable member fields of POST, PUT and PATCH bodies.
#[derive(Debug, Deserialize)]
struct MemberBody {
    email_address: Option<String>,
    status: Option<String>,
    status_if_new: Option<String>,
    merge_fields: Option<Map<String, Value>>,
    tags: Option<Vec<String>>,
    language: Option<String>,
    vip: Option<bool>,
    email_type: Option<String>,
    timestamp_signup: Option<String>,
    location: Option<LocationBody>,
}

#[derive(Debug, Deserialize)]
struct LocationBody {
    country_code: Option<String>,
}

fn writable_status(key: &str, value: Option<&str>) -> Result<Option<MemberStatus>, Problem> {
    match value {
        None => Ok(None),
        Some(v) => match parse_status(key, v)? {
            MemberStatus::Archived => Err(Problem::invalid_field(
                key,
                "Data presented is not one of the accepted values: subscribed, unsubscribed, cleaned, pending, transactional",
            )),
            s => Ok(Some(s)),
        },
    }
}

fn member_input(body: MemberBody, query: &Query, allow_tags: bool) -> Result<MemberInput, Problem> {
    if let Some(kind) = &body.email_type
        && kind != "html"
        && kind != "text"
    {
        return Err(Problem::invalid_field(
            "email_type",
            "The value must be html or text.",
        ));
    }
    Ok(MemberInput {
        status: writable_status("status", body.status.as_deref())?,
        status_if_new: writable_status("status_if_new", body.status_if_new.as_deref())?,
        email: body.email_address,
        merge_fields: body.merge_fields,
        tags: if allow_tags { body.tags } else { None },
        language: body.language,
        vip: body.vip,
        email_type: body.email_type,
        timestamp_signup: body.timestamp_signup.as_deref().and_then(parse_time),
        country_code: body.location.and_then(|l| l.country_code),
        skip_merge_validation: query.flag("skip_merge_validation")?,
        ..MemberInput::default()
    })
}

fn member_answer(state: &State, data: &Data, list_id: &str, index: usize) -> Answer {
    let api = state.api_root();
    let audience = data.audience(list_id)?;
    ok(render::member(
        &api,
        audience,
        &audience.members[index],
        Projection::all(),
    ))
}

pub(crate) async fn add_member(
    AxumState(state): AxumState<Arc<State>>,
    Path(list_id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Answer {
    let query = Query::parse(raw)?;
    let input = member_input(json_body(&body)?, &query, true)?;
    let mut data = write(&state);
    let (audience, ids) = data.audience_mut(&list_id)?;
    let index = audience.add_member(input, ids, now())?;
    state.changed();
    member_answer(&state, &data, &list_id, index)
}

pub(crate) async fn member(
    AxumState(state): AxumState<Arc<State>>,
    Path((list_id, key)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let query = Query::parse(raw)?;
    let api = state.api_root();
    let data = read(&state);
    let audience = data.audience(&list_id)?;
    let member = audience.member(&key)?;
    ok(render::member(&api, audience, member, query.projection()))
}

pub(crate) async fn put_member(
    AxumState(state): AxumState<Arc<State>>,
    Path((list_id, key)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Answer {
    let query = Query::parse(raw)?;
    let input = member_input(json_body(&body)?, &query, false)?;
    let mut data = write(&state);
    let (audience, ids) = data.audience_mut(&list_id)?;
    let index = audience.upsert_member(&key, input, ids, now())?;
    state.changed();
    member_answer(&state, &data, &list_id, index)
}

pub(crate) async fn patch_member(
    AxumState(state): AxumState<Arc<State>>,
    Path((list_id, key)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Answer {
    let query = Query::parse(raw)?;
    let input = member_input(json_body(&body)?, &query, false)?;
    let mut data = write(&state);
    let (audience, ids) = data.audience_mut(&list_id)?;
    let index = audience.find(&key).ok_or_else(Problem::not_found)?;
    let index = audience.update_member(index, input, ids, now())?;
    state.changed();
    member_answer(&state, &data, &list_id, index)
}

pub(crate) async fn archive_member(
    AxumState(state): AxumState<Arc<State>>,
    Path((list_id, key)): Path<(String, String)>,
) -> Answer {
    let mut data = write(&state);
    let (audience, _) = data.audience_mut(&list_id)?;
    audience.archive(&key, now())?;
    state.changed();
    no_content()
}

pub(crate) async fn delete_permanent(
    AxumState(state): AxumState<Arc<State>>,
    Path((list_id, key)): Path<(String, String)>,
) -> Answer {
    let mut data = write(&state);
    let (audience, _) = data.audience_mut(&list_id)?;
    audience.delete_permanent(&key)?;
    state.changed();
    no_content()
}

pub(crate) async fn member_tags(
    AxumState(state): AxumState<Arc<State>>,
    Path((list_id, key)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let query = Query::parse(raw)?;
    let (count, offset) = query.page()?;
    let api = state.api_root();
    let data = read(&state);
    let audience = data.audience(&list_id)?;
    let member = audience.member(&key)?;
    let tags: Vec<(&crate::mailchimp::model::Tag, DateTime<Utc>)> = member
        .tags
        .iter()
        .filter_map(|(id, at)| audience.tag(*id).map(|t| (t, *at)))
        .collect();
    let value = collection(
        query.projection(),
        "tags",
        |p| {
            tags.iter()
                .skip(offset)
                .take(count)
                .map(|(t, at)| {
                    p.apply(json!({"id": t.id, "name": t.name, "date_added": crate::mailchimp::model::format_time(*at)}))
                })
                .collect()
        },
        tags.len(),
        Vec::new(),
        || {
            let href = format!("{api}/lists/{list_id}/members/{}/tags", member.hash);
            json!([
                link(
                    "self",
                    &href,
                    "GET",
                    Some("Definitions/Lists/Members/Tags/CollectionResponse.json"),
                    None
                ),
                link(
                    "create",
                    &href,
                    "POST",
                    None,
                    Some("Definitions/Lists/Members/Tags/POST.json")
                )
            ])
        },
    );
    ok(value)
}

#[derive(Debug, Deserialize)]
struct TagsBody {
    tags: Option<Vec<TagChange>>,
    #[serde(default)]
    #[allow(dead_code)] // accepted as Mailchimp does; automations are not emulated
    is_syncing: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct TagChange {
    name: String,
    status: String,
}

pub(crate) async fn set_member_tags(
    AxumState(state): AxumState<Arc<State>>,
    Path((list_id, key)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let body: TagsBody = json_body(&body)?;
    let Some(tags) = body.tags else {
        return Err(Problem::missing("tags", "array"));
    };
    let mut changes = Vec::with_capacity(tags.len());
    for tag in tags {
        let active = match tag.status.as_str() {
            "active" => true,
            "inactive" => false,
            other => {
                return Err(Problem::invalid_field(
                    "tags.status",
                    format!(
                        "Data presented is not one of the accepted values: active, inactive (got `{other}`)"
                    ),
                ));
            }
        };
        changes.push((tag.name, active));
    }
    let mut data = write(&state);
    let (audience, ids) = data.audience_mut(&list_id)?;
    audience.set_member_tags(&key, &changes, ids, now())?;
    state.changed();
    no_content()
}
