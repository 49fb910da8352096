//! Reading the metadata: `EntityDefinitions`, their `Attributes`, `Keys` and relationship
//! collections, and `RelationshipDefinitions`, in the real service's property names and
//! `@odata.type`s, with `$select`, `$filter` on the definitions' properties and `$expand`.

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::create::create_relationship;
use crate::dataverse::errors::DvError;
use crate::dataverse::filter::{Expr, Lit, Op, Operand};
use crate::dataverse::meta::{AttrType, AttributeMeta, EntityMeta, KeyMeta, ManyToMany, OneToMany};
use crate::dataverse::routes::{ApiRequest, ApiResponse, Ctx, Segment};
use crate::dataverse::store::Store;
use crate::dataverse::{columns, filter, meta};

fn label(text: &str) -> Value {
    let localized = json!({
        "Label": text,
        "LanguageCode": 1033,
        "IsManaged": false,
        "MetadataId": meta::name_uuid("label", text).to_string(),
        "HasChanged": null
    });
    json!({"LocalizedLabels": [localized.clone()], "UserLocalizedLabel": localized})
}

pub(super) fn label_text(value: Option<&Value>) -> Option<String> {
    value?
        .get("LocalizedLabels")?
        .as_array()?
        .first()?
        .get("Label")?
        .as_str()
        .map(str::to_owned)
}

pub(super) fn entity_json(entity: &EntityMeta) -> Map<String, Value> {
    let value = json!({
        "MetadataId": entity.metadata_id.to_string(),
        "LogicalName": entity.logical_name,
        "SchemaName": entity.schema_name,
        "EntitySetName": entity.entity_set,
        "LogicalCollectionName": entity.entity_set,
        "CollectionSchemaName": format!("{}s", entity.schema_name),
        "PrimaryIdAttribute": entity.primary_id,
        "PrimaryNameAttribute": entity.primary_name,
        "ObjectTypeCode": entity.object_type_code,
        "IsCustomEntity": entity.is_custom,
        "IsManaged": !entity.is_custom,
        "IsIntersect": entity.is_intersect,
        "IsActivity": false,
        "IsValidForAdvancedFind": true,
        "ChangeTrackingEnabled": false,
        "HasNotes": false,
        "HasActivities": false,
        "OwnershipType": entity.ownership,
        "TableType": "Standard",
        "DisplayName": label(&entity.display_name),
        "DisplayCollectionName": label(&entity.display_collection_name),
        "Description": label(""),
    });
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn type_name_value(kind: &AttrType) -> &'static str {
    match kind {
        AttrType::Uniqueidentifier => "UniqueidentifierType",
        AttrType::String(_) => "StringType",
        AttrType::Memo(_) => "MemoType",
        AttrType::Integer => "IntegerType",
        AttrType::BigInt => "BigIntType",
        AttrType::Boolean => "BooleanType",
        AttrType::Picklist(_) => "PicklistType",
        AttrType::State(_) => "StateType",
        AttrType::Status(_) => "StatusType",
        AttrType::DateTime | AttrType::Date => "DateTimeType",
        AttrType::Decimal => "DecimalType",
        AttrType::Lookup(t) if t.len() > 1 => "CustomerType",
        AttrType::Lookup(_) => "LookupType",
    }
}

