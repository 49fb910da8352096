//! Keys in URLs and bodies: a row named by its id or by an alternate key
//! (`contacts(emailaddress1='a@b.c')`), `@odata.bind` references (`/contacts(id)`), and JSON bodies.

use serde_json::{Map, Value};
use uuid::Uuid;

use super::{ApiRequest, segments};
use crate::dataverse::errors::DvError;
use crate::dataverse::store::Store;
use crate::dataverse::value::Val;
use crate::dataverse::{query, value};

/// A resolved key segment.
#[derive(Debug, Clone)]
pub(super) struct Key {
    /// The existing row it names.
    pub(super) existing: Option<Uuid>,
    /// The GUID it gives (absent for an alternate key).
    pub(super) guid: Option<Uuid>,
    /// The alternate key's columns and values (for an upsert that creates).
    pub(super) values: Vec<(u16, Val)>,
}

/// Resolve a key segment: a GUID, or `col='v'[,col2=...]` by an alternate key.
pub(super) fn resolve_key(store: &Store, table: &str, key: &str) -> Result<Key, DvError> {
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

pub(super) fn parse_alternate_key(key: &str) -> Result<Vec<(String, String)>, DvError> {
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

pub(super) fn parse_body(req: &ApiRequest) -> Result<Map<String, Value>, DvError> {
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
