//! How the Dataverse emulator copes with a large environment: load N contacts (default
//! 1,000,000) with a Mailchimp id and an e-mail, put every tenth in a static list, then time over
//! real HTTP: reading every contact in 5000-row pages, one full-scan filter by e-mail, the list's
//! members through `listmembers?$filter=_listid_value eq ..`, and a `CreateMultiple` of 1000.
//! Prints the resident memory after loading.
//!
//! Usage: `cargo run --release --example bench_dataverse_emulator [N]`.

use std::time::Instant;

use api_sandbox::Sandbox;
use api_sandbox::dataverse::store::Row;
use api_sandbox::dataverse::value::Val;
use serde_json::{Value, json};
use uuid::Uuid;

fn rss_mib() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or_else(|| "?".to_owned(), |kb| format!("{} MiB", kb / 1024))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(Ok(1_000_000), |a| a.parse())?;
    let sandbox = Sandbox::start(audience_sync::commands::sandbox::options()).await?;
    let list = Uuid::new_v4();
    let started = Instant::now();
    sandbox
        .dataverse
        .with_store(|store| -> anyhow::Result<()> {
            store
                .insert_raw(
                    "list",
                    list,
                    &[
                        ("listname", Val::Str("Bench".into())),
                        ("createdfromcode", Val::Int(2)),
                    ],
                )
                .map_err(|e| anyhow::anyhow!(e.message))?;
            let meta = &store
                .table("contact")
                .ok_or_else(|| anyhow::anyhow!("no contact table"))?
                .meta;
            let (first, last, email, mc) = (
                meta.position("firstname").unwrap_or(0),
                meta.position("lastname").unwrap_or(0),
                meta.position("emailaddress1").unwrap_or(0),
                meta.position("mcsync_mailchimpcontactid").unwrap_or(0),
            );
            for i in 0..n {
                let mut row = Row::default();
                row.set(first, Val::Str(format!("First{i}").into()));
                row.set(last, Val::Str("Bench".into()));
                row.set(email, Val::Str(format!("person{i}@example.com").into()));
                row.set(mc, Val::Str(format!("{:032x}", i).into()));
                let id = store
                    .create("contact", None, row)
                    .map_err(|e| anyhow::anyhow!(e.message))?;
                if i % 10 == 0 {
                    store
                        .add_list_member(list, "contact", id)
                        .map_err(|e| anyhow::anyhow!(e.message))?;
                }
            }
            Ok(())
        })?;
    println!(
        "loaded {n} contacts ({} list members) in {:.1?}; RSS {}",
        n / 10 + usize::from(n % 10 != 0),
        started.elapsed(),
        rss_mib()
    );

    let (tenant, client_id, secret) = sandbox.dataverse.credentials();
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{}/{tenant}/oauth2/v2.0/token", sandbox.base_url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("scope", &format!("{}/.default", sandbox.base_url())),
        ])
        .send()
        .await?
        .json()
        .await?;
    let bearer = format!(
        "Bearer {}",
        token["access_token"].as_str().unwrap_or_default()
    );
    let root = format!("{}/api/data/v9.2/", sandbox.base_url());
    let get = |url: String| {
        http.get(url)
            .header("Authorization", &bearer)
            .header("Prefer", "odata.maxpagesize=5000")
            .send()
    };

    let started = Instant::now();
    let mut url = format!("{root}contacts?$select=emailaddress1,mcsync_mailchimpcontactid");
    let (mut pages, mut rows) = (0, 0);
    loop {
        let body: Value = get(url.clone()).await?.json().await?;
        pages += 1;
        rows += body["value"].as_array().map_or(0, Vec::len);
        match body["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    let all = started.elapsed();
    println!(
        "read {rows} contacts in {pages} pages: {all:.1?} ({:.1?} per 5000-row page)",
        all / pages
    );

    let started = Instant::now();
    let body: Value = get(format!(
        "{root}contacts?$select=contactid&$filter=emailaddress1 eq 'person{}@example.com'",
        n / 2
    ))
    .await?
    .json()
    .await?;
    println!(
        "filter by e-mail, first time (builds the index): {} row(s) in {:.1?}",
        body["value"].as_array().map_or(0, Vec::len),
        started.elapsed()
    );
    let emails: Vec<String> = (0..500)
        .map(|i| format!("'person{}@example.com'", i * 997 % n.max(1)))
        .collect();
    let started = Instant::now();
    let body: Value = get(format!(
        "{root}contacts?$select=contactid&$filter=Microsoft.Dynamics.CRM.In(PropertyName='emailaddress1',PropertyValues=[{}])",
        emails.join(",")
    ))
    .await?
    .json()
    .await?;
    println!(
        "In() over 500 e-mails: {} row(s) in {:.1?}",
        body["value"].as_array().map_or(0, Vec::len),
        started.elapsed()
    );

    let started = Instant::now();
    let mut url =
        format!("{root}listmembers?$select=_entityid_value&$filter=_listid_value eq {list}");
    let mut members = 0;
    loop {
        let body: Value = get(url.clone()).await?.json().await?;
        members += body["value"].as_array().map_or(0, Vec::len);
        match body["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    println!("read {members} list members: {:.1?}", started.elapsed());

    let targets: Vec<Value> = (0..1000)
        .map(|i| json!({"@odata.type": "Microsoft.Dynamics.CRM.contact", "firstname": format!("Bulk{i}"), "emailaddress1": format!("bulk{i}@example.com")}))
        .collect();
    let started = Instant::now();
    let status = http
        .post(format!(
            "{root}contacts/Microsoft.Dynamics.CRM.CreateMultiple"
        ))
        .header("Authorization", &bearer)
        .json(&json!({"Targets": targets}))
        .send()
        .await?
        .status();
    println!(
        "CreateMultiple of 1000: {status} in {:.1?}",
        started.elapsed()
    );
    println!("RSS at the end {}", rss_mib());
    sandbox.shutdown().await;
    Ok(())
}
