//! `audience-sync crm bootstrap` and `audience-sync crm check`.

use crate::cli::CrmCommand;
use crate::exit::ExitStatus;
use crate::output::Context;

#[allow(clippy::unused_async)] // filled in by a later issue
pub(super) async fn run(command: CrmCommand, _ctx: &Context) -> anyhow::Result<ExitStatus> {
    match command {
        CrmCommand::Bootstrap(_) => super::not_implemented("crm bootstrap"),
        CrmCommand::Check(_) => super::not_implemented("crm check"),
    }
}
