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

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::error::DvError;
use super::meta::{AttrType, ManyToMany};
use super::metadata;
use super::query::{self, Expand, MAX_PAGE, Projection};
use super::store::{Row, Store, Table};
use super::value::{self, Val};

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
                "application/json; odata.metadata=minimal".to_owned(),
                value.to_string().into_bytes(),
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

/// A resolved key segment.
#[derive(Debug, Clone)]
struct Key {
    /// The existing row it names.
    existing: Option<Uuid>,
    /// The GUID it gives (absent for an alternate key).
    guid: Option<Uuid>,
    /// The alternate key's columns and values (for an upsert that creates).
    values: Vec<(u16, Val)>,
}

/// Resolve a key segment: a GUID, or `col='v'[,col2=...]` by an alternate key.
fn resolve_key(store: &Store, table: &str, key: &str) -> Result<Key, DvError> {
    let t = store
        .table(table)
        .ok_or_else(|| DvError::no_resource(table))?;
    let trimmed = key.trim().trim_start_matches('{').trim_end_matches('}');
    if let Ok(id) = Uuid::parse_str(trimmed) {
        return Ok(Key {
            existing: t.rows.contains_key(&id).then_some(id),
            guid: Some(id),
            values: Vec::new(),
        });
    }
    let pairs = parse_alternate_key(key)?;
    let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    let known = t.meta.keys.iter().any(|k| {
        k.attributes.len() == names.len()
            && k.attributes.iter().all(|a| names.contains(&a.as_str()))
    });
    if !known {
        return Err(DvError::bad_request(format!(
            "Invalid key '{key}': no alternate key of '{table}' has the columns {}.",
            names.join(", ")
        )));
    }
    let mut values = Vec::new();
    for (name, raw) in &pairs {
        let (pos, kind) = query::resolve_column(&t.meta, name)?;
        let json_value = match raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
            Some(text) => Value::String(text.replace("''", "'")),
            None => serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.clone())),
        };
        let val = value::from_json(&kind, name, &json_value)
            .map_err(|m| DvError::bad_request(m.0.replace("{entity}", table)))?;
        values.push((pos, val));
    }
    let existing = t
        .rows
        .iter()
        .find(|(_, row)| values.iter().all(|(pos, v)| row.get(*pos).equals(v)))
        .map(|(id, _)| *id);
    Ok(Key {
        existing,
        guid: None,
        values,
    })
}

fn parse_alternate_key(key: &str) -> Result<Vec<(String, String)>, DvError> {
    let bad = || DvError::bad_request(format!("Invalid key '{key}'."));
    let chars: Vec<char> = key.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        while i < chars.len() && chars[i] != '=' {
            i += 1;
        }
        if i >= chars.len() {
            return Err(bad());
        }
        let name: String = chars[start..i].iter().collect::<String>().trim().to_owned();
        i += 1;
        let value_start = i;
        if chars.get(i) == Some(&'\'') {
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(bad()),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => i += 2,
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
        } else {
            while i < chars.len() && chars[i] != ',' {
                i += 1;
            }
        }
        let value: String = chars[value_start..i]
            .iter()
            .collect::<String>()
            .trim()
            .to_owned();
        out.push((name, value));
        if chars.get(i) == Some(&',') {
            i += 1;
        }
    }
    Ok(out)
}

/// Parse an entity reference: absolute URL, `/set(id)` or `set(id)`.
///
/// # Errors
/// Not a reference to an existing table's row key.
pub fn parse_reference(store: &Store, text: &str) -> Result<(String, Uuid), DvError> {
    let bad = || DvError::bad_request(format!("The entity reference '{text}' is not valid."));
    let rest = match text.find("/api/data/v") {
        Some(i) => {
            let after = &text[i + "/api/data/v".len()..];
            after.split_once('/').map(|(_, r)| r).ok_or_else(bad)?
        }
        None => text.trim_start_matches('/'),
    };
    let segs = segments(rest);
    let [seg] = segs.as_slice() else {
        return Err(bad());
    };
    let table = store
        .table_by_set(&seg.name)
        .ok_or_else(|| DvError::no_resource(&seg.name))?;
    let key = seg.key.as_deref().ok_or_else(bad)?;
    let id = Uuid::parse_str(key.trim_matches(|c| c == '{' || c == '}')).map_err(|_| bad())?;
    Ok((table.meta.logical_name.clone(), id))
}

fn parse_body(req: &ApiRequest) -> Result<Map<String, Value>, DvError> {
    if req.body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(DvError::bad_request(
            "The request body must be a JSON object.",
        )),
        Err(err) => Err(DvError::bad_request(format!(
            "Error parsing the request body: {err}"
        ))),
    }
}

/// Collection-valued binds to apply after a create: (relationship, this side is entity1, ids).
type CollectionBinds = Vec<(ManyToMany, bool, Vec<Uuid>)>;

