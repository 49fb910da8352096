//! `audience-sync schema`.

use crate::cli::SchemaArgs;
use crate::exit::ExitStatus;

pub(super) fn run(_args: &SchemaArgs) -> anyhow::Result<ExitStatus> {
    super::not_implemented("schema")
}
