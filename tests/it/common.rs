//! Helpers shared by the integration tests: run the built binary with a clean environment.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The crate root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `audience-sync` binary, with none of the variables a developer's shell may have set
/// that would change what it does.
pub fn bin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_audience-sync"));
    for var in [
        "MAILCHIMP_API_KEY",
        "MAILCHIMP_BASE_URL",
        "DATAVERSE_URL",
        "DATAVERSE_TOKEN_URL",
        "DATAVERSE_TENANT_ID",
        "DATAVERSE_CLIENT_ID",
        "DATAVERSE_CLIENT_SECRET",
        "AUDIENCE_SYNC_CONFIG",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    command.env("NO_COLOR", "1").current_dir(root());
    command
}

/// Run the binary with `args` and return what it did.
pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("the binary runs")
}

/// Text of stdout and stderr.
pub fn texts(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Files in `dir` with the extension `ext`, sorted.
pub fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("directory exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    out.sort();
    out
}

/// Write a config that reaches the sandbox through the variables it prints, with these
/// bindings (YAML lines under `bindings:`, or empty for none).
pub fn sandbox_config(dir: &Path, bindings: &str) -> PathBuf {
    let path = dir.join("audience-sync.yaml");
    let bindings = if bindings.trim().is_empty() {
        " []".to_owned()
    } else {
        format!("\n{bindings}")
    };
    let text = format!(
        "version: 1
mailchimp:
  api_key: ${{MAILCHIMP_API_KEY}}
  base_url: ${{MAILCHIMP_BASE_URL}}
dataverse:
  url: ${{DATAVERSE_URL}}
  tenant_id: ${{DATAVERSE_TENANT_ID}}
  client_id: ${{DATAVERSE_CLIENT_ID}}
  client_secret: ${{DATAVERSE_CLIENT_SECRET}}
  token_url: ${{DATAVERSE_TOKEN_URL}}
bindings:{bindings}
"
    );
    std::fs::write(&path, text).expect("temp dir is writable");
    path
}

/// Run the binary with `args` and the sandbox's variables, off the async runtime's threads.
pub async fn run_in(sandbox: &api_sandbox::Sandbox, args: &[&str]) -> Output {
    let mut command = bin();
    command.envs(sandbox.env()).args(args);
    tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .expect("joined")
}

/// A Dataverse client of the sandbox: to read the CRM back through its Web API.
pub fn crm_client(sandbox: &api_sandbox::Sandbox) -> audience_sync::dataverse::Client {
    let env: std::collections::HashMap<String, String> = sandbox.env().into_iter().collect();
    let get = |k: &str| env.get(k).cloned().unwrap_or_default();
    audience_sync::dataverse::Client::builder()
        .url(get("DATAVERSE_URL"))
        .tenant_id(get("DATAVERSE_TENANT_ID"))
        .client_id(get("DATAVERSE_CLIENT_ID"))
        .client_secret(get("DATAVERSE_CLIENT_SECRET").into())
        .token_url(Some(get("DATAVERSE_TOKEN_URL")))
        .build()
        .expect("client")
}

/// The tool's CRM tables, through a client of the sandbox's Dataverse emulator.
pub fn crm_tables(sandbox: &api_sandbox::Sandbox) -> audience_sync::dataverse::tables::ToolTables {
    audience_sync::dataverse::tables::ToolTables::new(
        crm_client(sandbox),
        audience_sync::dataverse::schema::Schema::default(),
    )
}

/// `plan CONFIG --detailed-exitcode` against the sandbox: the exit code and stdout + stderr.
pub async fn plan_code(sandbox: &api_sandbox::Sandbox, config: &str) -> (i32, String) {
    let out = run_in(sandbox, &["plan", config, "--detailed-exitcode"]).await;
    let (stdout, stderr) = texts(&out);
    (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
}
