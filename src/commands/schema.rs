//! `audience-sync schema`: print the JSON schema of the config file (or, with `--kind plan`, of
//! the JSON plan format).

use crate::cli::{SchemaArgs, SchemaKind};
use crate::exit::ExitStatus;

pub(super) fn run(args: &SchemaArgs) -> anyhow::Result<ExitStatus> {
    match args.kind {
        SchemaKind::Config => {
            print!("{}", crate::config::schema::generate_string());
            Ok(ExitStatus::Success)
        }
        SchemaKind::Plan => super::not_implemented("schema --kind plan"),
    }
}
