//! Writes of rows: create (`POST`, client-chosen ids, `@odata.bind`, duplicate detection),
//! update and upsert (`PATCH` with `If-Match` / `If-None-Match`), and one column at a time
//! (`PUT` / `DELETE set(id)/column`).

use serde_json::{Map, Value};
use uuid::Uuid;

use super::keys::{Key, parse_body, parse_reference};
use super::reads::render_row;
use super::{ApiRequest, ApiResponse, Ctx};
use crate::dataverse::errors::DvError;
use crate::dataverse::meta::{AttrType, ManyToMany};
use crate::dataverse::store::{Row, Store};
use crate::dataverse::value::{Stage, Val};
use crate::dataverse::{columns, query, value};

/// Collection-valued binds to apply after a create: (relationship, this side is entity1, ids).
type CollectionBinds = Vec<(ManyToMany, bool, Vec<Uuid>)>;

/// Turn a write body into a row of changes (and collection binds).
pub(super) fn row_from_body(
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
        let val = value::from_json(&attr.kind, key, value).map_err(|m| match m.1 {
            Stage::Payload => DvError::payload(&t.meta.entity_set, &m.0),
            Stage::Validation => DvError::validation(m.0.replace("{entity}", table)),
        })?;
        columns::validate(attr, table, &val)?;
        if let Some(refused) = store
            .plugin_refusals
            .iter()
            .find_map(|p| p.check(table, key, &val))
        {
            return Err(refused);
        }
        row.set(pos, val);
    }
    if is_create {
        columns::fill_defaults(&t.meta, &mut row);
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

pub(super) fn create(
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

pub(super) fn etag_of(store: &Store, table: &str, id: Uuid) -> Option<String> {
    let row = store.get(table, id)?;
    store.version_of(table, row).map(|v| format!("W/\"{v}\""))
}

pub(super) fn check_if_match(
    store: &Store,
    req: &ApiRequest,
    table: &str,
    id: Uuid,
) -> Result<(), DvError> {
    if let Some(expected) = req.header("if-match") {
        let expected = expected.trim();
        if expected != "*" && Some(expected.to_owned()) != etag_of(store, table, id) {
            return Err(DvError::version_mismatch());
        }
    }
    Ok(())
}

pub(super) fn upsert(
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

/// `PUT set(id)/column {"value": v}` and `DELETE set(id)/column`: one column at a time.
pub(super) fn put_property(
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
