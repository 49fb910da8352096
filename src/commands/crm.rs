//! `audience-sync crm bootstrap` and `audience-sync crm check`: prepare and verify a Dataverse
//! environment for the tool, driven by the one schema definition in
//! [`crate::dataverse::schema`]; the work is in [`crate::dataverse::metadata`], this module
//! prints it and decides the exit status.
//!
//! The connection comes from [`connection`]: until the config loader exists it reads the
//! `DATAVERSE_*` environment variables (and uses the default CRM names); it is the one function
//! to switch to `crate::config::load` later.

use anyhow::Context as _;
use secrecy::SecretString;

use crate::cli::{CrmArgs, CrmCommand};
use crate::config::CrmNames;
use crate::dataverse::Client;
use crate::dataverse::metadata;
use crate::dataverse::schema::Schema;
use crate::exit::ExitStatus;
use crate::output::Context;

pub(super) async fn run(command: CrmCommand, _ctx: &Context) -> anyhow::Result<ExitStatus> {
    match command {
        CrmCommand::Bootstrap(args) => bootstrap(&args).await,
        CrmCommand::Check(args) => check(&args).await,
    }
}

/// The client and CRM names to use.
///
/// Reads `DATAVERSE_URL`, `DATAVERSE_TENANT_ID`, `DATAVERSE_CLIENT_ID`,
/// `DATAVERSE_CLIENT_SECRET` and the optional `DATAVERSE_TOKEN_URL`; the config file argument
/// is not read yet, so the CRM names are the defaults.
fn connection(_args: &CrmArgs) -> anyhow::Result<(Client, CrmNames)> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let require =
        |name: &str| var(name).with_context(|| format!("environment variable `{name}` is not set"));
    let client = Client::builder()
        .url(require("DATAVERSE_URL")?)
        .tenant_id(var("DATAVERSE_TENANT_ID").unwrap_or_default())
        .client_id(require("DATAVERSE_CLIENT_ID")?)
        .client_secret(SecretString::from(require("DATAVERSE_CLIENT_SECRET")?))
        .token_url(var("DATAVERSE_TOKEN_URL"))
        .build()?;
    Ok((client, CrmNames::default()))
}

async fn bootstrap(args: &CrmArgs) -> anyhow::Result<ExitStatus> {
    let (client, names) = connection(args)?;
    let schema = Schema::new(&names);
    println!("Dataverse environment: {}", client.env_url());
    let mut print = |step: &metadata::Step| println!("  + created {step}");
    let report = metadata::bootstrap(&client, &schema, args.dry_run, &mut print)
        .await
        .context("bootstrap stopped")?;
    if report.plan.steps.is_empty() {
        println!("Nothing to do: the tool's tables, columns and relationships are all there.");
    } else if report.dry_run {
        println!(
            "Would create {} item(s) (dry run, nothing created):",
            report.plan.steps.len()
        );
        for step in &report.plan.steps {
            println!("  + {step}");
        }
    } else {
        println!("Created {} item(s).", report.plan.steps.len());
    }
    for problem in &report.plan.problems {
        println!("  ! {problem}");
    }
    Ok(if report.plan.problems.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

async fn check(args: &CrmArgs) -> anyhow::Result<ExitStatus> {
    let (client, names) = connection(args)?;
    let schema = Schema::new(&names);
    println!("Dataverse environment: {}", client.env_url());
    let report = metadata::check(&client, &schema)
        .await
        .context("cannot check the environment")?;
    println!("  ok signed in as application user `{}`", report.user);
    if report.plan.steps.is_empty() {
        println!("  ok schema: every table, column and relationship is there");
    } else {
        println!(
            "  MISSING {} item(s) (`audience-sync crm bootstrap` creates them):",
            report.plan.steps.len()
        );
        for step in &report.plan.steps {
            println!("    - {step}");
        }
    }
    for problem in &report.plan.problems {
        println!("  ! {problem}");
    }
    for finding in &report.findings {
        match (&finding.problem, &finding.note) {
            (Some(problem), _) => println!("  FAILED {}: {problem}", finding.what),
            (None, Some(note)) => println!("  ?? {} ({note})", finding.what),
            (None, None) => println!("  ok {}", finding.what),
        }
    }
    Ok(if report.healthy() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}
