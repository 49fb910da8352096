//! Benchmark of `apply`: the first sync of a generated audience of `--members N` (default
//! 100,000; 5 tags) against the in-process sandbox over loopback HTTP. Reports the wall time of
//! observe + plan and of apply, the Dataverse requests apply sent by route (as the sandbox counts
//! them for service protection: a `$batch` or a bulk action is one) against the lower bound
//! ceil(records / largest batch) per kind, and checks that the next plan is empty.
//!
//! ```text
//! cargo run --release --example bench_apply -- --members 100000
//! ```

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::bail;
use api_sandbox::{GenerateSpec, Options as SandboxOptions, Sandbox};
use audience_sync::plan::Action;

#[path = "support/first_sync.rs"]
mod first_sync;
use first_sync::FirstSync;

/// The largest batch of each kind: `$batch`, `CreateMultiple` and `AddListMembersList` all
/// take 1,000.
const LARGEST_BATCH: u64 = 1000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let members = first_sync::members_arg(100_000)?;
    let started = Instant::now();
    let sandbox = Sandbox::start(SandboxOptions {
        generate: Some(GenerateSpec {
            members,
            tags: 5,
            seed: 1,
            audiences: 1,
            shared: 0,
        }),
        ..audience_sync::commands::sandbox::options()
    })
    .await?;
    println!(
        "sandbox with {members} members generated in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let sync = FirstSync::new(&sandbox)?;

    let plan = sync.plan().await?;
    let links: u64 = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::LinkTags)
        .map(|c| c.tags.len() as u64)
        .sum();

    sandbox.dataverse.reset_counters();
    let (report, apply_secs) = sync.apply(&plan).await;
    let counters = sandbox.dataverse.counters();
    println!("apply: {apply_secs:.1} s, {}", report.summary());

    println!("\nrequests by route (counted for service protection):");
    for (route, n) in &counters.routes {
        println!("  {n:>7}  {route}");
    }
    println!(
        "  total: {} counted requests, {} data operations, {} throttled",
        counters.counted_requests, counters.operations, counters.throttled
    );

    let count = |a: Action| plan.count(a);
    let bound = |n: u64| n.div_ceil(LARGEST_BATCH);
    let mut kinds: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    kinds.insert(
        "contacts created",
        (
            count(Action::CreateRecord),
            bound(count(Action::CreateRecord)),
        ),
    );
    kinds.insert(
        "list members added",
        (
            count(Action::AddListMember),
            bound(count(Action::AddListMember)),
        ),
    );
    kinds.insert("tag links", (links, bound(links)));
    kinds.insert(
        "tags created",
        (count(Action::CreateTag), bound(count(Action::CreateTag))),
    );
    println!("\nlower bound per kind (ceil(records / {LARGEST_BATCH})):");
    for (kind, (records, lower)) in &kinds {
        println!("  {kind:<20} {records:>8} records  ≥ {lower:>4} requests");
    }
    let route_sum = |needle: &str| -> u64 {
        counters
            .routes
            .iter()
            .filter(|(r, _)| r.contains(needle))
            .map(|(_, n)| *n)
            .sum()
    };
    println!(
        "  measured: CreateMultiple {}, AddListMembersList {}, $batch {} (tags, links)",
        route_sum("CreateMultiple"),
        route_sum("AddListMembersList"),
        route_sum("$batch")
    );

    println!("\nplan after apply:");
    let again = sync.plan().await?;
    if !again.changes.is_empty() {
        bail!("the plan after apply is not empty");
    }
    Ok(())
}
