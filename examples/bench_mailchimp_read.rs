//! Benchmark: read a whole generated audience with the Mailchimp client, in pages, from the
//! in-process emulator (or from any running API with `--base-url`), and report members per
//! second, pages, requests and peak memory.
//!
//! ```text
//! cargo run --release --example bench_mailchimp_read -- --members 200000
//! cargo run --release --example bench_mailchimp_read -- --members 200000 --status subscribed
//! cargo run --example bench_mailchimp_read -- --base-url http://127.0.0.1:4010 --api-key KEY --list ID
//! ```
//!
//! Peak RSS (`VmHWM`) is read before and after the read: the emulator's data is in the same
//! process, so the difference is what the client added while streaming.

use std::time::Instant;

use anyhow::{Context, bail};
use api_sandbox::{GenerateSpec, Options, Sandbox, Seed};
use audience_sync::mailchimp::{ALL_STATUSES, Client, MemberQuery, MemberStatus};
use futures::StreamExt;
use secrecy::SecretString;

struct Args {
    members: usize,
    tags: usize,
    seed: u64,
    base_url: Option<String>,
    api_key: Option<String>,
    list: Option<String>,
    statuses: Vec<MemberStatus>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        members: 200_000,
        tags: 10,
        seed: 1,
        base_url: None,
        api_key: None,
        list: None,
        statuses: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("`{flag}` needs a value"));
        match flag.as_str() {
            "--members" => args.members = value()?.replace('_', "").parse()?,
            "--tags" => args.tags = value()?.parse()?,
            "--seed" => args.seed = value()?.parse()?,
            "--base-url" => args.base_url = Some(value()?),
            "--api-key" => args.api_key = Some(value()?),
            "--list" => args.list = Some(value()?),
            "--status" => {
                let status = value()?;
                args.statuses.push(
                    serde_json::from_value(serde_json::Value::String(status.clone()))
                        .with_context(|| format!("`{status}` is not a member status"))?,
                );
            }
            other => bail!(
                "unknown argument `{other}` (use --members N, --tags T, --seed S, --status S (repeatable; default: all), or --base-url URL --api-key KEY [--list ID])"
            ),
        }
    }
    Ok(args)
}

/// Peak resident set size in KiB (Linux), if known.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "unknown".to_owned(),
        |k| format!("{:.1} MiB", k as f64 / 1024.0),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let (sandbox, base_url, api_key) = match &args.base_url {
        Some(url) => (
            None,
            url.clone(),
            args.api_key.clone().context("--base-url needs --api-key")?,
        ),
        None => {
            let started = Instant::now();
            let sandbox = Sandbox::start(Options {
                seed: Seed::default(),
                generate: Some(GenerateSpec {
                    members: args.members,
                    tags: args.tags,
                    seed: args.seed,
                    audiences: 1,
                    shared: 0,
                }),
                ..audience_sync::commands::sandbox::options()
            })
            .await?;
            eprintln!(
                "generated {} members in {:.2?}",
                args.members,
                started.elapsed()
            );
            let env = sandbox.env();
            let get = |k: &str| {
                env.iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let (url, key) = (get("MAILCHIMP_BASE_URL"), get("MAILCHIMP_API_KEY"));
            (Some(sandbox), url, key)
        }
    };
    let client = Client::builder()
        .api_key(SecretString::from(api_key))
        .base_url(Some(base_url))
        .build()?;
    let list_id = match &args.list {
        Some(id) => id.clone(),
        None => client
            .lists()
            .await?
            .first()
            .map(|a| a.id.clone())
            .context("the account has no audience")?,
    };
    let rss_before = peak_rss_kib();
    let requests_before = client.stats().requests();
    let started = Instant::now();
    let query = MemberQuery {
        statuses: if args.statuses.is_empty() {
            ALL_STATUSES.to_vec()
        } else {
            args.statuses.clone()
        },
        ..MemberQuery::default()
    };
    let query_statuses = query.statuses.clone();
    let mut pages = client.members(&list_id, query);
    let (mut page_count, mut members, mut tags) = (0usize, 0usize, 0usize);
    while let Some(page) = pages.next().await {
        let page = page?;
        page_count += 1;
        members += page.len();
        tags += page.iter().map(|m| m.tags.len()).sum::<usize>();
    }
    let elapsed = started.elapsed();
    let rss_after = peak_rss_kib();
    let requests = client.stats().requests() - requests_before;
    println!("audience:        {list_id}");
    println!(
        "statuses:        {}",
        query_statuses
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("members read:    {members} ({tags} tag links)");
    println!("pages:           {page_count}");
    println!(
        "requests:        {requests} (retries {})",
        client.stats().retries()
    );
    if let Some(sandbox) = &sandbox {
        let counts = sandbox.mailchimp.requests();
        println!(
            "emulator saw:    {} member-page requests, max {} in flight",
            counts
                .routes
                .get("GET /3.0/lists/{list_id}/members")
                .copied()
                .unwrap_or(0),
            counts.max_in_flight
        );
    }
    println!("elapsed:         {elapsed:.2?}");
    println!(
        "members/s:       {:.0}",
        members as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    println!(
        "peak RSS:        {} before the read, {} after",
        mib(rss_before),
        mib(rss_after)
    );
    Ok(())
}