pub(super) fn attribute_json(entity: &EntityMeta, attr: &AttributeMeta) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(
        "@odata.type".into(),
        Value::String(attr.kind.odata_type().to_owned()),
    );
    out.insert(
        "MetadataId".into(),
        Value::String(attr.metadata_id.to_string()),
    );
    out.insert(
        "LogicalName".into(),
        Value::String(attr.logical_name.clone()),
    );
    out.insert("SchemaName".into(), Value::String(attr.schema_name.clone()));
    out.insert(
        "EntityLogicalName".into(),
        Value::String(entity.logical_name.clone()),
    );
    out.insert(
        "AttributeType".into(),
        Value::String(attr.kind.name().to_owned()),
    );
    out.insert(
        "AttributeTypeName".into(),
        json!({"Value": type_name_value(&attr.kind)}),
    );
    out.insert(
        "IsPrimaryId".into(),
        Value::Bool(attr.logical_name == entity.primary_id),
    );
    out.insert(
        "IsPrimaryName".into(),
        Value::Bool(entity.primary_name.as_deref() == Some(attr.logical_name.as_str())),
    );
    out.insert("IsCustomAttribute".into(), Value::Bool(attr.is_custom));
    out.insert("IsValidForCreate".into(), Value::Bool(!attr.read_only));
    out.insert("IsValidForUpdate".into(), Value::Bool(!attr.read_only));
    out.insert("IsValidForRead".into(), Value::Bool(true));
    out.insert("IsLogical".into(), Value::Bool(false));
    out.insert("AttributeOf".into(), Value::Null);
    out.insert(
        "RequiredLevel".into(),
        json!({"Value": if attr.system_required { "SystemRequired" } else { "None" }, "CanBeChanged": true, "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings"}),
    );
    out.insert("DisplayName".into(), label(&attr.display_name));
    let details = &attr.details;
    match &attr.kind {
        AttrType::String(max) | AttrType::Memo(max) => {
            let format = details.format.as_deref().unwrap_or("Text");
            out.insert("MaxLength".into(), Value::from(*max));
            out.insert("Format".into(), Value::String(format.into()));
            out.insert("FormatName".into(), json!({"Value": format}));
        }
        AttrType::Lookup(targets) => {
            out.insert("Targets".into(), json!(targets));
        }
        AttrType::Integer => {
            let min = details.min.unwrap_or(-2_147_483_648);
            let max = details.max.unwrap_or(2_147_483_647);
            out.insert("MinValue".into(), Value::from(min));
            out.insert("MaxValue".into(), Value::from(max));
            out.insert(
                "Format".into(),
                Value::String(details.format.as_deref().unwrap_or("None").into()),
            );
        }
        AttrType::Decimal => {
            out.insert("Precision".into(), Value::from(2));
        }
        AttrType::DateTime | AttrType::Date => {
            let date_only = matches!(attr.kind, AttrType::Date);
            let format = details.format.as_deref().unwrap_or(if date_only {
                "DateOnly"
            } else {
                "DateAndTime"
            });
            let behavior = details.behavior.as_deref().unwrap_or(if date_only {
                "DateOnly"
            } else {
                "UserLocal"
            });
            out.insert("Format".into(), Value::String(format.into()));
            out.insert("DateTimeBehavior".into(), json!({"Value": behavior}));
        }
        _ => {}
    }
    out
}

/// The `OptionSet` of a choice, state or status column (and the two options of a Yes/No),
/// as `$expand=OptionSet` on the derived type's cast answers it.
pub(super) fn option_set_json(entity: &EntityMeta, attr: &AttributeMeta) -> Option<Value> {
    let values: Vec<i64> = match &attr.kind {
        AttrType::Picklist(v) | AttrType::State(v) | AttrType::Status(v) => v.clone(),
        AttrType::Boolean => vec![1, 0],
        _ => return None,
    };
    let option = |value: i64| {
        let text = columns::option_label(attr, value)
            .map(str::to_owned)
            .unwrap_or_else(|| value.to_string());
        json!({"Value": value, "Label": label(&text), "Description": label(""), "Color": null, "IsManaged": !attr.is_custom})
    };
    let name = format!("{}_{}", entity.logical_name, attr.logical_name);
    let mut set = json!({
        "MetadataId": meta::name_uuid("optionset", &name).to_string(),
        "Name": name,
        "IsGlobal": false,
        "IsCustomOptionSet": attr.is_custom,
        "OptionSetType": if matches!(attr.kind, AttrType::Boolean) { "Boolean" } else { "Picklist" },
    });
    if let Value::Object(map) = &mut set {
        if matches!(attr.kind, AttrType::Boolean) {
            map.insert("TrueOption".into(), option(1));
            map.insert("FalseOption".into(), option(0));
        } else {
            map.insert(
                "Options".into(),
                Value::Array(values.into_iter().map(option).collect()),
            );
        }
    }
    Some(set)
}

