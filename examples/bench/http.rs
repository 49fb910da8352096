//! The benchmark's own HTTP calls to the sandbox: its request counters (`/_sandbox/…`) and the
//! five new Mailchimp members of the steady-state step, the Dataverse emulator's limits
//! (switched off around the steady state's set-up apply), and the reads of the emulator probe
//! (Mailchimp with the API key, Dataverse with a client-credentials token).

use std::collections::BTreeMap;

use anyhow::Context as _;
use serde_json::{Value, json};

/// Requests the emulators answered since the last reset.
#[derive(Debug, Default, Clone)]
pub struct Requests {
    /// Mailchimp API requests.
    pub mailchimp: u64,
    /// Mailchimp API requests per route.
    pub mailchimp_routes: BTreeMap<String, u64>,
    /// Dataverse requests counted by service protection (a `$batch` is one).
    pub dataverse: u64,
    /// Dataverse counted requests per route.
    pub dataverse_routes: BTreeMap<String, u64>,
    /// Dataverse operations inside `$batch` requests, per route.
    pub batch_parts: BTreeMap<String, u64>,
}

impl Requests {
    pub fn total(&self) -> u64 {
        self.mailchimp + self.dataverse
    }
}

pub struct SandboxApi {
    http: reqwest::Client,
    root: String,
    env: BTreeMap<String, String>,
}

impl SandboxApi {
    pub fn new(root: String, env: BTreeMap<String, String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            root,
            env,
        }
    }

    async fn get_json(&self, url: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    pub async fn reset(&self) -> anyhow::Result<()> {
        self.http
            .delete(format!("{}/_sandbox/mailchimp/requests", self.root))
            .send()
            .await?
            .error_for_status()?;
        self.http
            .post(format!("{}/_sandbox/dataverse/requests/reset", self.root))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// The Dataverse emulator's service-protection settings (`GET /_sandbox/dataverse/limits`).
    pub async fn limits(&self) -> anyhow::Result<Value> {
        self.get_json(&format!("{}/_sandbox/dataverse/limits", self.root))
            .await
    }

    /// Replace them (`PUT /_sandbox/dataverse/limits`).
    pub async fn set_limits(&self, limits: &Value) -> anyhow::Result<()> {
        self.http
            .put(format!("{}/_sandbox/dataverse/limits", self.root))
            .json(limits)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    pub async fn requests(&self) -> anyhow::Result<Requests> {
        let mc = self
            .get_json(&format!("{}/_sandbox/mailchimp/requests", self.root))
            .await?;
        let dv = self
            .get_json(&format!("{}/_sandbox/dataverse/requests", self.root))
            .await?;
        let map = |v: &Value| -> BTreeMap<String, u64> {
            v.as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(Requests {
            mailchimp: mc["total"].as_u64().unwrap_or(0),
            mailchimp_routes: map(&mc["routes"]),
            dataverse: dv["counted_requests"].as_u64().unwrap_or(0),
            dataverse_routes: map(&dv["routes"]),
            batch_parts: map(&dv["batch_parts"]),
        })
    }

    /// Subscribe `count` new members to the first audience.
    pub async fn add_members(&self, count: usize) -> anyhow::Result<()> {
        let base = self.env.get("MAILCHIMP_BASE_URL").context("no base url")?;
        let key = self.env.get("MAILCHIMP_API_KEY").context("no api key")?;
        let lists = self.mailchimp_get("/lists?count=10").await?;
        let list = lists["lists"][0]["id"]
            .as_str()
            .context("no audience")?
            .to_owned();
        for n in 0..count {
            self.http
                .post(format!("{base}/lists/{list}/members"))
                .basic_auth("bench", Some(key))
                .json(&json!({
                    "email_address": format!("bench-new-{n}@example.com"),
                    "status": "subscribed",
                    "merge_fields": { "FNAME": "New", "LNAME": format!("Member {n}") },
                }))
                .send()
                .await?
                .error_for_status()?;
        }
        Ok(())
    }
}

/// A Dataverse access token (client credentials) and the Web API's root.
pub struct Dataverse {
    token: String,
    base: String,
}

impl SandboxApi {
    /// `GET` a Mailchimp API path (with its query) as the client does.
    pub async fn mailchimp_get(&self, path: &str) -> anyhow::Result<Value> {
        let base = self.env.get("MAILCHIMP_BASE_URL").context("no base url")?;
        let key = self.env.get("MAILCHIMP_API_KEY").context("no api key")?;
        Ok(self
            .http
            .get(format!("{base}{path}"))
            .basic_auth("bench", Some(key))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// A token for the Dataverse Web API.
    pub async fn dataverse(&self) -> anyhow::Result<Dataverse> {
        let var = |k: &str| self.env.get(k).with_context(|| format!("no {k}"));
        let url = var("DATAVERSE_URL")?;
        let scope = format!("{url}/.default");
        let answer: Value = self
            .http
            .post(var("DATAVERSE_TOKEN_URL")?)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", var("DATAVERSE_CLIENT_ID")?.as_str()),
                ("client_secret", var("DATAVERSE_CLIENT_SECRET")?.as_str()),
                ("scope", scope.as_str()),
            ])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(Dataverse {
            token: answer["access_token"]
                .as_str()
                .context("no access_token")?
                .to_owned(),
            base: format!("{url}/api/data/v9.2/"),
        })
    }

    /// `GET` a Dataverse URL (absolute, e.g. a next link, or relative to the Web API's root).
    pub async fn dataverse_get(&self, dv: &Dataverse, url: &str) -> anyhow::Result<Value> {
        let url = if url.starts_with("http") {
            url.to_owned()
        } else {
            format!("{}{url}", dv.base)
        };
        Ok(self
            .http
            .get(url)
            .bearer_auth(&dv.token)
            .header("Prefer", "odata.maxpagesize=5000")
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }
}
