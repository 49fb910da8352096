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
mod progress;
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

/// What the commands that sync start from: the config, the bindings selected on the command
/// line (all when none are named), and both clients.
struct Preamble {
    loaded: crate::config::Loaded,
    clients: crate::clients::Clients,
    selected: Vec<usize>,
}

impl Preamble {
    /// Load the config at `path` (diagnostics on stderr; `None` when it is invalid: the command
    /// exits 1), select the bindings named in `only`, and connect.
    ///
    /// # Errors
    /// An unknown binding name, or clients that cannot be built.
    fn load(path: &std::path::Path, only: &[String]) -> anyhow::Result<Option<Self>> {
        let Some(loaded) = load_config(path)? else {
            return Ok(None);
        };
        let names: Vec<String> = loaded
            .select_bindings(only)
            .map_err(anyhow::Error::msg)?
            .into_iter()
            .map(|b| b.name.clone())
            .collect();
        let selected = names
            .iter()
            .filter_map(|name| loaded.bindings.iter().position(|b| &b.name == name))
            .collect();
        let clients = crate::clients::Clients::connect(&loaded)?;
        Ok(Some(Self {
            loaded,
            clients,
            selected,
        }))
    }

    /// The selected bindings, in the order named.
    fn bindings(&self) -> Vec<&crate::config::Binding> {
        self.selected
            .iter()
            .map(|&i| &self.loaded.bindings[i])
            .collect()
    }

    /// A sync session over this config, reporting to `reporter`.
    fn session<'a>(&'a self, reporter: &'a dyn crate::sync::Reporter) -> crate::sync::Session<'a> {
        crate::sync::Session {
            loaded: &self.loaded,
            clients: &self.clients,
            reporter,
        }
    }
}
