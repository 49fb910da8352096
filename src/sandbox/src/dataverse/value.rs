//! Column values as the store keeps them (compact, typed), and their conversion from and to the
//! JSON the Web API speaks, checked against the column's metadata type.

use std::cmp::Ordering;

use serde_json::Value;
use uuid::Uuid;

use super::meta::AttrType;

/// One stored value.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Val {
    /// No value.
    Null,
    /// Yes/no.
    Bool(bool),
    /// Whole number (also choices, state and status).
    Int(i64),
    /// Decimal.
    Dec(f64),
    /// Text, or a date as ISO 8601 text.
    Str(Box<str>),
    /// A GUID (primary keys, lookups).
    Guid(Uuid),
}

impl Val {
    /// The value as JSON.
    #[must_use]
    pub fn to_json(&self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Int(i) => Value::from(*i),
            Val::Dec(d) => serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number),
            Val::Str(s) => Value::String(s.to_string()),
            Val::Guid(g) => Value::String(g.to_string()),
        }
    }

    /// Whether this is `Null`.
    #[must_use]
    pub fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    /// Compare for `$orderby` and `gt`/`lt`: nulls first, numbers numerically, text
    /// case-insensitively (SQL Server's default collation).
    #[must_use]
    pub fn compare(&self, other: &Val) -> Option<Ordering> {
        match (self, other) {
            (Val::Null, Val::Null) => Some(Ordering::Equal),
            (Val::Null, _) => Some(Ordering::Less),
            (_, Val::Null) => Some(Ordering::Greater),
            (Val::Bool(a), Val::Bool(b)) => Some(a.cmp(b)),
            (Val::Int(a), Val::Int(b)) => Some(a.cmp(b)),
            (Val::Int(a), Val::Dec(b)) => (*a as f64).partial_cmp(b),
            (Val::Dec(a), Val::Int(b)) => a.partial_cmp(&(*b as f64)),
            (Val::Dec(a), Val::Dec(b)) => a.partial_cmp(b),
            (Val::Str(a), Val::Str(b)) if a.is_ascii() && b.is_ascii() => Some(
                a.bytes()
                    .map(|c| c.to_ascii_lowercase())
                    .cmp(b.bytes().map(|c| c.to_ascii_lowercase())),
            ),
            (Val::Str(a), Val::Str(b)) => Some(cmp_ci(a, b)),
            (Val::Guid(a), Val::Guid(b)) => Some(a.cmp(b)),
            (Val::Guid(a), Val::Str(b)) => Uuid::parse_str(b).ok().map(|b| a.cmp(&b)),
            (Val::Str(a), Val::Guid(b)) => Uuid::parse_str(a).ok().map(|a| a.cmp(b)),
            _ => None,
        }
    }

    /// Equality as `eq` means it (text case-insensitive).
    #[must_use]
    pub fn equals(&self, other: &Val) -> bool {
        if let (Val::Str(a), Val::Str(b)) = (self, other)
            && a.is_ascii()
            && b.is_ascii()
        {
            return a.eq_ignore_ascii_case(b);
        }
        self.compare(other) == Some(Ordering::Equal)
    }
}

/// Case-insensitive text comparison.
#[must_use]
pub fn cmp_ci(a: &str, b: &str) -> Ordering {
    let mut left = a.chars().flat_map(char::to_lowercase);
    let mut right = b.chars().flat_map(char::to_lowercase);
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x != y => return x.cmp(&y),
            _ => {}
        }
    }
}

/// Which step refuses a value that does not fit a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The OData reader: the literal is not of the property's Edm type (`0x80048d19`).
    Payload,
    /// Platform validation: length, option set, range (`0x80044331`).
    Validation,
}

/// Why a JSON value does not fit a column: the message and the step that refuses it.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch(pub String, pub Stage);

/// Convert the JSON of a write body to the stored value of a column of this type.
///
/// # Errors
/// The value does not fit the type (the message is the one the service gives).
pub fn from_json(kind: &AttrType, name: &str, value: &Value) -> Result<Val, Mismatch> {
    if value.is_null() {
        return Ok(Val::Null);
    }
    let wrong = || {
        Mismatch(
            format!(
                "Cannot convert the literal '{}' to the expected type '{}'.",
                literal(value),
                kind.edm()
            ),
            Stage::Payload,
        )
    };
    match kind {
        AttrType::Uniqueidentifier | AttrType::Lookup(_) => value
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .map(Val::Guid)
            .ok_or_else(wrong),
        AttrType::String(max) | AttrType::Memo(max) => {
            let text = value.as_str().ok_or_else(wrong)?;
            let len = text.chars().count();
            if len > *max as usize {
                return Err(Mismatch(
                    format!(
                        "A validation error occurred.  The length of the '{name}' attribute of \
                         the '{{entity}}' entity exceeded the maximum allowed length of '{max}'."
                    ),
                    Stage::Validation,
                ));
            }
            Ok(Val::Str(text.into()))
        }
        AttrType::Integer | AttrType::BigInt => value.as_i64().map(Val::Int).ok_or_else(wrong),
        AttrType::Picklist(allowed) | AttrType::State(allowed) | AttrType::Status(allowed) => {
            let n = value.as_i64().ok_or_else(wrong)?;
            if allowed.contains(&n) {
                Ok(Val::Int(n))
            } else {
                Err(Mismatch(
                    format!(
                        "A validation error occurred. The value {n} of '{name}' on record of type \
                         '{{entity}}' is outside the valid range. Accepted Values: {}",
                        allowed
                            .iter()
                            .map(i64::to_string)
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                    Stage::Validation,
                ))
            }
        }
        AttrType::Boolean => value.as_bool().map(Val::Bool).ok_or_else(wrong),
        AttrType::Decimal => value.as_f64().map(Val::Dec).ok_or_else(wrong),
        AttrType::DateTime => {
            let text = value.as_str().ok_or_else(wrong)?;
            if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
                let utc = at.with_timezone(&chrono::Utc);
                Ok(Val::Str(
                    utc.format("%Y-%m-%dT%H:%M:%SZ")
                        .to_string()
                        .into_boxed_str(),
                ))
            } else if chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok() {
                Ok(Val::Str(format!("{text}T00:00:00Z").into_boxed_str()))
            } else {
                Err(wrong())
            }
        }
        AttrType::Date => {
            let text = value.as_str().ok_or_else(wrong)?;
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .filter(|_| text.len() == 10)
                .map(|_| Val::Str(text.into()))
                .ok_or_else(wrong)
        }
    }
}

fn literal(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_and_refuses_by_type() {
        let s = from_json(&AttrType::String(5), "x", &json!("abc")).unwrap();
        assert_eq!(s, Val::Str("abc".into()));
        assert!(from_json(&AttrType::String(2), "x", &json!("abc")).is_err());
        assert!(from_json(&AttrType::Integer, "x", &json!("1")).is_err());
        assert!(from_json(&AttrType::Picklist(vec![1, 2]), "x", &json!(3)).is_err());
        let d = from_json(
            &AttrType::DateTime,
            "x",
            &json!("2024-01-02T03:04:05+01:00"),
        )
        .unwrap();
        assert_eq!(d, Val::Str("2024-01-02T02:04:05Z".into()));
        assert_eq!(
            from_json(&AttrType::Boolean, "x", &json!(null)).unwrap(),
            Val::Null
        );
    }

    #[test]
    fn text_compares_case_insensitively_and_null_sorts_first() {
        assert!(Val::Str("A@x.com".into()).equals(&Val::Str("a@X.com".into())));
        assert_eq!(Val::Null.compare(&Val::Int(1)), Some(Ordering::Less));
    }
}