/// Turn a write body into a row of changes (and collection binds).
fn row_from_body(
    store: &Store,
    table: &str,
    body: &Map<String, Value>,
    is_create: bool,
) -> Result<(Row, CollectionBinds), DvError> {
    let t = store
        .table(table)
        .ok_or_else(|| DvError::no_resource(table))?;
    let mut row = Row::default();
    let mut binds = Vec::new();
    for (key, value) in body {
        if key.starts_with('@') {
            continue;
        }
        if let Some(nav) = key.strip_suffix("@odata.bind") {
            if let Some(rel) = store.lookup_nav(table, nav) {
                let pos = t
                    .meta
                    .position(&rel.referencing_attribute)
                    .ok_or_else(|| DvError::unknown_property(table, nav))?;
                if value.is_null() {
                    row.set(pos, Val::Null);
                    continue;
                }
                let text = value.as_str().ok_or_else(|| {
                    DvError::bad_request(format!(
                        "The value of '{key}' must be an entity reference."
                    ))
                })?;
                let (target, id) = parse_reference(store, text)?;
                if target != rel.referenced_entity {
                    return Err(DvError::bad_request(format!(
                        "The entity reference '{text}' is not of type '{}'.",
                        rel.referenced_entity
                    )));
                }
                if store.get(&target, id).is_none() {
                    return Err(DvError::not_found(&target, &id));
                }
                row.set(pos, Val::Guid(id));
            } else if let Some((rel, first_side)) = store.many_to_many_nav(table, nav) {
                let items = value.as_array().ok_or_else(|| {
                    DvError::bad_request(format!(
                        "The value of '{key}' must be an array of entity references."
                    ))
                })?;
                let mut ids = Vec::new();
                for item in items {
                    let text = item.as_str().ok_or_else(|| {
                        DvError::bad_request(format!(
                            "The value of '{key}' must be an array of entity references."
                        ))
                    })?;
                    ids.push(parse_reference(store, text)?.1);
                }
                binds.push((rel.clone(), first_side, ids));
            } else {
                return Err(DvError::bad_request(format!(
                    "An undeclared property '{nav}' which only has property annotations in the payload but no property value was found in the payload. In OData, only declared navigation properties and declared named streams can be represented as properties without values."
                )));
            }
            continue;
        }
        if key.contains('@') {
            continue;
        }
        let attr = t
            .meta
            .attribute(key)
            .ok_or_else(|| DvError::unknown_property(table, key))?;
        if attr.read_only {
            continue;
        }
        if matches!(attr.kind, AttrType::Lookup(_)) {
            return Err(DvError::bad_request(format!(
                "The property '{key}' is a lookup; set it with '{key}@odata.bind'."
            )));
        }
        if value.is_object() || value.is_array() {
            return Err(DvError::bad_request(format!(
                "Deep insert through '{key}' is not supported by the sandbox."
            )));
        }
        let pos = t.meta.position(key).unwrap_or_default();
        if pos == t.meta.primary_id_pos() && !is_create {
            continue;
        }
        let val = value::from_json(&attr.kind, key, value)
            .map_err(|m| DvError::validation(m.0.replace("{entity}", table)))?;
        row.set(pos, val);
    }
    if is_create {
        for attr in t.meta.attributes.iter().filter(|a| a.system_required) {
            let pos = t.meta.position(&attr.logical_name).unwrap_or_default();
            if row.get(pos).is_null() {
                return Err(DvError::validation(format!(
                    "A validation error occurred. The value of '{}' on record of type '{table}' is outside the valid range.",
                    attr.logical_name
                )));
            }
        }
    }
    if table == "listmember" {
        return Err(DvError::bad_request(
            "Create a list member with AddMemberList or AddListMembersList.",
        ));
    }
    Ok((row, binds))
}

fn apply_binds(store: &mut Store, id: Uuid, binds: CollectionBinds) -> Result<(), DvError> {
    for (rel, first_side, ids) in binds {
        for other in ids {
            if first_side {
                store.associate(&rel, id, other)?;
            } else {
                store.associate(&rel, other, id)?;
            }
        }
    }
    Ok(())
}

fn entity_id_url(ctx: &Ctx, store: &Store, table: &str, id: Uuid) -> String {
    let set = store
        .table(table)
        .map_or(table, |t| t.meta.entity_set.as_str());
    format!("{}{set}({id})", ctx.root())
}

fn create(
    ctx: &Ctx,
    store: &mut Store,
    req: &ApiRequest,
    table: &str,
) -> Result<ApiResponse, DvError> {
    let body = parse_body(req)?;
    let (row, binds) = row_from_body(store, table, &body, true)?;
    check_duplicates(store, req, table, &row)?;
    let id = store.atomically(|store| {
        let id = store.create(table, None, row)?;
        apply_binds(store, id, binds)?;
        Ok(id)
    })?;
    written(ctx, store, req, table, id, 201)
}

