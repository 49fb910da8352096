//! Member values → CRM column values (pure): each Mailchimp value, read as text, becomes the JSON
//! value its column takes, or a reason why it cannot; and the CRM's value as read becomes the same
//! typed form, so the diff compares like with like and typed columns converge.
//!
//! - Text (`String`, `Memo`): kept as is, trimmed to `MaxLength` at a character boundary (counted
//!   in UTF-16 units, as Dataverse counts string length), with a note saying so.
//! - Yes/No: `true`/`false`, `yes`/`no`, `y`/`n`, `1`/`0`, `on`/`off` (any case).
//! - Whole numbers: an integer (or a number with no fraction) within the column's range; decimal
//!   numbers rounded to the column's precision, as Dataverse stores them.
//! - Choices: an option's label (any language, any case) or its value.
//! - Date only: `YYYY-MM-DD`, or the date of an RFC 3339 time as written.
//! - Date and time: RFC 3339 (or a bare date, read as midnight UTC), normalised to UTC
//!   `YYYY-MM-DDTHH:MM:SSZ`, which is how Dataverse answers; Mailchimp writes `+00:00`.
//! - Lookups: a record id, written as `/<entity set>(<id>)` under `<navigation>@odata.bind`.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use uuid::Uuid;

use super::model::Value;
use crate::dataverse::columns::ColumnType;

/// A member value converted for its column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    /// The value to write.
    pub value: Value,
    /// For text cut to the column's length: the member value's length (UTF-16 units).
    pub trimmed_from: Option<usize>,
}

impl Converted {
    fn exact(value: Value) -> Self {
        Self {
            value,
            trimmed_from: None,
        }
    }
}

/// The JSON key a column is written under: the column, or `<navigation>@odata.bind` for a lookup.
#[must_use]
pub fn write_key(column: &str, column_type: Option<&ColumnType>) -> String {
    match column_type {
        Some(ColumnType::Lookup { navigation, .. }) => format!("{navigation}@odata.bind"),
        _ => column.to_owned(),
    }
}

/// Convert a member value (as read from Mailchimp) for a column of type `ty`.
///
/// # Errors
/// Why the value cannot go into the column, for a person; never quoting the value, which is
/// member data in a plan that may be shared.
pub fn member_value(ty: &ColumnType, text: &str) -> Result<Converted, String> {
    let trimmed = text.trim();
    match ty {
        ColumnType::Text { max_len } => Ok(fit_text(text, *max_len as usize)),
        ColumnType::Boolean => boolean(trimmed)
            .map(|b| Converted::exact(Value::Bool(b)))
            .ok_or_else(|| "the value is not Yes/No (write true/false, yes/no or 1/0)".to_owned()),
        ColumnType::Integer { min, max } => {
            let n = integer(trimmed).ok_or_else(|| "the value is not a whole number".to_owned())?;
            if n < *min || n > *max {
                return Err(format!(
                    "the value is outside the column's range {min} to {max}"
                ));
            }
            Ok(Converted::exact(Value::Number(n)))
        }
        ColumnType::Decimal { precision } => decimal(trimmed, *precision)
            .map(|n| Converted::exact(Value::Decimal(n)))
            .ok_or_else(|| "the value is not a number".to_owned()),
        ColumnType::Choice { options } => {
            let by_value = integer(trimmed).filter(|n| options.iter().any(|o| o.value == *n));
            let by_label = || {
                options
                    .iter()
                    .find(|o| {
                        o.labels
                            .iter()
                            .any(|l| l.trim().eq_ignore_ascii_case(trimmed))
                    })
                    .map(|o| o.value)
            };
            by_value.or_else(by_label).map_or_else(
                || {
                    let labels: Vec<&str> = options
                        .iter()
                        .filter_map(|o| o.labels.first().map(String::as_str))
                        .collect();
                    Err(format!(
                        "the value is not one of the column's choices ({})",
                        labels.join(", ")
                    ))
                },
                |n| Ok(Converted::exact(Value::Number(n))),
            )
        }
        ColumnType::DateOnly => date_only(trimmed)
            .map(|d| Converted::exact(Value::Text(d.format("%Y-%m-%d").to_string())))
            .ok_or_else(|| {
                "the value is not a date with a year (write YYYY-MM-DD) for a date-only column"
                    .to_owned()
            }),
        ColumnType::DateTime => date_time(trimmed)
            .map(|t| Converted::exact(Value::Text(utc_text(t))))
            .ok_or_else(|| "the value is not a date and time (RFC 3339)".to_owned()),
        ColumnType::Lookup { target_set, .. } => Uuid::parse_str(trimmed)
            .map(|id| Converted::exact(Value::Text(format!("/{target_set}({id})"))))
            .map_err(|_| "the value is not a record id for a lookup".to_owned()),
        ColumnType::Unsupported { what } => Err(format!(
            "the column's type, {what}, is not written by this tool"
        )),
    }
}

