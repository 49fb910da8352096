//! Audiences (`/lists`, `/lists/{list_id}`) and their merge fields
//! (`/lists/{list_id}/merge-fields`).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State as AxumState};
use serde_json::{Value, json};

use super::{Answer, Query, collection, ok, read};
use crate::mailchimp::errors::Problem;
use crate::mailchimp::model::Audience;
use crate::mailchimp::render::collection_links;
use crate::mailchimp::{State, render};

// ----- lists ------------------------------------------------------------------------------------

pub(crate) async fn lists(
    AxumState(state): AxumState<Arc<State>>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let query = Query::parse(raw)?;
    let (count, offset) = query.page()?;
    let include_total = query.flag("include_total_contacts")?;
    let since = query.time("since_date_created")?;
    let before = query.time("before_date_created")?;
    let email = query
        .get("email")
        .map(crate::mailchimp::model::subscriber_hash);
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

pub(crate) async fn list(
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
// ----- merge fields -----------------------------------------------------------------------------

pub(crate) async fn merge_fields(
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
    let chosen: Vec<&crate::mailchimp::model::MergeField> = audience
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

pub(crate) async fn merge_field(
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
