//! `audience-sync schema`: print the JSON schema of the config file (or, with `--kind plan`, of
//! the JSON plan format: `schemas/plan.schema.json`).

use crate::cli::{SchemaArgs, SchemaKind};
use crate::exit::ExitStatus;

pub(super) fn run(args: &SchemaArgs) -> anyhow::Result<ExitStatus> {
    match args.kind {
        SchemaKind::Config => print!("{}", crate::config::schema::generate_string()),
        SchemaKind::Plan => print!("{}", crate::plan::schema::generate()),
    }
    Ok(ExitStatus::Success)
}
