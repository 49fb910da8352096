//! End-to-end benchmark of `plan`: observation over HTTP plus the diff, with the sandbox in a
//! separate process so that the peak memory measured is the client's own.
//!
//! ```text
//! cargo run --release --example bench_plan -- --members 100000
//! cargo run --release --example bench_plan -- --members 1000000 --tags 5
//! ```
//!
//! The benchmark re-runs itself as `serve`: that child starts the sandbox with a generated
//! audience of `--members` members and `--tags` tags, then seeds the CRM so that the plan has all
//! kinds of work: `--overlap` percent of the subscribed members already exist as contacts on the
//! list (linked by their stored Mailchimp contact id), `--changed` percent of those have a changed
//! first name, and `--left` percent more list members belong to nobody in Mailchimp any more
//! (removals). The parent then loads a config bound to that audience (pruning on, no removal
//! guard), observes both sides and diffs, and reports wall time, the diff alone, peak RSS
//! (`VmHWM`), the requests by route on both emulators, and the lower bound of requests (every
//! read at its maximum page size).

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, bail};
use api_sandbox::dataverse::value::Val;
use api_sandbox::{Options, Sandbox};
use audience_sync::clients::Clients;
use audience_sync::config::{self, MemberStatus};
use audience_sync::mailchimp::{self, MemberQuery};
use audience_sync::observe;
use audience_sync::plan;
use futures::StreamExt as _;
use uuid::Uuid;

#[derive(Debug, Clone, Copy)]
struct Args {
    members: usize,
    tags: usize,
    overlap: usize,
    changed: usize,
    left: usize,
}

fn parse_args(args: &[String]) -> anyhow::Result<Args> {
    let mut out = Args {
        members: 100_000,
        tags: 5,
        overlap: 90,
        changed: 5,
        left: 2,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value: usize = it
            .next()
            .with_context(|| format!("{flag} needs a value"))?
            .replace('_', "")
            .parse()?;
        match flag.as_str() {
            "--members" => out.members = value,
            "--tags" => out.tags = value,
            "--overlap" => out.overlap = value,
            "--changed" => out.changed = value,
            "--left" => out.left = value,
            other => {
                bail!("unknown flag {other} (use --members, --tags, --overlap, --changed, --left)")
            }
        }
    }
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if argv.first().map(String::as_str) == Some("serve") {
        let args = parse_args(&argv[1..])?;
        return runtime.block_on(serve(args));
    }
    let args = parse_args(&argv)?;
    runtime.block_on(measure(args))
}