/// An attribute as answered under a cast (`…/Microsoft.Dynamics.CRM.PicklistAttributeMetadata`),
/// with `OptionSet` when the query expands it; `None` when the cast does not fit the column.
pub(super) fn cast_attribute_json(
    entity: &EntityMeta,
    attr: &AttributeMeta,
    cast: Option<&str>,
    q: &MetaQuery,
) -> Option<Map<String, Value>> {
    let mut obj = attribute_json(entity, attr);
    if let Some(cast) = cast
        && obj.get("@odata.type").and_then(Value::as_str) != Some(&format!("#{cast}"))
    {
        return None;
    }
    if q.expand.iter().any(|(nav, _)| nav == "OptionSet")
        && let Some(set) = option_set_json(entity, attr)
    {
        obj.insert("OptionSet".into(), set);
    }
    Some(obj)
}

pub(super) fn key_json(entity: &EntityMeta, key: &KeyMeta) -> Map<String, Value> {
    match json!({
        "MetadataId": key.metadata_id.to_string(),
        "LogicalName": key.logical_name,
        "SchemaName": key.schema_name,
        "EntityLogicalName": entity.logical_name,
        "KeyAttributes": key.attributes,
        "EntityKeyIndexStatus": "Active",
        "DisplayName": label(&key.schema_name),
    }) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn one_to_many_json(rel: &OneToMany) -> Map<String, Value> {
    match json!({
        "@odata.type": "#Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata",
        "MetadataId": rel.metadata_id.to_string(),
        "SchemaName": rel.schema_name,
        "RelationshipType": "OneToManyRelationship",
        "IsCustomRelationship": rel.is_custom,
        "ReferencedEntity": rel.referenced_entity,
        "ReferencedAttribute": rel.referenced_attribute,
        "ReferencingEntity": rel.referencing_entity,
        "ReferencingAttribute": rel.referencing_attribute,
        "ReferencedEntityNavigationPropertyName": rel.referenced_nav,
        "ReferencingEntityNavigationPropertyName": rel.referencing_nav,
        "IsHierarchical": false,
        "CascadeConfiguration": {"Assign": "NoCascade", "Delete": "RemoveLink", "Merge": "NoCascade", "Reparent": "NoCascade", "Share": "NoCascade", "Unshare": "NoCascade"},
    }) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn many_to_many_json(rel: &ManyToMany) -> Map<String, Value> {
    match json!({
        "@odata.type": "#Microsoft.Dynamics.CRM.ManyToManyRelationshipMetadata",
        "MetadataId": rel.metadata_id.to_string(),
        "SchemaName": rel.schema_name,
        "RelationshipType": "ManyToManyRelationship",
        "IsCustomRelationship": rel.is_custom,
        "Entity1LogicalName": rel.entity1,
        "Entity2LogicalName": rel.entity2,
        "Entity1IntersectAttribute": rel.entity1_attribute,
        "Entity2IntersectAttribute": rel.entity2_attribute,
        "IntersectEntityName": rel.intersect_entity,
        "Entity1NavigationPropertyName": rel.entity1_nav,
        "Entity2NavigationPropertyName": rel.entity2_nav,
    }) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Evaluate a `$filter` on a metadata object's properties (comparisons, and/or/not).
fn json_matches(obj: &Map<String, Value>, expr: &Expr) -> Result<bool, DvError> {
    Ok(match expr {
        Expr::And(a, b) => json_matches(obj, a)? && json_matches(obj, b)?,
        Expr::Or(a, b) => json_matches(obj, a)? || json_matches(obj, b)?,
        Expr::Not(a) => !json_matches(obj, a)?,
        Expr::Cmp(Operand::Path(path), op, Operand::Lit(lit))
        | Expr::Cmp(Operand::Lit(lit), op, Operand::Path(path)) => {
            let mut value = Value::Object(obj.clone());
            for part in path {
                value = value.get(part).cloned().unwrap_or(Value::Null);
            }
            let expected = match lit {
                Lit::Null => Value::Null,
                Lit::Bool(b) => Value::Bool(*b),
                Lit::Int(i) => Value::from(*i),
                Lit::Dec(d) => serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number),
                Lit::Str(s) => Value::String(s.clone()),
                Lit::Guid(g) => Value::String(g.to_string()),
            };
            let equal = match (&value, &expected) {
                (Value::String(a), Value::String(b)) => a.eq_ignore_ascii_case(b),
                (a, b) => a == b,
            };
            match op {
                Op::Eq => equal,
                Op::Ne => !equal,
                _ => {
                    return Err(DvError::bad_request(
                        "Only eq and ne are supported in a metadata $filter.",
                    ));
                }
            }
        }
        _ => {
            return Err(DvError::bad_request(
                "This $filter is not supported on metadata.",
            ));
        }
    })
}

pub(super) struct MetaQuery {
    select: Vec<String>,
    filter: Option<Expr>,
    pub(super) expand: Vec<(String, Vec<String>)>,
}

pub(super) fn meta_query(req: &ApiRequest) -> Result<MetaQuery, DvError> {
    let aliases = req
        .query
        .iter()
        .filter(|(k, _)| k.starts_with('@'))
        .cloned()
        .collect();
    let mut out = MetaQuery {
        select: Vec::new(),
        filter: None,
        expand: Vec::new(),
    };
    for (key, value) in &req.query {
        match key.as_str() {
            "$select" => out.select = value.split(',').map(|s| s.trim().to_owned()).collect(),
            "$filter" => {
                out.filter =
                    Some(filter::parse(value, &aliases).map_err(|e| {
                        DvError::bad_request(format!("Syntax error in $filter: {e}"))
                    })?);
            }
            "$expand" => {
                for item in value.split(',').map(str::trim) {
                    let (nav, inner) = match item.split_once('(') {
                        Some((n, rest)) => (n.to_owned(), rest.trim_end_matches(')').to_owned()),
                        None => (item.to_owned(), String::new()),
                    };
                    let select = inner
                        .strip_prefix("$select=")
                        .map(|s| s.split(',').map(|c| c.trim().to_owned()).collect())
                        .unwrap_or_default();
                    if !inner.is_empty() && !inner.starts_with("$select=") {
                        return Err(DvError::bad_request(format!(
                            "The expand option '{inner}' is not supported on metadata."
                        )));
                    }
                    out.expand.push((nav, select));
                }
            }
            k if k.starts_with('$') => {
                return Err(DvError::bad_request(format!(
                    "The query parameter {k} is not supported"
                )));
            }
            _ => {}
        }
    }
    Ok(out)
}

fn project(mut obj: Map<String, Value>, select: &[String]) -> Map<String, Value> {
    if select.is_empty() {
        return obj;
    }
    obj.retain(|k, _| {
        k == "@odata.type" || k == "MetadataId" || k == "OptionSet" || select.iter().any(|s| s == k)
    });
    obj
}

pub(super) fn collection(
    ctx: &Ctx,
    context: &str,
    items: Vec<Map<String, Value>>,
    q: &MetaQuery,
) -> Result<ApiResponse, DvError> {
    let mut values = Vec::new();
    for item in items {
        if let Some(f) = &q.filter
            && !json_matches(&item, f)?
        {
            continue;
        }
        values.push(Value::Object(project(item, &q.select)));
    }
    Ok(ApiResponse::json(
        200,
        &json!({"@odata.context": format!("{}$metadata#{context}", ctx.root()), "value": values}),
    ))
}

pub(super) fn one(
    ctx: &Ctx,
    context: &str,
    item: Map<String, Value>,
    q: &MetaQuery,
) -> ApiResponse {
    let mut obj = Map::new();
    obj.insert(
        "@odata.context".into(),
        Value::String(format!("{}$metadata#{context}", ctx.root())),
    );
    obj.extend(project(item, &q.select));
    ApiResponse::json(200, &Value::Object(obj))
}

pub(super) fn find_entity<'a>(store: &'a Store, key: &str) -> Result<&'a EntityMeta, DvError> {
    let key = key.trim();
    let found = if let Some(name) = key
        .strip_prefix("LogicalName=")
        .map(|v| v.trim_matches('\''))
    {
        store.table(&name.to_ascii_lowercase()).map(|t| &t.meta)
    } else if let Ok(id) = Uuid::parse_str(key) {
        store
            .tables()
            .map(|t| &t.meta)
            .find(|m| m.metadata_id == id)
    } else {
        return Err(DvError::bad_request(format!("Invalid key '{key}'.")));
    };
    found.ok_or_else(|| {
        DvError::new(
            404,
            "0x80040217",
            format!("Could not find an entity with {key}."),
        )
    })
}

