//! The metadata Web API: `EntityDefinitions` (read, create), their `Attributes`, `Keys` and
//! relationship collections, `RelationshipDefinitions` (read, create one-to-many with a lookup,
//! and many-to-many), and a CSDL `$metadata` document built from the same metadata.
//!
//! Responses carry the property names and `@odata.type`s of the real service; `$select` and a
//! `$filter` of comparisons on the definitions' properties are honoured, other options refused.

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::error::DvError;
use super::filter::{self, Expr, Lit, Op, Operand};
use super::meta::{self, AttrType, AttributeMeta, EntityMeta, KeyMeta, ManyToMany, OneToMany};
use super::routes::{ApiRequest, ApiResponse, Ctx, Segment};
use super::store::Store;

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

fn label_text(value: Option<&Value>) -> Option<String> {
    value?
        .get("LocalizedLabels")?
        .as_array()?
        .first()?
        .get("Label")?
        .as_str()
        .map(str::to_owned)
}

fn entity_json(entity: &EntityMeta) -> Map<String, Value> {
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
        AttrType::DateTime => "DateTimeType",
        AttrType::Decimal => "DecimalType",
        AttrType::Lookup(t) if t.len() > 1 => "CustomerType",
        AttrType::Lookup(_) => "LookupType",
    }
}

fn attribute_json(entity: &EntityMeta, attr: &AttributeMeta) -> Map<String, Value> {
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
    match &attr.kind {
        AttrType::String(max) | AttrType::Memo(max) => {
            out.insert("MaxLength".into(), Value::from(*max));
            out.insert("Format".into(), Value::String("Text".into()));
        }
        AttrType::Lookup(targets) => {
            out.insert("Targets".into(), json!(targets));
        }
        AttrType::Integer => {
            out.insert("MinValue".into(), Value::from(-2_147_483_648_i64));
            out.insert("MaxValue".into(), Value::from(2_147_483_647_i64));
        }
        _ => {}
    }
    out
}