/// Duplicate detection, off unless the request sends `MSCRM.SuppressDuplicateDetection: false`
/// (PD `webapi/manage-duplicate-detection-create-update.md`). The default published rules
/// match accounts, contacts and leads with the same `emailaddress1`.
fn check_duplicates(
    store: &Store,
    req: &ApiRequest,
    table: &str,
    row: &Row,
) -> Result<(), DvError> {
    let enabled = req
        .header("mscrm.suppressduplicatedetection")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"));
    if !enabled || !matches!(table, "account" | "contact" | "lead") {
        return Ok(());
    }
    let Some(t) = store.table(table) else {
        return Ok(());
    };
    let Some(pos) = t.meta.position("emailaddress1") else {
        return Ok(());
    };
    let Val::Str(email) = row.get(pos) else {
        return Ok(());
    };
    if email.is_empty() {
        return Ok(());
    }
    let wanted = Val::Str(email.clone());
    let duplicate = store
        .lookup_text(table, pos, &[email])
        .iter()
        .any(|id| t.rows.get(id).is_some_and(|r| r.get(pos).equals(&wanted)));
    if duplicate {
        return Err(DvError::new(
            500,
            "0x80040333",
            "A record was not created or updated because a duplicate of the current record already exists.",
        ));
    }
    Ok(())
}

fn written(
    ctx: &Ctx,
    store: &Store,
    req: &ApiRequest,
    table: &str,
    id: Uuid,
    status: u16,
) -> Result<ApiResponse, DvError> {
    let url = entity_id_url(ctx, store, table, id);
    if req.prefer().representation {
        let options = query::parse_options(&req.query)?;
        let t = store
            .table(table)
            .ok_or_else(|| DvError::no_resource(table))?;
        let projection = query::projection(&t.meta, &options.select)?;
        let row = store
            .get(table, id)
            .ok_or_else(|| DvError::not_found(table, &id))?;
        let mut obj = Map::new();
        obj.insert(
            "@odata.context".to_owned(),
            Value::String(format!(
                "{}$metadata#{}/$entity",
                ctx.root(),
                t.meta.entity_set
            )),
        );
        obj.extend(render_row(store, t, id, row, &projection, &options.expand)?);
        Ok(ApiResponse::json(status, &Value::Object(obj))
            .with_header("Preference-Applied", "return=representation".to_owned()))
    } else {
        Ok(ApiResponse::no_content()
            .with_header("OData-EntityId", url.clone())
            .with_header("Location", url))
    }
}

fn etag_of(store: &Store, table: &str, id: Uuid) -> Option<String> {
    let row = store.get(table, id)?;
    store.version_of(table, row).map(|v| format!("W/\"{v}\""))
}

fn check_if_match(store: &Store, req: &ApiRequest, table: &str, id: Uuid) -> Result<(), DvError> {
    if let Some(expected) = req.header("if-match") {
        let expected = expected.trim();
        if expected != "*" && Some(expected.to_owned()) != etag_of(store, table, id) {
            return Err(DvError::version_mismatch());
        }
    }
    Ok(())
}

fn upsert(
    ctx: &Ctx,
    store: &mut Store,
    req: &ApiRequest,
    table: &str,
    key: Key,
) -> Result<ApiResponse, DvError> {
    let body = parse_body(req)?;
    let if_match = req.header("if-match").map(str::trim);
    let if_none_match = req.header("if-none-match").map(str::trim);
    match key.existing {
        Some(id) => {
            if if_none_match == Some("*") {
                return Err(DvError::duplicate());
            }
            check_if_match(store, req, table, id)?;
            let (row, binds) = row_from_body(store, table, &body, false)?;
            if table == "list" {
                let t = store
                    .table("list")
                    .ok_or_else(|| DvError::no_resource("list"))?;
                if let Some(pos) = t.meta.position("createdfromcode")
                    && let Some(current) = store.get("list", id)
                {
                    let requested = row.get(pos);
                    if !requested.is_null() && !requested.equals(current.get(pos)) {
                        return Err(DvError::validation(
                            "The member type (createdfromcode) of a marketing list can't be changed after it is created.",
                        ));
                    }
                }
            }
            store.atomically(|store| {
                store.update(table, id, row)?;
                apply_binds(store, id, binds)
            })?;
            written(ctx, store, req, table, id, 200)
        }
        None => {
            if let Some(tag) = if_match {
                let _ = tag;
                return Err(DvError::not_found(table, &key.guid.unwrap_or_default()));
            }
            let (mut row, binds) = row_from_body(store, table, &body, true)?;
            for (pos, val) in key.values {
                if row.get(pos).is_null() {
                    row.set(pos, val);
                }
            }
            let id = store.atomically(|store| {
                let id = store.create(table, key.guid, row)?;
                apply_binds(store, id, binds)?;
                Ok(id)
            })?;
            written(ctx, store, req, table, id, 201)
        }
    }
}

fn page_size(req: &ApiRequest) -> usize {
    req.prefer()
        .max_page_size
        .filter(|n| *n > 0)
        .map_or(MAX_PAGE, |n| n.min(MAX_PAGE))
}

