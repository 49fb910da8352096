//! `audience-sync apply [CONFIG | PLANFILE]`: a driver of [`crate::sync`].
//!
//! With a config: plan every binding, show the plan, ask for `yes` on a terminal
//! (`--auto-approve` in pipelines; with neither it refuses), then apply. With a saved plan
//! (`plan -out FILE`; a damaged one is reported as such, never read as a config): check that it
//! is not stale as a whole (same config digest, a format this build reads, not applied yet),
//! plan each binding again and apply only the saved changes that the config demands now, exactly
//! as reviewed ([`crate::sync::CheckedPlan`]); no prompt: saving it was the approval. Either
//! way: a guard that refuses stops everything unless `--allow-removals`; the report goes to
//! stdout (text or `--format json`); exit 1 when anything failed or a saved change was refused.

use std::io::{BufRead as _, Write as _};
use std::path::Path;

use super::Preamble;
use super::progress::Terminal;
use crate::apply::{Report, saved};
use crate::cli::{ApplyArgs, OutputFormat};
use crate::clients::Clients;
use crate::exit::ExitStatus;
use crate::output::Context;
use crate::plan::render::{self, TextOptions};
use crate::plan::{Error as PlanError, Plan};
use crate::sync::{self, Session, Settings, guard};

/// Failures listed per binding in the text report.
const TEXT_FAILURES: usize = 20;

/// The saved plan in `path`, if it is one: a `.json` file, or one whose text starts with `{`.
/// A file that is meant as a plan but is not one (empty, truncated, no `format_version`, an
/// unknown format version) is an error naming it a damaged plan; anything else is a config.
fn read_saved_plan(path: &Path) -> anyhow::Result<Option<Plan>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None); // a missing or unreadable config is reported by the config loader
    };
    let json_name = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if !json_name && !text.trim_start().starts_with('{') {
        return Ok(None);
    }
    let damaged = |why: String| {
        anyhow::anyhow!(
            "`{}` is a damaged plan: {why}; nothing was applied (make a new one with `plan -out FILE`)",
            path.display()
        )
    };
    if text.trim().is_empty() {
        return Err(damaged("the file is empty".to_owned()));
    }
    match Plan::from_json(&text) {
        Ok(plan) => Ok(Some(plan)),
        Err(PlanError::UnsupportedVersion { found }) => Err(anyhow::anyhow!(
            "`{}`: {}; nothing was applied",
            path.display(),
            PlanError::UnsupportedVersion { found }
        )),
        Err(PlanError::Parse(err)) if err.is_eof() => Err(damaged(format!(
            "it ends early (truncated at line {})",
            err.line()
        ))),
        Err(PlanError::Parse(err)) => Err(damaged(err.to_string())),
    }
}

pub(super) async fn run(args: ApplyArgs, ctx: &Context) -> anyhow::Result<ExitStatus> {
    if let Some(plan) = read_saved_plan(&args.target)? {
        return run_saved(&args, ctx, &plan).await;
    }
    let Some(pre) = Preamble::load(&args.target, &args.bindings)? else {
        return Ok(ExitStatus::Failure);
    };
    let reporter = Terminal::new(ctx);
    let session = pre.session(&reporter);
    let planned = session.plan_all(&pre.bindings()).await;
    let plan = planned.plan;
    let shown = render::text(
        &plan,
        &TextOptions {
            color: ctx.color,
            show_pii: args.show_pii,
            ..TextOptions::default()
        },
    );
    if args.format == OutputFormat::Text {
        print!("{shown}");
        if !shown.ends_with('\n') {
            println!();
        }
    } else {
        eprint!("{shown}");
    }
    let settings = settings(&args);
    // Decided before asking: a question whose answer cannot matter is not asked.
    if let Err(refused) = settings.guard.check(&plan.bindings) {
        return Ok(refuse(&refused));
    }
    if plan.has_changes() && !args.auto_approve {
        if !ctx.interactive {
            eprintln!(
                "error: refusing to apply without confirmation: no terminal to ask on; review the plan and pass `--auto-approve` (or apply a saved plan: `plan -out FILE`, then `apply FILE`)"
            );
            return Ok(ExitStatus::Failure);
        }
        if !confirm()? {
            eprintln!("Apply cancelled: nothing was changed.");
            return Ok(ExitStatus::Failure);
        }
    }
    let plan_id = sync::plan_id(&plan)?;
    let report = match session
        .apply_planned(&plan, &plan_id, &settings, &sync::StaleMembers::new())
        .await
    {
        Ok(report) => report,
        Err(refused) => return Ok(refuse(&refused)),
    };
    let report = session.replan_superseded(report, &settings).await?;
    finish(&args, &report, planned.failed > 0)
}

async fn run_saved(args: &ApplyArgs, ctx: &Context, plan: &Plan) -> anyhow::Result<ExitStatus> {
    let config_path = args
        .config
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from("audience-sync.yaml"));
    let Some(loaded) = super::load_config(&config_path)? else {
        return Ok(ExitStatus::Failure);
    };
    if let Err(stale) = saved::check_plan(plan, &loaded.digest) {
        eprintln!("error: {stale}");
        return Ok(ExitStatus::Failure);
    }
    let clients = Clients::connect(&loaded)?;
    let reporter = Terminal::new(ctx);
    let session = Session {
        loaded: &loaded,
        clients: &clients,
        reporter: &reporter,
    };
    let plan_id = saved::content_id(plan)?;
    let checked = match session.check_saved(plan, &plan_id).await {
        Ok(checked) => checked,
        Err(sync::SavedError::Stale(stale)) => {
            eprintln!("error: {stale}");
            return Ok(ExitStatus::Failure);
        }
        Err(err) => return Err(err.into()),
    };
    eprintln!(
        "applying the saved plan `{}` ({} of its {} changes are what the config demands now)",
        args.target.display(),
        checked.plan.summary.changes,
        plan.summary.changes
    );
    if checked.rejected > 0 {
        eprintln!(
            "error: {} changes of the saved plan are not applied: they are not what the config demands now (each is named in the report)",
            checked.rejected
        );
    }
    let settings = settings(args);
    match session
        .apply_planned(
            &checked.plan,
            &plan_id,
            &settings,
            &sync::StaleMembers::new(),
        )
        .await
    {
        Ok(report) => finish(args, &checked.complete(report), checked.rejected > 0),
        Err(refused) => Ok(refuse(&refused)),
    }
}

fn settings(args: &ApplyArgs) -> Settings {
    Settings {
        operation: "apply",
        wait: args.lock_timeout,
        term: args.lease_term,
        guard: guard::Policy {
            allow_removals: args.allow_removals,
        },
    }
}

/// Say why the guards refuse; nothing was applied.
fn refuse(refused: &guard::Refused) -> ExitStatus {
    for (binding, message) in &refused.bindings {
        eprintln!("error: binding `{binding}`: {message}");
    }
    eprintln!("error: {refused}");
    ExitStatus::Failure
}

/// Ask on the terminal; only `yes` goes on.
fn confirm() -> anyhow::Result<bool> {
    let mut out = std::io::stdout().lock();
    write!(
        out,
        "\nDo you want to apply these changes?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: "
    )?;
    out.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

fn finish(args: &ApplyArgs, report: &Report, incomplete: bool) -> anyhow::Result<ExitStatus> {
    let mut stdout = std::io::stdout().lock();
    match args.format {
        OutputFormat::Text => write!(stdout, "\n{}", report.text(TEXT_FAILURES))?,
        OutputFormat::Json => writeln!(stdout, "{}", serde_json::to_string_pretty(report)?)?,
    }
    Ok(if report.has_failures() || incomplete {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}
