//! The performance suite of issue 17 in one command, against the real release binary with the
//! emulators in their own process (`audience-sync sandbox --generate …`), so the client's CPU
//! (user + system) and peak RSS are its own (GNU `time`, from `wait4`) and the emulator's CPU is
//! read from `/proc` separately:
//!
//! ```text
//! cargo run --release --example bench -- --members 1000000
//! cargo run --release --example bench -- --members 20000        # a quick run
//! ```
//!
//! Steps: the first-sync `plan` of `--members` (empty CRM) in text, Markdown, JSON and JSON with
//! `-out FILE`; `apply` of it (peak RSS, Dataverse requests against the lower bound); five new
//! Mailchimp members and the steady-state `plan`; the same first-sync plan / apply / five new /
//! steady plan at `--steady` members (default 300,000, at most `--members`); emulator CPU per
//! request in both steady-state plans (it must not grow with the table size). Each figure is
//! printed next to its goal; goals stated for 1,000,000 members scale linearly for CPU.

mod http;
mod proc;

use anyhow::{Context as _, bail};

use http::{Requests, SandboxApi};
use proc::{SandboxProcess, Usage};

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;

struct Args {
    members: usize,
    steady: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut members = 1_000_000;
    let mut steady = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value: usize = it
            .next()
            .with_context(|| format!("{flag} needs a number"))?
            .replace('_', "")
            .parse()
            .with_context(|| format!("{flag} needs a number"))?;
        match flag.as_str() {
            "--members" => members = value,
            "--steady" => steady = Some(value),
            other => bail!("unknown flag {other} (use --members N, --steady N)"),
        }
    }
    Ok(Args {
        members,
        steady: steady.unwrap_or(300_000).min(members),
    })
}

/// One line of the final table.
struct Figure {
    name: String,
    measured: String,
    goal: String,
    met: Option<bool>,
}

struct Suite {
    bin: std::path::PathBuf,
    dir: tempfile::TempDir,
    figures: Vec<Figure>,
}

/// One measured client run and what the emulators did meanwhile.
struct Run {
    usage: Usage,
    emulator_cpu: f64,
    requests: Requests,
}

impl Suite {
    fn record(&mut self, name: String, measured: String, goal: String, met: Option<bool>) {
        let mark = match met {
            Some(true) => "met",
            Some(false) => "NOT MET",
            None => "",
        };
        println!("  {name:<52} {measured:>24}   goal {goal:<22} {mark}");
        self.figures.push(Figure {
            name,
            measured,
            goal,
            met,
        });
    }

    async fn run(
        &self,
        sandbox: &SandboxProcess,
        api: &SandboxApi,
        args: &[&str],
    ) -> anyhow::Result<Run> {
        api.reset().await?;
        let cpu_before = sandbox.cpu()?;
        let usage = proc::measure(&self.bin, args, &sandbox.env, None, self.dir.path())?;
        let emulator_cpu = sandbox.cpu()? - cpu_before;
        let requests = api.requests().await?;
        Ok(Run {
            usage,
            emulator_cpu,
            requests,
        })
    }

    /// Record the client's CPU and RSS of a first-sync plan against the scaled goals.
    fn record_plan(&mut self, label: &str, members: usize, run: &Run) {
        let scale = members as f64 / 1e6;
        let cpu_goal = 12.0 * scale;
        let rss_goal = (GIB * scale).max(64.0 * MIB);
        self.record(
            format!("first-sync plan {label}: client CPU"),
            format!(
                "{:.2} s ({:.1} µs/member)",
                run.usage.cpu,
                run.usage.cpu * 1e6 / members as f64
            ),
            format!("≤ {cpu_goal:.2} s"),
            Some(run.usage.cpu <= cpu_goal),
        );
        self.record(
            format!("first-sync plan {label}: client peak RSS"),
            format!("{:.0} MiB", run.usage.peak_rss as f64 / MIB),
            format!("< {:.0} MiB", rss_goal / MIB),
            Some((run.usage.peak_rss as f64) < rss_goal),
        );
        println!(
            "  {:<52} {:>24}",
            "  (wall, emulator CPU, requests)",
            format!(
                "{:.1} s, {:.1} s, {}",
                run.usage.wall.as_secs_f64(),
                run.emulator_cpu,
                run.requests.total()
            )
        );
    }

    /// First-sync plan, apply, five new members, steady-state plan; returns the steady run and
    /// the first-sync text plan run.
    async fn steady(
        &mut self,
        sandbox: &SandboxProcess,
        api: &SandboxApi,
        members: usize,
        first: Option<&Run>,
    ) -> anyhow::Result<(Run, f64)> {
        let config = sandbox.config.to_string_lossy().into_owned();
        let first_wall = match first {
            Some(run) => run.usage.wall.as_secs_f64(),
            None => {
                let run = self.run(sandbox, api, &["plan", &config]).await?;
                self.record_plan(&format!("text, {members}"), members, &run);
                run.usage.wall.as_secs_f64()
            }
        };
        let apply = self
            .run(sandbox, api, &["apply", &config, "--auto-approve"])
            .await?;
        self.record_apply(members, &apply);
        api.add_members(5).await?;
        let steady = self.run(sandbox, api, &["plan", &config]).await?;
        let ratio = steady.usage.wall.as_secs_f64() / first_wall;
        self.record(
            format!("steady-state plan {members} (+5) / first-sync plan"),
            format!(
                "{:.1} s / {:.1} s = {ratio:.2}",
                steady.usage.wall.as_secs_f64(),
                first_wall
            ),
            "≤ 1.50".into(),
            Some(ratio <= 1.5),
        );
        let per_page = steady.emulator_cpu * 1e3 / steady.requests.total().max(1) as f64;
        Ok((steady, per_page))
    }