/// The child: a seeded sandbox, serving until stdin closes.
async fn serve(args: Args) -> anyhow::Result<()> {
    let spec = format!("members={},tags={},seed=1", args.members, args.tags);
    let sandbox = Sandbox::start(Options {
        generate: Some(spec.parse()?),
        ..audience_sync::commands::sandbox::options()
    })
    .await?;
    let env = sandbox.env();
    let get = |k: &str| {
        env.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mc = mailchimp::Client::builder()
        .api_key(secrecy::SecretString::from(get("MAILCHIMP_API_KEY")))
        .base_url(Some(get("MAILCHIMP_BASE_URL")))
        .build()?;
    let (list_id, _) = sandbox
        .mailchimp
        .audiences()
        .into_iter()
        .next()
        .context("no audience")?;
    let mut subscribed = Vec::new();
    let mut pages = mc.members(
        &list_id,
        MemberQuery {
            statuses: vec![MemberStatus::Subscribed],
            since_last_changed: None,
            fields: Some(vec!["merge_fields".into()]),
            ..MemberQuery::default()
        },
    );
    while let Some(page) = pages.next().await {
        subscribed.extend(page?);
    }
    let crm_list = sandbox.dataverse.with_store(|store| {
        store
            .lookup_text("list", list_name_pos(store), &["Generated Audience 1"])
            .into_iter()
            .next()
    });
    let crm_list = crm_list.context("the generated list is missing")?;
    let overlap = subscribed.len() * args.overlap / 100;
    let changed = overlap * args.changed / 100;
    let left = subscribed.len() * args.left / 100;
    sandbox
        .dataverse
        .with_store(|store| -> anyhow::Result<()> {
            for (i, member) in subscribed.iter().take(overlap).enumerate() {
                let id = Uuid::new_v5(&Uuid::NAMESPACE_OID, member.id.as_bytes());
                let first = member
                    .merge_fields
                    .get("FNAME")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default();
                let first = if i < changed {
                    format!("{first}-old")
                } else {
                    first.to_owned()
                };
                let merge = |tag: &str| {
                    member
                        .merge_fields
                        .get(tag)
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_owned()
                };
                let address = |part: &str| {
                    member
                        .merge_fields
                        .get("ADDRESS")
                        .and_then(|a| a.get(part))
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_owned()
                };
                let values = [
                    (
                        "emailaddress1",
                        Val::Str(member.email_address.as_str().into()),
                    ),
                    ("firstname", Val::Str(first.into())),
                    ("lastname", Val::Str(merge("LNAME").into())),
                    ("telephone1", Val::Str(merge("PHONE").into())),
                    ("address1_line1", Val::Str(address("addr1").into())),
                    ("address1_line2", Val::Str(address("addr2").into())),
                    ("address1_city", Val::Str(address("city").into())),
                    (
                        "address1_stateorprovince",
                        Val::Str(address("state").into()),
                    ),
                    ("address1_postalcode", Val::Str(address("zip").into())),
                    ("address1_country", Val::Str(address("country").into())),
                    (
                        "mcsync_mailchimpcontactid",
                        Val::Str(member.contact_id.clone().unwrap_or_default().into()),
                    ),
                    ("mcsync_mailchimpstatus", Val::Str("subscribed".into())),
                ];
                store
                    .insert_raw("contact", id, &values)
                    .map_err(|e| anyhow::anyhow!(e.message.clone()))?;
                store
                    .add_list_member(crm_list, "contact", id)
                    .map_err(|e| anyhow::anyhow!(e.message.clone()))?;
            }
            for i in 0..left {
                let id = Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("gone-{i}").as_bytes());
                let values = [
                    (
                        "emailaddress1",
                        Val::Str(format!("gone{i}@example.org").into()),
                    ),
                    (
                        "mcsync_mailchimpcontactid",
                        Val::Str(format!("gone{i}").into()),
                    ),
                ];
                store
                    .insert_raw("contact", id, &values)
                    .map_err(|e| anyhow::anyhow!(e.message.clone()))?;
                store
                    .add_list_member(crm_list, "contact", id)
                    .map_err(|e| anyhow::anyhow!(e.message.clone()))?;
            }
            Ok(())
        })?;
    let mut stdout = std::io::stdout().lock();
    for (key, value) in &env {
        writeln!(stdout, "{key}={value}")?;
    }
    writeln!(
        stdout,
        "SUBSCRIBED={}\nOVERLAP={overlap}\nLEFT={left}\nREADY",
        subscribed.len()
    )?;
    stdout.flush()?;
    drop(stdout);
    // Serve until the parent closes our stdin.
    tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
    })
    .await?;
    sandbox.shutdown().await;
    Ok(())
}

fn list_name_pos(store: &api_sandbox::dataverse::store::Store) -> u16 {
    store
        .table("list")
        .and_then(|t| t.meta.position("listname"))
        .unwrap_or(0)
}

