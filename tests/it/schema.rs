//! The committed JSON schema is what the code generates.

use crate::common::{root, run, texts};

#[test]
fn committed_config_schema_matches_the_generated_one() {
    let generated = audience_sync::config::schema::generate_string();
    let path = root().join(audience_sync::config::schema::COMMITTED_PATH);
    if std::env::var("UPDATE_SCHEMA").as_deref() == Ok("1") {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date with src/config/model.rs; regenerate it with:\n  UPDATE_SCHEMA=1 cargo test --test it schema\n(or `cargo run -- schema > {}`)",
        path.display(),
        audience_sync::config::schema::COMMITTED_PATH
    );
}

#[test]
fn schema_command_prints_the_schema() {
    let output = run(&["schema"]);
    let (stdout, _) = texts(&output);
    assert_eq!(output.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(schema["title"], "audience-sync config");
    assert!(
        schema["definitions"]["BindingConfig"]["properties"]["prune_members"]["description"]
            .is_string()
    );
}

#[test]
fn schema_kind_plan_prints_the_committed_plan_schema() {
    let output = run(&["schema", "--kind", "plan"]);
    let (stdout, _) = texts(&output);
    assert_eq!(output.status.code(), Some(0));
    let committed = std::fs::read_to_string(root().join("schemas/plan.schema.json")).unwrap();
    assert_eq!(stdout, committed);
    let schema: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(schema["title"], "audience-sync plan");
}
