//! Command-line interface: clap definitions only. The doc comments are the help text.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Keep Dynamics 365 / Dataverse marketing lists in step with Mailchimp audiences, declared as code.
#[derive(Debug, Parser)]
#[command(name = "audience-sync", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// How much to log (to stderr). `RUST_LOG` overrides it.
    #[arg(long, value_enum, default_value_t = LogLevel::Warn, global = true, env = "AUDIENCE_SYNC_LOG_LEVEL")]
    pub log_level: LogLevel,
    /// Log as human-readable text or as JSON lines.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, env = "AUDIENCE_SYNC_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Never colour the output (the `NO_COLOR` environment variable does the same).
    #[arg(long, global = true)]
    pub no_color: bool,
}

/// Log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Output format of commands that print a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// For a person at a terminal.
    Text,
    /// For machines.
    Json,
}

/// Output format of `plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// For a person at a terminal.
    Text,
    /// For a pull-request comment.
    Markdown,
    /// For machines (the versioned plan format).
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a config file: YAML syntax, the schema, and meaning.
    #[command(after_help = "Example:\n  audience-sync validate examples/minimal.yaml")]
    Validate(ValidateArgs),
    /// Read Mailchimp and the CRM and show what apply would change.
    #[command(
        after_help = "Example:\n  audience-sync plan audience-sync.yaml -out plan.json --detailed-exitcode"
    )]
    Plan(PlanArgs),
    /// Make the CRM match the config (plans first), or apply a saved plan exactly.
    #[command(
        after_help = "Examples:\n  audience-sync apply audience-sync.yaml --auto-approve\n  audience-sync apply plan.json"
    )]
    Apply(ApplyArgs),
    /// Run as a server: reconcile at start, on config change and on an interval.
    Watch(WatchArgs),
    /// Show the sync status of every binding, as recorded in the CRM.
    Status(StatusArgs),
    /// Print the JSON schema of the config file (or of the plan format).
    Schema(SchemaArgs),
    /// Serve the local Mailchimp and Dataverse emulators until interrupted.
    #[command(
        after_help = "Example:\n  eval \"$(audience-sync sandbox --generate members=2500,tags=5,seed=1 &)\""
    )]
    Sandbox(SandboxArgs),
    /// Walk through validate, plan and apply against a built-in sandbox.
    Demo(DemoArgs),
    /// List the Mailchimp audiences of the account (id, name, members, tags).
    Audiences(AudiencesArgs),
    /// Write a starter config from the account's audiences, every binding commented out.
    Init(InitArgs),
    /// Prepare or check a Dataverse environment for audience-sync.
    #[command(subcommand)]
    Crm(CrmCommand),
    /// Release a binding's apply lease that a crashed run left behind.
    ForceUnlock(ForceUnlockArgs),
    /// Print shell completions.
    Completions(CompletionsArgs),
}

/// `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The config file.
    #[arg(default_value = "audience-sync.yaml", env = "AUDIENCE_SYNC_CONFIG")]
    pub file: PathBuf,
    /// Result format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Also check that every `${VAR}` reference is set (and that the values look right), as
    /// `plan` and `apply` will need them. Without it, like `terraform validate`, the file is
    /// checked regardless of the environment.
    #[arg(long)]
    pub check_env: bool,
}

/// `plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The config file.
    #[arg(default_value = "audience-sync.yaml", env = "AUDIENCE_SYNC_CONFIG")]
    pub config: PathBuf,
    /// Save the plan (JSON, no secrets) for `apply FILE`. Also accepted as `-out FILE`.
    #[arg(long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Only these bindings (repeatable).
    #[arg(long = "binding", value_name = "NAME")]
    pub bindings: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Show every row of every group, not only the first ones.
    #[arg(long)]
    pub full: bool,
    /// Show member data (e-mail addresses, names, phones, street addresses, mapped columns)
    /// unmasked in text and Markdown output (the JSON plan always holds it).
    #[arg(long)]
    pub show_pii: bool,
}

/// `apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A config file (plan, confirm, apply) or a saved plan file (apply exactly that).
    #[arg(default_value = "audience-sync.yaml", env = "AUDIENCE_SYNC_CONFIG")]
    pub target: PathBuf,
    /// The config file, when TARGET is a saved plan and the config is not where the plan says.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Apply without asking (for pipelines).
    #[arg(long)]
    pub auto_approve: bool,
    /// Apply even when removals exceed a binding's `max_removals`.
    #[arg(long)]
    pub allow_removals: bool,
    /// How long to wait for another applier's lease, e.g. `30s`, `5m` (0: do not wait).
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub lock_timeout: Duration,
    /// How long this process's lease on a binding lasts without renewal, e.g. `60s` (renewed
    /// every third of it while the run works; a holder that stops renewing is taken over once it
    /// runs out; at least 3s).
    #[arg(long, value_parser = parse_duration, default_value = "60s", env = "AUDIENCE_SYNC_LEASE_TERM")]
    pub lease_term: Duration,
    /// Only these bindings (repeatable).
    #[arg(long = "binding", value_name = "NAME")]
    pub bindings: Vec<String>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Show member data unmasked in the plan shown before applying.
    #[arg(long)]
    pub show_pii: bool,
}

/// What `watch` does on each pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WatchMode {
    /// Plan and apply.
    Apply,
    /// Only plan, and report drift.
    Report,
}

