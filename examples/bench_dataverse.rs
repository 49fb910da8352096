//! Write-request benchmark against the sandbox's Dataverse emulator: what N tag links (or N
//! record creates) cost in counted requests (service protection), operations (entitlement) and
//! wall time, written one `$ref` at a time, as `$ref` in `$batch` requests of 1000, and as
//! `CreateMultiple` of 1000. Prints a table and the extrapolation to 3,000,000 links.
//!
//! Run: `cargo run --release --example bench_dataverse -- [N]` (default N = 5000).

use std::time::{Duration, Instant};

use api_sandbox::Sandbox;
use audience_sync::dataverse::Client;
use audience_sync::dataverse::records::BulkAction;
use audience_sync::dataverse::schema::Schema;
use audience_sync::dataverse::tables::ToolTables;
use audience_sync::dataverse::tag_links::TagLink;
use audience_sync::domain::MemberType;
use audience_sync::http::RetryPolicy;
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use uuid::Uuid;

const LINKS_AT_SCALE: f64 = 3_000_000.0;

fn env(sandbox: &Sandbox, key: &str) -> anyhow::Result<String> {
    sandbox
        .env()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .ok_or_else(|| anyhow::anyhow!("sandbox env has no {key}"))
}

async fn counters(sandbox: &Sandbox) -> anyhow::Result<(u64, u64)> {
    let c: Value = reqwest::get(format!(
        "{}/_sandbox/dataverse/requests",
        sandbox.base_url()
    ))
    .await?
    .json()
    .await?;
    Ok((
        c["counted_requests"].as_u64().unwrap_or(0),
        c["operations"].as_u64().unwrap_or(0),
    ))
}

async fn reset(sandbox: &Sandbox) -> anyhow::Result<()> {
    reqwest::Client::new()
        .post(format!(
            "{}/_sandbox/dataverse/requests/reset",
            sandbox.base_url()
        ))
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

fn contact(id: Uuid, i: usize) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("contactid".into(), json!(id));
    map.insert("lastname".into(), json!(format!("Bench{i}")));
    map.insert(
        "emailaddress1".into(),
        json!(format!("bench{i}@example.com")),
    );
    map
}

struct Row {
    how: &'static str,
    counted: u64,
    operations: u64,
    elapsed: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(5000);
    let sandbox = Sandbox::start(audience_sync::commands::sandbox::options()).await?;
    // Lift the request limit so the benchmark measures cost, not throttling.
    reqwest::Client::new()
        .put(format!("{}/_sandbox/dataverse/limits", sandbox.base_url()))
        .json(&json!({ "requests_per_window": 100_000_000u64, "max_concurrent": 1000 }))
        .send()
        .await?
        .error_for_status()?;
    let client = Client::builder()
        .url(env(&sandbox, "DATAVERSE_URL")?)
        .tenant_id(env(&sandbox, "DATAVERSE_TENANT_ID")?)
        .client_id(env(&sandbox, "DATAVERSE_CLIENT_ID")?)
        .client_secret(SecretString::from(env(
            &sandbox,
            "DATAVERSE_CLIENT_SECRET",
        )?))
        .token_url(Some(env(&sandbox, "DATAVERSE_TOKEN_URL")?))
        .retry_policy(RetryPolicy::default())
        .build()?;
    let tables = ToolTables::new(client.clone(), Schema::default());
    let audience = Uuid::new_v4();
    tables.create_audience(audience, "Bench", "bench").await?;
    let (tag_single, tag_batch) = (Uuid::new_v4(), Uuid::new_v4());
    tables
        .create_tag(tag_single, "single", "1", audience)
        .await?;
    tables.create_tag(tag_batch, "batch", "2", audience).await?;

    let mut rows = Vec::new();

    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
    reset(&sandbox).await?;
    let started = Instant::now();
    let targets = ids
        .iter()
        .enumerate()
        .map(|(i, id)| contact(*id, i))
        .collect();
    client
        .bulk(BulkAction::Create, "contacts", "contact", targets)
        .await?;
    let (counted, operations) = counters(&sandbox).await?;
    rows.push(Row {
        how: "CreateMultiple, 1000 per request",
        counted,
        operations,
        elapsed: started.elapsed(),
    });

    let links: Vec<TagLink> = ids
        .iter()
        .map(|p| TagLink {
            tag: tag_batch,
            person: *p,
        })
        .collect();
    reset(&sandbox).await?;
    let started = Instant::now();
    let failures = tables.link_tags(MemberType::Contact, &links).await?;
    anyhow::ensure!(
        failures.iter().all(Option::is_none),
        "a batched link failed"
    );
    let (counted, operations) = counters(&sandbox).await?;
    rows.push(Row {
        how: "N:N $ref in $batch, 1000 per batch",
        counted,
        operations,
        elapsed: started.elapsed(),
    });

    let sample = n.min(2000);
    reset(&sandbox).await?;
    let started = Instant::now();
    let tag_set = Schema::default().tag().entity_set.clone();
    let http = reqwest::Client::new();
    let token_url = env(&sandbox, "DATAVERSE_TOKEN_URL")?;
    let token: Value = http
        .post(&token_url)
        .form(&[
            ("client_id", env(&sandbox, "DATAVERSE_CLIENT_ID")?),
            ("client_secret", env(&sandbox, "DATAVERSE_CLIENT_SECRET")?),
            (
                "scope",
                format!("{}/.default", env(&sandbox, "DATAVERSE_URL")?),
            ),
            ("grant_type", "client_credentials".to_owned()),
        ])
        .send()
        .await?
        .json()
        .await?;
    let bearer = token["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for person in &ids[..sample] {
        http.post(client.url(&format!("{tag_set}({tag_single})/mcsync_tag_contact/$ref")))
            .bearer_auth(&bearer)
            .header("OData-Version", "4.0")
            .json(&json!({ "@odata.id": client.url(&format!("contacts({person})")) }))
            .send()
            .await?
            .error_for_status()?;
    }
    let (counted, operations) = counters(&sandbox).await?;
    let scale = n as f64 / sample as f64;
    rows.push(Row {
        how: "N:N $ref one request each (sampled, scaled)",
        counted: (counted as f64 * scale).round() as u64,
        operations: (operations as f64 * scale).round() as u64,
        elapsed: started.elapsed().mul_f64(scale),
    });

    println!("{n} writes against the sandbox (release build recommended)\n");
    println!(
        "{:<46} {:>10} {:>11} {:>10} {:>18}",
        "how", "counted", "operations", "wall s", "counted for 3M"
    );
    for row in &rows {
        let at_scale = row.counted as f64 * LINKS_AT_SCALE / n as f64;
        println!(
            "{:<46} {:>10} {:>11} {:>10.2} {:>18.0}",
            row.how,
            row.counted,
            row.operations,
            row.elapsed.as_secs_f64(),
            at_scale
        );
    }
    println!(
        "\nAt 6,000 counted requests per 300 s per web server, 3,000,000 single $ref requests need 500 windows (≈41.7 h); 3,000 batched ones fit in one window."
    );
    sandbox.shutdown().await;
    Ok(())
}
