//! `audience-sync plan [CONFIG]`: observe every binding, diff, and show the plan as text,
//! Markdown or JSON; `-out FILE` saves it for `apply FILE`; `--detailed-exitcode` says whether
//! there are changes (0 none, 2 some, 1 error).

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

use crate::cli::{PlanArgs, PlanFormat};
use crate::config::{Binding, Loaded};
use crate::exit::ExitStatus;
use crate::observe::{self, Clients};
use crate::output::Context;
use crate::plan::render::{self, MarkdownOptions, TextOptions};
use crate::plan::{self, Plan, PlanMeta};

pub(super) async fn run(args: PlanArgs, ctx: &Context) -> anyhow::Result<ExitStatus> {
    let Some(loaded) = super::load_config(&args.config)? else {
        return Ok(ExitStatus::Failure);
    };
    let bindings = loaded
        .select_bindings(&args.bindings)
        .map_err(anyhow::Error::msg)?;
    let clients = Clients::connect(&loaded)?;
    let (plan, failed) = plan_bindings(&loaded, &bindings, &clients, ctx).await;

    let rendered = match args.format {
        PlanFormat::Text => render::text(
            &plan,
            &TextOptions {
                color: ctx.color,
                full: args.full,
                ..TextOptions::default()
            },
        ),
        PlanFormat::Markdown => render::markdown(
            &plan,
            &MarkdownOptions {
                show_pii: args.show_pii,
            },
        ),
        PlanFormat::Json => render::json(&plan)?,
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(rendered.as_bytes())?;
    if !rendered.ends_with('\n') {
        writeln!(stdout)?;
    }
    drop(stdout);

    if let Some(out) = &args.out {
        save(&plan, out)?;
        eprintln!(
            "saved the plan to `{}`; apply it with `audience-sync apply {}`",
            out.display(),
            out.display()
        );
    }
    if failed > 0 {
        return Ok(ExitStatus::Failure);
    }
    Ok(match (args.detailed_exitcode, plan.has_changes()) {
        (true, true) => ExitStatus::ChangesPresent,
        _ => ExitStatus::Success,
    })
}

/// Observe and diff each (not suspended) binding; a binding that cannot be read is reported on
/// stderr and counted, the others still planned. Returns the plan and how many failed.
pub(super) async fn plan_bindings(
    loaded: &Loaded,
    bindings: &[&Binding],
    clients: &Clients,
    ctx: &Context,
) -> (Plan, usize) {
    let progress = super::progress(ctx, bindings.len());
    let mut plans = Vec::new();
    let mut failed = 0;
    for binding in bindings {
        if binding.suspend {
            eprintln!("binding `{}` is suspended: skipped", binding.name);
            continue;
        }
        progress.set_message(format!("reading `{}`", binding.name));
        match observe::observe(binding, &loaded.names, clients).await {
            Ok(snapshot) => plans.push(plan::compute(binding, &loaded.names, &snapshot)),
            Err(err) => {
                failed += 1;
                eprintln!(
                    "error: binding `{}`: {}",
                    binding.name,
                    crate::output::error_chain(&err)
                );
            }
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    (Plan::new(meta(&loaded.digest), plans), failed)
}

/// The plan's metadata: tool version, config digest, creation time.
pub(super) fn meta(config_digest: &str) -> PlanMeta {
    PlanMeta {
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        config_digest: format!("sha256:{config_digest}"),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }
}

/// Write the plan atomically (a temporary file renamed into place), so that a killed run never
/// leaves half a plan behind.
fn save(plan: &Plan, path: &Path) -> anyhow::Result<()> {
    let json = render::json(plan)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json).with_context(|| format!("cannot write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write `{}`", path.display()))
}
