//! `audience-sync plan [CONFIG]`: plan every selected binding ([`crate::sync`]), and show the
//! plan as text, Markdown or JSON; `-out FILE` saves it for `apply FILE`;
//! `--detailed-exitcode` says whether there are changes (0 none, 2 some, 1 error).

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

use super::Preamble;
use super::progress::Terminal;
use crate::cli::{PlanArgs, PlanFormat};
use crate::exit::ExitStatus;
use crate::output::Context;
use crate::plan::Plan;
use crate::plan::render::{self, MarkdownOptions, TextOptions};

pub(super) async fn run(args: PlanArgs, ctx: &Context) -> anyhow::Result<ExitStatus> {
    let Some(pre) = Preamble::load(&args.config, &args.bindings)? else {
        return Ok(ExitStatus::Failure);
    };
    let reporter = Terminal::new(ctx);
    let planned = pre.session(&reporter).plan_all(&pre.bindings()).await;
    let plan = planned.plan;

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
    if planned.failed > 0 {
        return Ok(ExitStatus::Failure);
    }
    Ok(match (args.detailed_exitcode, plan.has_changes()) {
        (true, true) => ExitStatus::ChangesPresent,
        _ => ExitStatus::Success,
    })
}

/// Write the plan atomically (a temporary file renamed into place), so that a killed run never
/// leaves half a plan behind.
fn save(plan: &Plan, path: &Path) -> anyhow::Result<()> {
    let json = render::json(plan)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json).with_context(|| format!("cannot write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write `{}`", path.display()))
}
