//! `audience-sync apply [CONFIG | PLANFILE]`.
//!
//! With a config: observe and plan every binding, show the plan, ask for `yes` on a terminal
//! (`--auto-approve` in pipelines; with neither it refuses), then apply. With a saved plan
//! (`plan -out FILE`): check that it is not stale as a whole (same config digest, not applied
//! yet), find the members whose Mailchimp version moved, and apply exactly that plan (no
//! prompt: saving it was the approval). Either way: a guard that refuses stops everything
//! unless `--allow-removals`; the report goes to stdout (text or `--format json`); exit 1 when
//! anything failed.

use std::io::{BufRead as _, Write as _};
use std::path::Path;

use anyhow::Context as _;

use crate::apply::{self, Options, Report, lease, saved};
use crate::cli::{ApplyArgs, OutputFormat};
use crate::config::Loaded;
use crate::exit::ExitStatus;
use crate::observe::{self, Clients};
use crate::output::Context;
use crate::plan::render::{self, TextOptions};
use crate::plan::{self, Plan};

/// Failures listed per binding in the text report.
const TEXT_FAILURES: usize = 20;

/// Whether the file is a saved plan (JSON with a `format_version`) rather than a config.
fn read_saved_plan(path: &Path) -> anyhow::Result<Option<(Plan, String)>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None); // a missing or unreadable config is reported by the config loader
    };
    if !text.trim_start().starts_with('{') {
        return Ok(None);
    }
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Ok(None);
    };
    if value.get("format_version").is_none() {
        return Ok(None);
    }
    let plan: Plan = serde_json::from_value(value)
        .with_context(|| format!("`{}` is not a plan this build can read", path.display()))?;
    Ok(Some((plan, text)))
}

