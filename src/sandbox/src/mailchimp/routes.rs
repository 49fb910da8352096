//! The HTTP handlers of the emulated Marketing API v3, one per operation of the spec, under
//! `/3.0`. Each parses its query and body with Mailchimp's rules (count default 10, at most
//! 1000; `fields` xor `exclude_fields`; problem+json on bad input), reads or changes [`Data`]
//! under the state's lock, and renders the spec's JSON shape.

use std::sync::{Arc, PoisonError};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SubsecRound, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::State;
use super::model::MemberStatus;
use super::model::{Audience, Data, Member, MemberInput, parse_time};
use super::problem::Problem;
use super::projection::{Projection, Tree};
use super::render::{self, collection_links, link};

type Answer = Result<Response, Problem>;

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

/// Parsed query string.
struct Query {
    pairs: Vec<(String, String)>,
    include: Option<Tree>,
    exclude: Option<Tree>,
}

impl Query {
    fn parse(raw: Option<String>) -> Result<Self, Problem> {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let include = get("fields").map(|f| Tree::parse(&f));
        let exclude = get("exclude_fields").map(|f| Tree::parse(&f));
        if include.is_some() && exclude.is_some() {
            return Err(Problem::bad_request(
                "The fields and exclude_fields parameters are mutually exclusive.",
            ));
        }
        Ok(Self {
            pairs,
            include,
            exclude,
        })
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn projection(&self) -> Projection<'_> {
        Projection::new(self.include.as_ref(), self.exclude.as_ref())
    }

    fn number(&self, key: &str, default: usize) -> Result<usize, Problem> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.parse::<usize>().map_err(|_| {
                Problem::invalid_field(
                    key,
                    format!("The value `{v}` is not a non-negative integer."),
                )
            }),
        }
    }

    /// `(count, offset)`: count defaults to 10 and is capped at 1000 without an error, as the
    /// real service does (a `count=3000` gets 1000 members: thorning/node-mailchimp#61).
    fn page(&self) -> Result<(usize, usize), Problem> {
        Ok((
            self.number("count", 10)?.min(1000),
            self.number("offset", 0)?,
        ))
    }

    fn flag(&self, key: &str) -> Result<bool, Problem> {
        match self.get(key) {
            None => Ok(false),
            Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(v) => Err(Problem::invalid_field(
                key,
                format!("The value `{v}` is not a boolean."),
            )),
        }
    }

    fn time(&self, key: &str) -> Result<Option<DateTime<Utc>>, Problem> {
        self.get(key)
            .map(|v| {
                parse_time(v).ok_or_else(|| {
                    Problem::invalid_field(
                        key,
                        format!("The value `{v}` is not an ISO 8601 date-time."),
                    )
                })
            })
            .transpose()
    }
}

fn read(state: &State) -> std::sync::RwLockReadGuard<'_, Data> {
    state.data.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(state: &State) -> std::sync::RwLockWriteGuard<'_, Data> {
    state.data.write().unwrap_or_else(PoisonError::into_inner)
}

fn json_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Problem> {
    if body.is_empty() {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "JSON Parse Exception",
            "We encountered an unspecified JSON parsing error.",
        ));
    }
    serde_json::from_slice(body).map_err(|err| {
        if err.is_data() {
            Problem::invalid_resource(
                "The resource submitted could not be validated. For field-specific details, see the 'errors' array.",
                vec![super::problem::FieldError {
                    field: String::new(),
                    message: err.to_string(),
                }],
            )
        } else {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "JSON Parse Exception",
                "We encountered an unspecified JSON parsing error.",
            )
        }
    })
}

fn ok(value: Value) -> Answer {
    Ok(Json(value).into_response())
}

