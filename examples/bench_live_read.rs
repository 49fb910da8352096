//! Benchmark: `plan`'s observation of a large audience over a slow link, optionally while the
//! audience changes. The in-process sandbox generates `--members` members (default 100,000),
//! every Mailchimp answer waits `--latency-ms` (default 500, Mailchimp's side only), churn
//! (`--churn` changes per second, default 0) runs during the read, and the binding is planned
//! (observe both sides + diff) with `mailchimp.max_connections` = `--connections` (default 8).
//!
//! Reported: the plan's wall time, the Mailchimp requests by route, and the target
//! `1.5 × ceil(requests / connections) × latency`: with the connection budget full all the
//! time, the read takes `ceil(requests / connections)` latencies; the factor leaves room for the
//! steps that cannot overlap (the audience and clock first, the catch-up after the main pass).
//!
//! ```text
//! cargo run --release --example bench_live_read
//! cargo run --release --example bench_live_read -- --members 100000 --latency-ms 500 --churn 20
//! ```

use std::time::Instant;

use anyhow::{Context as _, bail};
use api_sandbox::mailchimp::{Churn, Faults};
use api_sandbox::{GenerateSpec, Options, Sandbox};
use audience_sync::{observe, plan};

#[path = "support/first_sync.rs"]
#[allow(dead_code)]
mod first_sync;
use first_sync::FirstSync;

struct Args {
    members: usize,
    latency_ms: u64,
    churn: f64,
    connections: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        members: 100_000,
        latency_ms: 500,
        churn: 0.0,
        connections: 8,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .with_context(|| format!("`{flag}` needs a value"))?
            .replace('_', "");
        match flag.as_str() {
            "--members" => args.members = value.parse()?,
            "--latency-ms" => args.latency_ms = value.parse()?,
            "--churn" => args.churn = value.parse()?,
            "--connections" => args.connections = value.parse()?,
            other => bail!(
                "unknown argument `{other}` (use --members N, --latency-ms MS, --churn PER_SECOND, --connections 1-10)"
            ),
        }
    }
    Ok(args)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let started = Instant::now();
    let sandbox = Sandbox::start(Options {
        generate: Some(GenerateSpec {
            members: args.members,
            tags: 5,
            seed: 1,
            audiences: 1,
            shared: 0,
        }),
        ..audience_sync::commands::sandbox::options()
    })
    .await?;
    println!(
        "generated {} members in {:.1} s",
        args.members,
        started.elapsed().as_secs_f64()
    );
    let sync = FirstSync::with(&sandbox, args.connections, true)?;
    let (binding, loaded, clients) = (&sync.binding, &sync.loaded, &sync.clients);

    sandbox.mailchimp.set_faults(Faults {
        latency_ms: args.latency_ms,
        ..Faults::default()
    });
    sandbox.mailchimp.set_churn(Churn {
        rate: args.churn,
        seed: 1,
        ..Churn::default()
    });
    sandbox.mailchimp.reset_requests();
    let t0 = Instant::now();
    let snapshot = observe::observe(binding, &loaded.names, clients).await?;
    let planned = plan::compute(binding, &loaded.names, &snapshot);
    let wall = t0.elapsed().as_secs_f64();
    sandbox.mailchimp.set_churn(Churn::default());

    let requests = sandbox.mailchimp.requests();
    let changes = sandbox.mailchimp.journal().len();
    let rounds = requests.total.div_ceil(args.connections as u64);
    #[allow(clippy::cast_precision_loss)]
    let target = 1.5 * rounds as f64 * args.latency_ms as f64 / 1000.0;
    println!(
        "members read: {} (plan: {} changes), churn: {changes} changes during the read",
        snapshot.mailchimp.members.len(),
        planned.changes.len()
    );
    println!("Mailchimp requests by route: {:?}", requests.routes);
    println!(
        "Mailchimp requests: {} (largest concurrency {}), connections: {}",
        requests.total, requests.max_in_flight, args.connections
    );
    println!(
        "plan wall time: {wall:.2} s; target 1.5 × ceil({} / {}) × {} ms = {target:.2} s: {}",
        requests.total,
        args.connections,
        args.latency_ms,
        if wall <= target { "within" } else { "OVER" }
    );
    Ok(())
}
