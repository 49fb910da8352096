//! The metadata Web API: `EntityDefinitions` (read, create), their `Attributes`, `Keys` and
//! relationship collections, `RelationshipDefinitions` (read, create one-to-many with a lookup,
//! and many-to-many), and a CSDL `$metadata` document built from the same metadata.
//!
//! Responses carry the property names and `@odata.type`s of the real service; `$select` and a
//! `$filter` of comparisons on the definitions' properties are honoured, other options refused.

mod create;
mod csdl;
mod read;

use uuid::Uuid;

use super::errors::DvError;
use super::routes::{ApiRequest, ApiResponse, Ctx, Segment};
use super::store::Store;
use create::{create_attribute, create_entity, create_key};
pub use csdl::csdl;
use read::{
    MetaQuery, cast_attribute_json, collection, entity_json, entity_relationships, find_entity,
    key_json, meta_query, one, relationships, with_expands,
};

/// The derived-type cast after `Attributes` (`Microsoft.Dynamics.CRM.PicklistAttributeMetadata`),
/// which `$expand=OptionSet` needs: `OptionSet` is not a property of `AttributeMetadata`.
fn attribute_cast<'a>(segs: &'a [Segment], q: &MetaQuery) -> Result<Option<&'a str>, DvError> {
    let cast = segs.get(2).map(|s| s.name.as_str());
    if cast.is_none() && q.expand.iter().any(|(nav, _)| nav == "OptionSet") {
        return Err(DvError::bad_request(
            "Could not find a property named 'OptionSet' on type 'Microsoft.Dynamics.CRM.AttributeMetadata'.",
        ));
    }
    Ok(cast)
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
                    let cast = attribute_cast(segs, &q)?;
                    let items = entity
                        .attributes
                        .iter()
                        .filter_map(|a| cast_attribute_json(&entity, a, cast, &q))
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
                    let cast = attribute_cast(segs, &q)?;
                    let obj = cast_attribute_json(&entity, attr, cast, &q).ok_or_else(|| {
                        DvError::bad_request(format!(
                            "The attribute {name} is not of the type {}.",
                            cast.unwrap_or_default()
                        ))
                    })?;
                    Ok(one(ctx, &format!("{context}/$entity"), obj, &q))
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