/// The parent: plan against the child's sandbox and report.
async fn measure(args: Args) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let mut child = Command::new(exe)
        .arg("serve")
        .args([
            "--members",
            &args.members.to_string(),
            "--tags",
            &args.tags.to_string(),
        ])
        .args([
            "--overlap",
            &args.overlap.to_string(),
            "--changed",
            &args.changed.to_string(),
            "--left",
            &args.left.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("child stdout")?).lines();
    let mut env = Vec::new();
    for line in lines.by_ref() {
        let line = line?;
        if line == "READY" {
            break;
        }
        if let Some((k, v)) = line.split_once('=') {
            env.push((k.to_owned(), v.to_owned()));
        }
    }
    let get = |k: &str| {
        env.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    println!(
        "setup (generate + seed CRM, in the child): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let config_text = format!(
        "version: 1
mailchimp: {{ api_key: '{}', base_url: '{}' }}
dataverse: {{ url: '{}', tenant_id: '{}', client_id: '{}', client_secret: '{}', token_url: '{}' }}
bindings:
  - name: bench
    audience: {{ name: Generated Audience 1 }}
    marketing_list: {{ name: Generated Audience 1, member_type: contact }}
    prune_members: true
    max_removals: 100%
",
        get("MAILCHIMP_API_KEY"),
        get("MAILCHIMP_BASE_URL"),
        get("DATAVERSE_URL"),
        get("DATAVERSE_TENANT_ID"),
        get("DATAVERSE_CLIENT_ID"),
        get("DATAVERSE_CLIENT_SECRET"),
        get("DATAVERSE_TOKEN_URL"),
    );
    let loaded = config::load_str(std::path::Path::new("bench.yaml"), &config_text)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let binding = &loaded.bindings[0];
    let clients = Clients::connect(&loaded)?;
    let base = get("DATAVERSE_URL");
    let http = reqwest::Client::new();
    let _ = http
        .post(format!("{base}/_sandbox/dataverse/requests/reset"))
        .send()
        .await?;
    let _ = http
        .delete(format!("{base}/_sandbox/mailchimp/requests"))
        .send()
        .await?;

    let rss_before = vm_hwm_kib();
    let t0 = Instant::now();
    let snapshot = observe::observe(binding, &loaded.names, &clients).await?;
    let observed = t0.elapsed();
    let t1 = Instant::now();
    let binding_plan = plan::compute(binding, &loaded.names, &snapshot);
    let diff = t1.elapsed();
    let total = t0.elapsed();
    let rss_after = vm_hwm_kib();

    let mc: serde_json::Value = http
        .get(format!("{base}/_sandbox/mailchimp/requests"))
        .send()
        .await?
        .json()
        .await?;
    let dv: serde_json::Value = http
        .get(format!("{base}/_sandbox/dataverse/requests"))
        .send()
        .await?
        .json()
        .await?;
    drop(child.stdin.take());
    let _ = child.wait();

    let subscribed: usize = get("SUBSCRIBED").parse().unwrap_or(0);
    let overlap: usize = get("OVERLAP").parse().unwrap_or(0);
    let left: usize = get("LEFT").parse().unwrap_or(0);
    println!(
        "members: {} ({} subscribed), tags: {}, CRM: {} on the list + {} who left",
        args.members, subscribed, args.tags, overlap, left
    );
    println!("changes: {:?}", binding_plan.counts);
    println!(
        "plan wall time (observe + diff): {:.2} s",
        total.as_secs_f64()
    );
    println!(
        "  observe: {:.2} s, diff alone: {:.3} s",
        observed.as_secs_f64(),
        diff.as_secs_f64()
    );
    println!(
        "peak RSS (VmHWM) of this process: {} MiB (before planning: {} MiB)",
        rss_after / 1024,
        rss_before / 1024
    );
    println!(
        "Mailchimp requests by route: {}",
        mc.get("routes").unwrap_or(&mc)
    );
    println!(
        "Dataverse requests by route: {}",
        dv.get("routes").unwrap_or(&dv)
    );
    // The lower bound: every read at its maximum page size. Mailchimp's `status` filter takes one
    // status, so each status read is its own run of pages.
    let read = snapshot.mailchimp.members.len();
    let mut per_status = std::collections::BTreeMap::new();
    for member in &snapshot.mailchimp.members {
        *per_status.entry(member.status.as_str()).or_insert(0_usize) += 1;
    }
    let member_pages: usize = observe::statuses_to_read(binding)
        .iter()
        .map(|s| {
            per_status
                .get(s.as_str())
                .copied()
                .unwrap_or(0)
                .div_ceil(1000)
                .max(1)
        })
        .sum();
    let mc_bound = 1 + args.tags.div_ceil(1000).max(1) + member_pages;
    let list_size = overlap + left;
    let candidates = usize::from(snapshot.crm.records.len() < read);
    let dv_bound = 1
        + 1
        + usize::from(snapshot.crm.audience.is_some())
        + 2 * list_size.div_ceil(5000).max(1)
        + candidates
        + snapshot.crm.tags.len();
    println!(
        "lower bound: Mailchimp {mc_bound} (audience, tags, {read} members of {} statuses at 1000 a page), Dataverse {dv_bound} (audience record, list, tag records, list members and their records at 5000 a page, one batch of look-ups, one page per tag's links)",
        per_status.len()
    );
    println!(
        "Mailchimp requests sent: {}, Dataverse counted requests: {}",
        mc_total(&mc),
        dv.get("counted_requests").cloned().unwrap_or_default()
    );
    Ok(())
}

fn mc_total(counters: &serde_json::Value) -> u64 {
    counters
        .get("routes")
        .and_then(serde_json::Value::as_object)
        .map_or(0, |routes| {
            routes.values().filter_map(serde_json::Value::as_u64).sum()
        })
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}
