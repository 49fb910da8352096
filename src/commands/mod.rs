//! One module per subcommand: each turns parsed arguments into library calls and output, and
//! decides its exit status. Library modules never print; these do, through `output::Context`.

mod apply;
mod audiences;
mod completions;
mod crm;
mod demo;
mod force_unlock;
mod init;
mod plan;
mod sandbox;
mod schema;
mod status;
mod validate;
mod watch;

use crate::cli::Command;
use crate::exit::ExitStatus;
use crate::output::Context;

/// Run one subcommand.
///
/// # Errors
/// Whatever the command could not handle itself; `main` prints it and exits 1.
pub async fn dispatch(command: Command, ctx: &Context) -> anyhow::Result<ExitStatus> {
    match command {
        Command::Validate(args) => validate::run(&args, ctx),
        Command::Plan(args) => plan::run(args, ctx).await,
        Command::Apply(args) => apply::run(args, ctx).await,
        Command::Watch(args) => watch::run(args, ctx).await,
        Command::Status(args) => status::run(args, ctx).await,
        Command::Schema(args) => schema::run(&args),
        Command::Sandbox(args) => sandbox::run(args, ctx).await,
        Command::Demo(args) => demo::run(args, ctx).await,
        Command::Audiences(args) => audiences::run(args, ctx).await,
        Command::Init(args) => init::run(args, ctx).await,
        Command::Crm(command) => crm::run(command, ctx).await,
        Command::ForceUnlock(args) => force_unlock::run(args, ctx).await,
        Command::Completions(args) => completions::run(&args),
    }
}

/// The answer of a subcommand that a later issue fills in: no fake output, a non-zero exit.
fn not_implemented(name: &str) -> anyhow::Result<ExitStatus> {
    eprintln!("error: `audience-sync {name}` is not implemented yet");
    Ok(ExitStatus::Failure)
}
