//! The HTTP handlers of the emulated Marketing API v3, one per operation of the spec, under
//! `/3.0`. Each parses its query and body with Mailchimp's rules (count default 10, at most
//! 1000; `fields` xor `exclude_fields`; problem+json on bad input), reads or changes [`Data`]
//! under the state's lock, and renders the spec's JSON shape.

mod audiences;
mod list_members;
mod tags;

pub(super) use self::audiences::*;
pub(super) use self::list_members::*;
pub(super) use self::tags::*;

use std::sync::{Arc, PoisonError};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SubsecRound, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::State;
use super::errors::Problem;
use super::model::{Data, parse_time};
use super::projection::{Projection, Tree};
use super::render::link;

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
                vec![super::errors::FieldError {
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

// ----- fallbacks --------------------------------------------------------------------------------

pub(super) async fn unknown_path() -> Problem {
    Problem::not_found()
}

pub(super) async fn wrong_method() -> Problem {
    let mut problem = Problem::triggered("MethodNotAllowed").unwrap_or_else(Problem::not_found);
    problem.allow = None;
    problem
}