    fn record_apply(&mut self, members: usize, run: &Run) {
        self.record(
            format!("apply {members} (first sync): client peak RSS"),
            format!("{:.0} MiB", run.usage.peak_rss as f64 / MIB),
            format!("< {:.0} MiB", (1.5 * GIB / MIB)),
            Some((run.usage.peak_rss as f64) < 1.5 * GIB),
        );
        println!(
            "  {:<52} {:>24}",
            "  (wall, client CPU, emulator CPU)",
            format!(
                "{:.1} s, {:.1} s, {:.1} s",
                run.usage.wall.as_secs_f64(),
                run.usage.cpu,
                run.emulator_cpu
            )
        );
        let lower = members.div_ceil(1000);
        for (route, count) in &run.requests.dataverse_routes {
            println!("      {route:<60} {count:>8}");
        }
        for (route, count) in &run.requests.batch_parts {
            println!("      in $batch: {route:<50} {count:>8}");
        }
        println!("      lower bound per bulk kind (1,000 a request): {lower}");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let mut suite = Suite {
        bin: proc::binary()?,
        dir: tempfile::tempdir()?,
        figures: Vec::new(),
    };
    println!(
        "audience-sync benchmark: {} members (steady state at {}), binary {}",
        args.members,
        args.steady,
        suite.bin.display()
    );
    let n = args.members;
    let big = SandboxProcess::start(&suite.bin, n, suite.dir.path())?;
    let big_api = SandboxApi::new(big.root(), big.env.clone());
    println!(
        "sandbox with {n} members up (emulator peak RSS {:.0} MiB)",
        big.peak_rss()? as f64 / MIB
    );
    let config = big.config.to_string_lossy().into_owned();
    let saved = suite.dir.path().join("plan.json");
    let saved_arg = saved.to_string_lossy().into_owned();
    let text = suite.run(&big, &big_api, &["plan", &config]).await?;
    suite.record_plan(&format!("text, {n}"), n, &text);
    for (label, extra) in [
        ("markdown", vec!["--format", "markdown"]),
        ("json", vec!["--format", "json"]),
        ("json -out", vec!["--format", "json", "--out", &saved_arg]),
    ] {
        let mut argv = vec!["plan", config.as_str()];
        argv.extend(extra);
        let run = suite.run(&big, &big_api, &argv).await?;
        suite.record_plan(&format!("{label}, {n}"), n, &run);
    }
    let _ = std::fs::remove_file(&saved);
    let (steady_big, per_page_big) = if args.steady == n {
        suite.steady(&big, &big_api, n, Some(&text)).await?
    } else {
        let apply = suite
            .run(&big, &big_api, &["apply", &config, "--auto-approve"])
            .await?;
        suite.record_apply(n, &apply);
        big_api.add_members(5).await?;
        let steady = suite.run(&big, &big_api, &["plan", &config]).await?;
        let per_page = steady.emulator_cpu * 1e3 / steady.requests.total().max(1) as f64;
        (steady, per_page)
    };
    drop(big);
    let per_page_small = if args.steady == n {
        None
    } else {
        let small = SandboxProcess::start(&suite.bin, args.steady, suite.dir.path())?;
        let small_api = SandboxApi::new(small.root(), small.env.clone());
        let (_, per_page) = suite.steady(&small, &small_api, args.steady, None).await?;
        Some(per_page)
    };
    println!(
        "  steady-state plan {n}: {:.1} s wall, {:.1} s client CPU, emulator {:.1} s CPU over {} requests",
        steady_big.usage.wall.as_secs_f64(),
        steady_big.usage.cpu,
        steady_big.emulator_cpu,
        steady_big.requests.total()
    );
    match per_page_small {
        Some(small) => {
            let ratio = per_page_big / small;
            suite.record(
                format!("emulator CPU per request, {} vs {n} rows", args.steady),
                format!("{small:.2} / {per_page_big:.2} ms = {ratio:.2}"),
                "≤ 1.50 (flat)".into(),
                Some(ratio <= 1.5),
            );
        }
        None => suite.record(
            format!("emulator CPU per request, {n} rows"),
            format!("{per_page_big:.2} ms"),
            "flat in rows".into(),
            None,
        ),
    }
    summary(&suite.figures);
    Ok(())
}

fn summary(figures: &[Figure]) {
    println!("\nsummary");
    for figure in figures {
        let mark = match figure.met {
            Some(true) => "met",
            Some(false) => "NOT MET",
            None => "-",
        };
        println!(
            "  {:<52} {:>24}   goal {:<22} {mark}",
            figure.name, figure.measured, figure.goal
        );
    }
}
