//! `audience-sync init`.

use crate::cli::InitArgs;
use crate::exit::ExitStatus;
use crate::output::Context;

#[allow(clippy::unused_async)] // filled in by a later issue
pub(super) async fn run(_args: InitArgs, _ctx: &Context) -> anyhow::Result<ExitStatus> {
    super::not_implemented("init")
}
