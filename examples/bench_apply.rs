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

use anyhow::{Context as _, bail};
use api_sandbox::{GenerateSpec, Options as SandboxOptions, Sandbox};
use audience_sync::apply::{self, Options, lease};
use audience_sync::clients::Clients;
use audience_sync::dataverse::tables::ToolTables;
use audience_sync::observe;
use audience_sync::plan::{self, Action};
use audience_sync::{config, dataverse, mailchimp};

/// The largest batch of each kind: `$batch`, `CreateMultiple` and `AddListMembersList` all
/// take 1,000.
const LARGEST_BATCH: u64 = 1000;

fn members_arg() -> anyhow::Result<usize> {
    let mut args = std::env::args().skip(1);
    let mut members = 100_000;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--members" => {
                members = args
                    .next()
                    .context("--members needs a number")?
                    .replace('_', "")
                    .parse()
                    .context("--members needs a number")?;
            }
            other => bail!("unknown argument `{other}` (use --members N)"),
        }
    }
    Ok(members)
}

fn env_of(sandbox: &Sandbox) -> impl Fn(&str) -> String {
    let env = sandbox.env();
    move |k: &str| {
        env.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let members = members_arg()?;
    let started = Instant::now();
    let sandbox = Sandbox::start(SandboxOptions {
        generate: Some(GenerateSpec {
            members,
            tags: 5,
            seed: 1,
            audiences: 1,
        }),
        ..audience_sync::commands::sandbox::options()
    })
    .await?;
    println!(
        "sandbox with {members} members generated in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let get = env_of(&sandbox);
    let (audience, name) = sandbox.mailchimp.audiences().remove(0);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("audience-sync.yaml");
    std::fs::write(
        &path,
        format!(
            "version: 1\nmailchimp: {{api_key: \"${{MAILCHIMP_API_KEY}}\"}}\ndataverse: {{url: \"{}\", tenant_id: \"{}\", client_id: \"{}\", client_secret: \"${{S}}\"}}\nbindings:\n  - name: bench\n    audience: {{id: \"{audience}\"}}\n    marketing_list: {{name: \"{name}\", member_type: contact, create: true}}\n",
            get("DATAVERSE_URL"),
            get("DATAVERSE_TENANT_ID"),
            get("DATAVERSE_CLIENT_ID"),
        ),
    )?;
    let loaded = config::load(&path).map_err(|e| anyhow::anyhow!("config: {e}"))?;
    let binding = loaded.bindings.first().context("one binding")?.clone();
    let mc = mailchimp::Client::builder()
        .api_key(get("MAILCHIMP_API_KEY").into())
        .base_url(Some(get("MAILCHIMP_BASE_URL")))
        .build()?;
    let dv = dataverse::Client::builder()
        .url(get("DATAVERSE_URL"))
        .tenant_id(get("DATAVERSE_TENANT_ID"))
        .client_id(get("DATAVERSE_CLIENT_ID"))
        .client_secret(get("DATAVERSE_CLIENT_SECRET").into())
        .token_url(Some(get("DATAVERSE_TOKEN_URL")))
        .build()?;
    let clients = Clients {
        mailchimp: mc,
        dataverse: dv.clone(),
        tables: ToolTables::new(dv, dataverse::schema::Schema::new(&loaded.names)),
        columns: dataverse::columns::ColumnCatalog::default(),
    };

    let t = Instant::now();
    let snapshot = observe::observe(&binding, &loaded.names, &clients).await?;
    let plan = plan::compute(&binding, &loaded.names, &snapshot);
    drop(snapshot);
    println!(
        "observe + plan: {:.1} s, {} changes",
        t.elapsed().as_secs_f64(),
        plan.changes.len()
    );
    let links: u64 = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::LinkTags)
        .map(|c| c.tags.len() as u64)
        .sum();

    sandbox.dataverse.reset_counters();
    let options = Options {
        claim: lease::Claim {
            owner: "bench".to_owned(),
            operation: "apply".to_owned(),
            wait: std::time::Duration::ZERO,
            term: lease::DEFAULT_TERM,
        },
        plan_id: "bench".to_owned(),
        stale_members: std::collections::HashSet::new(),
    };
    let t = Instant::now();
    let report = apply::apply_binding(&clients, &loaded.names, &plan, &options, &|_, _| {}).await;
    let apply_secs = t.elapsed().as_secs_f64();
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

    let t = Instant::now();
    let snapshot = observe::observe(&binding, &loaded.names, &clients).await?;
    let again = plan::compute(&binding, &loaded.names, &snapshot);
    println!(
        "\nplan after apply: {} changes ({:.1} s)",
        again.changes.len(),
        t.elapsed().as_secs_f64()
    );
    if !again.changes.is_empty() {
        bail!("the plan after apply is not empty");
    }
    Ok(())
}
