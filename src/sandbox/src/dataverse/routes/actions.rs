//! Actions: the list actions (`AddMemberList`, `RemoveMemberList`, `AddListMembersList`),
//! `RetrievePrincipalAccess`, and the bulk actions (`CreateMultiple`, `UpdateMultiple`,
//! `UpsertMultiple`, atomic).

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::keys::{parse_body, parse_reference, resolve_key};
use super::writes::row_from_body;
use super::{ApiRequest, ApiResponse, Ctx, Segment, segments};
use crate::dataverse::errors::DvError;
use crate::dataverse::store::Store;
use crate::dataverse::store::lists::NOT_A_LIST_MEMBER;

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

pub(super) fn bound_action(
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
        ("list", "RemoveMemberList") if !store.without_remove_member_list => {
            let member = guid_param(&body, "EntityId")?;
            if store.get("list", id).is_none() {
                return Err(DvError::not_found("list", &id));
            }
            // PD `reference/web-service-error-codes`: CannotRemoveNonListMember.
            let member_id = store.list_member_id(id, member).ok_or_else(|| {
                DvError::new(
                    400,
                    NOT_A_LIST_MEMBER,
                    "Specified Item not a member of the specified List.",
                )
            })?;
            store.remove_list_member(member_id)?;
            Ok(ApiResponse::no_content())
        }
        _ => Err(DvError::no_resource(&format!(
            "Microsoft.Dynamics.CRM.{action}"
        ))),
    }
}

/// `GET systemusers(id)/Microsoft.Dynamics.CRM.RetrievePrincipalAccess(Target=@p1)?@p1={'@odata.id':'contacts(id)'}`.
pub(super) fn principal_access(
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

pub(super) fn add_list_members_list(
    store: &mut Store,
    req: &ApiRequest,
) -> Result<ApiResponse, DvError> {
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

pub(super) fn bulk(
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
