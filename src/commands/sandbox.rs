//! `audience-sync sandbox`: serve both emulators on one address until SIGINT or SIGTERM, after
//! printing to stdout, one per line, the `KEY=value` pairs a config or script needs (so a shell
//! can `eval` them), plus `AUDIENCE_SYNC_SANDBOX_PID` to stop it with. Then stdout is pointed at
//! /dev/null, so `eval "$(audience-sync sandbox … &)"` returns while the server runs on. Logs
//! and the "listening" note go to stderr.
//!
//! The emulators (package `api-sandbox`) know nothing of the tool: for the Dataverse seed's
//! `bootstrapped` mode, [`tool_schema`] hands them the schema `crm bootstrap` creates, built from
//! the one definition in [`crate::dataverse::schema`].

use std::io::Write as _;

use anyhow::Context as _;

use crate::cli::SandboxArgs;
use crate::exit::ExitStatus;
use crate::output::Context;
use api_sandbox::dataverse::tool_schema as sandbox_schema;
use api_sandbox::{GenerateSpec, Options, Sandbox, Seed};

use crate::dataverse::schema::{Column, ColumnKind, Schema};

/// The tool's schema with the default names, as the sandbox installs it for `bootstrapped`.
#[must_use]
pub fn tool_schema() -> sandbox_schema::ToolSchema {
    tool_schema_from(&Schema::default())
}

/// This schema as the sandbox installs it (what `crm bootstrap` would create from it).
#[must_use]
pub fn tool_schema_from(schema: &Schema) -> sandbox_schema::ToolSchema {
    fn column(column: &Column) -> sandbox_schema::Column {
        sandbox_schema::Column {
            logical_name: column.logical_name.clone(),
            kind: match column.kind {
                ColumnKind::String { max_len } => sandbox_schema::ColumnKind::String { max_len },
                ColumnKind::Memo { max_len } => sandbox_schema::ColumnKind::Memo { max_len },
                ColumnKind::Integer => sandbox_schema::ColumnKind::Integer,
                ColumnKind::DateTime => sandbox_schema::ColumnKind::DateTime,
            },
        }
    }
    sandbox_schema::ToolSchema {
        tables: schema
            .tables
            .iter()
            .map(|table| sandbox_schema::Table {
                logical_name: table.logical_name.clone(),
                entity_set: table.entity_set.clone(),
                primary_name: column(&table.primary_name),
                display: table.display.to_owned(),
                display_plural: table.display_plural.to_owned(),
                columns: table.columns.iter().map(column).collect(),
            })
            .collect(),
        extra_columns: schema
            .extra_columns
            .iter()
            .map(|extra| sandbox_schema::ExtraColumn {
                table: extra.table.clone(),
                column: column(&extra.column),
            })
            .collect(),
        lookups: schema
            .lookups
            .iter()
            .map(|lookup| sandbox_schema::Lookup {
                relationship: lookup.relationship.clone(),
                referencing_table: lookup.referencing_table.clone(),
                referenced_table: lookup.referenced_table.clone(),
                column: lookup.column.clone(),
            })
            .collect(),
        many_to_many: schema
            .many_to_many
            .iter()
            .map(|rel| sandbox_schema::ManyToMany {
                schema_name: rel.schema_name.clone(),
                entity1: rel.entity1.clone(),
                entity2: rel.entity2.clone(),
            })
            .collect(),
    }
}

/// A seed that spends the Dataverse emulator's server time for real (answers delayed by their
/// operations' cost, see `api_sandbox::dataverse::limits`), unless the seed sets limits itself:
/// what a user of `sandbox` and `demo` should meet. Tests of the library keep the cost charged
/// to the window only.
#[must_use]
pub fn realistic(mut seed: Seed) -> Seed {
    if seed.dataverse.limits.is_none() {
        seed.dataverse.limits = Some(api_sandbox::dataverse::Limits {
            sleep_server_time: true,
            ..api_sandbox::dataverse::Limits::default()
        });
    }
    seed
}

/// Sandbox options with the tool's schema (default names) for `bootstrapped` seeds.
#[must_use]
pub fn options() -> Options {
    Options {
        tool_schema: Some(tool_schema()),
        ..Options::default()
    }
}

