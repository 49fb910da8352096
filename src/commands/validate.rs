//! `audience-sync validate [FILE]`: YAML syntax, the schema and meaning, every problem at once
//! with `file:line:column`. Exit 0 valid (warnings allowed), 1 invalid.

use std::io::Write as _;

use serde_json::json;

use crate::cli::{OutputFormat, ValidateArgs};
use crate::config::{self, Severity, env, validate};
use crate::exit::ExitStatus;
use crate::output::Context;

pub(super) fn run(args: &ValidateArgs, _ctx: &Context) -> anyhow::Result<ExitStatus> {
    let file = args.file.display().to_string();
    let bytes = match std::fs::read(&args.file) {
        Ok(bytes) => bytes,
        Err(err) => {
            let message = format!("cannot read config `{file}`: {err}");
            if args.format == OutputFormat::Json {
                print_json(
                    &json!({"file": file, "valid": false, "errors": [{"message": message}], "warnings": []}),
                )?;
            } else {
                eprintln!("error: {message}");
            }
            return Ok(ExitStatus::Failure);
        }
    };
    let checked = validate::check_bytes(
        &bytes,
        &validate::CheckOptions {
            check_env: args.check_env,
            lookup: &env::process_env,
        },
    );
    let valid = !checked.has_errors();
    match args.format {
        OutputFormat::Json => {
            let (errors, warnings): (Vec<_>, Vec<_>) = checked
                .diagnostics
                .iter()
                .partition(|d| d.severity == Severity::Error);
            let bindings = checked.config.as_ref().map_or(0, |c| c.bindings.len());
            print_json(
                &json!({"file": file, "valid": valid, "bindings": bindings, "errors": errors, "warnings": warnings}),
            )?;
        }
        OutputFormat::Text => {
            eprint!(
                "{}",
                config::render_diagnostics(&file, &checked.diagnostics)
            );
            if valid {
                let bindings = checked.config.as_ref().map_or(0, |c| c.bindings.len());
                println!(
                    "{file}: valid ({bindings} binding{})",
                    if bindings == 1 { "" } else { "s" }
                );
            } else {
                let errors = checked
                    .diagnostics
                    .iter()
                    .filter(|d| d.severity == Severity::Error)
                    .count();
                eprintln!(
                    "{file}: invalid ({errors} error{})",
                    if errors == 1 { "" } else { "s" }
                );
            }
        }
    }
    Ok(if valid {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, value)?;
    writeln!(stdout)?;
    Ok(())
}
