//! `audience-sync demo`.

use crate::cli::DemoArgs;
use crate::exit::ExitStatus;
use crate::output::Context;

#[allow(clippy::unused_async)] // filled in by a later issue
pub(super) async fn run(_args: DemoArgs, _ctx: &Context) -> anyhow::Result<ExitStatus> {
    super::not_implemented("demo")
}
