//! Benchmark of the pure diff: generates a snapshot of `--members N` (default 1,000,000) Mailchimp
//! members and their CRM records (overlap, changed fields, tags, unsubscribes, removals), runs
//! `plan::compute` once, and reports the time of each step and the peak memory of the process
//! (`VmHWM` from `/proc/self/status`).
//!
//! ```text
//! cargo run --release --example bench_diff -- --members 1000000
//! cargo run --release --example bench_diff -- --members 1000000 --overlap 0   # first sync
//! ```
//!
//! `--overlap PCT` (default 95): the share of members that already have a CRM record (all but
//! 5 points of them linked by stored id, the rest by e-mail only).

use std::time::Instant;

use anyhow::{Context as _, bail};
use audience_sync::config::{Config, MemberStatus, Names, resolve, yaml};
use audience_sync::plan::snapshot::{
    Audience, AudienceRecord, CrmRecord, CrmSide, MailchimpSide, MarketingList, Member, Snapshot,
    Tag, TagRecord, crm_columns, member_field_paths,
};
use audience_sync::plan::{self, Plan, PlanMeta, render};
use md5::{Digest as _, Md5};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use uuid::Uuid;

const CONFIG: &str = r#"
version: 1
mailchimp: {api_key: "${MAILCHIMP_API_KEY}"}
dataverse: {url: "https://contoso.crm.dynamics.com", tenant_id: t, client_id: c, client_secret: "${S}"}
bindings:
  - name: bench
    audience: {id: a1b2c3d4e5}
    marketing_list: {name: Bench, member_type: contact}
    prune_members: true
    max_removals: "5%"
"#;

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
}

#[path = "support/proc_stat.rs"]
mod proc_stat;

/// CPU time of this process (user + system), from `/proc/self/stat`, in seconds (0 where it
/// cannot be read).
fn cpu_seconds() -> f64 {
    proc_stat::cpu_seconds("/proc/self/stat").unwrap_or(0.0)
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "n/a".to_owned(),
        |k| format!("{:.0} MiB", k as f64 / 1024.0),
    )
}