fn collection(
    ctx: &Ctx,
    store: &Store,
    req: &ApiRequest,
    table: &str,
    scope: Option<(Vec<Uuid>, String)>,
) -> Result<ApiResponse, DvError> {
    let options = query::parse_options(&req.query)?;
    let t = store
        .table(table)
        .ok_or_else(|| DvError::no_resource(table))?;
    let pred = match &options.filter {
        Some(expr) => Some(query::bind(store, &t.meta, expr)?),
        None => None,
    };
    let projection = query::projection(&t.meta, &options.select)?;
    check_expands(store, t, &options.expand)?;
    let size = page_size(req);
    let (ids, context_path) = match scope {
        Some((ids, path)) => (Some(ids), path),
        None => (None, t.meta.entity_set.clone()),
    };
    let page = query::run(store, t, ids, &options, pred.as_ref(), size)?;
    let mut out = Map::new();
    let context = if options.select.is_empty() {
        format!("{}$metadata#{context_path}", ctx.root())
    } else {
        format!(
            "{}$metadata#{context_path}({})",
            ctx.root(),
            options.select.join(",")
        )
    };
    out.insert("@odata.context".to_owned(), Value::String(context));
    if let Some(count) = page.count {
        out.insert("@odata.count".to_owned(), Value::from(count));
    }
    let mut rows = Vec::with_capacity(page.rows.len());
    for (id, row) in &page.rows {
        rows.push(Value::Object(render_row(
            store,
            t,
            *id,
            row,
            &projection,
            &options.expand,
        )?));
    }
    out.insert("value".to_owned(), Value::Array(rows));
    if let Some(token) = page.next {
        let mut pairs: Vec<(String, String)> = req
            .query
            .iter()
            .filter(|(k, _)| k != "$skiptoken")
            .cloned()
            .collect();
        pairs.push(("$skiptoken".to_owned(), token));
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .finish();
        out.insert(
            "@odata.nextLink".to_owned(),
            Value::String(format!("{}{}?{query}", ctx.root(), req.path)),
        );
    }
    let mut resp = ApiResponse::json(200, &Value::Object(out));
    resp.ops = 1;
    let prefer = req.prefer();
    if let Some(n) = prefer.max_page_size {
        resp = resp.with_header(
            "Preference-Applied",
            format!("odata.maxpagesize={}", n.min(MAX_PAGE)),
        );
    }
    Ok(resp)
}

fn check_expands(store: &Store, t: &Table, expands: &[Expand]) -> Result<(), DvError> {
    let mut collections = 0;
    for expand in expands {
        let table = &t.meta.logical_name;
        if let Some(rel) = store.lookup_nav(table, &expand.nav) {
            let target = store
                .table(&rel.referenced_entity)
                .ok_or_else(|| DvError::no_resource(&rel.referenced_entity))?;
            query::projection(&target.meta, &expand.select)?;
        } else if let Some((rel, first)) = store.many_to_many_nav(table, &expand.nav) {
            collections += 1;
            let other = if first { &rel.entity2 } else { &rel.entity1 };
            let target = store
                .table(other)
                .ok_or_else(|| DvError::no_resource(other))?;
            query::projection(&target.meta, &expand.select)?;
        } else if let Some(rel) = store.collection_nav(table, &expand.nav) {
            collections += 1;
            let target = store
                .table(&rel.referencing_entity)
                .ok_or_else(|| DvError::no_resource(&rel.referencing_entity))?;
            query::projection(&target.meta, &expand.select)?;
        } else {
            return Err(DvError::unknown_property(table, &expand.nav));
        }
    }
    if collections > 1 {
        return Err(DvError::bad_request(
            "Expanding more than one collection-valued navigation property in one query is not supported.",
        ));
    }
    Ok(())
}

/// Render a row with its expansions.
fn render_row(
    store: &Store,
    t: &Table,
    id: Uuid,
    row: &Row,
    projection: &Projection,
    expands: &[Expand],
) -> Result<Map<String, Value>, DvError> {
    let mut obj = query::render(&t.meta, row, projection);
    let table = &t.meta.logical_name;
    for expand in expands {
        if let Some(rel) = store.lookup_nav(table, &expand.nav) {
            let target = store
                .table(&rel.referenced_entity)
                .ok_or_else(|| DvError::no_resource(&rel.referenced_entity))?;
            let proj = query::projection(&target.meta, &expand.select)?;
            let pos = t
                .meta
                .position(&rel.referencing_attribute)
                .unwrap_or_default();
            let value = match row.get(pos) {
                Val::Guid(target_id) => target.rows.get(target_id).map_or(Value::Null, |r| {
                    Value::Object(query::render(&target.meta, r, &proj))
                }),
                _ => Value::Null,
            };
            obj.insert(expand.nav.clone(), value);
        } else {
            let (other, ids) =
                if let Some((rel, first)) = store.many_to_many_nav(table, &expand.nav) {
                    let other = if first { &rel.entity2 } else { &rel.entity1 };
                    (other.clone(), store.linked(rel, first, id))
                } else if let Some(rel) = store.collection_nav(table, &expand.nav) {
                    (
                        rel.referencing_entity.clone(),
                        referencing_ids(store, rel, id),
                    )
                } else {
                    return Err(DvError::unknown_property(table, &expand.nav));
                };
            let target = store
                .table(&other)
                .ok_or_else(|| DvError::no_resource(&other))?;
            let proj = query::projection(&target.meta, &expand.select)?;
            let items: Vec<Value> = ids
                .iter()
                .take(MAX_PAGE)
                .filter_map(|i| target.rows.get(i))
                .map(|r| Value::Object(query::render(&target.meta, r, &proj)))
                .collect();
            obj.insert(expand.nav.clone(), Value::Array(items));
        }
    }
    Ok(obj)
}