/// `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The config file.
    #[arg(default_value = "audience-sync.yaml", env = "AUDIENCE_SYNC_CONFIG")]
    pub config: PathBuf,
    /// Reconcile every binding this often (with jitter), e.g. `15m`.
    #[arg(long, value_parser = parse_duration, default_value = "15m")]
    pub interval: Duration,
    /// First delay after a failure (doubles up to the interval; resets on success).
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub retry_interval: Duration,
    /// How long this process's lease on a binding lasts without renewal, e.g. `60s` (renewed
    /// every third of it while the run works; a holder that stops renewing is taken over once it
    /// runs out; at least 3s).
    #[arg(long, value_parser = parse_duration, default_value = "60s", env = "AUDIENCE_SYNC_LEASE_TERM")]
    pub lease_term: Duration,
    /// Address of the status and metrics server.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub listen: SocketAddr,
    /// Apply changes, or only report drift.
    #[arg(long, value_enum, default_value_t = WatchMode::Apply)]
    pub mode: WatchMode,
    /// Reconcile every binding once and exit.
    #[arg(long)]
    pub once: bool,
    /// With `--once`: how long to wait for another process's lease on a binding, e.g. `5m`; a
    /// binding still held then makes the exit code 1. Without `--once` a replica never waits: it
    /// skips the binding and looks again when that lease would lapse.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub lock_timeout: Duration,
    /// Bindings this process reconciles at once (each under its own lease; replicas add up).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_parallel: u16,
    /// Name of an environment variable holding a bearer token required by /status, /metrics and /reconcile.
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
}

/// `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The config file.
    #[arg(default_value = "audience-sync.yaml", env = "AUDIENCE_SYNC_CONFIG")]
    pub config: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// Which schema `schema` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaKind {
    /// The config file.
    Config,
    /// The JSON plan format.
    Plan,
}

/// `schema`.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which schema.
    #[arg(long, value_enum, default_value_t = SchemaKind::Config)]
    pub kind: SchemaKind,
}

/// `sandbox`.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Seed both emulators from this file (YAML or JSON).
    #[arg(long, conflicts_with = "generate")]
    pub seed: Option<PathBuf>,
    /// Generate data: `members=N,tags=T,seed=S[,audiences=K][,shared=P]` (`shared`: percent of
    /// each further audience's members that are people of the first, some in other letter case).
    #[arg(long)]
    pub generate: Option<String>,
    /// Where to listen; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Keep the data in this directory between runs.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Write a config that points at this sandbox to FILE.
    #[arg(long, value_name = "FILE")]
    pub print_config: Option<PathBuf>,
}

/// `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Do not pause between steps.
    #[arg(long)]
    pub no_pause: bool,
}

/// `audiences`.
#[derive(Debug, Args)]
pub struct AudiencesArgs {
    /// A config file to take the Mailchimp connection from (else `MAILCHIMP_API_KEY` and
    /// `MAILCHIMP_BASE_URL` from the environment).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write the starter config.
    #[arg(long = "out", default_value = "audience-sync.yaml")]
    pub out: PathBuf,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
}

/// `crm …`.
#[derive(Debug, Subcommand)]
pub enum CrmCommand {
    /// Create the tool's tables, columns and relationships where missing (idempotent).
    Bootstrap(CrmArgs),
    /// Say what is missing and whether the application user can read and write what it needs.
    Check(CrmArgs),
}

/// Arguments of `crm bootstrap` and `crm check`.
#[derive(Debug, Args)]
pub struct CrmArgs {
    /// The config file.
    #[arg(default_value = "audience-sync.yaml", env = "AUDIENCE_SYNC_CONFIG")]
    pub config: PathBuf,
    /// Print what would be created, create nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `force-unlock`.
#[derive(Debug, Args)]
pub struct ForceUnlockArgs {
    /// The binding whose lease to release.
    pub binding: String,
    /// The lease id, as printed by the apply that holds it or by `status`.
    pub lease_id: String,
    /// The config file.
    #[arg(
        long,
        default_value = "audience-sync.yaml",
        env = "AUDIENCE_SYNC_CONFIG"
    )]
    pub config: PathBuf,
}

/// `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// Parse `90s`, `15m`, `2h`, `1h30m`, `500ms` or a bare number of seconds.
///
/// # Errors
/// A message for clap when the text is not such a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return Err("empty duration".to_owned());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "`{text}` is not a duration (examples: 30s, 15m, 1h30m)"
            ));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{text}` is not a duration"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        total += match unit {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number * 60),
            "h" => Duration::from_secs(number * 3600),
            _ => {
                return Err(format!(
                    "`{text}`: unknown unit `{unit}` (use ms, s, m or h)"
                ));
            }
        };
    }
    Ok(total)
}

/// Terraform spells `plan -out FILE` with one dash; accept that spelling too.
#[must_use]
pub fn normalize_args(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    args.into_iter()
        .map(|arg| match arg.to_str() {
            Some("-out") => "--out".into(),
            Some(s) if s.starts_with("-out=") => format!("-{s}").into(),
            _ => arg,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn terraform_single_dash_out_is_accepted() {
        let args = normalize_args(vec![
            "x".into(),
            "-out".into(),
            "p.json".into(),
            "-out=q".into(),
        ]);
        assert_eq!(args, vec!["x", "--out", "p.json", "--out=q"]);
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