pub(super) fn entity_relationships(
    store: &Store,
    logical: &str,
    which: &str,
) -> Vec<Map<String, Value>> {
    match which {
        "ManyToManyRelationships" => store
            .many_to_many
            .iter()
            .filter(|r| r.entity1 == logical || r.entity2 == logical)
            .map(many_to_many_json)
            .collect(),
        "OneToManyRelationships" => store
            .one_to_many
            .iter()
            .filter(|r| r.referenced_entity == logical)
            .map(one_to_many_json)
            .collect(),
        _ => store
            .one_to_many
            .iter()
            .filter(|r| r.referencing_entity == logical)
            .map(one_to_many_json)
            .collect(),
    }
}

pub(super) fn with_expands(
    store: &Store,
    entity: &EntityMeta,
    mut obj: Map<String, Value>,
    q: &MetaQuery,
) -> Result<Map<String, Value>, DvError> {
    for (nav, select) in &q.expand {
        let items: Vec<Map<String, Value>> = match nav.as_str() {
            "Attributes" => entity
                .attributes
                .iter()
                .map(|a| attribute_json(entity, a))
                .collect(),
            "Keys" => entity.keys.iter().map(|k| key_json(entity, k)).collect(),
            "ManyToManyRelationships" | "OneToManyRelationships" | "ManyToOneRelationships" => {
                entity_relationships(store, &entity.logical_name, nav)
            }
            other => {
                return Err(DvError::bad_request(format!(
                    "Could not find a navigation property named '{other}' on EntityMetadata."
                )));
            }
        };
        obj.insert(
            nav.clone(),
            Value::Array(
                items
                    .into_iter()
                    .map(|i| Value::Object(project(i, select)))
                    .collect(),
            ),
        );
    }
    Ok(obj)
}
pub(super) fn relationships(
    ctx: &Ctx,
    store: &mut Store,
    req: &ApiRequest,
    first: &Segment,
    cast: Option<&Segment>,
    q: &MetaQuery,
) -> Result<ApiResponse, DvError> {
    let all = || -> Vec<Map<String, Value>> {
        store
            .one_to_many
            .iter()
            .map(one_to_many_json)
            .chain(store.many_to_many.iter().map(many_to_many_json))
            .collect()
    };
    match (req.method.as_str(), first.key.as_deref()) {
        ("GET", None) => {
            let mut items = all();
            if let Some(cast) = cast {
                let wanted = format!("#{}", cast.name);
                items.retain(|i| {
                    i.get("@odata.type").and_then(Value::as_str) == Some(wanted.as_str())
                });
            }
            collection(ctx, "RelationshipDefinitions", items, q)
        }
        ("GET", Some(key)) => {
            let wanted = key.trim_start_matches("SchemaName=").trim_matches('\'');
            let item = all()
                .into_iter()
                .find(|i| {
                    i.get("SchemaName")
                        .and_then(Value::as_str)
                        .is_some_and(|s| s.eq_ignore_ascii_case(wanted))
                        || i.get("MetadataId").and_then(Value::as_str) == Some(wanted)
                })
                .ok_or_else(|| {
                    DvError::new(
                        404,
                        "0x80040217",
                        format!("Could not find relationship with SchemaName {wanted}."),
                    )
                })?;
            if let Some(cast) = cast
                && item.get("@odata.type").and_then(Value::as_str)
                    != Some(format!("#{}", cast.name).as_str())
            {
                return Err(DvError::bad_request(format!(
                    "The relationship '{wanted}' is not a {}.",
                    cast.name
                )));
            }
            Ok(one(ctx, "RelationshipDefinitions/$entity", item, q))
        }
        ("POST", None) => create_relationship(ctx, store, req),
        _ => Err(DvError::new(
            405,
            "0x80060888",
            format!(
                "The requested resource does not support http method '{}'.",
                req.method
            ),
        )),
    }
}
