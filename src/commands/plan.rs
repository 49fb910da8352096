//! `audience-sync plan [CONFIG]`: plan every selected binding ([`crate::sync`]), and show the
//! plan as text, Markdown or JSON; `-out FILE` saves it for `apply FILE`;
//! `--detailed-exitcode` says whether there are changes (0 none, 2 some, 1 error: a service not
//! read, or a binding whose list cannot be written, such as a locked or missing list). Text and
//! Markdown mask member data unless `--show-pii`; the saved plan keeps it, so it is `0600`.

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

    print_plan(&plan, &args, ctx)?;

    if let Some(out) = &args.out {
        save(&plan, out)?;
        eprintln!(
            "saved the plan to `{}`; apply it with `audience-sync apply {}`",
            out.display(),
            out.display()
        );
    }
    let mut stopped = false;
    for (binding, error) in plan.binding_errors() {
        eprintln!(
            "error: binding `{binding}` cannot be applied: {}",
            error.message
        );
        stopped = true;
    }
    if planned.failed > 0 || stopped {
        return Ok(ExitStatus::Failure);
    }
    Ok(match (args.detailed_exitcode, plan.has_changes()) {
        (true, true) => ExitStatus::ChangesPresent,
        _ => ExitStatus::Success,
    })
}

/// The buffer a JSON plan is written through: the serializer writes in small pieces, and a
/// million-member plan is gigabytes (one system call per MiB, not per 8 KiB).
const WRITE_BUFFER: usize = 1 << 20;

/// The plan to stdout in the chosen format (JSON streamed: a large plan is never one string).
fn print_plan(plan: &Plan, args: &PlanArgs, ctx: &Context) -> anyhow::Result<()> {
    let rendered = match args.format {
        PlanFormat::Text => render::text(
            plan,
            &TextOptions {
                color: ctx.color,
                full: args.full,
                show_pii: args.show_pii,
                ..TextOptions::default()
            },
        ),
        PlanFormat::Markdown => render::markdown(
            plan,
            &MarkdownOptions {
                show_pii: args.show_pii,
            },
        ),
        PlanFormat::Json => {
            let mut stdout =
                std::io::BufWriter::with_capacity(WRITE_BUFFER, std::io::stdout().lock());
            render::write_json(plan, &mut stdout)?;
            stdout.flush()?;
            return Ok(());
        }
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(rendered.as_bytes())?;
    if !rendered.ends_with('\n') {
        writeln!(stdout)?;
    }
    drop(stdout);
    Ok(())
}

/// Write the plan atomically, readable by its owner only (`0600`: it holds personal data): a
/// temporary file with a unique name created exclusively (`O_EXCL`, never another file) next to
/// `path`, then renamed onto `path`, so that a killed run never leaves half a plan behind.
fn save(plan: &Plan, path: &Path) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let cannot = || format!("cannot write `{}`", path.display());
    let mut tmp = tempfile::Builder::new()
        .prefix(".audience-sync-plan.")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(cannot)?;
    {
        let mut writer = std::io::BufWriter::with_capacity(WRITE_BUFFER, tmp.as_file_mut());
        render::write_json(plan, &mut writer).with_context(cannot)?;
        writer.flush().with_context(cannot)?;
    }
    tmp.as_file().sync_all().with_context(cannot)?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(cannot)?;
    Ok(())
}