/// The CRM's value as read (text, as the observer keeps it) in the typed form of
/// [`member_value`], for comparison; `None` when empty or unreadable.
#[must_use]
pub fn crm_value(ty: &ColumnType, text: &str) -> Option<Value> {
    let trimmed = text.trim();
    match ty {
        ColumnType::Text { .. } | ColumnType::Unsupported { .. } => {
            Some(Value::Text(text.to_owned()))
        }
        ColumnType::Boolean => boolean(trimmed).map(Value::Bool),
        ColumnType::Integer { .. } | ColumnType::Choice { .. } => {
            integer(trimmed).map(Value::Number)
        }
        ColumnType::Decimal { precision } => decimal(trimmed, *precision).map(Value::Decimal),
        ColumnType::DateOnly => {
            date_only(trimmed).map(|d| Value::Text(d.format("%Y-%m-%d").to_string()))
        }
        ColumnType::DateTime => date_time(trimmed).map(|t| Value::Text(utc_text(t))),
        ColumnType::Lookup { target_set, .. } => {
            let id = trimmed
                .rsplit_once('(')
                .map_or(trimmed, |(_, rest)| rest.trim_end_matches(')'));
            Uuid::parse_str(id)
                .ok()
                .map(|id| Value::Text(format!("/{target_set}({id})")))
        }
    }
}

/// A typed value as the text the snapshot keeps (what the observer would read back).
#[must_use]
pub fn as_text(value: &Value) -> String {
    match value {
        Value::Text(t) => t.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Decimal(n) => n.to_string(),
    }
}

fn fit_text(text: &str, max: usize) -> Converted {
    let units = text.encode_utf16().count();
    if units <= max {
        return Converted::exact(Value::Text(text.to_owned()));
    }
    let mut used = 0;
    let mut end = 0;
    for (i, c) in text.char_indices() {
        if used + c.len_utf16() > max {
            break;
        }
        used += c.len_utf16();
        end = i + c.len_utf8();
    }
    Converted {
        value: Value::Text(text[..end].to_owned()),
        trimmed_from: Some(units),
    }
}

fn boolean(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" | "on" => Some(true),
        "false" | "no" | "n" | "0" | "off" => Some(false),
        _ => None,
    }
}

fn integer(text: &str) -> Option<i64> {
    if let Ok(n) = text.parse::<i64>() {
        return Some(n);
    }
    let f: f64 = text.parse().ok()?;
    #[allow(clippy::cast_possible_truncation)] // checked: integral and within i64
    (f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

fn decimal(text: &str, precision: u32) -> Option<serde_json::Number> {
    let f: f64 = text.parse().ok()?;
    if !f.is_finite() {
        return None;
    }
    let scale = 10_f64.powi(i32::try_from(precision.min(10)).unwrap_or(10));
    let rounded = (f * scale).round() / scale;
    #[allow(clippy::cast_possible_truncation)] // checked: integral and small
    if rounded.fract() == 0.0 && rounded.abs() < 9.0e15 {
        return Some(serde_json::Number::from(rounded as i64));
    }
    serde_json::Number::from_f64(rounded)
}

fn date_only(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .or_else(|| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.date_naive())
        })
}

fn date_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S") {
        return Some(t.and_utc());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

