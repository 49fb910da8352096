//! `audience-sync status`.

use crate::cli::StatusArgs;
use crate::exit::ExitStatus;
use crate::output::Context;

#[allow(clippy::unused_async)] // filled in by a later issue
pub(super) async fn run(_args: StatusArgs, _ctx: &Context) -> anyhow::Result<ExitStatus> {
    super::not_implemented("status")
}
