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
pub mod sandbox;
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

/// Load a config, printing its warnings, or its errors (then `None`: the command exits 1).
///
/// # Errors
/// Only failures that are not about the file's content.
fn load_config(path: &std::path::Path) -> anyhow::Result<Option<crate::config::Loaded>> {
    let file = path.display().to_string();
    match crate::config::load(path) {
        Ok(loaded) => {
            eprint!(
                "{}",
                crate::config::render_diagnostics(&file, &loaded.warnings)
            );
            Ok(Some(loaded))
        }
        Err(crate::config::Error::Invalid { diagnostics, .. }) => {
            eprint!("{}", crate::config::render_diagnostics(&file, &diagnostics));
            let errors = diagnostics
                .iter()
                .filter(|d| d.severity == crate::config::Severity::Error)
                .count();
            eprintln!(
                "{file}: invalid ({errors} error{}); nothing was read or changed",
                if errors == 1 { "" } else { "s" }
            );
            Ok(None)
        }
        Err(err) => Err(err.into()),
    }
}

/// A progress bar on stderr when it is a terminal; hidden otherwise.
fn progress(ctx: &Context, len: usize) -> indicatif::ProgressBar {
    if !ctx.progress {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} [{pos}/{len}]") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// The answer of a subcommand that a later issue fills in: no fake output, a non-zero exit.
fn not_implemented(name: &str) -> anyhow::Result<ExitStatus> {
    eprintln!("error: `audience-sync {name}` is not implemented yet");
    Ok(ExitStatus::Failure)
}
