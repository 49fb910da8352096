//! `audience-sync crm bootstrap` and `audience-sync crm check`: prepare and verify a Dataverse
//! environment for the tool, driven by the one schema definition in
//! [`crate::dataverse::schema`]; the work is in [`crate::dataverse::metadata`], this module
//! prints it and decides the exit status.
//!
//! The connection and the CRM names come from the config file (its `dataverse` section, with
//! `${VAR}`s resolved from the environment).

use anyhow::Context as _;

use crate::cli::{CrmArgs, CrmCommand};
use crate::config::{Loaded, Names};
use crate::dataverse::Client;
use crate::dataverse::columns::ColumnCatalog;
use crate::dataverse::metadata;
use crate::dataverse::schema::Schema;
use crate::dataverse::solution;
use crate::exit::ExitStatus;
use crate::observe::mapping_problems;
use crate::output::Context;

pub(super) async fn run(command: CrmCommand, _ctx: &Context) -> anyhow::Result<ExitStatus> {
    match command {
        CrmCommand::Bootstrap(args) => bootstrap(&args).await,
        CrmCommand::Check(args) => check(&args).await,
    }
}

/// The client and CRM names to use, from the config file.
fn connection(args: &CrmArgs) -> anyhow::Result<Option<(Client, Names)>> {
    let Some(loaded) = super::load_config(&args.config)? else {
        return Ok(None);
    };
    let client = Client::from_settings(loaded.dataverse()?)?;
    Ok(Some((client, loaded.names.clone())))
}

async fn bootstrap(args: &CrmArgs) -> anyhow::Result<ExitStatus> {
    let Some((client, names)) = connection(args)? else {
        return Ok(ExitStatus::Failure);
    };
    let schema = Schema::new(&names);
    println!("Dataverse environment: {}", client.env_url());
    let mut print = |step: &metadata::Step| println!("  + created {step}");
    let report = metadata::bootstrap(&client, &schema, args.dry_run, &mut print)
        .await
        .context("bootstrap stopped")?;
    let target = solution::Target::for_schema(&schema);
    let verb = if report.dry_run {
        "would create"
    } else {
        "created"
    };
    if report.solution.publisher_missing {
        println!(
            "  + {verb} publisher `{}` (customization prefix `{}`)",
            target.publisher, target.prefix
        );
    }
    if report.solution.solution_missing {
        println!("  + {verb} solution `{}`", report.solution.solution);
    }
    println!(
        "Solution: `{}` (publisher prefix `{}`); every metadata write names it.",
        report.solution.solution, target.prefix
    );
    let solution_changed = report.solution.publisher_missing || report.solution.solution_missing;
    if report.plan.steps.is_empty() && !solution_changed {
        println!("Nothing to do: the tool's tables, columns and relationships are all there.");
    } else if report.plan.steps.is_empty() {
        println!("The tool's tables, columns and relationships are all there.");
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
    let Some(loaded) = super::load_config(&args.config)? else {
        return Ok(ExitStatus::Failure);
    };
    let client = Client::from_settings(loaded.dataverse()?)?;
    let names = loaded.names.clone();
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
    for (table, holding) in &report.solutions {
        let own: Vec<&String> = holding.iter().filter(|s| *s != "Default").collect();
        if own.is_empty() {
            println!(
                "  ?? table `{table}` is only in the Default Solution (created outside a solution; it cannot be exported with the tool's solution)"
            );
        } else {
            let names: Vec<String> = own.iter().map(|s| format!("`{s}`")).collect();
            println!("  ok table `{table}` is in solution {}", names.join(", "));
        }
    }
    for finding in &report.findings {
        match (&finding.problem, &finding.note) {
            (Some(problem), _) => println!("  FAILED {}: {problem}", finding.what),
            (None, Some(note)) => println!("  ?? {} ({note})", finding.what),
            (None, None) => println!("  ok {}", finding.what),
        }
    }
    let mapping_ok = check_mappings(&client, &loaded).await?;
    Ok(if report.healthy() && mapping_ok {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

/// Every binding's field mapping against the live column metadata: columns that are missing,
/// read-only or of a type the tool does not write, each with where the config maps it.
async fn check_mappings(client: &Client, loaded: &Loaded) -> anyhow::Result<bool> {
    let catalog = ColumnCatalog::default();
    let mut ok = true;
    for (index, binding) in loaded.bindings.iter().enumerate() {
        let table = binding.list.member_type.logical_name();
        let columns: Vec<&str> = binding.fields.iter().map(|f| f.column.as_str()).collect();
        let infos = catalog
            .columns(client, table, &columns)
            .await
            .context("cannot read the column metadata")?;
        let problems = mapping_problems(binding, table, &infos);
        if problems.is_empty() {
            println!(
                "  ok mapping of `{}`: {} column(s) of `{table}`",
                binding.name,
                binding.fields.len()
            );
            for f in &binding.fields {
                if let Some(ty) = infos.get(&f.column).and_then(|i| i.column_type()) {
                    println!("       {} → {} ({ty})", f.source, f.column);
                }
            }
            continue;
        }
        ok = false;
        for (f, problem) in problems {
            let at = loaded
                .mapping_position(index, &f.source)
                .map(|p| format!("{p}: "))
                .unwrap_or_default();
            println!("  FAILED {at}mapping of `{}`: {problem}", binding.name);
        }
    }
    Ok(ok)
}
