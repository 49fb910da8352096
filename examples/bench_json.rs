//! Benchmark of the plan's JSON writer alone: a saved plan (`plan -out FILE`) is read once, then
//! written pretty (`--format json`) and compact (the saved plan's content digest) by
//! `audience_sync::plan::render` and by serde_json (`PrettyFormatter`, a 1 MiB `BufWriter`),
//! into a sink, best of `--runs`, in CPU seconds of this thread (from `/proc/thread-self/stat`).
//!
//! ```text
//! cargo run --release --example bench_json -- plan.json --runs 5 [--ours-only]
//! ```

use std::io::Write as _;

use anyhow::{Context as _, bail};
use audience_sync::plan::{Plan, render};

#[path = "support/proc_stat.rs"]
mod proc_stat;

/// CPU seconds (user + system) this thread has used.
fn cpu_seconds() -> anyhow::Result<f64> {
    proc_stat::cpu_seconds("/proc/thread-self/stat")
}

/// The fewest CPU seconds `run` took in `runs` runs, and the bytes it wrote.
fn best(runs: usize, mut run: impl FnMut() -> anyhow::Result<u64>) -> anyhow::Result<(f64, u64)> {
    let mut fastest = f64::INFINITY;
    let mut bytes = 0;
    for _ in 0..runs {
        let start = cpu_seconds()?;
        bytes = run()?;
        fastest = fastest.min(cpu_seconds()? - start);
    }
    Ok((fastest, bytes))
}

/// A sink that counts what it is given.
#[derive(Default)]
struct Count(u64);

impl std::io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        bail!("usage: bench_json PLAN.json [--runs N]");
    };
    let runs = match args.iter().position(|a| a == "--runs") {
        Some(i) => args.get(i + 1).context("--runs needs a value")?.parse()?,
        None => 3,
    };
    let text = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    let plan: Plan = serde_json::from_slice(&text).context("a saved plan")?;
    drop(text);

    let ours_pretty = best(runs, || {
        let mut sink = Count::default();
        render::write_json(&plan, &mut sink)?;
        Ok(sink.0)
    })?;
    let runs_serde = if args.iter().any(|a| a == "--ours-only") {
        0
    } else {
        runs
    };
    let serde_pretty = best(runs_serde, || {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, Count::default());
        let mut ser = serde_json::Serializer::pretty(&mut out);
        serde::Serialize::serialize(&plan, &mut ser)?;
        out.write_all(b"\n")?;
        Ok(out.into_inner().map_err(|e| e.into_error())?.0)
    })?;
    let ours_compact = best(runs, || {
        Ok(render::to_writer_compact(Count::default(), &plan)?.0)
    })?;
    let serde_compact = best(runs_serde, || {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, Count::default());
        serde_json::to_writer(&mut out, &plan)?;
        Ok(out.into_inner().map_err(|e| e.into_error())?.0)
    })?;
    for (name, (seconds, bytes)) in [
        ("pretty, ours", ours_pretty),
        ("pretty, serde_json", serde_pretty),
        ("compact, ours", ours_compact),
        ("compact, serde_json", serde_compact),
    ] {
        println!("{name:20} {seconds:6.2} s CPU  {bytes} bytes");
    }
    Ok(())
}
