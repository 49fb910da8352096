//! `audience-sync completions SHELL`: shell completions, generated from the clap definitions.

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::exit::ExitStatus;

pub(super) fn run(args: &CompletionsArgs) -> anyhow::Result<ExitStatus> {
    let mut command = Cli::command();
    clap_complete::generate(
        args.shell,
        &mut command,
        "audience-sync",
        &mut std::io::stdout(),
    );
    Ok(ExitStatus::Success)
}