fn key_json(entity: &EntityMeta, key: &KeyMeta) -> Map<String, Value> {
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

struct MetaQuery {
    select: Vec<String>,
    filter: Option<Expr>,
    expand: Vec<(String, Vec<String>)>,
}

fn meta_query(req: &ApiRequest) -> Result<MetaQuery, DvError> {
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
    obj.retain(|k, _| k == "@odata.type" || k == "MetadataId" || select.iter().any(|s| s == k));
    obj
}

fn collection(
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

fn one(ctx: &Ctx, context: &str, item: Map<String, Value>, q: &MetaQuery) -> ApiResponse {
    let mut obj = Map::new();
    obj.insert(
        "@odata.context".into(),
        Value::String(format!("{}$metadata#{context}", ctx.root())),
    );
    obj.extend(project(item, &q.select));
    ApiResponse::json(200, &Value::Object(obj))
}

fn find_entity<'a>(store: &'a Store, key: &str) -> Result<&'a EntityMeta, DvError> {
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

fn entity_relationships(store: &Store, logical: &str, which: &str) -> Vec<Map<String, Value>> {
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

fn with_expands(
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

/// Answer a request under `EntityDefinitions` or `RelationshipDefinitions`.
///
/// # Errors
/// Unknown definitions (404), bad bodies (400), unsupported shapes.
pub fn handle(
    ctx: &Ctx,
    store: &mut Store,
    req: &ApiRequest,
    segs: &[Segment],
) -> Result<ApiResponse, DvError> {
    let q = meta_query(req)?;
    let first = &segs[0];
    if first.name == "GlobalOptionSetDefinitions" {
        return collection(ctx, "GlobalOptionSetDefinitions", Vec::new(), &q);
    }
    if first.name == "RelationshipDefinitions" {
        return relationships(ctx, store, req, first, segs.get(1), &q);
    }
    match (req.method.as_str(), first.key.as_deref(), segs.get(1)) {
        ("GET", None, None) => {
            let items = store
                .tables()
                .map(|t| with_expands(store, &t.meta, entity_json(&t.meta), &q))
                .collect::<Result<Vec<_>, _>>()?;
            collection(ctx, "EntityDefinitions", items, &q)
        }
        ("POST", None, None) => create_entity(ctx, store, req),
        ("GET", Some(key), None) => {
            let entity = find_entity(store, key)?;
            let obj = with_expands(store, entity, entity_json(entity), &q)?;
            Ok(one(ctx, "EntityDefinitions/$entity", obj, &q))
        }
        (method, Some(key), Some(sub)) => {
            let entity = find_entity(store, key)?.clone();
            let context = format!("EntityDefinitions({})/{}", entity.metadata_id, sub.name);
            match (method, sub.name.as_str(), sub.key.as_deref()) {
                ("GET", "Attributes", None) => {
                    let cast = segs.get(2).map(|s| format!("#{}", s.name));
                    let items = entity
                        .attributes
                        .iter()
                        .map(|a| attribute_json(&entity, a))
                        .filter(|a| {
                            cast.as_deref().is_none_or(|c| {
                                a.get("@odata.type").and_then(Value::as_str) == Some(c)
                            })
                        })
                        .collect();
                    collection(ctx, &context, items, &q)
                }
                ("GET", "Attributes", Some(attr_key)) => {
                    let name = attr_key
                        .trim_start_matches("LogicalName=")
                        .trim_matches('\'');
                    let attr = entity
                        .attributes
                        .iter()
                        .find(|a| {
                            a.logical_name == name
                                || Uuid::parse_str(attr_key).is_ok_and(|id| a.metadata_id == id)
                        })
                        .ok_or_else(|| {
                            DvError::new(
                                404,
                                "0x80040217",
                                format!(
                                    "Could not find attribute {name} for entity {}.",
                                    entity.logical_name
                                ),
                            )
                        })?;
                    Ok(one(
                        ctx,
                        &format!("{context}/$entity"),
                        attribute_json(&entity, attr),
                        &q,
                    ))
                }
                ("POST", "Attributes", None) => {
                    create_attribute(ctx, store, req, &entity.logical_name)
                }
                ("GET", "Keys", None) => {
                    let items = entity.keys.iter().map(|k| key_json(&entity, k)).collect();
                    collection(ctx, &context, items, &q)
                }
                ("POST", "Keys", None) => create_key(ctx, store, req, &entity.logical_name),
                (
                    "GET",
                    "ManyToManyRelationships" | "OneToManyRelationships" | "ManyToOneRelationships",
                    None,
                ) => {
                    let items = entity_relationships(store, &entity.logical_name, &sub.name);
                    collection(ctx, &context, items, &q)
                }
                _ => Err(DvError::no_resource(&req.path)),
            }
        }
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

fn relationships(
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

fn body_of(req: &ApiRequest) -> Result<Map<String, Value>, DvError> {
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(DvError::bad_request(
            "The request body must be a JSON object.",
        )),
    }
}

fn text_field<'a>(body: &'a Map<String, Value>, name: &str) -> Result<&'a str, DvError> {
    body.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| DvError::bad_request(format!("The property '{name}' is required.")))
}

fn check_prefix(schema_name: &str) -> Result<(), DvError> {
    let valid = schema_name.split_once('_').is_some_and(|(prefix, rest)| {
        (2..=8).contains(&prefix.len())
            && !rest.is_empty()
            && schema_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    if valid {
        Ok(())
    } else {
        Err(DvError::new(
            400,
            "0x80044363",
            format!(
                "The schema name {schema_name} for this attribute is not valid: it must start with a valid customization prefix followed by an underscore."
            ),
        ))
    }
}

fn attribute_from(body: &Map<String, Value>, entity: &str) -> Result<AttributeMeta, DvError> {
    let schema_name = text_field(body, "SchemaName")?;
    check_prefix(schema_name)?;
    let odata_type = body
        .get("@odata.type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim_start_matches('#')
        .trim_start_matches("Microsoft.Dynamics.CRM.");
    let max = |default: u32| {
        body.get("MaxLength")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(default)
    };
    let kind = match odata_type {
        "StringAttributeMetadata" => AttrType::String(max(100)),
        "MemoAttributeMetadata" => AttrType::Memo(max(2000)),
        "IntegerAttributeMetadata" => AttrType::Integer,
        "BigIntAttributeMetadata" => AttrType::BigInt,
        "BooleanAttributeMetadata" => AttrType::Boolean,
        "DateTimeAttributeMetadata" => AttrType::DateTime,
        "DecimalAttributeMetadata" | "MoneyAttributeMetadata" | "DoubleAttributeMetadata" => {
            AttrType::Decimal
        }
        "PicklistAttributeMetadata" => {
            let options: Vec<i64> = body
                .get("OptionSet")
                .and_then(|o| o.get("Options"))
                .and_then(Value::as_array)
                .map(|opts| {
                    opts.iter()
                        .filter_map(|o| o.get("Value").and_then(Value::as_i64))
                        .collect()
                })
                .unwrap_or_default();
            AttrType::Picklist(options)
        }
        "LookupAttributeMetadata" => {
            return Err(DvError::bad_request(
                "A lookup column is created with its relationship: POST RelationshipDefinitions with a OneToManyRelationshipMetadata and its Lookup.",
            ));
        }
        other => {
            return Err(DvError::bad_request(format!(
                "The attribute type '{other}' is not supported; set '@odata.type'."
            )));
        }
    };
    let logical = schema_name.to_ascii_lowercase();
    let required = body
        .get("RequiredLevel")
        .and_then(|r| r.get("Value"))
        .and_then(Value::as_str)
        == Some("SystemRequired");
    Ok(AttributeMeta {
        metadata_id: meta::name_uuid(entity, &logical),
        logical_name: logical,
        schema_name: schema_name.to_owned(),
        kind,
        is_custom: true,
        read_only: false,
        system_required: required,
        display_name: label_text(body.get("DisplayName")).unwrap_or_else(|| schema_name.to_owned()),
    })
}

fn create_entity(ctx: &Ctx, store: &mut Store, req: &ApiRequest) -> Result<ApiResponse, DvError> {
    let body = body_of(req)?;
    let schema_name = text_field(&body, "SchemaName")?;
    check_prefix(schema_name)?;
    let logical = schema_name.to_ascii_lowercase();
    if store.table(&logical).is_some() {
        return Err(DvError::new(
            400,
            "0x80047013",
            format!(
                "An entity with the specified name {logical} already exists. Specify a unique name."
            ),
        ));
    }
    let attributes = body
        .get("Attributes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut primary_name = None;
    let mut parsed = Vec::new();
    for attr in &attributes {
        let obj = attr
            .as_object()
            .ok_or_else(|| DvError::bad_request("Each attribute must be an object."))?;
        let meta_attr = attribute_from(obj, &logical)?;
        if obj.get("IsPrimaryName").and_then(Value::as_bool) == Some(true) {
            if !matches!(meta_attr.kind, AttrType::String(_)) {
                return Err(DvError::bad_request(
                    "The primary name attribute must be a StringAttributeMetadata.",
                ));
            }
            primary_name = Some(meta_attr.logical_name.clone());
        }
        parsed.push(meta_attr);
    }
    let primary_name = primary_name.ok_or_else(|| {
        DvError::bad_request(
            "The entity must have exactly one primary name attribute (IsPrimaryName: true).",
        )
    })?;
    let code = 10_100 + i64::try_from(store.tables().count()).unwrap_or(0);
    let mut entity = EntityMeta::new(&logical, schema_name, &format!("{logical}s"), code);
    for attr in parsed {
        entity.add_attribute(attr);
    }
    entity.add("statecode", AttrType::State(vec![0, 1]));
    entity.add("statuscode", AttrType::Status(vec![1, 2]));
    entity.primary_name = Some(primary_name);
    entity.is_custom = true;
    entity.bulk = true;
    entity.ownership = body
        .get("OwnershipType")
        .and_then(Value::as_str)
        .unwrap_or("UserOwned")
        .to_owned();
    entity.display_name =
        label_text(body.get("DisplayName")).unwrap_or_else(|| schema_name.to_owned());
    entity.display_collection_name =
        label_text(body.get("DisplayCollectionName")).unwrap_or_else(|| format!("{schema_name}s"));
    let id = entity.metadata_id;
    store.add_table(entity);
    store.register_messages(&logical);
    Ok(ApiResponse::no_content().with_header(
        "OData-EntityId",
        format!("{}EntityDefinitions({id})", ctx.root()),
    ))
}

fn create_attribute(
    ctx: &Ctx,
    store: &mut Store,
    req: &ApiRequest,
    entity: &str,
) -> Result<ApiResponse, DvError> {
    let body = body_of(req)?;
    let attr = attribute_from(&body, entity)?;
    let table = store
        .table_mut(entity)
        .ok_or_else(|| DvError::no_resource(entity))?;
    if table.meta.attribute(&attr.logical_name).is_some() {
        return Err(DvError::new(
            400,
            "0x80047013",
            format!(
                "An attribute with the specified name {} already exists. Specify a unique name.",
                attr.logical_name
            ),
        ));
    }
    let entity_id = table.meta.metadata_id;
    let id = attr.metadata_id;
    table.meta.add_attribute(attr);
    Ok(ApiResponse::no_content().with_header(
        "OData-EntityId",
        format!(
            "{}EntityDefinitions({entity_id})/Attributes({id})",
            ctx.root()
        ),
    ))
}

fn create_key(
    ctx: &Ctx,
    store: &mut Store,
    req: &ApiRequest,
    entity: &str,
) -> Result<ApiResponse, DvError> {
    let body = body_of(req)?;
    let schema_name = text_field(&body, "SchemaName")?.to_owned();
    let attributes: Vec<String> = body
        .get("KeyAttributes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let table = store
        .table_mut(entity)
        .ok_or_else(|| DvError::no_resource(entity))?;
    if attributes.is_empty() || attributes.iter().any(|a| table.meta.attribute(a).is_none()) {
        return Err(DvError::bad_request(
            "KeyAttributes must name existing columns of the table.",
        ));
    }
    if table.meta.keys.len() >= 10 {
        return Err(DvError::bad_request(
            "A table can have at most 10 alternate keys.",
        ));
    }
    let key = KeyMeta {
        logical_name: schema_name.to_ascii_lowercase(),
        metadata_id: meta::name_uuid(&format!("{entity}:key"), &schema_name),
        schema_name,
        attributes,
    };
    let id = key.metadata_id;
    let entity_id = table.meta.metadata_id;
    table.meta.keys.push(key);
    Ok(ApiResponse::no_content().with_header(
        "OData-EntityId",
        format!("{}EntityDefinitions({entity_id})/Keys({id})", ctx.root()),
    ))
}

fn create_relationship(
    ctx: &Ctx,
    store: &mut Store,
    req: &ApiRequest,
) -> Result<ApiResponse, DvError> {
    let body = body_of(req)?;
    let schema_name = text_field(&body, "SchemaName")?.to_owned();
    check_prefix(&schema_name)?;
    if store.has_relationship(&schema_name) {
        return Err(DvError::new(
            400,
            "0x80047013",
            format!(
                "A relationship with the specified name {schema_name} already exists. Specify a unique name."
            ),
        ));
    }
    let kind = body
        .get("@odata.type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim_start_matches('#')
        .trim_start_matches("Microsoft.Dynamics.CRM.");
    let id = meta::name_uuid("relationship", &schema_name);
    match kind {
        "ManyToManyRelationshipMetadata" => {
            let entity1 = text_field(&body, "Entity1LogicalName")?.to_ascii_lowercase();
            let entity2 = text_field(&body, "Entity2LogicalName")?.to_ascii_lowercase();
            for e in [&entity1, &entity2] {
                if store.table(e).is_none() {
                    return Err(DvError::new(
                        404,
                        "0x80040217",
                        format!("Could not find an entity with LogicalName='{e}'."),
                    ));
                }
            }
            let intersect = body
                .get("IntersectEntityName")
                .and_then(Value::as_str)
                .map_or_else(|| schema_name.to_ascii_lowercase(), str::to_ascii_lowercase);
            let mut rel = meta::many_to_many(&schema_name, &entity1, &entity2, &intersect);
            if let Some(nav) = body
                .get("Entity1NavigationPropertyName")
                .and_then(Value::as_str)
            {
                rel.entity1_nav = nav.to_owned();
            }
            if let Some(nav) = body
                .get("Entity2NavigationPropertyName")
                .and_then(Value::as_str)
            {
                rel.entity2_nav = nav.to_owned();
            }
            rel.metadata_id = id;
            store.add_many_to_many(rel);
        }
        "OneToManyRelationshipMetadata" => {
            let referenced = text_field(&body, "ReferencedEntity")?.to_ascii_lowercase();
            let referencing = text_field(&body, "ReferencingEntity")?.to_ascii_lowercase();
            if store.table(&referenced).is_none() {
                return Err(DvError::new(
                    404,
                    "0x80040217",
                    format!("Could not find an entity with LogicalName='{referenced}'."),
                ));
            }
            let lookup = body
                .get("Lookup")
                .and_then(Value::as_object)
                .ok_or_else(|| {
                    DvError::bad_request(
                        "A OneToManyRelationshipMetadata needs its 'Lookup' attribute.",
                    )
                })?;
            let lookup_schema = text_field(lookup, "SchemaName")?;
            check_prefix(lookup_schema)?;
            let lookup_logical = lookup_schema.to_ascii_lowercase();
            let table = store.table_mut(&referencing).ok_or_else(|| {
                DvError::new(
                    404,
                    "0x80040217",
                    format!("Could not find an entity with LogicalName='{referencing}'."),
                )
            })?;
            if table.meta.attribute(&lookup_logical).is_some() {
                return Err(DvError::new(
                    400,
                    "0x80047013",
                    format!(
                        "An attribute with the specified name {lookup_logical} already exists."
                    ),
                ));
            }
            table.meta.add_attribute(AttributeMeta {
                metadata_id: meta::name_uuid(&referencing, &lookup_logical),
                logical_name: lookup_logical.clone(),
                schema_name: lookup_schema.to_owned(),
                kind: AttrType::Lookup(vec![referenced.clone()]),
                is_custom: true,
                read_only: false,
                system_required: false,
                display_name: label_text(lookup.get("DisplayName"))
                    .unwrap_or_else(|| lookup_schema.to_owned()),
            });
            let mut rel = meta::lookup_rel(
                &schema_name,
                &referenced,
                &referencing,
                &lookup_logical,
                &lookup_logical,
            );
            if let Some(nav) = body
                .get("ReferencingEntityNavigationPropertyName")
                .and_then(Value::as_str)
            {
                rel.referencing_nav = nav.to_owned();
            }
            if let Some(nav) = body
                .get("ReferencedEntityNavigationPropertyName")
                .and_then(Value::as_str)
            {
                rel.referenced_nav = nav.to_owned();
            }
            rel.metadata_id = id;
            rel.is_custom = true;
            store.one_to_many.push(rel);
        }
        other => {
            return Err(DvError::bad_request(format!(
                "The relationship type '{other}' is not supported; set '@odata.type'."
            )));
        }
    }
    Ok(ApiResponse::no_content().with_header(
        "OData-EntityId",
        format!("{}RelationshipDefinitions({id})", ctx.root()),
    ))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The CSDL `$metadata` document for the current tables (a subset of the real one: entity
/// types with keys, properties and navigation properties, the container, and the actions the
/// emulator serves).
#[must_use]
pub fn csdl(store: &Store) -> ApiResponse {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\"><edmx:DataServices><Schema Namespace=\"Microsoft.Dynamics.CRM\" Alias=\"mscrm\" xmlns=\"http://docs.oasis-open.org/odata/ns/edm\"><EntityType Name=\"crmbaseentity\" Abstract=\"true\"/>",
    );
    for t in store.tables() {
        let m = &t.meta;
        xml.push_str(&format!(
            "<EntityType Name=\"{}\" BaseType=\"mscrm.crmbaseentity\"><Key><PropertyRef Name=\"{}\"/></Key>",
            xml_escape(&m.logical_name),
            xml_escape(&m.primary_id)
        ));
        for a in &m.attributes {
            let name = if matches!(a.kind, AttrType::Lookup(_)) {
                format!("_{}_value", a.logical_name)
            } else {
                a.logical_name.clone()
            };
            xml.push_str(&format!(
                "<Property Name=\"{}\" Type=\"{}\"/>",
                xml_escape(&name),
                a.kind.edm()
            ));
        }
        for rel in store
            .one_to_many
            .iter()
            .filter(|r| r.referencing_entity == m.logical_name)
        {
            xml.push_str(&format!(
                "<NavigationProperty Name=\"{}\" Type=\"mscrm.{}\" Partner=\"{}\"><ReferentialConstraint Property=\"_{}_value\" ReferencedProperty=\"{}\"/></NavigationProperty>",
                xml_escape(&rel.referencing_nav),
                xml_escape(&rel.referenced_entity),
                xml_escape(&rel.referenced_nav),
                xml_escape(&rel.referencing_attribute),
                xml_escape(&rel.referenced_attribute)
            ));
        }
        for rel in store
            .one_to_many
            .iter()
            .filter(|r| r.referenced_entity == m.logical_name)
        {
            xml.push_str(&format!(
                "<NavigationProperty Name=\"{}\" Type=\"Collection(mscrm.{})\" Partner=\"{}\"/>",
                xml_escape(&rel.referenced_nav),
                xml_escape(&rel.referencing_entity),
                xml_escape(&rel.referencing_nav)
            ));
        }
        for rel in &store.many_to_many {
            if rel.entity1 == m.logical_name {
                xml.push_str(&format!(
                    "<NavigationProperty Name=\"{}\" Type=\"Collection(mscrm.{})\" Partner=\"{}\"/>",
                    xml_escape(&rel.entity1_nav),
                    xml_escape(&rel.entity2),
                    xml_escape(&rel.entity2_nav)
                ));
            } else if rel.entity2 == m.logical_name {
                xml.push_str(&format!(
                    "<NavigationProperty Name=\"{}\" Type=\"Collection(mscrm.{})\" Partner=\"{}\"/>",
                    xml_escape(&rel.entity2_nav),
                    xml_escape(&rel.entity1),
                    xml_escape(&rel.entity1_nav)
                ));
            }
        }
        xml.push_str("</EntityType>");
    }
    xml.push_str("<ComplexType Name=\"WhoAmIResponse\"><Property Name=\"BusinessUnitId\" Type=\"Edm.Guid\" Nullable=\"false\"/><Property Name=\"UserId\" Type=\"Edm.Guid\" Nullable=\"false\"/><Property Name=\"OrganizationId\" Type=\"Edm.Guid\" Nullable=\"false\"/></ComplexType>");
    xml.push_str("<ComplexType Name=\"AddMemberListResponse\"><Property Name=\"Id\" Type=\"Edm.Guid\" Nullable=\"false\"/></ComplexType>");
    xml.push_str("<ComplexType Name=\"CreateMultipleResponse\"><Property Name=\"Ids\" Type=\"Collection(Edm.Guid)\" Nullable=\"false\"/></ComplexType>");
    xml.push_str("<Function Name=\"WhoAmI\"><ReturnType Type=\"mscrm.WhoAmIResponse\" Nullable=\"false\"/></Function>");
    xml.push_str("<Action Name=\"AddMemberList\" IsBound=\"true\"><Parameter Name=\"entityset\" Type=\"mscrm.list\" Nullable=\"false\"/><Parameter Name=\"EntityId\" Type=\"Edm.Guid\" Nullable=\"false\"/><ReturnType Type=\"mscrm.AddMemberListResponse\" Nullable=\"false\"/></Action>");
    xml.push_str("<Action Name=\"RemoveMemberList\" IsBound=\"true\"><Parameter Name=\"entityset\" Type=\"mscrm.list\" Nullable=\"false\"/><Parameter Name=\"EntityId\" Type=\"Edm.Guid\" Nullable=\"false\"/></Action>");
    xml.push_str("<Action Name=\"AddListMembersList\"><Parameter Name=\"List\" Type=\"mscrm.list\" Nullable=\"false\"/><Parameter Name=\"Members\" Type=\"Collection(mscrm.crmbaseentity)\" Nullable=\"false\"/></Action>");
    for action in ["CreateMultiple", "UpdateMultiple", "UpsertMultiple"] {
        xml.push_str(&format!(
            "<Action Name=\"{action}\" IsBound=\"true\"><Parameter Name=\"entityset\" Type=\"Collection(mscrm.crmbaseentity)\" Nullable=\"false\"/><Parameter Name=\"Targets\" Type=\"Collection(mscrm.crmbaseentity)\" Nullable=\"false\"/>{}</Action>",
            if action == "CreateMultiple" { "<ReturnType Type=\"mscrm.CreateMultipleResponse\" Nullable=\"false\"/>" } else { "" }
        ));
    }
    xml.push_str("<EntityContainer Name=\"System\">");
    for t in store.tables() {
        xml.push_str(&format!(
            "<EntitySet Name=\"{}\" EntityType=\"Microsoft.Dynamics.CRM.{}\"/>",
            xml_escape(&t.meta.entity_set),
            xml_escape(&t.meta.logical_name)
        ));
    }
    xml.push_str("<FunctionImport Name=\"WhoAmI\" Function=\"Microsoft.Dynamics.CRM.WhoAmI\"/><ActionImport Name=\"AddListMembersList\" Action=\"Microsoft.Dynamics.CRM.AddListMembersList\"/></EntityContainer></Schema></edmx:DataServices></edmx:Edmx>");
    ApiResponse {
        status: 200,
        headers: Vec::new(),
        body: Some(("application/xml".to_owned(), xml.into_bytes())),
        ops: 1,
    }
}
