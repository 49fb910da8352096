//! audience-sync keeps Microsoft Dynamics 365 (Dataverse) static marketing lists in step with
//! Mailchimp audiences, declared as code.
//!
//! The pipeline (see `DESIGN.md`): a YAML file is loaded and validated ([`config`]); both sides
//! are observed ([`observe`]) through their clients ([`clients`]: [`mailchimp`], [`dataverse`]);
//! a pure diff computes a [`plan`]; [`apply`] executes it in batched, idempotent writes under a
//! lease; [`sync`] is that flow for one binding, end to end; [`watch`] runs it on a schedule as a
//! server, and [`commands`] once per invocation. The emulators of both APIs are their own
//! package (`api-sandbox`, at `src/sandbox`); [`commands::sandbox`] starts them with the tool's
//! schema. Every command is callable from tests through [`run`].

pub mod apply;
pub mod cli;
pub mod clients;
pub mod commands;
pub mod config;
pub mod dataverse;
pub mod domain;
pub mod exit;
pub mod http;
pub mod logging;
pub mod mailchimp;
pub mod observe;
pub mod output;
pub mod plan;
pub mod sync;
pub mod watch;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
pub use crate::exit::ExitStatus;

/// Run one parsed command line to completion.
///
/// # Errors
/// Any failure the command could not turn into an exit status of its own; `main` prints it.
pub async fn run(cli: Cli) -> anyhow::Result<ExitStatus> {
    let ctx = output::Context::from_global(&cli.global);
    commands::dispatch(cli.command, &ctx).await
}

/// The whole binary: parse arguments (usage errors exit 64), set up logging, run on a tokio
/// runtime, print an error once, and map the outcome to an exit code.
pub fn main_entry(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args = cli::normalize_args(args.into_iter().collect());
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return match err.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    ExitCode::SUCCESS
                }
                _ => ExitStatus::Usage.into(),
            };
        }
    };
    let color = output::stderr_color(&cli.global);
    logging::init(cli.global.log_level, cli.global.log_format, color);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitStatus::Failure.into();
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(status) => status.into(),
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {err:#}");
            ExitStatus::Failure.into()
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
