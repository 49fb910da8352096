//! Creating metadata as a client's bootstrap does: tables (`POST EntityDefinitions` with the
//! primary name attribute), columns, alternate keys, one-to-many relationships with their lookup,
//! and many-to-many relationships; names must carry the customization prefix of a publisher, and
//! each new table, column and relationship is recorded in the solution `MSCRM.SolutionUniqueName`
//! names (see [`crate::dataverse::solutions`]).

use serde_json::{Map, Value};
use uuid::Uuid;

use super::read::label_text;
use crate::dataverse::columns::Details;
use crate::dataverse::errors::DvError;
use crate::dataverse::meta;
use crate::dataverse::meta::{AttrType, AttributeMeta, EntityMeta, KeyMeta};
use crate::dataverse::routes::{ApiRequest, ApiResponse, Ctx};
use crate::dataverse::solutions;
use crate::dataverse::store::Store;

fn body_of(req: &ApiRequest) -> Result<Map<String, Value>, DvError> {
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(DvError::bad_request(
            "The request body must be a JSON object.",
        )),
    }
}

/// `field` = the text of `body[name]`, when the body gives one (else it keeps its default).
fn set_if_given(body: &Map<String, Value>, name: &str, field: &mut String) {
    if let Some(text) = body.get(name).and_then(Value::as_str) {
        text.clone_into(field);
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
    let text = |key: &str| {
        body.get(key)
            .and_then(|v| v.get("Value").or(Some(v)))
            .and_then(Value::as_str)
    };
    let kind = match odata_type {
        "StringAttributeMetadata" => AttrType::String(max(100)),
        "MemoAttributeMetadata" => AttrType::Memo(max(2000)),
        "IntegerAttributeMetadata" => AttrType::Integer,
        "BigIntAttributeMetadata" => AttrType::BigInt,
        "BooleanAttributeMetadata" => AttrType::Boolean,
        "DateTimeAttributeMetadata" if text("DateTimeBehavior") == Some("DateOnly") => {
            AttrType::Date
        }
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
    let details = Details {
        format: text("Format")
            .or_else(|| text("FormatName"))
            .map(str::to_owned),
        behavior: text("DateTimeBehavior").map(str::to_owned),
        options: body
            .get("OptionSet")
            .and_then(|o| o.get("Options"))
            .and_then(Value::as_array)
            .map(|opts| {
                opts.iter()
                    .filter_map(|o| {
                        let value = o.get("Value").and_then(Value::as_i64)?;
                        Some((value, label_text(o.get("Label")).unwrap_or_default()))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        min: body.get("MinValue").and_then(Value::as_i64),
        max: body.get("MaxValue").and_then(Value::as_i64),
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
        details,
    })
}

pub(super) fn create_entity(
    ctx: &Ctx,
    store: &mut Store,
    req: &ApiRequest,
) -> Result<ApiResponse, DvError> {
    let body = body_of(req)?;
    let schema_name = text_field(&body, "SchemaName")?;
    check_prefix(schema_name)?;
    solutions::check_publisher_prefix(store, schema_name)?;
    let solution = solutions::target_solution(store, req)?;
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
    let columns: Vec<Uuid> = entity
        .attributes
        .iter()
        .filter(|a| a.is_custom)
        .map(|a| a.metadata_id)
        .collect();
    store.add_table(entity);
    store.register_messages(&logical);
    solutions::add_component(store, solution, id, solutions::ENTITY);
    for column in columns {
        solutions::add_component(store, solution, column, solutions::ATTRIBUTE);
    }
    Ok(ApiResponse::no_content().with_header(
        "OData-EntityId",
        format!("{}EntityDefinitions({id})", ctx.root()),
    ))
}

pub(super) fn create_attribute(
    ctx: &Ctx,
    store: &mut Store,
    req: &ApiRequest,
    entity: &str,
) -> Result<ApiResponse, DvError> {
    let body = body_of(req)?;
    let attr = attribute_from(&body, entity)?;
    solutions::check_publisher_prefix(store, &attr.schema_name)?;
    let solution = solutions::target_solution(store, req)?;
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
    solutions::add_component(store, solution, id, solutions::ATTRIBUTE);
    Ok(ApiResponse::no_content().with_header(
        "OData-EntityId",
        format!(
            "{}EntityDefinitions({entity_id})/Attributes({id})",
            ctx.root()
        ),
    ))
}

pub(super) fn create_key(
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

pub(super) fn create_relationship(
    ctx: &Ctx,
    store: &mut Store,
    req: &ApiRequest,
) -> Result<ApiResponse, DvError> {
    let body = body_of(req)?;
    let schema_name = text_field(&body, "SchemaName")?.to_owned();
    check_prefix(&schema_name)?;
    solutions::check_publisher_prefix(store, &schema_name)?;
    let solution = solutions::target_solution(store, req)?;
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
            set_if_given(&body, "Entity1NavigationPropertyName", &mut rel.entity1_nav);
            set_if_given(&body, "Entity2NavigationPropertyName", &mut rel.entity2_nav);
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
            solutions::check_publisher_prefix(store, lookup_schema)?;
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
            let lookup_id = meta::name_uuid(&referencing, &lookup_logical);
            table.meta.add_attribute(AttributeMeta {
                metadata_id: lookup_id,
                logical_name: lookup_logical.clone(),
                schema_name: lookup_schema.to_owned(),
                kind: AttrType::Lookup(vec![referenced.clone()]),
                is_custom: true,
                read_only: false,
                system_required: false,
                display_name: label_text(lookup.get("DisplayName"))
                    .unwrap_or_else(|| lookup_schema.to_owned()),
                details: Details::default(),
            });
            let mut rel = meta::lookup_rel(
                &schema_name,
                &referenced,
                &referencing,
                &lookup_logical,
                &lookup_logical,
            );
            set_if_given(
                &body,
                "ReferencingEntityNavigationPropertyName",
                &mut rel.referencing_nav,
            );
            set_if_given(
                &body,
                "ReferencedEntityNavigationPropertyName",
                &mut rel.referenced_nav,
            );
            rel.metadata_id = id;
            rel.is_custom = true;
            store.one_to_many.push(rel);
            solutions::add_component(store, solution, lookup_id, solutions::ATTRIBUTE);
        }
        other => {
            return Err(DvError::bad_request(format!(
                "The relationship type '{other}' is not supported; set '@odata.type'."
            )));
        }
    }
    solutions::add_component(store, solution, id, solutions::RELATIONSHIP);
    Ok(ApiResponse::no_content().with_header(
        "OData-EntityId",
        format!("{}RelationshipDefinitions({id})", ctx.root()),
    ))
}