fn referencing_ids(store: &Store, rel: &super::meta::OneToMany, id: Uuid) -> Vec<Uuid> {
    let Some(t) = store.table(&rel.referencing_entity) else {
        return Vec::new();
    };
    let Some(pos) = t.meta.position(&rel.referencing_attribute) else {
        return Vec::new();
    };
    t.rows
        .iter()
        .filter(|(_, row)| matches!(row.get(pos), Val::Guid(g) if *g == id))
        .map(|(i, _)| *i)
        .collect()
}

fn single(
    ctx: &Ctx,
    store: &Store,
    req: &ApiRequest,
    table: &str,
    id: Uuid,
) -> Result<ApiResponse, DvError> {
    let options = query::parse_options(&req.query)?;
    if options.filter.is_some() || options.top.is_some() || !options.orderby.is_empty() {
        return Err(DvError::bad_request(
            "Query options $filter, $orderby and $top are not allowed on a single record.",
        ));
    }
    let t = store
        .table(table)
        .ok_or_else(|| DvError::no_resource(table))?;
    let projection = query::projection(&t.meta, &options.select)?;
    check_expands(store, t, &options.expand)?;
    let row = t
        .rows
        .get(&id)
        .ok_or_else(|| DvError::not_found(table, &id))?;
    if let Some(tag) = req.header("if-none-match").map(str::trim)
        && tag != "null"
        && Some(tag.to_owned()) == etag_of(store, table, id)
    {
        let mut resp = ApiResponse::no_content();
        resp.status = 304;
        return Ok(resp);
    }
    let mut obj = Map::new();
    let context = if options.select.is_empty() {
        format!("{}$metadata#{}/$entity", ctx.root(), t.meta.entity_set)
    } else {
        format!(
            "{}$metadata#{}({})/$entity",
            ctx.root(),
            t.meta.entity_set,
            options.select.join(",")
        )
    };
    obj.insert("@odata.context".to_owned(), Value::String(context));
    obj.extend(render_row(store, t, id, row, &projection, &options.expand)?);
    Ok(ApiResponse::json(200, &Value::Object(obj)))
}

fn navigation(
    ctx: &Ctx,
    store: &mut Store,
    req: &ApiRequest,
    table: &str,
    id: Uuid,
    nav: &Segment,
) -> Result<ApiResponse, DvError> {
    if matches!(req.method.as_str(), "PUT" | "DELETE")
        && store.lookup_nav(table, &nav.name).is_none()
        && store.many_to_many_nav(table, &nav.name).is_none()
        && store.collection_nav(table, &nav.name).is_none()
    {
        return put_property(store, req, table, id, &nav.name);
    }
    expect_method(req, &["GET"])?;
    let set = store
        .table(table)
        .map(|t| t.meta.entity_set.clone())
        .unwrap_or_default();
    let context_base = format!("{set}({id})/{}", nav.name);
    if let Some((rel, first)) = store.many_to_many_nav(table, &nav.name) {
        let other = if first {
            rel.entity2.clone()
        } else {
            rel.entity1.clone()
        };
        let ids = store.linked(rel, first, id);
        if let Some(key) = &nav.key {
            let other_id = Uuid::parse_str(key).map_err(|_| DvError::no_resource(&req.path))?;
            if !ids.contains(&other_id) {
                return Err(DvError::not_found(&other, &other_id));
            }
            return single(ctx, store, req, &other, other_id);
        }
        let other_set = store
            .table(&other)
            .map(|t| t.meta.entity_set.clone())
            .unwrap_or_default();
        let _ = context_base;
        return collection(ctx, store, req, &other, Some((ids, other_set)));
    }
    if let Some(rel) = store.collection_nav(table, &nav.name).cloned() {
        let ids = referencing_ids(store, &rel, id);
        let other_set = store
            .table(&rel.referencing_entity)
            .map(|t| t.meta.entity_set.clone())
            .unwrap_or_default();
        return collection(
            ctx,
            store,
            req,
            &rel.referencing_entity,
            Some((ids, other_set)),
        );
    }
    if let Some(rel) = store.lookup_nav(table, &nav.name).cloned() {
        let t = store
            .table(table)
            .ok_or_else(|| DvError::no_resource(table))?;
        let pos = t
            .meta
            .position(&rel.referencing_attribute)
            .unwrap_or_default();
        let target = match store.get(table, id).map(|r| r.get(pos).clone()) {
            Some(Val::Guid(g)) => g,
            _ => return Ok(ApiResponse::no_content()),
        };
        return single(ctx, store, req, &rel.referenced_entity, target);
    }
    let t = store
        .table(table)
        .ok_or_else(|| DvError::no_resource(table))?;
    let (pos, _) = query::resolve_column(&t.meta, &nav.name)?;
    let value = store
        .get(table, id)
        .map_or(Value::Null, |r| r.get(pos).to_json());
    Ok(ApiResponse::json(
        200,
        &json!({"@odata.context": format!("{}$metadata#{set}({id})/{}", ctx.root(), nav.name), "value": value}),
    ))
}