pub(super) async fn run(args: ApplyArgs, ctx: &Context) -> anyhow::Result<ExitStatus> {
    if let Some((plan, text)) = read_saved_plan(&args.target)? {
        return run_saved(&args, ctx, &plan, &text).await;
    }
    let Some(loaded) = super::load_config(&args.target)? else {
        return Ok(ExitStatus::Failure);
    };
    let bindings = loaded
        .select_bindings(&args.bindings)
        .map_err(anyhow::Error::msg)?;
    let clients = Clients::connect(&loaded)?;
    let (plan, failed) = super::plan::plan_bindings(&loaded, &bindings, &clients, ctx).await;
    let shown = render::text(
        &plan,
        &TextOptions {
            color: ctx.color,
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
    if !guard_allows(&plan, args.allow_removals) {
        return Ok(ExitStatus::Failure);
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
    let plan_id = saved::plan_id(&render::json(&plan)?);
    let options = |_: &str| Options {
        claim: claim(&args),
        allow_removals: args.allow_removals,
        plan_id: plan_id.clone(),
        stale_members: std::collections::HashSet::new(),
    };
    let report = apply_all(&clients, &loaded, &plan, ctx, options).await;
    let report = replan_superseded(&args, &clients, &loaded, report).await?;
    finish(&args, &report, failed > 0)
}

/// Plan again and apply (once) each binding whose apply found its plan stale: another applier
/// held the lease, and ran, while this one waited (`--lock-timeout`).
async fn replan_superseded(
    args: &ApplyArgs,
    clients: &Clients,
    loaded: &Loaded,
    report: Report,
) -> anyhow::Result<Report> {
    if !report.bindings.iter().any(|r| r.superseded) {
        return Ok(report);
    }
    let mut reports = Vec::with_capacity(report.bindings.len());
    for old in report.bindings {
        let Some(binding) = old
            .superseded
            .then(|| loaded.bindings.iter().find(|b| b.name == old.binding))
            .flatten()
        else {
            reports.push(old);
            continue;
        };
        eprintln!(
            "binding `{}`: another applier ran while this one waited; planning again",
            binding.name
        );
        let snapshot = match observe::observe(binding, &loaded.names, clients).await {
            Ok(snapshot) => snapshot,
            Err(err) => {
                eprintln!(
                    "error: binding `{}`: {}",
                    binding.name,
                    crate::output::error_chain(&err)
                );
                reports.push(old);
                continue;
            }
        };
        let fresh = Plan::new(
            super::plan::meta(&loaded.digest),
            vec![plan::compute(binding, &loaded.names, &snapshot)],
        );
        let options = Options {
            claim: claim(args),
            allow_removals: args.allow_removals,
            plan_id: saved::plan_id(&render::json(&fresh)?),
            stale_members: std::collections::HashSet::new(),
        };
        for b in &fresh.bindings {
            let progress = |_: plan::Action, _: usize| {};
            reports
                .push(apply::apply_binding(clients, &loaded.names, b, &options, &progress).await);
        }
    }
    Ok(Report::new(reports))
}

async fn run_saved(
    args: &ApplyArgs,
    ctx: &Context,
    plan: &Plan,
    text: &str,
) -> anyhow::Result<ExitStatus> {
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
    let plan_id = saved::plan_id(text);
    let mut stale_members = std::collections::HashMap::new();
    for b in &plan.bindings {
        let Some(binding) = loaded.bindings.iter().find(|x| x.name == b.name) else {
            eprintln!("error: {}", saved::Stale::UnknownBinding(b.name.clone()));
            return Ok(ExitStatus::Failure);
        };
        if let Some(run) = saved::already_applied(&clients.tables, &plan_id, &b.name).await? {
            eprintln!(
                "error: {}",
                saved::Stale::AlreadyApplied {
                    binding: b.name.clone(),
                    run,
                }
            );
            return Ok(ExitStatus::Failure);
        }
        if b.changes.is_empty() {
            continue;
        }
        let stale = saved::stale_members(&clients.mailchimp, binding, b)
            .await
            .with_context(|| format!("binding `{}`: reading Mailchimp failed", b.name))?;
        if !stale.is_empty() {
            eprintln!(
                "binding `{}`: {} member(s) changed in Mailchimp since the plan was made; their changes are skipped as stale",
                b.name,
                stale.len()
            );
        }
        stale_members.insert(b.name.clone(), stale);
    }
    eprintln!(
        "applying the saved plan `{}` ({} changes)",
        args.target.display(),
        plan.summary.changes
    );
    if !guard_allows(plan, args.allow_removals) {
        return Ok(ExitStatus::Failure);
    }
    let options = |binding: &str| Options {
        claim: claim(args),
        allow_removals: args.allow_removals,
        plan_id: plan_id.clone(),
        stale_members: stale_members.get(binding).cloned().unwrap_or_default(),
    };
    let report = apply_all(&clients, &loaded, plan, ctx, options).await;
    finish(args, &report, false)
}

fn claim(args: &ApplyArgs) -> lease::Claim {
    lease::Claim::new("apply", args.lock_timeout, args.lease_term)
}

/// Print why guards refuse; `false` when some binding is refused and removals are not allowed.
fn guard_allows(plan: &Plan, allow_removals: bool) -> bool {
    if !plan.refused() || allow_removals {
        return true;
    }
    for b in &plan.bindings {
        if let Some(guard) = &b.guard {
            eprintln!("error: binding `{}`: {}", b.name, guard.message);
        }
    }
    eprintln!("error: nothing was applied; pass `--allow-removals` to apply these removals");
    false
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

async fn apply_all(
    clients: &Clients,
    loaded: &Loaded,
    plan: &Plan,
    ctx: &Context,
    options: impl Fn(&str) -> Options,
) -> Report {
    let total: usize = plan.bindings.iter().map(|b| b.changes.len()).sum();
    let bar = super::progress(ctx, total);
    let mut reports = Vec::new();
    for b in &plan.bindings {
        bar.set_message(format!("applying `{}`", b.name));
        let progress = |_: plan::Action, n: usize| bar.inc(n as u64);
        let report =
            apply::apply_binding(clients, &loaded.names, b, &options(&b.name), &progress).await;
        reports.push(report);
    }
    bar.finish_and_clear();
    Report::new(reports)
}

fn finish(args: &ApplyArgs, report: &Report, read_failed: bool) -> anyhow::Result<ExitStatus> {
    let mut stdout = std::io::stdout().lock();
    match args.format {
        OutputFormat::Text => write!(stdout, "\n{}", report.text(TEXT_FAILURES))?,
        OutputFormat::Json => writeln!(stdout, "{}", serde_json::to_string_pretty(report)?)?,
    }
    Ok(if report.has_failures() || read_failed {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}
