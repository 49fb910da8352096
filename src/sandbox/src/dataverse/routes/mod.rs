//! The Web API's data operations, independent of the HTTP server: one [`ApiRequest`] in, one
//! [`ApiResponse`] out, against the store. The axum routes and each part of a `$batch` both come
//! through [`handle`], so a request behaves the same alone and inside a batch.
//!
//! Served: collections (`GET` with query options and paging), single rows (`GET`, `PATCH`
//! update/upsert with `If-Match`/`If-None-Match`, `DELETE`), create (`POST`, client-chosen ids,
//! `Prefer: return=representation`), navigation collections, `$ref` associate/disassociate,
//! `@odata.bind`, the list actions (`AddMemberList`, `RemoveMemberList`, `AddListMembersList`),
//! the bulk actions (`CreateMultiple`, `UpdateMultiple`, `UpsertMultiple`, atomic), `WhoAmI`,
//! `$count`, and (through `metadata.rs`) the metadata endpoints.

mod actions;
mod keys;
mod reads;
mod refs;
mod writes;

use std::collections::HashMap;

use serde_json::{Value, json};

use super::errors::DvError;
use super::store::Store;
use super::{metadata, query};
use actions::{add_list_members_list, bound_action, bulk, principal_access};
use keys::resolve_key;
use reads::{collection, navigation, single};
use refs::reference;
use writes::{check_if_match, create, upsert};

/// One request to `/api/data/v9.2/...`.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// Method, upper case.
    pub method: String,
    /// The path after `/api/data/v9.2/`, percent-decoded.
    pub path: String,
    /// Query pairs, decoded.
    pub query: Vec<(String, String)>,
    /// Headers, names lower case.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl ApiRequest {
    /// A header's value.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The parsed `Prefer` header.
    #[must_use]
    pub fn prefer(&self) -> Prefer {
        Prefer::parse(
            &self
                .headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("prefer"))
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
                .join(","),
        )
    }
}

/// The `Prefer` preferences the service understands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prefer {
    /// `odata.maxpagesize=N`.
    pub max_page_size: Option<usize>,
    /// `return=representation`.
    pub representation: bool,
    /// `odata.continue-on-error`.
    pub continue_on_error: bool,
    /// `odata.include-annotations=...`.
    pub annotations: Option<String>,
}

impl Prefer {
    /// Parse a (comma-joined) `Prefer` value.
    #[must_use]
    pub fn parse(text: &str) -> Self {
        let mut out = Self::default();
        for item in text.split(',').map(str::trim) {
            let (key, value) = item.split_once('=').unwrap_or((item, ""));
            match key.trim() {
                "odata.maxpagesize" => out.max_page_size = value.trim().parse().ok(),
                "return" if value.trim() == "representation" => out.representation = true,
                "odata.continue-on-error" => out.continue_on_error = true,
                "odata.include-annotations" => {
                    out.annotations = Some(value.trim().trim_matches('"').to_owned());
                }
                _ => {}
            }
        }
        out
    }
}

/// The content type of JSON answers.
pub(super) const JSON: &str = "application/json; odata.metadata=minimal";

/// One answer.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// Status.
    pub status: u16,
    /// Headers beyond the standard ones.
    pub headers: Vec<(String, String)>,
    /// Content type and body.
    pub body: Option<(String, Vec<u8>)>,
    /// Data operations done (the entitlement count).
    pub ops: u64,
}

impl ApiResponse {
    /// 200/201 with JSON.
    #[must_use]
    pub fn json(status: u16, value: &Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Some((
                JSON.to_owned(),
                serde_json::to_vec(value).unwrap_or_default(),
            )),
            ops: 1,
        }
    }

    /// 204.
    #[must_use]
    pub fn no_content() -> Self {
        Self {
            status: 204,
            headers: Vec::new(),
            body: None,
            ops: 1,
        }
    }

    /// An error answer.
    #[must_use]
    pub fn error(err: &DvError) -> Self {
        let mut out = Self::json(err.status, &err.body());
        out.ops = 0;
        out
    }

    /// Add a header.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: String) -> Self {
        self.headers.push((name.to_owned(), value));
        self
    }

    /// Whether this is a success (2xx).
    #[must_use]
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Where the service is served (for `@odata.context`, `OData-EntityId`, nextLinks).
#[derive(Debug, Clone)]
pub struct Ctx {
    /// `http://127.0.0.1:PORT` (the environment URL).
    pub base: String,
}