/// `PUT set(id)/column {"value": v}` and `DELETE set(id)/column`: one column at a time.
fn put_property(
    store: &mut Store,
    req: &ApiRequest,
    table: &str,
    id: Uuid,
    column: &str,
) -> Result<ApiResponse, DvError> {
    let value = if req.method == "PUT" {
        let body = parse_body(req)?;
        body.get("value").cloned().ok_or_else(|| {
            DvError::bad_request("The body of a property PUT must be {\"value\": ...}.")
        })?
    } else {
        Value::Null
    };
    let mut body = Map::new();
    body.insert(column.to_owned(), value);
    let (row, _) = row_from_body(store, table, &body, false)?;
    check_if_match(store, req, table, id)?;
    store.update(table, id, row)?;
    Ok(ApiResponse::no_content())
}

fn reference(
    ctx: &Ctx,
    store: &mut Store,
    req: &ApiRequest,
    table: &str,
    id: Uuid,
    nav: &Segment,
    rest_len: usize,
) -> Result<ApiResponse, DvError> {
    if rest_len != 1 {
        return Err(DvError::no_resource(&req.path));
    }
    if let Some((rel, first)) = store.many_to_many_nav(table, &nav.name) {
        let rel = rel.clone();
        let other_table = if first {
            rel.entity2.clone()
        } else {
            rel.entity1.clone()
        };
        let pair = |other: Uuid| if first { (id, other) } else { (other, id) };
        match req.method.as_str() {
            "POST" => {
                if nav.key.is_some() {
                    return Err(DvError::bad_request(
                        "POST $ref takes the reference in the body.",
                    ));
                }
                let body = parse_body(req)?;
                let text = body
                    .get("@odata.id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        DvError::bad_request("The body of a $ref request must have '@odata.id'.")
                    })?;
                let (target, other) = parse_reference(store, text)?;
                if target != other_table {
                    return Err(DvError::bad_request(format!(
                        "The entity reference '{text}' is not of type '{other_table}'."
                    )));
                }
                let (a, b) = pair(other);
                store.associate(&rel, a, b)?;
                Ok(ApiResponse::no_content())
            }
            "DELETE" => {
                let other = match &nav.key {
                    Some(key) => Uuid::parse_str(key.trim_matches(|c| c == '{' || c == '}'))
                        .map_err(|_| DvError::no_resource(&req.path))?,
                    None => {
                        let text = req
                            .query
                            .iter()
                            .find(|(k, _)| k == "$id")
                            .map(|(_, v)| v.clone())
                            .ok_or_else(|| {
                                DvError::bad_request(
                                    "Disassociate needs the related record: nav(id)/$ref or ?$id=.",
                                )
                            })?;
                        parse_reference(store, &text)?.1
                    }
                };
                let (a, b) = pair(other);
                store.disassociate(&rel, a, b)?;
                Ok(ApiResponse::no_content())
            }
            "GET" => {
                let other_set = store
                    .table(&other_table)
                    .map(|t| t.meta.entity_set.clone())
                    .unwrap_or_default();
                let ids = store.linked(&rel, first, id);
                let values: Vec<Value> = ids
                    .iter()
                    .take(MAX_PAGE)
                    .map(|i| json!({"@odata.id": format!("{}{other_set}({i})", ctx.root())}))
                    .collect();
                Ok(ApiResponse::json(
                    200,
                    &json!({"@odata.context": format!("{}$metadata#Collection($ref)", ctx.root()), "value": values}),
                ))
            }
            other => Err(DvError::new(
                405,
                "0x80060888",
                format!("The requested resource does not support http method '{other}'."),
            )),
        }
    } else if let Some(rel) = store.lookup_nav(table, &nav.name).cloned() {
        let t = store
            .table(table)
            .ok_or_else(|| DvError::no_resource(table))?;
        let pos = t
            .meta
            .position(&rel.referencing_attribute)
            .unwrap_or_default();
        let mut row = Row::default();
        match req.method.as_str() {
            "PUT" => {
                let body = parse_body(req)?;
                let text = body
                    .get("@odata.id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        DvError::bad_request("The body of a $ref request must have '@odata.id'.")
                    })?;
                let (target, other) = parse_reference(store, text)?;
                if target != rel.referenced_entity || store.get(&target, other).is_none() {
                    return Err(DvError::not_found(&rel.referenced_entity, &other));
                }
                row.set(pos, Val::Guid(other));
            }
            "DELETE" => row.set(pos, Val::Null),
            other => {
                return Err(DvError::new(
                    405,
                    "0x80060888",
                    format!("The requested resource does not support http method '{other}'."),
                ));
            }
        }
        store.update(table, id, row)?;
        Ok(ApiResponse::no_content())
    } else if let Some(rel) = store.collection_nav(table, &nav.name).cloned() {
        // 1:N from the referenced side: set or clear the lookup on the other row.
        let other = match (req.method.as_str(), &nav.key) {
            ("POST", None) => {
                let body = parse_body(req)?;
                let text = body
                    .get("@odata.id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        DvError::bad_request("The body of a $ref request must have '@odata.id'.")
                    })?;
                parse_reference(store, text)?.1
            }
            ("DELETE", Some(key)) => {
                Uuid::parse_str(key).map_err(|_| DvError::no_resource(&req.path))?
            }
            _ => return Err(DvError::no_resource(&req.path)),
        };
        let t = store
            .table(&rel.referencing_entity)
            .ok_or_else(|| DvError::no_resource(&rel.referencing_entity))?;
        let pos = t
            .meta
            .position(&rel.referencing_attribute)
            .unwrap_or_default();
        let mut row = Row::default();
        row.set(
            pos,
            if req.method == "POST" {
                Val::Guid(id)
            } else {
                Val::Null
            },
        );
        store.update(&rel.referencing_entity, other, row)?;
        Ok(ApiResponse::no_content())
    } else {
        Err(DvError::unknown_property(table, &nav.name))
    }
}

