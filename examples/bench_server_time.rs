//! Benchmark of a first sync under the Dataverse execution-time limit: `--members N` (default
//! 20,000; 2 tags) generated members synced to a new list against the in-process sandbox with
//! the emulator's default server cost, spent for real as the `sandbox` command does (10 ms per
//! operation, answers delayed by it; see `api_sandbox::dataverse::limits`).
//!
//! The bound: the window allows 1,200,000 ms of server time per 300 s, i.e. 4 s of server time
//! per second of wall time, so a sync whose operations cost `T` seconds of server time cannot
//! sustainably finish in less than `T / 4` seconds. With the emulator's `x-ms-dop-hint` of 4
//! that is also what 4 requests in flight spend. The benchmark prints the apply's wall time
//! against that bound, the 429 answers (a storm would be many), and the requests by route.
//!
//! ```text
//! cargo run --release --example bench_server_time -- --members 20000
//! ```
//!
//! Measured (2026-11-29, 2 shared cores): 20,000 members, 45,240 changes, 48,085 operations =
//! 481 s of server time, bound 120.2 s; apply 131.5 s (1.09 x the bound), 130 counted requests,
//! 0 answered 429.

use anyhow::bail;
use api_sandbox::dataverse::Limits;
use api_sandbox::{GenerateSpec, Options as SandboxOptions, Sandbox, Seed};

#[path = "support/first_sync.rs"]
mod first_sync;
use first_sync::FirstSync;

/// What "no 429 storm" allows: a few refusals while the client learns the server's pace.
const STORM: u64 = 10;
/// How far above the bound the sync may end.
const SLACK: f64 = 1.3;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let members = first_sync::members_arg(20_000)?;
    let limits = Limits {
        sleep_server_time: true,
        ..Limits::default()
    };
    let mut seed = Seed::default();
    seed.dataverse.limits = Some(limits.clone());
    let sandbox = Sandbox::start(SandboxOptions {
        seed,
        generate: Some(GenerateSpec {
            members,
            tags: 2,
            seed: 1,
            audiences: 1,
            shared: 0,
        }),
        ..audience_sync::commands::sandbox::options()
    })
    .await?;
    let sync = FirstSync::new(&sandbox)?;

    let plan = sync.plan().await?;

    sandbox.dataverse.reset_counters();
    let (report, wall) = sync.apply(&plan).await;
    let counters = sandbox.dataverse.counters();
    #[allow(clippy::cast_precision_loss)] // operation counts and costs are far below 2^52
    let server_secs = (counters.operations * limits.op_cost_ms) as f64 / 1000.0;
    #[allow(clippy::cast_precision_loss)]
    let rate = limits.execution_ms_per_window as f64 / limits.window_secs as f64 / 1000.0;
    let bound = server_secs / rate;
    println!("apply: {wall:.1} s, {}", report.summary());
    println!(
        "server time: {} operations x {} ms = {server_secs:.0} s; the window sustains {rate:.0} s/s, so the bound is {bound:.1} s",
        counters.operations, limits.op_cost_ms
    );
    println!(
        "wall / bound = {:.2} (allowed {SLACK}); {} counted requests, {} answered 429 (storm: > {STORM})",
        wall / bound,
        counters.counted_requests,
        counters.throttled
    );
    for (route, n) in &counters.routes {
        println!("  {n:>7}  {route}");
    }
    if report.totals().failed > 0 {
        bail!("{} operations failed", report.totals().failed);
    }
    if counters.throttled > STORM {
        bail!("a 429 storm: {} refusals", counters.throttled);
    }
    if wall > bound * SLACK {
        bail!("the sync took {wall:.1} s, over {SLACK} x the bound {bound:.1} s");
    }
    Ok(())
}
