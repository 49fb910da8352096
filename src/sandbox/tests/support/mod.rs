//! What the Dataverse emulator's HTTP tests share: a sandbox started from a seed with the
//! fixture schema, the token endpoint, and a small authenticated client.
#![allow(dead_code)] // each test file uses part of it

use api_sandbox::{Options, Sandbox, Seed};
use reqwest::StatusCode;
use serde_json::Value;

/// Options with a schema shaped like audience-sync's (the fixture), for `bootstrapped` seeds.
pub fn bootstrapped() -> Options {
    Options {
        tool_schema: Some(
            serde_json::from_str(include_str!("../fixtures/tool_schema.json")).expect("fixture"),
        ),
        ..Options::default()
    }
}

pub async fn start(seed: Value) -> Sandbox {
    Sandbox::start(Options {
        seed: Seed {
            dataverse: serde_json::from_value(seed).expect("seed"),
            ..Seed::default()
        },
        ..bootstrapped()
    })
    .await
    .expect("sandbox starts")
}

pub fn env(sb: &Sandbox, key: &str) -> String {
    sb.env()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .expect("env key")
}

pub async fn token_response(sb: &Sandbox, secret: &str, scope: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(env(sb, "DATAVERSE_TOKEN_URL"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &env(sb, "DATAVERSE_CLIENT_ID")),
            ("client_secret", secret),
            ("scope", scope),
        ])
        .send()
        .await
        .expect("token request")
}

pub async fn token(sb: &Sandbox) -> String {
    let scope = format!("{}/.default", env(sb, "DATAVERSE_URL"));
    let resp = token_response(sb, &env(sb, "DATAVERSE_CLIENT_SECRET"), &scope).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("token json");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

pub struct Api {
    pub http: reqwest::Client,
    pub root: String,
    pub token: String,
}

impl Api {
    pub async fn new(sb: &Sandbox) -> Self {
        Self {
            http: reqwest::Client::new(),
            root: format!("{}/api/data/v9.2/", sb.base_url()),
            token: token(sb).await,
        }
    }

    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.root)
        };
        self.http
            .request(method, url)
            .bearer_auth(&self.token)
            .header("OData-Version", "4.0")
            .header("OData-MaxVersion", "4.0")
            .header("Accept", "application/json")
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let resp = self
            .req(reqwest::Method::GET, path)
            .send()
            .await
            .expect("send");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let resp = self
            .req(method, path)
            .json(body)
            .send()
            .await
            .expect("send");
        let status = resp.status();
        let headers = resp.headers().clone();
        (status, headers, resp.json().await.unwrap_or(Value::Null))
    }
}