/// The table holding a member id among account, contact and lead.
fn member_table(store: &Store, id: Uuid) -> Option<&'static str> {
    ["contact", "lead", "account"]
        .into_iter()
        .find(|t| store.get(t, id).is_some())
}

fn guid_param(body: &Map<String, Value>, name: &str) -> Result<Uuid, DvError> {
    body.get(name)
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| DvError::bad_request(format!("The parameter '{name}' must be an Edm.Guid.")))
}

fn bound_action(
    ctx: &Ctx,
    store: &mut Store,
    req: &ApiRequest,
    table: &str,
    id: Uuid,
    action: &str,
) -> Result<ApiResponse, DvError> {
    let body = parse_body(req)?;
    match (table, action) {
        ("list", "AddMemberList") => {
            let member = guid_param(&body, "EntityId")?;
            let kind = member_table(store, member)
                .ok_or_else(|| DvError::not_found("contact", &member))?;
            let member_id = store.add_list_member(id, kind, member)?;
            Ok(ApiResponse::json(
                200,
                &json!({
                    "@odata.context": format!("{}$metadata#Microsoft.Dynamics.CRM.AddMemberListResponse", ctx.root()),
                    "Id": member_id.to_string(),
                }),
            ))
        }
        ("list", "RemoveMemberList") => {
            let member = guid_param(&body, "EntityId")?;
            let member_id = store
                .list_member_id(id, member)
                .ok_or_else(|| DvError::not_found("listmember", &member))?;
            store.remove_list_member(member_id)?;
            Ok(ApiResponse::no_content())
        }
        _ => Err(DvError::no_resource(&format!(
            "Microsoft.Dynamics.CRM.{action}"
        ))),
    }
}

/// `GET systemusers(id)/Microsoft.Dynamics.CRM.RetrievePrincipalAccess(Target=@p1)?@p1={'@odata.id':'contacts(id)'}`.
fn principal_access(
    ctx: &Ctx,
    store: &Store,
    req: &ApiRequest,
    nav: &Segment,
) -> Result<ApiResponse, DvError> {
    let bad = || {
        DvError::bad_request("RetrievePrincipalAccess needs Target={'@odata.id':'<set>(<id>)'}.")
    };
    let raw = nav
        .key
        .as_deref()
        .and_then(|k| k.trim().strip_prefix("Target="))
        .ok_or_else(bad)?;
    let value = match raw.strip_prefix('@') {
        Some(_) => req
            .query
            .iter()
            .find(|(k, _)| k == raw)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| {
                DvError::bad_request(format!("The parameter alias '{raw}' is not defined."))
            })?,
        None => raw.to_owned(),
    };
    let reference = value
        .split("@odata.id")
        .nth(1)
        .map(|rest| rest.trim_start_matches(['\'', '"', ':', ' ']))
        .and_then(|rest| rest.split(['\'', '"']).next())
        .ok_or_else(bad)?;
    let (table, id) = parse_reference(store, reference)?;
    if store.get(&table, id).is_none() {
        return Err(DvError::not_found(&table, &id));
    }
    Ok(ApiResponse::json(
        200,
        &json!({
            "@odata.context": format!("{}$metadata#Microsoft.Dynamics.CRM.RetrievePrincipalAccessResponse", ctx.root()),
            "AccessRights": store.access_rights,
        }),
    ))
}

