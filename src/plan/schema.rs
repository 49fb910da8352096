//! The JSON schema of the plan format, generated from [`Plan`]: `schemas/plan.schema.json` is this
//! output, committed, and a test fails when they differ (`UPDATE_SCHEMA=1 cargo test --lib
//! plan::schema` rewrites the file).
//!
//! Two things the model's types cannot say are added here: the exact shape of `format_version`
//! (`MAJOR.MINOR`, digits only, as [`crate::plan::model::is_supported_version`] reads it), and
//! which fields hold personal data (`"x-personal-data": true`): a saved plan holds them in full,
//! so it is written `0600` and must be handled as personal data.

use serde_json::Value;

use super::model::Plan;

/// The fields that hold a member's personal data, as (definition, property). `Change.name` is a
/// list member's address on removals.
const PERSONAL_DATA: [(&str, &str); 8] = [
    ("Change", "name"),
    ("MemberRef", "id"),
    ("MemberRef", "contact_id"),
    ("MemberRef", "email"),
    ("FieldChange", "before"),
    ("FieldChange", "after"),
    ("UnmanagedMember", "email"),
    ("Problem", "message"),
];

/// The pattern of `format_version`.
pub const FORMAT_VERSION_PATTERN: &str = "^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)$";

/// The plan format's JSON schema, pretty-printed with a final newline.
#[must_use]
pub fn generate() -> String {
    let mut schema = serde_json::to_value(schemars::schema_for!(Plan)).unwrap_or_default();
    if let Some(version) = schema.pointer_mut("/properties/format_version") {
        version["pattern"] = Value::from(FORMAT_VERSION_PATTERN);
    }
    for (definition, property) in PERSONAL_DATA {
        let pointer = format!("/$defs/{definition}/properties/{property}");
        if let Some(field) = schema.pointer_mut(&pointer).and_then(Value::as_object_mut) {
            field.insert("x-personal-data".to_owned(), Value::Bool(true));
        }
    }
    let mut out = serde_json::to_string_pretty(&schema).unwrap_or_default();
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_schema_matches_the_model() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/plan.schema.json");
        let generated = generate();
        if std::env::var("UPDATE_SCHEMA").as_deref() == Ok("1") {
            std::fs::write(&path, &generated).expect("write schemas/plan.schema.json");
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "`schemas/plan.schema.json` is out of date with `plan::model::Plan`; regenerate it with:\n  UPDATE_SCHEMA=1 cargo test --lib plan::schema"
        );
    }

    #[test]
    fn schema_describes_the_versioned_plan() {
        let schema: serde_json::Value = serde_json::from_str(&generate()).expect("valid JSON");
        assert_eq!(schema["title"], "audience-sync plan");
        assert!(schema["properties"]["format_version"].is_object());
    }

    #[test]
    fn schema_marks_personal_data_and_the_version_pattern() {
        let schema: serde_json::Value = serde_json::from_str(&generate()).expect("valid JSON");
        for (definition, property) in PERSONAL_DATA {
            assert_eq!(
                schema["$defs"][definition]["properties"][property]["x-personal-data"], true,
                "{definition}.{property}"
            );
        }
        let pattern = regex::Regex::new(FORMAT_VERSION_PATTERN).expect("pattern");
        for (version, ok) in [
            ("2.0", true),
            ("10.12", true),
            ("2.0.0", false),
            ("+2.0", false),
            ("02.0", false),
        ] {
            assert_eq!(pattern.is_match(version), ok, "{version}");
        }
    }
}