#[allow(clippy::too_many_lines)] // one generator, read top to bottom
fn generate(
    members: usize,
    overlap: u32,
    binding: &audience_sync::config::Binding,
    names: &Names,
) -> Snapshot {
    let mut rng = StdRng::seed_from_u64(42);
    let paths = member_field_paths(binding);
    let columns = crm_columns(binding, names);
    let path = |p: &str| paths.iter().position(|x| x == p);
    let column = |c: &str| columns.iter().position(|x| x == c);
    let id_col = column(&names.contact_mailchimp_id_column).unwrap_or(0);
    let tag_ids: Vec<u64> = (1..=10).collect();
    let tag_records: Vec<Uuid> = tag_ids
        .iter()
        .map(|t| plan::ids::tag_record("a1b2c3d4e5", *t))
        .collect();
    let mut mc = Vec::with_capacity(members);
    let mut records = Vec::with_capacity(members);
    // (member path, CRM column, value)
    let fields = [
        ("merge_fields.FNAME", "firstname"),
        ("merge_fields.LNAME", "lastname"),
        ("merge_fields.PHONE", "telephone1"),
        ("merge_fields.ADDRESS.city", "address1_city"),
        ("merge_fields.ADDRESS.zip", "address1_postalcode"),
        ("merge_fields.ADDRESS.country", "address1_country"),
    ];
    for i in 0..members {
        let email = format!("member{i}@example.com");
        let contact_id = format!("{:032x}", (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let status = match rng.random_range(0..100) {
            0 => MemberStatus::Unsubscribed,
            1 => MemberStatus::Cleaned,
            _ => MemberStatus::Subscribed,
        };
        let mut values: Vec<Option<String>> = vec![None; paths.len()];
        let set = |values: &mut Vec<Option<String>>, p: &str, v: String| {
            if let Some(i) = path(p) {
                values[i] = Some(v);
            }
        };
        set(&mut values, "email_address", email.clone());
        set(&mut values, "status", status.as_str().to_owned());
        set(
            &mut values,
            "merge_fields.FNAME",
            format!("First{}", i % 5000),
        );
        set(
            &mut values,
            "merge_fields.LNAME",
            format!("Last{}", i % 7919),
        );
        set(&mut values, "merge_fields.PHONE", format!("+33 1 {i:08}"));
        set(
            &mut values,
            "merge_fields.ADDRESS.city",
            format!("City{}", i % 300),
        );
        set(
            &mut values,
            "merge_fields.ADDRESS.zip",
            format!("{:05}", i % 99_999),
        );
        // the CRM side: `overlap`% have a record (5 points of them linked by e-mail only)
        let n_tags = rng.random_range(0..4);
        let tags: Vec<u64> = (0..n_tags)
            .map(|_| tag_ids[rng.random_range(0..tag_ids.len())])
            .collect();
        // the CRM side: 95% have a record (90% linked by id, 5% by e-mail only)
        let roll = rng.random_range(0..100);
        if roll < overlap {
            let mut cols: Vec<Option<String>> = vec![None; columns.len()];
            for (p, c) in fields {
                if let (Some(pi), Some(ci)) = (path(p), column(c)) {
                    cols[ci].clone_from(&values[pi]);
                }
            }
            if let Some(ci) = column("emailaddress1") {
                cols[ci] = Some(email.clone());
            }
            if let Some(ci) = column(&names.subscriber_status_column) {
                cols[ci] = Some("subscribed".to_owned());
            }
            if roll + 5 < overlap {
                cols[id_col] = Some(contact_id.clone());
            }
            if rng.random_range(0..100) < 3 {
                if let Some(ci) = column("firstname") {
                    cols[ci] = Some(format!("Changed{i}"));
                }
            }
            let mut sorted = tags.clone();
            sorted.sort_unstable();
            sorted.dedup();
            let links: Vec<Uuid> = sorted
                .iter()
                .filter(|_| rng.random_range(0..100) < 97)
                .map(|t| tag_records[(*t - 1) as usize])
                .collect();
            let on_list = rng.random_range(0..100) < 97;
            records.push(CrmRecord::new(
                Uuid::from_u128(0x1000_0000_0000_0000_0000_0000 | i as u128),
                &format!("W/\"{}\"", 1_000_000 + i),
                cols.iter().map(Option::as_deref),
                false,
                links,
                on_list,
            ));
        }
        let hash = hex::encode(Md5::digest(email.as_bytes()));
        mc.push(Member::new(
            &hash,
            &contact_id,
            &email,
            status,
            "2026-03-01T10:00:00+00:00",
            values.iter().map(Option::as_deref),
            tags,
        ));
    }
    // 1% managed list members whose Mailchimp member was deleted
    for i in 0..members / 100 {
        let mut cols: Vec<Option<String>> = vec![None; columns.len()];
        cols[id_col] = Some(format!("gone{i}"));
        if let Some(ci) = column("emailaddress1") {
            cols[ci] = Some(format!("gone{i}@example.com"));
        }
        records.push(CrmRecord::new(
            Uuid::from_u128(0x2000_0000_0000_0000_0000_0000 | i as u128),
            "W/\"1\"",
            cols.iter().map(Option::as_deref),
            false,
            Vec::new(),
            true,
        ));
    }
    Snapshot {
        mailchimp: MailchimpSide {
            audience: Audience {
                id: "a1b2c3d4e5".into(),
                name: "Bench".into(),
            },
            tags: tag_ids
                .iter()
                .map(|t| Tag {
                    id: *t,
                    name: format!("Tag {t}"),
                    member_count: 0,
                })
                .collect(),
            field_paths: paths.clone(),
            members: mc,
            read_at: None,
        },
        crm: CrmSide {
            audience: Some(AudienceRecord {
                id: plan::ids::audience_record("a1b2c3d4e5"),
                etag: "W/\"1\"".into(),
                name: "Bench".into(),
                sync_status: None,
            }),
            list: Some(MarketingList {
                id: Uuid::from_u128(7),
                name: "Bench".into(),
                dynamic: false,
                member_type_code: 2,
                statecode: 0,
                locked: false,
                etag: "W/\"1\"".into(),
                audience_record: Some(plan::ids::audience_record("a1b2c3d4e5")),
            }),
            tags: tag_ids
                .iter()
                .zip(&tag_records)
                .map(|(t, id)| TagRecord {
                    id: *id,
                    mailchimp_id: *t,
                    name: if *t == 3 {
                        "Old name".into()
                    } else {
                        format!("Tag {t}")
                    },
                    etag: "W/\"1\"".into(),
                })
                .collect(),
            columns,
            column_types: std::collections::BTreeMap::new(),
            records,
        },
    }
}

fn main() -> anyhow::Result<()> {
    let mut members = 1_000_000_usize;
    let mut overlap = 95_u32;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--members" => {
                let value = args.next().context("`--members` needs a number")?;
                members = value
                    .replace(['_', ','], "")
                    .parse()
                    .with_context(|| format!("`{value}` is not a number"))?;
            }
            "--overlap" => {
                let value = args.next().context("`--overlap` needs a percent")?;
                overlap = value
                    .trim_end_matches('%')
                    .parse()
                    .with_context(|| format!("`{value}` is not a percent"))?;
            }
            other => bail!("unknown argument `{other}` (expected `--members N`, `--overlap PCT`)"),
        }
    }
    let config: Config = serde_json::from_value(yaml::parse_value(CONFIG)?)?;
    let bindings = resolve(&config);
    let names = Names::default();
    let binding = &bindings[0];

    let started = Instant::now();
    let snapshot = generate(members, overlap.min(100), binding, &names);
    let generated = started.elapsed();
    let rss_snapshot = status_kib("VmRSS:");

    let started = Instant::now();
    let cpu = cpu_seconds();
    let binding_plan = plan::compute(binding, &names, &snapshot);
    let diff = started.elapsed();
    let diff_cpu = cpu_seconds() - cpu;
    let rss_plan = status_kib("VmRSS:");

    let plan = Plan::new(
        PlanMeta {
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            config_digest: "sha256:bench".to_owned(),
            created_at: "2026-03-01T12:00:00Z".to_owned(),
        },
        vec![binding_plan],
    );
    let started = Instant::now();
    let markdown = render::markdown(&plan, &render::MarkdownOptions::default());
    let markdown_time = started.elapsed();
    let started = Instant::now();
    let text = render::text(&plan, &render::TextOptions::default());
    let text_time = started.elapsed();

    let b = &plan.bindings[0];
    println!("members:            {members}");
    println!("CRM records:        {}", snapshot.crm.records.len());
    println!(
        "generate snapshot:  {:.2} s (RSS after: {})",
        generated.as_secs_f64(),
        mib(rss_snapshot)
    );
    println!(
        "diff (compute):     {:.2} s wall, {diff_cpu:.2} s CPU (RSS after: {})",
        diff.as_secs_f64(),
        mib(rss_plan)
    );
    println!(
        "render markdown:    {:.2} s ({} characters)",
        markdown_time.as_secs_f64(),
        markdown.len()
    );
    println!(
        "render text:        {:.2} s ({} characters)",
        text_time.as_secs_f64(),
        text.len()
    );
    println!("changes:            {}", b.changes.len());
    for (action, n) in &b.counts {
        println!("  {:<20}{n}", action.code());
    }
    println!(
        "errors / warnings:  {} / {}",
        b.errors.len(),
        b.warnings.len()
    );
    println!(
        "guard:              {}",
        b.guard.as_ref().map_or("none", |g| g.message.as_str())
    );
    println!("peak RSS (VmHWM):   {}", mib(status_kib("VmHWM:")));
    Ok(())
}
