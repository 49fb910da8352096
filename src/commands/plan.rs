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

    // A JSON plan that is also saved is written once, to both (`Tee`).
    let tee = args.out.is_some() && args.format == PlanFormat::Json;
    if !tee {
        print_plan(&plan, &args, ctx)?;
    }
    if let Some(out) = &args.out {
        save(&plan, out, tee.then(|| std::io::stdout().lock()))?;
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
            render::write_json(plan, std::io::stdout().lock())?;
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
/// `path`, fsynced, then renamed onto `path`, so that a killed or failed run never leaves half a
/// plan behind. With `stdout`, the same bytes go there too as they are written (the JSON is
/// serialized once for both).
fn save(plan: &Plan, path: &Path, stdout: Option<impl std::io::Write>) -> anyhow::Result<()> {
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
    match stdout {
        Some(stdout) => {
            let mut tee = Tee {
                first: stdout,
                second: tmp.as_file_mut(),
                first_failed: false,
            };
            if let Err(error) = render::write_json(plan, &mut tee) {
                // The temporary file goes with `tmp`: nothing is saved.
                let what = if tee.first_failed {
                    "cannot write the plan to stdout".to_owned()
                } else {
                    cannot()
                };
                return Err(anyhow::Error::new(error).context(what));
            }
        }
        None => render::write_json(plan, tmp.as_file_mut()).with_context(cannot)?,
    }
    tmp.as_file().sync_all().with_context(cannot)?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(cannot)?;
    Ok(())
}

/// A writer into two at once (stdout, then the file), remembering whether the first failed.
struct Tee<A, B> {
    first: A,
    second: B,
    first_failed: bool,
}

impl<A: std::io::Write, B: std::io::Write> std::io::Write for Tee<A, B> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if let Err(error) = self.first.write_all(buf) {
            self.first_failed = true;
            return Err(error);
        }
        self.second.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if let Err(error) = self.first.flush() {
            self.first_failed = true;
            return Err(error);
        }
        self.second.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stdout that fails after taking `room` bytes.
    struct Closed {
        room: usize,
    }

    impl std::io::Write for Closed {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if buf.len() > self.room {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            self.room -= buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_teed_save_writes_the_same_bytes_to_stdout_and_the_file() {
        let plan = crate::plan::fixture::scenario_plan();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let mut stdout = Vec::new();
        save(&plan, &path, Some(&mut stdout)).unwrap();
        let saved = std::fs::read(&path).unwrap();
        assert_eq!(saved, render::json(&plan).unwrap().as_bytes());
        assert_eq!(stdout, saved);
        assert_eq!(files_in(dir.path()), ["plan.json"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_failing_stdout_is_named_and_leaves_no_file() {
        let plan = crate::plan::fixture::scenario_plan();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let error = save(&plan, &path, Some(Closed { room: 10 })).unwrap_err();
        assert_eq!(error.to_string(), "cannot write the plan to stdout");
        assert!(
            files_in(dir.path()).is_empty(),
            "{:?}",
            files_in(dir.path())
        );
    }

    #[test]
    fn a_file_that_cannot_be_made_is_named() {
        let plan = crate::plan::fixture::scenario_plan();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("plan.json");
        let error = save(&plan, &path, None::<Vec<u8>>).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("cannot write `{}`", path.display())
        );
        assert!(files_in(dir.path()).is_empty());
    }
}