impl Ctx {
    /// `{base}/api/data/v9.2/`.
    #[must_use]
    pub fn root(&self) -> String {
        format!("{}/api/data/v9.2/", self.base)
    }
}

/// One path segment: `name` or `name(key)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// The name.
    pub name: String,
    /// The text inside the parentheses.
    pub key: Option<String>,
}

/// Split a path into segments (slashes inside parentheses or quotes do not split).
#[must_use]
pub fn segments(path: &str) -> Vec<Segment> {
    let mut parts = Vec::new();
    let mut depth = 0_i32;
    let mut quoted = false;
    let mut current = String::new();
    for c in path.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                current.push(c);
            }
            '(' if !quoted => {
                depth += 1;
                current.push(c);
            }
            ')' if !quoted => {
                depth -= 1;
                current.push(c);
            }
            '/' if depth == 0 && !quoted => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(|p| match p.find('(') {
            Some(i) if p.ends_with(')') => Segment {
                name: p[..i].to_owned(),
                key: Some(p[i + 1..p.len() - 1].to_owned()),
            },
            _ => Segment { name: p, key: None },
        })
        .collect()
}

/// `METHOD path` with keys replaced by `{id}`: the per-route counter key.
#[must_use]
pub fn route_key(method: &str, path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '(' => {
                if depth == 0 {
                    out.push_str("({id})");
                }
                depth += 1;
            }
            ')' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    format!("{method} {out}")
}

/// Answer one request.
pub fn handle(ctx: &Ctx, store: &mut Store, req: &ApiRequest) -> ApiResponse {
    match route(ctx, store, req) {
        Ok(resp) => resp,
        Err(err) => ApiResponse::error(&err),
    }
}

fn route(ctx: &Ctx, store: &mut Store, req: &ApiRequest) -> Result<ApiResponse, DvError> {
    let segs = segments(&req.path);
    let Some(first) = segs.first() else {
        return Ok(ApiResponse::json(200, &service_document(ctx, store)));
    };
    match first.name.as_str() {
        "$metadata" => return Ok(metadata::csdl(store)),
        "EntityDefinitions" | "RelationshipDefinitions" | "GlobalOptionSetDefinitions" => {
            return metadata::handle(ctx, store, req, &segs);
        }
        "WhoAmI" => {
            expect_method(req, &["GET"])?;
            return Ok(ApiResponse::json(
                200,
                &json!({
                    "@odata.context": format!("{}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse", ctx.root()),
                    "BusinessUnitId": super::auth::BUSINESS_UNIT_ID.to_string(),
                    "UserId": super::auth::SANDBOX_USER_ID.to_string(),
                    "OrganizationId": super::auth::ORGANIZATION_ID.to_string(),
                }),
            ));
        }
        "AddListMembersList" | "Microsoft.Dynamics.CRM.AddListMembersList" => {
            expect_method(req, &["POST"])?;
            return add_list_members_list(store, req);
        }
        "$batch" => {
            return Err(DvError::bad_request(
                "Nested $batch requests are not supported.",
            ));
        }
        _ => {}
    }
    let table = store
        .table_by_set(&first.name)
        .ok_or_else(|| DvError::no_resource(&first.name))?;
    let logical = table.meta.logical_name.clone();
    match (first.key.as_deref(), segs.get(1), segs.len()) {
        (None, None, _) => match req.method.as_str() {
            "GET" => collection(ctx, store, req, &logical, None),
            "POST" => create(ctx, store, req, &logical),
            _ => Err(DvError::new(
                405,
                "0x80060888",
                format!(
                    "The requested resource does not support http method '{}'.",
                    req.method
                ),
            )),
        },
        (None, Some(action), 2) if action.name == "$count" => {
            expect_method(req, &["GET"])?;
            let mut options = query::parse_options(&req.query)?;
            if !options.select.is_empty() || !options.expand.is_empty() || options.top.is_some() {
                return Err(DvError::bad_request(
                    "Only $filter is allowed with /$count.",
                ));
            }
            options.count = true;
            let t = store
                .table(&logical)
                .ok_or_else(|| DvError::no_resource(&logical))?;
            let pred = match &options.filter {
                Some(expr) => Some(query::bind(store, &t.meta, expr)?),
                None => None,
            };
            let n = query::run(store, t, None, &options, pred.as_ref(), 1)?
                .count
                .unwrap_or(0);
            Ok(ApiResponse {
                status: 200,
                headers: Vec::new(),
                body: Some(("text/plain".to_owned(), n.to_string().into_bytes())),
                ops: 1,
            })
        }
        (None, Some(action), 2) if action.name.starts_with("Microsoft.Dynamics.CRM.") => {
            expect_method(req, &["POST"])?;
            let name = action.name.trim_start_matches("Microsoft.Dynamics.CRM.");
            bulk(ctx, store, req, &logical, name)
        }
        (Some(key), None, _) => {
            let resolved = resolve_key(store, &logical, key)?;
            let missing = || DvError::not_found(&logical, &resolved.guid.unwrap_or_default());
            match req.method.as_str() {
                "GET" => {
                    let id = resolved.existing.ok_or_else(missing)?;
                    single(ctx, store, req, &logical, id)
                }
                "PATCH" => upsert(ctx, store, req, &logical, resolved),
                "DELETE" => {
                    let id = resolved.existing.ok_or_else(missing)?;
                    check_if_match(store, req, &logical, id)?;
                    store.delete(&logical, id)?;
                    Ok(ApiResponse::no_content())
                }
                other => Err(DvError::new(
                    405,
                    "0x80060888",
                    format!("The requested resource does not support http method '{other}'."),
                )),
            }
        }
        (Some(key), Some(nav), _) => {
            let resolved = resolve_key(store, &logical, key)?;
            let id = resolved
                .existing
                .ok_or_else(|| DvError::not_found(&logical, &resolved.guid.unwrap_or_default()))?;
            if nav.name == "Microsoft.Dynamics.CRM.RetrievePrincipalAccess"
                && logical == "systemuser"
            {
                expect_method(req, &["GET"])?;
                return principal_access(ctx, store, req, nav);
            }
            if nav.name.starts_with("Microsoft.Dynamics.CRM.") {
                expect_method(req, &["POST"])?;
                return bound_action(
                    ctx,
                    store,
                    req,
                    &logical,
                    id,
                    &nav.name["Microsoft.Dynamics.CRM.".len()..],
                );
            }
            let rest: Vec<&Segment> = segs.iter().skip(2).collect();
            if rest.last().is_some_and(|s| s.name == "$ref") {
                return reference(ctx, store, req, &logical, id, nav, rest.len());
            }
            if !rest.is_empty() {
                return Err(DvError::no_resource(&req.path));
            }
            navigation(ctx, store, req, &logical, id, nav)
        }
        _ => Err(DvError::no_resource(&req.path)),
    }
}