fn add_list_members_list(store: &mut Store, req: &ApiRequest) -> Result<ApiResponse, DvError> {
    let body = parse_body(req)?;
    let list = body
        .get("List")
        .and_then(Value::as_object)
        .and_then(|l| l.get("listid"))
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| {
            DvError::bad_request("The parameter 'List' must be a list with 'listid'.")
        })?;
    let members = body
        .get("Members")
        .and_then(Value::as_array)
        .ok_or_else(|| DvError::bad_request("The parameter 'Members' must be a collection."))?;
    let mut parsed = Vec::with_capacity(members.len());
    for member in members {
        let obj = member
            .as_object()
            .ok_or_else(|| DvError::bad_request("Each member must be an entity."))?;
        let kind = obj
            .get("@odata.type")
            .and_then(Value::as_str)
            .map(|t| {
                t.trim_start_matches('#')
                    .trim_start_matches("Microsoft.Dynamics.CRM.")
                    .to_owned()
            })
            .ok_or_else(|| DvError::bad_request("Each member must have '@odata.type'."))?;
        let id = obj
            .get(&format!("{kind}id"))
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| DvError::bad_request(format!("Each member must have '{kind}id'.")))?;
        parsed.push((kind, id));
    }
    let n = parsed.len() as u64;
    store.atomically(|store| {
        for (kind, id) in &parsed {
            store.add_list_member(list, kind, *id)?;
        }
        Ok(())
    })?;
    let mut resp = ApiResponse::no_content();
    resp.ops = n.max(1);
    Ok(resp)
}

fn bulk(
    ctx: &Ctx,
    store: &mut Store,
    req: &ApiRequest,
    table: &str,
    action: &str,
) -> Result<ApiResponse, DvError> {
    let t = store
        .table(table)
        .ok_or_else(|| DvError::no_resource(table))?;
    if !matches!(
        action,
        "CreateMultiple" | "UpdateMultiple" | "UpsertMultiple"
    ) {
        return Err(DvError::no_resource(&format!(
            "Microsoft.Dynamics.CRM.{action}"
        )));
    }
    if !t.meta.bulk {
        return Err(DvError::bad_request(format!(
            "The '{action}' message is not supported on the entity '{table}'."
        )));
    }
    let type_name = t.meta.type_name();
    let pk = t.meta.primary_id.clone();
    let body = parse_body(req)?;
    let targets = body
        .get("Targets")
        .and_then(Value::as_array)
        .ok_or_else(|| DvError::bad_request("The parameter 'Targets' must be a collection."))?;
    let mut items = Vec::with_capacity(targets.len());
    for target in targets {
        let obj = target
            .as_object()
            .ok_or_else(|| DvError::bad_request("Each target must be an entity."))?;
        let kind = obj
            .get("@odata.type")
            .and_then(Value::as_str)
            .map(|t| t.trim_start_matches('#'));
        if kind != Some(type_name.as_str()) {
            return Err(DvError::bad_request(format!(
                "Each item in 'Targets' must have '@odata.type' set to '{type_name}'."
            )));
        }
        items.push(obj.clone());
    }
    let n = items.len() as u64;
    let ids = store.atomically(|store| {
        let mut ids = Vec::with_capacity(items.len());
        for obj in &items {
            let given = obj
                .get(&pk)
                .and_then(Value::as_str)
                .and_then(|s| Uuid::parse_str(s).ok());
            let by_ref = obj
                .get("@odata.id")
                .and_then(Value::as_str)
                .map(|s| {
                    let segs = segments(s.rsplit('/').next().unwrap_or(s));
                    let key = segs.first().and_then(|s| s.key.clone()).unwrap_or_default();
                    resolve_key(store, table, &key)
                })
                .transpose()?;
            match action {
                "CreateMultiple" => {
                    let (row, _) = row_from_body(store, table, obj, true)?;
                    ids.push(store.create(table, given, row)?);
                }
                "UpdateMultiple" => {
                    let id = given.ok_or_else(|| {
                        DvError::bad_request(format!("Each target must have '{pk}'."))
                    })?;
                    if store.get(table, id).is_none() {
                        return Err(DvError::new(
                            404,
                            "0x80040217",
                            format!("{} With Ids = {id} Do Not Exist", capitalize(table)),
                        ));
                    }
                    let (row, _) = row_from_body(store, table, obj, false)?;
                    store.update(table, id, row)?;
                    ids.push(id);
                }
                _ => {
                    let existing = match (&by_ref, given) {
                        (Some(key), _) => key.existing,
                        (None, Some(id)) => store.get(table, id).map(|_| id),
                        (None, None) => None,
                    };
                    match existing {
                        Some(id) => {
                            let (row, _) = row_from_body(store, table, obj, false)?;
                            store.update(table, id, row)?;
                            ids.push(id);
                        }
                        None => {
                            let (mut row, _) = row_from_body(store, table, obj, true)?;
                            if let Some(key) = &by_ref {
                                for (pos, val) in &key.values {
                                    if row.get(*pos).is_null() {
                                        row.set(*pos, val.clone());
                                    }
                                }
                            }
                            let guid = given.or(by_ref.as_ref().and_then(|k| k.guid));
                            ids.push(store.create(table, guid, row)?);
                        }
                    }
                }
            }
        }
        Ok(ids)
    })?;
    let mut resp = if action == "CreateMultiple" {
        ApiResponse::json(
            200,
            &json!({
                "@odata.context": format!("{}$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse", ctx.root()),
                "Ids": ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }),
        )
    } else {
        ApiResponse::no_content()
    };
    resp.ops = n.max(1);
    Ok(resp)
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
        .unwrap_or_default()
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
