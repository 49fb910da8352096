//! `audience-sync status [CONFIG]`: the sync status of every binding as the CRM records it
//! (Audience record and latest Sync Run), as a table or `--format json`. Read-only.

use std::fmt::Write as _;

use super::Preamble;
use crate::apply::{self, status::BindingStatus};
use crate::cli::{OutputFormat, StatusArgs};
use crate::exit::ExitStatus;
use crate::output::Context;

pub(super) async fn run(args: StatusArgs, _ctx: &Context) -> anyhow::Result<ExitStatus> {
    let Some(pre) = Preamble::load(&args.config, &[])? else {
        return Ok(ExitStatus::Failure);
    };
    let session = pre.session(&crate::sync::Silent);
    let mut rows = Vec::new();
    let mut failed = false;
    for binding in pre.bindings() {
        let audience = match session.audience_id(binding).await {
            Ok(id) => id,
            Err(err) => {
                eprintln!(
                    "error: binding `{}`: {}",
                    binding.name,
                    crate::output::error_chain(&err)
                );
                failed = true;
                continue;
            }
        };
        match apply::status::read(&pre.clients.tables, &binding.name, &audience).await {
            Ok(status) => rows.push(status),
            Err(err) => {
                eprintln!(
                    "error: binding `{}`: {}",
                    binding.name,
                    crate::output::error_chain(&err)
                );
                failed = true;
            }
        }
    }
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        OutputFormat::Text => print!("{}", table(&rows)),
    }
    Ok(if failed {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or_else(
        || "-".to_owned(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// One row per binding, then the lease and the last message underneath.
fn table(rows: &[BindingStatus]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:<20} {:<21} {:<21} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "BINDING",
        "STATUS",
        "LAST START",
        "LAST END",
        "MEMBERS",
        "CREATED",
        "UPDATED",
        "REMOVED",
        "FAILED"
    );
    for r in rows {
        let run = r.last_run.as_ref();
        let n = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        let _ = writeln!(
            out,
            "{:<24} {:<20} {:<21} {:<21} {:>8} {:>8} {:>8} {:>8} {:>7}",
            r.binding,
            r.status,
            time(r.last_sync_start),
            time(r.last_sync_end),
            n(r.member_count),
            n(run.and_then(|r| r.created)),
            n(run.and_then(|r| r.updated)),
            n(run.and_then(|r| r.removed)),
            n(run.and_then(|r| r.failed)),
        );
        if let Some(lease) = &r.lease {
            let _ = writeln!(
                out,
                "  lease `{}` held by `{}` ({}) until {}{}",
                lease.id,
                lease.owner,
                lease.operation,
                lease
                    .expires
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                if lease.lapsed { " (lapsed)" } else { "" }
            );
        }
        if let Some(message) = r.last_message.as_deref().and_then(|m| m.lines().next()) {
            let _ = writeln!(out, "  {message}");
        }
    }
    out
}
