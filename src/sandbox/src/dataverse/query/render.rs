//! One row as the Web API renders it: `@odata.etag`, the selected columns, lookups as
//! `_x_value` with their `@Microsoft.Dynamics.CRM.lookuplogicalname` annotation. The fields
//! come from one place ([`fields`]) and are either collected into a JSON object ([`render`])
//! or written straight into a response body ([`write_row`], what a page of thousands of rows
//! uses: no `serde_json::Map` per row), so both forms are the same bytes.

use std::borrow::Cow;
use std::io::Write as _;

use serde_json::{Map, Value};

use super::Projection;
use crate::dataverse::meta::{AttrType, EntityMeta};
use crate::dataverse::store::Row;
use crate::dataverse::value::Val;

/// A field's value: a stored value, or text made for the answer.
enum Field<'r> {
    Stored(&'r Val),
    Text(String),
}

/// The fields of a row in the order the service writes them.
fn fields<'r>(
    meta: &'r EntityMeta,
    row: &'r Row,
    projection: &Projection,
    mut emit: impl FnMut(Cow<'r, str>, Field<'r>),
) {
    if let Some(pos) = meta.position("versionnumber")
        && let Val::Int(v) = row.get(pos)
    {
        emit("@odata.etag".into(), Field::Text(format!("W/\"{v}\"")));
    }
    for pos in &projection.positions {
        let Some(attr) = meta.attribute_at(*pos) else {
            continue;
        };
        let value = row.get(*pos);
        if let AttrType::Lookup(targets) = &attr.kind {
            let key = format!("_{}_value", attr.logical_name);
            if let (Val::Guid(_), Some(target)) =
                (value, lookup_target(meta, row, &attr.logical_name, targets))
            {
                emit(
                    format!("{key}@Microsoft.Dynamics.CRM.lookuplogicalname").into(),
                    Field::Text(target),
                );
            }
            emit(key.into(), Field::Stored(value));
        } else {
            emit(attr.logical_name.as_str().into(), Field::Stored(value));
        }
    }
}

/// Render one row as the Web API does, as a JSON object.
#[must_use]
pub fn render(meta: &EntityMeta, row: &Row, projection: &Projection) -> Map<String, Value> {
    let mut out = Map::new();
    fields(meta, row, projection, |key, field| {
        let value = match field {
            Field::Stored(val) => val.to_json(),
            Field::Text(text) => Value::String(text),
        };
        out.insert(key.into_owned(), value);
    });
    out
}

/// Write one row as the Web API does, as [`render`] then serialising would.
pub fn write_row(meta: &EntityMeta, row: &Row, projection: &Projection, out: &mut Vec<u8>) {
    out.push(b'{');
    let mut first = true;
    fields(meta, row, projection, |key, field| {
        if !first {
            out.push(b',');
        }
        first = false;
        write_str(out, &key);
        out.push(b':');
        match field {
            Field::Text(text) => write_str(out, &text),
            Field::Stored(Val::Str(text)) => write_str(out, text),
            Field::Stored(Val::Guid(id)) => {
                // A GUID's text needs no escaping.
                let _ = write!(out, "\"{id}\"");
            }
            Field::Stored(Val::Int(n)) => {
                let _ = write!(out, "{n}");
            }
            Field::Stored(Val::Bool(b)) => {
                out.extend_from_slice(if *b { b"true" } else { b"false" })
            }
            Field::Stored(other) => {
                let _ = serde_json::to_writer(&mut *out, &other.to_json());
            }
        }
    });
    out.push(b'}');
}

/// A JSON string, escaped as `serde_json` escapes it.
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

fn lookup_target(meta: &EntityMeta, row: &Row, attr: &str, targets: &[String]) -> Option<String> {
    if targets.len() == 1 {
        return targets.first().cloned();
    }
    // listmember.entityid: the type is in entitytype; parentcustomerid: `parentcustomeridtype`
    // is not modelled, the first target is assumed.
    if attr == "entityid"
        && let Some(pos) = meta.position("entitytype")
        && let Val::Str(s) = row.get(pos)
    {
        return Some(s.to_string());
    }
    targets.first().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataverse::store::Store;

    #[test]
    fn a_written_row_is_the_rendered_row_serialised() {
        let store = Store::new(Some(&crate::dataverse::tool_schema::fixture()));
        let meta = &store.table("contact").unwrap().meta;
        let mut row = Row::default();
        let mut set = |name: &str, val: Val| row.set(meta.position(name).unwrap(), val);
        set("contactid", Val::Guid(uuid::Uuid::from_u128(7)));
        set("versionnumber", Val::Int(42));
        set("lastname", Val::Str("O'Brien \"Ann\" \\ \u{1}é".into()));
        set("donotbulkemail", Val::Bool(true));
        set("statecode", Val::Int(-1));
        set("parentcustomerid", Val::Guid(uuid::Uuid::from_u128(9)));
        let projection = super::super::projection(meta, &[]).unwrap();
        let mut written = Vec::new();
        write_row(meta, &row, &projection, &mut written);
        let rendered = Value::Object(render(meta, &row, &projection)).to_string();
        assert_eq!(String::from_utf8(written).unwrap(), rendered);
        assert!(
            rendered.contains("_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname")
        );
    }
}
