//! `audience-sync validate [FILE]`.

use crate::cli::ValidateArgs;
use crate::exit::ExitStatus;
use crate::output::Context;

pub(super) fn run(_args: &ValidateArgs, _ctx: &Context) -> anyhow::Result<ExitStatus> {
    super::not_implemented("validate")
}
