//! The JSON schema of the plan format, generated from [`Plan`]: `schemas/plan.schema.json` is this
//! output, committed, and a test fails when they differ (`UPDATE_SCHEMA=1 cargo test --lib
//! plan::schema` rewrites the file).

use super::model::Plan;

/// The plan format's JSON schema, pretty-printed with a final newline.
#[must_use]
pub fn generate() -> String {
    let schema = schemars::schema_for!(Plan);
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
}