fn expect_method(req: &ApiRequest, allowed: &[&str]) -> Result<(), DvError> {
    if allowed.contains(&req.method.as_str()) {
        Ok(())
    } else {
        Err(DvError::new(
            405,
            "0x80060888",
            format!(
                "The requested resource does not support http method '{}'.",
                req.method
            ),
        ))
    }
}

fn service_document(ctx: &Ctx, store: &Store) -> Value {
    let sets: Vec<Value> = store
        .tables()
        .map(|t| json!({"name": t.meta.entity_set, "kind": "EntitySet", "url": t.meta.entity_set}))
        .collect();
    json!({"@odata.context": format!("{}$metadata", ctx.root()), "value": sets})
}

/// A convenience for tests and the batch: a request from parts.
#[must_use]
pub fn request(
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> ApiRequest {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let path =
        urlencoding::decode(path).map_or_else(|_| path.to_owned(), std::borrow::Cow::into_owned);
    let query: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    ApiRequest {
        method: method.to_ascii_uppercase(),
        path,
        query,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned()))
            .collect(),
        body: body.to_vec(),
    }
}

/// Headers of a request as pairs (for `$batch` parts).
#[must_use]
pub fn header_pairs(headers: &HashMap<String, String>) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::keys::parse_alternate_key;
    use super::*;

    #[test]
    fn segments_split_outside_parentheses_and_quotes() {
        let s = segments("contacts(emailaddress1='a/b@x')/listcontact_association/$ref");
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].key.as_deref(), Some("emailaddress1='a/b@x'"));
        let keys = parse_alternate_key("a='it''s',b=5").unwrap();
        assert_eq!(
            keys,
            [
                ("a".to_owned(), "'it''s'".to_owned()),
                ("b".to_owned(), "5".to_owned())
            ]
        );
    }

    #[test]
    fn prefer_parses_joined_preferences() {
        let p = Prefer::parse(
            "odata.include-annotations=\"*\",odata.maxpagesize=10, return=representation",
        );
        assert_eq!(p.max_page_size, Some(10));
        assert!(p.representation);
        assert_eq!(p.annotations.as_deref(), Some("*"));
    }
}
