//! `audience-sync plan`.

use crate::cli::PlanArgs;
use crate::exit::ExitStatus;
use crate::output::Context;

#[allow(clippy::unused_async)] // filled in by a later issue
pub(super) async fn run(_args: PlanArgs, _ctx: &Context) -> anyhow::Result<ExitStatus> {
    super::not_implemented("plan")
}