fn no_content() -> Answer {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A page of a collection: `{<key>: items, total_items, _links}` plus extra top-level fields.
fn collection(
    proj: Projection<'_>,
    key: &str,
    items: impl FnOnce(Projection<'_>) -> Vec<Value>,
    total: usize,
    extra: Vec<(&str, Value)>,
    links: impl FnOnce() -> Value,
) -> Value {
    let mut map = Map::new();
    if let Some(sub) = proj.child(key) {
        map.insert(key.to_owned(), Value::Array(items(sub)));
    }
    for (k, v) in extra {
        if let Some(sub) = proj.child(k) {
            map.insert(k.to_owned(), sub.apply(v));
        }
    }
    if proj.child("total_items").is_some() {
        map.insert("total_items".into(), total.into());
    }
    if let Some(sub) = proj.child("_links") {
        map.insert("_links".into(), sub.apply(links()));
    }
    Value::Object(map)
}

// ----- root -------------------------------------------------------------------------------------

pub(super) async fn ping() -> Answer {
    ok(json!({"health_status": "Everything's Chimpy!"}))
}

pub(super) async fn root(
    AxumState(state): AxumState<Arc<State>>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let query = Query::parse(raw)?;
    let api = state.api_root();
    let data = read(&state);
    let total: usize = data.audiences.iter().map(|a| a.members.len()).sum();
    let value = json!({
        "account_id": "5a4d5a4d5a4d5a4d5a4d5a4d5",
        "login_id": "100000001",
        "account_name": "audience-sync sandbox",
        "email": "owner@example.com",
        "first_name": "Sandbox",
        "last_name": "Owner",
        "username": "sandbox",
        "avatar_url": "",
        "role": "owner",
        "member_since": "2020-01-01T00:00:00+00:00",
        "pricing_plan_type": "monthly",
        "account_timezone": "UTC",
        "account_industry": "Software",
        "contact": {"company": "Sandbox Inc.", "addr1": "1 Sandbox Way", "addr2": "", "city": "Atlanta", "state": "GA", "zip": "30308", "country": "US"},
        "pro_enabled": false,
        "last_login": "2026-01-01T00:00:00+00:00",
        "total_subscribers": total,
        "_links": [link("self", &format!("{api}/"), "GET", Some("Definitions/Root/Response.json"), None),
                   link("lists", &format!("{api}/lists"), "GET", Some("Definitions/Lists/CollectionResponse.json"), None)],
    });
    ok(query.projection().apply(value))
}

// ----- lists ------------------------------------------------------------------------------------

pub(super) async fn lists(
    AxumState(state): AxumState<Arc<State>>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let query = Query::parse(raw)?;
    let (count, offset) = query.page()?;
    let include_total = query.flag("include_total_contacts")?;
    let since = query.time("since_date_created")?;
    let before = query.time("before_date_created")?;
    let email = query.get("email").map(super::model::subscriber_hash);
    let api = state.api_root();
    let data = read(&state);
    let mut chosen: Vec<&Audience> = data
        .audiences
        .iter()
        .filter(|a| since.is_none_or(|t| a.date_created >= t))
        .filter(|a| before.is_none_or(|t| a.date_created <= t))
        .filter(|a| email.as_ref().is_none_or(|h| a.index.contains_key(h)))
        .collect();
    if query.get("sort_field") == Some("date_created") {
        chosen.sort_by_key(|a| a.date_created);
        if query.get("sort_dir") == Some("DESC") {
            chosen.reverse();
        }
    }
    let total = chosen.len();
    let value = collection(
        query.projection(),
        "lists",
        |p| {
            chosen
                .iter()
                .skip(offset)
                .take(count)
                .map(|a| render::list(&api, a, include_total, p))
                .collect()
        },
        total,
        vec![(
            "constraints",
            json!({"may_create": true, "max_instances": 100, "current_total_instances": data.audiences.len()}),
        )],
        || collection_links(&format!("{api}/lists"), &format!("{api}/"), "Lists"),
    );
    ok(value)
}

pub(super) async fn list(
    AxumState(state): AxumState<Arc<State>>,
    Path(list_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let query = Query::parse(raw)?;
    let include_total = query.flag("include_total_contacts")?;
    let api = state.api_root();
    let data = read(&state);
    let audience = data.audience(&list_id)?;
    ok(render::list(
        &api,
        audience,
        include_total,
        query.projection(),
    ))
}

// ----- members ----------------------------------------------------------------------------------

fn parse_status(key: &str, value: &str) -> Result<MemberStatus, Problem> {
    serde_json::from_value(Value::String(value.to_owned())).map_err(|_| {
        Problem::invalid_field(
            key,
            format!("The value `{value}` is not one of: subscribed, unsubscribed, cleaned, pending, transactional, archived."),
        )
    })
}

pub(super) async fn members(
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
    let sort_field = query.get("sort_field");
    if let Some(field) = sort_field
        && !matches!(field, "timestamp_opt" | "timestamp_signup" | "last_changed")
    {
        return Err(Problem::invalid_field(
            "sort_field",
            format!(
                "The value `{field}` is not one of: timestamp_opt, timestamp_signup, last_changed."
            ),
        ));
    }
    let descending = query.get("sort_dir") == Some("DESC");
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
    let (total, page): (usize, Vec<&Member>) = if plain && sort_field.is_none() {
        let positions = audience.positions(status, archived_by_default);
        let page = positions
            .iter()
            .skip(offset)
            .take(count)
            .filter_map(|&i| audience.members.get(i as usize))
            .collect();
        (positions.len(), page)
    } else if let Some(field) = sort_field {
        let mut chosen: Vec<&Member> = audience.members.iter().filter(keep).collect();
        chosen.sort_by_key(|m| match field {
            "timestamp_opt" => m.timestamp_opt,
            "timestamp_signup" => m.timestamp_signup,
            _ => Some(m.last_changed),
        });
        if descending {
            chosen.reverse();
        }
        (
            chosen.len(),
            chosen.into_iter().skip(offset).take(count).collect(),
        )
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

pub(super) async fn add_member(
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

pub(super) async fn member(
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

pub(super) async fn put_member(
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

pub(super) async fn patch_member(
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

pub(super) async fn archive_member(
    AxumState(state): AxumState<Arc<State>>,
    Path((list_id, key)): Path<(String, String)>,
) -> Answer {
    let mut data = write(&state);
    let (audience, _) = data.audience_mut(&list_id)?;
    audience.archive(&key, now())?;
    state.changed();
    no_content()
}

pub(super) async fn delete_permanent(
    AxumState(state): AxumState<Arc<State>>,
    Path((list_id, key)): Path<(String, String)>,
) -> Answer {
    let mut data = write(&state);
    let (audience, _) = data.audience_mut(&list_id)?;
    audience.delete_permanent(&key)?;
    state.changed();
    no_content()
}

pub(super) async fn member_tags(
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
    let tags: Vec<(&super::model::Tag, DateTime<Utc>)> = member
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
                    p.apply(json!({"id": t.id, "name": t.name, "date_added": super::model::format_time(*at)}))
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

pub(super) async fn set_member_tags(
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

// ----- segments (tags) --------------------------------------------------------------------------

fn segment_id(text: &str) -> Result<u64, Problem> {
    text.parse().map_err(|_| Problem::not_found())
}

pub(super) async fn segments(
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
    let chosen: Vec<&super::model::Tag> = audience
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

pub(super) async fn create_segment(
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

pub(super) async fn segment(
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

pub(super) async fn update_segment(
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

pub(super) async fn delete_segment(
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

pub(super) async fn batch_segment(
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

pub(super) async fn segment_members(
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

pub(super) async fn add_segment_member(
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

pub(super) async fn remove_segment_member(
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

pub(super) async fn tag_search(
    AxumState(state): AxumState<Arc<State>>,
    Path(list_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let query = Query::parse(raw)?;
    let prefix = query.get("name").unwrap_or("").to_lowercase();
    let data = read(&state);
    let audience = data.audience(&list_id)?;
    let matching: Vec<&super::model::Tag> = audience
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

// ----- merge fields -----------------------------------------------------------------------------

pub(super) async fn merge_fields(
    AxumState(state): AxumState<Arc<State>>,
    Path(list_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let query = Query::parse(raw)?;
    let (count, offset) = query.page()?;
    let kind = query.get("type");
    let required = match query.get("required") {
        None => None,
        Some(_) => Some(query.flag("required")?),
    };
    let api = state.api_root();
    let data = read(&state);
    let audience = data.audience(&list_id)?;
    let chosen: Vec<&super::model::MergeField> = audience
        .merge_fields
        .iter()
        .filter(|f| kind.is_none_or(|k| f.field_type == k))
        .filter(|f| required.is_none_or(|r| f.required == r))
        .collect();
    let value = collection(
        query.projection(),
        "merge_fields",
        |p| {
            chosen
                .iter()
                .skip(offset)
                .take(count)
                .map(|f| render::merge_field(&api, &list_id, f, p))
                .collect()
        },
        chosen.len(),
        vec![("list_id", Value::String(audience.id.clone()))],
        || {
            collection_links(
                &format!("{api}/lists/{list_id}/merge-fields"),
                &format!("{api}/lists/{list_id}"),
                "Lists/MergeFields",
            )
        },
    );
    ok(value)
}

pub(super) async fn merge_field(
    AxumState(state): AxumState<Arc<State>>,
    Path((list_id, merge_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let query = Query::parse(raw)?;
    let api = state.api_root();
    let data = read(&state);
    let audience = data.audience(&list_id)?;
    let field = audience
        .merge_fields
        .iter()
        .find(|f| f.merge_id.to_string() == merge_id)
        .ok_or_else(Problem::not_found)?;
    ok(render::merge_field(
        &api,
        &list_id,
        field,
        query.projection(),
    ))
}

// ----- fallbacks --------------------------------------------------------------------------------

pub(super) async fn unknown_path() -> Problem {
    Problem::not_found()
}

pub(super) async fn wrong_method() -> Problem {
    let mut problem = Problem::triggered("MethodNotAllowed").unwrap_or_else(Problem::not_found);
    problem.allow = None;
    problem
}
