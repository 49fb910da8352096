//! `$ref`: associate and disassociate rows over a collection-valued navigation property
//! (many-to-many links and the list members of a marketing list), and single-valued lookups.

use serde_json::{Value, json};
use uuid::Uuid;

use super::keys::{parse_body, parse_reference};
use super::{ApiRequest, ApiResponse, Ctx, Segment};
use crate::dataverse::errors::DvError;
use crate::dataverse::query::MAX_PAGE;
use crate::dataverse::store::{Row, Store};
use crate::dataverse::value::Val;

pub(super) fn reference(
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