/// A value as a shell word: bare when it is plainly safe, else single-quoted.
fn shell_word(value: &str) -> String {
    let safe = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:@%+=,-".contains(c));
    if safe {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// Point stdout at /dev/null once everything is printed: a reader that waits for the end of
/// the output (`eval "$(audience-sync sandbox … &)"`) gets it while the server keeps running.
fn release_stdout() {
    #[cfg(unix)]
    {
        let devnull = std::fs::OpenOptions::new().write(true).open("/dev/null");
        match devnull {
            Ok(devnull) => {
                if let Err(err) = rustix::stdio::dup2_stdout(&devnull) {
                    tracing::debug!(error = %err, "stdout stays open");
                }
            }
            Err(err) => tracing::debug!(error = %err, "stdout stays open"),
        }
    }
}

/// Ctrl-C (SIGINT) or SIGTERM, listened for from creation on (so a signal sent as soon as the
/// env lines are read is not missed).
struct Shutdown {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Shutdown {
    fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signals = signal(SignalKind::interrupt())
                .and_then(|int| Ok((int, signal(SignalKind::terminate())?)))
                .ok();
            Self { signals }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    async fn wait(self) {
        #[cfg(unix)]
        if let Some((mut int, mut term)) = self.signals {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Write a config pointing at the running sandbox, one active binding per Mailchimp audience.
async fn write_config(sandbox: &Sandbox, path: &std::path::Path) -> anyhow::Result<()> {
    let env = sandbox.env();
    let lookup = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let key = lookup("MAILCHIMP_API_KEY").unwrap_or_default();
    let base = lookup("MAILCHIMP_BASE_URL");
    let client = crate::mailchimp::Client::builder()
        .api_key(secrecy::SecretString::from(key))
        .base_url(base.clone())
        .build()?;
    let audiences = super::init::starter_audiences(&crate::sync::audiences(&client).await?);
    let mut dataverse = crate::config::starter::DataverseStarter::from_env(lookup);
    if let Some(tenant) = lookup("DATAVERSE_TENANT_ID") {
        dataverse.tenant_id = tenant;
    }
    if let Some(client_id) = lookup("DATAVERSE_CLIENT_ID") {
        dataverse.client_id = client_id;
    }
    let text = crate::config::starter::render(&crate::config::starter::Starter {
        audiences: &audiences,
        mailchimp_base_url: base,
        dataverse,
        active: true,
    });
    std::fs::write(path, text).with_context(|| format!("cannot write `{}`", path.display()))
}

/// Save the Mailchimp half's state (the server has stopped, so nothing changes any more).
fn sandbox_flush(state: &api_sandbox::mailchimp::State) -> anyhow::Result<()> {
    state.flush().context("cannot save the sandbox state")
}

pub(super) async fn run(args: SandboxArgs, _ctx: &Context) -> anyhow::Result<ExitStatus> {
    let seed = match &args.seed {
        Some(path) => Seed::from_file(path)?,
        None => Seed::default(),
    };
    let generate = args
        .generate
        .as_deref()
        .map(str::parse::<GenerateSpec>)
        .transpose()?;
    let shutdown = Shutdown::listen();
    let sandbox = Sandbox::start(Options {
        listen: Some(args.listen),
        seed: realistic(seed),
        generate,
        state_dir: args.state.clone(),
        tool_schema: Some(tool_schema()),
    })
    .await?;
    // The config is written first, so whoever reads the env lines finds it in place.
    if let Some(path) = &args.print_config {
        write_config(&sandbox, path).await?;
        eprintln!("wrote a config for this sandbox to `{}`", path.display());
    }
    {
        let mut out = std::io::stdout().lock();
        for (key, value) in sandbox.env() {
            writeln!(out, "{key}={}", shell_word(&value))?;
        }
        writeln!(out, "AUDIENCE_SYNC_SANDBOX_PID={}", std::process::id())?;
        out.flush()?;
    }
    release_stdout();
    let sandbox_state = std::sync::Arc::clone(&sandbox.mailchimp);
    eprintln!(
        "sandbox listening on {} (Ctrl-C to stop)",
        sandbox.base_url()
    );
    shutdown.wait().await;
    eprintln!("sandbox stopping");
    sandbox.shutdown().await;
    if args.state.is_some() {
        sandbox_flush(&sandbox_state)?;
    }
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_only_when_needed() {
        assert_eq!(
            shell_word("http://127.0.0.1:8080/3.0"),
            "http://127.0.0.1:8080/3.0"
        );
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn the_emulators_fixture_is_the_tools_default_schema() {
        // The emulator package tests against a fixture; it must stay what `crm bootstrap` makes.
        let fixture: sandbox_schema::ToolSchema =
            serde_json::from_str(include_str!("../sandbox/tests/fixtures/tool_schema.json"))
                .unwrap();
        let expected = tool_schema();
        assert_eq!(
            fixture,
            expected,
            "write this to src/sandbox/tests/fixtures/tool_schema.json:\n{}",
            serde_json::to_string_pretty(&expected).unwrap_or_default()
        );
    }
}
