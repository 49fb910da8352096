//! `plan` end to end: a generated sandbox, the real binary, real HTTP.

use std::process::Output;

use api_sandbox::{Options, Sandbox};

use crate::common::{bin, texts};

async fn generated(spec: &str) -> Sandbox {
    Sandbox::start(Options {
        generate: Some(spec.parse().unwrap()),
        ..audience_sync::commands::sandbox::options()
    })
    .await
    .unwrap()
}

/// Run the binary against the sandbox, with the variables it prints set.
async fn cli(sandbox: &Sandbox, args: &[&str]) -> Output {
    let mut command = bin();
    command.args(args);
    for (key, value) in sandbox.env() {
        command.env(key, value);
    }
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_example_plans_every_generated_audience_and_exits_2() {
    let sandbox = generated("members=2500,tags=5,seed=1,audiences=2").await;
    let output = cli(
        &sandbox,
        &[
            "plan",
            "examples/sandbox.yaml",
            "--detailed-exitcode",
            "--format",
            "json",
        ],
    )
    .await;
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let bindings = plan["bindings"].as_array().unwrap();
    assert_eq!(bindings.len(), 2);
    for binding in bindings {
        let counts = &binding["counts"];
        let subscribed = counts["create_record"].as_u64().unwrap();
        assert!(subscribed > 1500 && subscribed < 2500, "{counts}");
        assert_eq!(
            counts["add_list_member"].as_u64(),
            Some(subscribed),
            "every created record joins the list"
        );
        assert_eq!(counts["create_tag"].as_u64(), Some(5));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_match_what_mailchimp_holds() {
    let sandbox = generated("members=1200,tags=3,seed=7").await;
    let (id, name) = sandbox.mailchimp.audiences().into_iter().next().unwrap();
    let subscribed = subscribed_count(&sandbox, &id).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(dir.path(), &name);
    let output = cli(
        &sandbox,
        &["plan", config.to_str().unwrap(), "--format", "json"],
    )
    .await;
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        plan["bindings"][0]["counts"]["create_record"].as_u64(),
        Some(subscribed)
    );
    assert_eq!(
        plan["bindings"][0]["counts"]["create_tag"].as_u64(),
        Some(3)
    );
    assert!(
        stdout.find(audience_sync_key(&sandbox).as_str()).is_none(),
        "no secret in the plan"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_plan_round_trips_and_matches_stdout() {
    let sandbox = generated("members=300,tags=2,seed=3").await;
    let (_, name) = sandbox.mailchimp.audiences().into_iter().next().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("plan.json");
    let config = config_for(dir.path(), &name);
    let output = cli(
        &sandbox,
        &[
            "plan",
            config.to_str().unwrap(),
            "-out",
            saved.to_str().unwrap(),
            "--format",
            "json",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", texts(&output).1);
    let text = std::fs::read_to_string(&saved).unwrap();
    let plan: audience_sync::plan::Plan = serde_json::from_str(&text).unwrap();
    assert_eq!(
        audience_sync::plan::render::json(&plan).unwrap(),
        text,
        "the saved plan round-trips byte for byte"
    );
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        printed,
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    );
    assert!(
        !text.contains(&audience_sync_key(&sandbox)),
        "no secret in the saved plan"
    );
    assert!(plan.config_digest.starts_with("sha256:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markdown_and_text_renderings_come_from_the_same_plan() {
    let sandbox = generated("members=200,tags=2,seed=5").await;
    let (_, name) = sandbox.mailchimp.audiences().into_iter().next().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(dir.path(), &name);
    let md = cli(
        &sandbox,
        &["plan", config.to_str().unwrap(), "--format", "markdown"],
    )
    .await;
    let (stdout, _) = texts(&md);
    assert!(
        stdout.contains("<details>") && stdout.contains("***@example.com"),
        "{stdout}"
    );
    let text = cli(&sandbox, &["plan", config.to_str().unwrap()]).await;
    let (stdout, _) = texts(&text);
    assert!(stdout.contains("create record"), "{stdout}");
    assert!(
        !stdout.contains('\u{1b}'),
        "no colour when stdout is not a terminal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_audience_fails_with_its_name() {
    let sandbox = generated("members=10,tags=1,seed=1").await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(dir.path(), "No Such Audience");
    let output = cli(&sandbox, &["plan", config.to_str().unwrap()]).await;
    let (_, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("No Such Audience"), "{stderr}");
}

/// What Mailchimp itself says: `total_items` of the subscribed members.
async fn subscribed_count(sandbox: &Sandbox, list_id: &str) -> u64 {
    let url = format!(
        "{}/3.0/lists/{list_id}/members?status=subscribed&count=1&fields=total_items",
        sandbox.base_url()
    );
    let body: serde_json::Value = reqwest::Client::new()
        .get(url)
        .basic_auth("anystring", Some(sandbox.mailchimp.api_key()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["total_items"].as_u64().unwrap()
}

fn audience_sync_key(sandbox: &Sandbox) -> String {
    sandbox.mailchimp.api_key().to_owned()
}

fn config_for(dir: &std::path::Path, audience_name: &str) -> std::path::PathBuf {
    crate::common::sandbox_config(
        dir,
        &format!(
            "  - name: b\n    audience: {{ name: '{audience_name}' }}\n    marketing_list: {{ name: 'List of {audience_name}', member_type: contact, create: true }}"
        ),
    )
}
