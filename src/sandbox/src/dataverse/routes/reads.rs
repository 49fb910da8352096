//! Reads: collections with query options and server-driven paging (`Prefer:
//! odata.maxpagesize`, `@odata.nextLink`), single rows, `$expand`, and navigation collections.

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::writes::{etag_of, put_property};
use super::{ApiRequest, ApiResponse, Ctx, JSON, Segment, expect_method};
use crate::dataverse::errors::DvError;
use crate::dataverse::query;
use crate::dataverse::query::{Expand, MAX_PAGE, Projection};
use crate::dataverse::store::{Row, Store, Table};
use crate::dataverse::value::Val;

fn page_size(req: &ApiRequest) -> usize {
    req.prefer()
        .max_page_size
        .filter(|n| *n > 0)
        .map_or(MAX_PAGE, |n| n.min(MAX_PAGE))
}

pub(super) fn collection(
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
    let context = if options.select.is_empty() {
        format!("{}$metadata#{context_path}", ctx.root())
    } else {
        format!(
            "{}$metadata#{context_path}({})",
            ctx.root(),
            options.select.join(",")
        )
    };
    let next_link = page.next.as_ref().map(|token| {
        let mut pairs: Vec<(String, String)> = req
            .query
            .iter()
            .filter(|(k, _)| k != "$skiptoken")
            .cloned()
            .collect();
        pairs.push(("$skiptoken".to_owned(), token.clone()));
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .finish();
        format!("{}{}?{query}", ctx.root(), req.path)
    });
    // The members of `value` as JSON text: written straight from the rows (a page holds up to
    // 5000), or through a JSON object per row when `$expand` adds nested ones.
    let mut rows = Vec::with_capacity(page.rows.len() * 256);
    for (i, (id, row)) in page.rows.iter().enumerate() {
        if i > 0 {
            rows.push(b',');
        }
        if options.expand.is_empty() {
            query::write_row(&t.meta, row, &projection, &mut rows);
        } else {
            let obj = render_row(store, t, *id, row, &projection, &options.expand)?;
            serde_json::to_writer(&mut rows, &Value::Object(obj))
                .map_err(|e| DvError::new(500, "", e.to_string()))?;
        }
    }
    // The object as a `Map` in this order would serialise to the same bytes.
    let mut body = Vec::with_capacity(rows.len() + 512);
    body.extend_from_slice(b"{\"@odata.context\":");
    query::write_str(&mut body, &context);
    if let Some(count) = page.count {
        body.extend_from_slice(format!(",\"@odata.count\":{count}").as_bytes());
    }
    body.extend_from_slice(b",\"value\":[");
    body.extend_from_slice(&rows);
    body.push(b']');
    if let Some(link) = &next_link {
        body.extend_from_slice(b",\"@odata.nextLink\":");
        query::write_str(&mut body, link);
    }
    body.push(b'}');
    let mut resp = ApiResponse {
        status: 200,
        headers: Vec::new(),
        body: Some((JSON.to_owned(), body)),
        ops: 1,
    };
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
pub(super) fn render_row(
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

fn referencing_ids(store: &Store, rel: &super::super::meta::OneToMany, id: Uuid) -> Vec<Uuid> {
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

pub(super) fn single(
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

pub(super) fn navigation(
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