fn utc_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataverse::columns::ChoiceOption;

    fn text(v: &str) -> Value {
        Value::Text(v.to_owned())
    }

    #[test]
    fn text_is_trimmed_to_max_length_at_a_character_boundary() {
        let ty = ColumnType::Text { max_len: 5 };
        let c = member_value(&ty, "abcdefgh").unwrap();
        assert_eq!((c.value, c.trimmed_from), (text("abcde"), Some(8)));
        // an emoji is two UTF-16 units: never cut in half
        let c = member_value(&ty, "abcd😀x").unwrap();
        assert_eq!((c.value, c.trimmed_from), (text("abcd"), Some(7)));
        let c = member_value(&ty, "ünïcö").unwrap();
        assert_eq!((c.value, c.trimmed_from), (text("ünïcö"), None));
    }

    #[test]
    fn yes_no_takes_booleans_and_their_text_forms() {
        for (t, b) in [
            ("true", true),
            ("Yes", true),
            ("1", true),
            ("FALSE", false),
            ("n", false),
        ] {
            assert_eq!(
                member_value(&ColumnType::Boolean, t).unwrap().value,
                Value::Bool(b)
            );
        }
        assert!(
            member_value(&ColumnType::Boolean, "maybe")
                .unwrap_err()
                .contains("Yes/No")
        );
    }

    #[test]
    fn numbers_are_checked_and_rounded() {
        let whole = ColumnType::Integer { min: 0, max: 100 };
        assert_eq!(member_value(&whole, "4").unwrap().value, Value::Number(4));
        assert_eq!(member_value(&whole, "4.0").unwrap().value, Value::Number(4));
        assert!(member_value(&whole, "4.5").is_err());
        assert!(member_value(&whole, "101").unwrap_err().contains("range"));
        let dec = ColumnType::Decimal { precision: 2 };
        let v = member_value(&dec, "2.71828").unwrap().value;
        assert_eq!(
            v,
            Value::Decimal(serde_json::Number::from_f64(2.72).unwrap())
        );
        assert_eq!(crm_value(&dec, "2.72"), Some(v));
    }

    #[test]
    fn choices_match_by_label_or_value() {
        let ty = ColumnType::Choice {
            options: vec![
                ChoiceOption {
                    value: 1,
                    labels: vec!["Single".into()],
                },
                ChoiceOption {
                    value: 2,
                    labels: vec!["Married".into(), "Verheiratet".into()],
                },
            ],
        };
        assert_eq!(
            member_value(&ty, "married").unwrap().value,
            Value::Number(2)
        );
        assert_eq!(
            member_value(&ty, "Verheiratet").unwrap().value,
            Value::Number(2)
        );
        assert_eq!(member_value(&ty, "1").unwrap().value, Value::Number(1));
        let err = member_value(&ty, "7").unwrap_err();
        assert!(err.contains("Single, Married"), "{err}");
        assert_eq!(crm_value(&ty, "2"), Some(Value::Number(2)));
    }

    #[test]
    fn dates_take_the_columns_form() {
        assert_eq!(
            member_value(&ColumnType::DateOnly, "1990-04-12")
                .unwrap()
                .value,
            text("1990-04-12")
        );
        assert!(member_value(&ColumnType::DateOnly, "04/12").is_err());
        let signup = member_value(&ColumnType::DateTime, "2024-03-01T10:20:30+00:00").unwrap();
        assert_eq!(signup.value, text("2024-03-01T10:20:30Z"));
        let offset = member_value(&ColumnType::DateTime, "2024-03-01T12:20:30+02:00").unwrap();
        assert_eq!(offset.value, text("2024-03-01T10:20:30Z"));
        assert_eq!(
            crm_value(&ColumnType::DateTime, "2024-03-01T10:20:30Z"),
            Some(signup.value)
        );
        assert!(member_value(&ColumnType::DateTime, "yesterday").is_err());
    }

    #[test]
    fn lookups_bind_by_entity_set() {
        let ty = ColumnType::Lookup {
            navigation: "parentcustomerid_account".into(),
            target_set: "accounts".into(),
        };
        let id = "7d7a3c4e-9e4f-4f0e-9a51-0c7c3d1c0a11";
        let want = text(&format!("/accounts({id})"));
        assert_eq!(member_value(&ty, id).unwrap().value, want);
        assert_eq!(crm_value(&ty, id), Some(want));
        assert_eq!(
            write_key("parentcustomerid", Some(&ty)),
            "parentcustomerid_account@odata.bind"
        );
        assert!(member_value(&ty, "Contoso").is_err());
    }
}
