//! The config file's JSON schema, generated from the Rust model ([`super::model::Config`]):
//! the types are the single source of truth, `schemas/audience-sync.schema.json` is a committed
//! copy checked by a test, and `audience-sync schema` prints it.
//!
//! Draft-07, because yaml-language-server (editor completion and hover from a
//! `# yaml-language-server: $schema=…` line) supports it best. Optional settings are written
//! without `null` alternatives: leaving a key out is how a config says "use the default".

use schemars::generate::SchemaSettings;
use serde_json::Value;

use super::model::Config;

/// Where the committed copy lives, relative to the crate root.
pub const COMMITTED_PATH: &str = "schemas/audience-sync.schema.json";

/// The schema as a JSON value.
#[must_use]
pub fn generate() -> Value {
    let generator = SchemaSettings::draft07().into_generator();
    let schema = generator.into_root_schema_for::<Config>();
    let mut value = schema.to_value();
    drop_null_alternatives(&mut value);
    value
}

/// The schema as the committed file's text (pretty, with a final newline).
#[must_use]
pub fn generate_string() -> String {
    let mut text = serde_json::to_string_pretty(&generate()).unwrap_or_default();
    text.push('\n');
    text
}

/// `Option<T>` becomes `anyOf: [T, {type: null}]` or `type: [t, "null"]`; keep only `T`.
fn drop_null_alternatives(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get("type") {
                let non_null: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
                if non_null.len() < types.len() {
                    let replacement = if non_null.len() == 1 {
                        non_null[0].clone()
                    } else {
                        Value::Array(non_null)
                    };
                    map.insert("type".to_owned(), replacement);
                }
            }
            if let Some(Value::Array(alternatives)) = map.get("anyOf")
                && alternatives.len() == 2
                && let Some(keep) = alternatives
                    .iter()
                    .position(|a| a != &serde_json::json!({"type": "null"}))
                && alternatives
                    .iter()
                    .any(|a| a == &serde_json::json!({"type": "null"}))
            {
                let kept = alternatives[keep].clone();
                map.remove("anyOf");
                if let Value::Object(kept) = kept {
                    for (k, v) in kept {
                        map.entry(k).or_insert(v);
                    }
                }
            }
            if map.get("default") == Some(&Value::Null) {
                map.remove("default");
            }
            for child in map.values_mut() {
                drop_null_alternatives(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null_alternatives),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_settings_have_no_null_alternative() {
        let text = generate_string();
        let schema: Value = serde_json::from_str(&text).unwrap();
        let prune = &schema["definitions"]["Defaults"]["properties"]["prune_members"];
        assert_eq!(prune["type"], "boolean", "{prune}");
        assert_eq!(prune["default"], false);
        assert!(
            schema["definitions"]["BindingConfig"]["properties"]["members"]
                .get("anyOf")
                .is_none()
        );
    }

    #[test]
    fn the_schema_rejects_unknown_keys() {
        let schema = generate();
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(
            schema["definitions"]["BindingConfig"]["additionalProperties"],
            false
        );
    }
}
