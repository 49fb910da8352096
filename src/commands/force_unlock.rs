//! `audience-sync force-unlock`.

use crate::cli::ForceUnlockArgs;
use crate::exit::ExitStatus;
use crate::output::Context;

#[allow(clippy::unused_async)] // filled in by a later issue
pub(super) async fn run(_args: ForceUnlockArgs, _ctx: &Context) -> anyhow::Result<ExitStatus> {
    super::not_implemented("force-unlock")
}
