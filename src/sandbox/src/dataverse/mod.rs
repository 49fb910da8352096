//! The Dataverse half of the sandbox: a faithful emulator of the Dataverse Web API
//! (`/api/data/v9.2/...`) and of the Microsoft Entra ID client-credentials token endpoint
//! (`POST /{tenant}/oauth2/v2.0/token`, `GET /{tenant}/v2.0/.well-known/openid-configuration`).
//!
//! Layout (the same words as the Mailchimp half): [`routes`] (the data operations: routing,
//! keys, writes, reads, `$ref`, actions), [`store`] (rows, journal for atomic writes, links, list
//! membership, persistence), [`query`] (query options, paging, rendering rows), [`errors`]
//! (OData errors), [`seed`] (seed and generator); and for this API: [`meta`] (tables, columns,
//! relationships), [`tool_schema`] (the custom schema `bootstrapped` installs), [`value`] (typed
//! values), [`filter`] (the `$filter` parser), [`metadata`] (metadata API and CSDL), [`batch`]
//! (`$batch`), [`columns`] (the documented contact and lead columns, write checks, seeded
//! custom columns, plug-in refusals), [`auth`] (tokens), [`limits`] (service protection and counters, with the sources
//! of how the real service counts; faults come from [`crate::faults`]).
//!
//! Sandbox-only endpoints (no auth): `GET /_sandbox/dataverse/requests` (counters),
//! `POST /_sandbox/dataverse/requests/reset`, `GET|PUT /_sandbox/dataverse/faults`,
//! `GET|PUT /_sandbox/dataverse/limits`.
//!
//! Invariants: every data request passes the bearer check, then fault injection, then service
//! protection, in that order; one store lock is held for a whole request (a `$batch` included),
//! so a change set is atomic with respect to other requests.
//!
//! State directory: when given, `dataverse.json` in it is loaded at start (the seed and the
//! generator are then not applied) and rewritten atomically (temporary file, then rename) after
//! changes: at once when the last save is a second old, else by a background flush within half
//! a second, and when the state is dropped.

pub mod auth;
pub mod batch;
pub mod columns;
pub mod errors;
pub mod filter;
pub mod limits;
pub mod meta;
pub mod metadata;
pub mod query;
pub mod routes;
pub mod seed;
pub mod solutions;
pub mod store;
pub mod tool_schema;
pub mod value;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::{Value, json};
use uuid::Uuid;

pub use limits::{Counters, Faults, Limits};
pub use seed::{MemberType, SchemaMode, Seed, SeedLink, SeedList};
pub use tool_schema::ToolSchema;

use super::{Error, GenerateSpec};
use limits::Protection;
use routes::{ApiRequest, ApiResponse, Ctx};

use crate::faults::{self, Fault};
use store::Store;

/// The largest request body accepted (a `$batch` of 1000 operations fits easily).
const MAX_BODY: usize = 128 * 1024 * 1024;

/// This half's state.
#[derive(Debug)]
pub struct State {
    base_url: Mutex<String>,
    store: Mutex<Store>,
    auth: Mutex<auth::Auth>,
    protection: Mutex<Protection>,
    state_file: Option<PathBuf>,
    dirty: AtomicBool,
    last_save: Mutex<Instant>,
}

/// The snapshot file in a state directory.
const STATE_FILE: &str = "dataverse.json";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl State {
    /// Build the state from a seed, the custom schema that `bootstrapped` installs, generated
    /// data and a state directory.
    ///
    /// # Errors
    /// The seed holds rows the Web API would refuse, or asks for `bootstrapped` without a schema.
    pub fn new(
        seed: &Seed,
        tool_schema: Option<&ToolSchema>,
        generate: Option<GenerateSpec>,
        state_dir: Option<&Path>,
    ) -> Result<Self, Error> {
        let invalid = |message: String| Error::InvalidSeed {
            path: "dataverse".into(),
            message,
        };
        let state_file = state_dir.map(|dir| dir.join(STATE_FILE));
        let loaded = match &state_file {
            Some(file) if file.exists() => {
                let reader = std::fs::File::open(file).map_err(|err| Error::State {
                    path: file.clone(),
                    message: err.to_string(),
                })?;
                Some(
                    Store::read_snapshot(std::io::BufReader::new(reader)).map_err(|err| {
                        Error::State {
                            path: file.clone(),
                            message: err.to_string(),
                        }
                    })?,
                )
            }
            _ => None,
        };
        let fresh = loaded.is_none();
        let store = match loaded {
            Some(store) => store,
            None => {
                let schema = match seed.schema {
                    SchemaMode::Bare => None,
                    SchemaMode::Bootstrapped => Some(tool_schema.ok_or_else(|| {
                        invalid(
                            "the seed's schema is `bootstrapped`, but no schema to install was \
                             given (Options::tool_schema)"
                                .to_owned(),
                        )
                    })?),
                };
                let mut store = Store::new(schema);
                seed::apply(&mut store, seed).map_err(invalid)?;
                if let Some(spec) = generate {
                    seed::generate(&mut store, spec).map_err(invalid)?;
                }
                store
            }
        };
        let auth = auth::Auth::new(
            seed.tenant_id.as_deref().unwrap_or(auth::DEFAULT_TENANT),
            seed.client_id.as_deref().unwrap_or(auth::DEFAULT_CLIENT_ID),
            seed.client_secret
                .as_deref()
                .unwrap_or(auth::DEFAULT_CLIENT_SECRET),
            Duration::from_secs(seed.token_lifetime_secs.unwrap_or(3599)),
        );
        let state = Self {
            base_url: Mutex::new(String::new()),
            store: Mutex::new(store),
            auth: Mutex::new(auth),
            protection: Mutex::new(Protection::new(
                seed.limits.clone().unwrap_or_default(),
                seed.faults.clone().unwrap_or_default(),
            )),
            state_file,
            dirty: AtomicBool::new(false),
            last_save: Mutex::new(Instant::now()),
        };
        if fresh && state.state_file.is_some() {
            state.save()?;
        }
        Ok(state)
    }

    /// Write the snapshot to the state directory now (no-op without one).
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save(&self) -> Result<(), Error> {
        let Some(file) = &self.state_file else {
            return Ok(());
        };
        let failed = |err: &dyn std::fmt::Display| Error::State {
            path: file.clone(),
            message: err.to_string(),
        };
        let tmp = file.with_extension("json.tmp");
        {
            let out = std::fs::File::create(&tmp).map_err(|e| failed(&e))?;
            let mut writer = std::io::BufWriter::new(out);
            self.dirty.store(false, Ordering::SeqCst);
            lock(&self.store)
                .write_snapshot(&mut writer)
                .map_err(|e| failed(&e))?;
            let out = writer.into_inner().map_err(|e| failed(&e))?;
            out.sync_all().map_err(|e| failed(&e))?;
        }
        std::fs::rename(&tmp, file).map_err(|e| failed(&e))?;
        *lock(&self.last_save) = Instant::now();
        Ok(())
    }

    /// Note a change: save at once when the last save is a second old, else leave it to the
    /// background flush.
    fn changed(&self) {
        if self.state_file.is_none() {
            return;
        }
        self.dirty.store(true, Ordering::SeqCst);
        if lock(&self.last_save).elapsed() >= Duration::from_secs(1)
            && let Err(err) = self.save()
        {
            tracing::warn!(error = %err, "cannot save the Dataverse sandbox state");
        }
    }

    fn flush_if_dirty(&self) {
        if self.dirty.load(Ordering::SeqCst)
            && let Err(err) = self.save()
        {
            tracing::warn!(error = %err, "cannot save the Dataverse sandbox state");
        }
    }

    /// Tell the state the address it is served at.
    pub fn set_base_url(&self, base_url: &str) {
        base_url
            .trim_end_matches('/')
            .clone_into(&mut lock(&self.base_url));
    }

    /// The environment URL (`http://127.0.0.1:PORT`).
    #[must_use]
    pub fn base_url(&self) -> String {
        lock(&self.base_url).clone()
    }

    /// The `KEY=value` lines a config or script needs for this half.
    #[must_use]
    pub fn env(&self, base_url: &str) -> Vec<(String, String)> {
        let base = base_url.trim_end_matches('/');
        let auth = lock(&self.auth);
        vec![
            ("DATAVERSE_URL".to_owned(), base.to_owned()),
            ("DATAVERSE_TENANT_ID".to_owned(), auth.tenant.clone()),
            ("DATAVERSE_CLIENT_ID".to_owned(), auth.client_id.clone()),
            (
                "DATAVERSE_CLIENT_SECRET".to_owned(),
                auth.client_secret().to_owned(),
            ),
            (
                "DATAVERSE_TOKEN_URL".to_owned(),
                format!("{base}/{}/oauth2/v2.0/token", auth.tenant),
            ),
        ]
    }

    /// Run something against the store (tests inspect and change data directly); with a
    /// state directory the store is saved afterwards.
    pub fn with_store<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        let out = f(&mut lock(&self.store));
        if self.state_file.is_some() {
            self.dirty.store(true, Ordering::SeqCst);
        }
        out
    }

    fn read_store<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        f(&lock(&self.store))
    }

    /// Rows in a table (by logical name or entity set name).
    #[must_use]
    pub fn count(&self, table: &str) -> usize {
        self.read_store(|s| {
            s.table(table)
                .or_else(|| s.table_by_set(table))
                .map_or(0, |t| t.rows.len())
        })
    }

    /// One row as the Web API renders it (all columns), or `None`.
    #[must_use]
    pub fn record(&self, table: &str, id: Uuid) -> Option<Value> {
        self.read_store(|s| {
            let t = s.table(table).or_else(|| s.table_by_set(table))?;
            let row = t.rows.get(&id)?;
            let projection = query::projection(&t.meta, &[]).ok()?;
            Some(Value::Object(query::render(&t.meta, row, &projection)))
        })
    }

    /// The member ids of a marketing list.
    #[must_use]
    pub fn list_members(&self, list: Uuid) -> Vec<Uuid> {
        self.read_store(|s| {
            let Some(rel) = s.many_to_many.iter().find(|r| r.list_backed).cloned() else {
                return Vec::new();
            };
            s.links(&rel)
                .map(|l| l.from_first(list).collect())
                .unwrap_or_default()
        })
    }

    /// The entity2 ids linked to an entity1 row through a many-to-many relationship.
    #[must_use]
    pub fn linked(&self, relationship: &str, from: Uuid) -> Vec<Uuid> {
        self.read_store(|s| {
            let Some(rel) = s
                .many_to_many
                .iter()
                .find(|r| r.schema_name == relationship)
                .cloned()
            else {
                return Vec::new();
            };
            s.linked(&rel, true, from)
        })
    }

    /// Whether a table exists (the tool's schema after a bootstrap, for instance).
    #[must_use]
    pub fn has_table(&self, logical: &str) -> bool {
        self.read_store(|s| s.table(logical).is_some())
    }

    /// The request counters.
    #[must_use]
    pub fn counters(&self) -> Counters {
        lock(&self.protection).counters.clone()
    }

    /// Zero the request counters.
    pub fn reset_counters(&self) {
        lock(&self.protection).reset_counters();
    }

    /// Change the service-protection settings.
    pub fn set_limits(&self, limits: Limits) {
        lock(&self.protection).limits = limits;
    }

    /// Refuse some writes from now on as a plug-in would (400 `0x80040265`).
    pub fn add_plugin_refusal(&self, refusal: columns::PluginRefusal) {
        self.with_store(|store| store.plugin_refusals.push(refusal));
    }

    /// Change the faults.
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.protection).faults = faults::FaultState::new(faults);
    }

    /// Change the lifetime of tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        lock(&self.auth).lifetime = lifetime;
    }

    /// Invalidate every issued token.
    pub fn revoke_tokens(&self) {
        lock(&self.auth).revoke_all();
    }

    /// The accepted credentials: (tenant, client id, client secret).
    #[must_use]
    pub fn credentials(&self) -> (String, String, String) {
        let auth = lock(&self.auth);
        (
            auth.tenant.clone(),
            auth.client_id.clone(),
            auth.client_secret().to_owned(),
        )
    }
}

impl Drop for State {
    fn drop(&mut self) {
        self.flush_if_dirty();
    }
}

/// Save a dirty state every half second while it lives.
fn spawn_flusher(state: Weak<State>) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                let Some(state) = state.upgrade() else {
                    break;
                };
                state.flush_if_dirty();
            }
        });
    }
}

/// The routes of this half.
pub fn router(state: Arc<State>) -> Router {
    if state.state_file.is_some() {
        spawn_flusher(Arc::downgrade(&state));
    }
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(openid),
        )
        .route("/api/data/v9.2", any(data))
        .route("/api/data/v9.2/", any(data))
        .route("/api/data/v9.2/{*rest}", any(data))
        .route("/_sandbox/dataverse/requests", get(get_counters))
        .route("/_sandbox/dataverse/requests/reset", post(reset_counters))
        .route(
            "/_sandbox/dataverse/faults",
            get(get_faults).put(put_faults),
        )
        .route(
            "/_sandbox/dataverse/limits",
            get(get_limits).put(put_limits),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

fn json_response(status: u16, value: &Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        value.to_string(),
    )
        .into_response()
}

async fn token(
    AxState(state): AxState<Arc<State>>,
    UrlPath(tenant): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    {
        let mut p = lock(&state.protection);
        p.counters.http_requests += 1;
        p.counters.token_requests += 1;
    }
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(&body).into_owned().collect();
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| {
            text.split_once(':').map(|(id, secret)| {
                (
                    urlencoding::decode(id).map_or_else(|_| id.to_owned(), |c| c.into_owned()),
                    urlencoding::decode(secret)
                        .map_or_else(|_| secret.to_owned(), |c| c.into_owned()),
                )
            })
        });
    let base = state.base_url();
    let result = lock(&state.auth).issue(&tenant, &form, basic, &base);
    match result {
        Ok(value) => {
            let mut resp = json_response(200, &value);
            resp.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store, no-cache"),
            );
            resp
        }
        Err(err) => json_response(err.status, &err.body),
    }
}

async fn openid(AxState(state): AxState<Arc<State>>, UrlPath(tenant): UrlPath<String>) -> Response {
    json_response(200, &auth::openid_configuration(&state.base_url(), &tenant))
}

async fn get_counters(AxState(state): AxState<Arc<State>>) -> Response {
    json_response(
        200,
        &serde_json::to_value(state.counters()).unwrap_or(Value::Null),
    )
}

async fn reset_counters(AxState(state): AxState<Arc<State>>) -> Response {
    state.reset_counters();
    StatusCode::NO_CONTENT.into_response()
}

async fn get_faults(AxState(state): AxState<Arc<State>>) -> Response {
    json_response(
        200,
        &serde_json::to_value(lock(&state.protection).faults.faults()).unwrap_or(Value::Null),
    )
}

async fn put_faults(AxState(state): AxState<Arc<State>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(faults) => {
            state.set_faults(faults);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(err) => json_response(
            400,
            &json!({"error": {"code": "0x0", "message": format!("invalid faults: {err}")}}),
        ),
    }
}

async fn get_limits(AxState(state): AxState<Arc<State>>) -> Response {
    json_response(
        200,
        &serde_json::to_value(lock(&state.protection).limits.clone()).unwrap_or(Value::Null),
    )
}

async fn put_limits(AxState(state): AxState<Arc<State>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Limits>(&body) {
        Ok(limits) => {
            state.set_limits(limits);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(err) => json_response(
            400,
            &json!({"error": {"code": "0x0", "message": format!("invalid limits: {err}")}}),
        ),
    }
}

/// Ends a counted request even when the client goes away mid-request.
struct Admitted {
    state: Arc<State>,
    started: Instant,
    ops: u64,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        lock(&self.state.protection).finish(self.started.elapsed(), self.ops);
    }
}

fn error_response(status: u16, code: &str, message: &str) -> Response {
    let mut resp = json_response(
        status,
        &json!({"error": {"code": code, "message": message}}),
    );
    resp.headers_mut()
        .insert("OData-Version", header::HeaderValue::from_static("4.0"));
    resp
}

async fn data(
    AxState(state): AxState<Arc<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    lock(&state.protection).counters.http_requests += 1;
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let checked = lock(&state.auth).check(authorization);
    if let Err(reason) = checked {
        let (tenant, _, _) = state.credentials();
        let base = state.base_url();
        let message = match reason {
            "expired" => "ExpiredAuthTicket: the access token has expired.",
            "missing" => "InvalidAuthTicket: no bearer token was sent.",
            _ => "InvalidAuthTicket: the bearer token is not valid.",
        };
        let mut resp = error_response(401, "", message);
        if let Ok(value) = header::HeaderValue::from_str(&format!(
            "Bearer authorization_uri={base}/{tenant}/oauth2/authorize, resource_id={base}/"
        )) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        return resp;
    }
    let raw_path = uri.path();
    let rest = raw_path
        .strip_prefix("/api/data/v9.2")
        .unwrap_or(raw_path)
        .trim_start_matches('/');
    let path = urlencoding::decode(rest).map_or_else(|_| rest.to_owned(), |c| c.into_owned());
    let route = routes::route_key(method.as_str(), &path);
    let (fault, latency, retry_after, dop_hint) = {
        let mut p = lock(&state.protection);
        (
            p.draw_fault(),
            p.faults.latency(),
            p.faults.retry_after_secs(),
            p.limits.dop_hint,
        )
    };
    match fault {
        Some(Fault::Status(StatusCode::TOO_MANY_REQUESTS)) => {
            let mut resp = error_response(
                429,
                "0x80072322",
                "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(retry_after));
            return resp;
        }
        Some(Fault::Status(StatusCode::INTERNAL_SERVER_ERROR)) => {
            return error_response(500, "0x80040216", "An unexpected error occurred.");
        }
        Some(Fault::Status(StatusCode::SERVICE_UNAVAILABLE)) => {
            return error_response(503, "", "The service is temporarily unavailable.");
        }
        Some(Fault::Status(status)) => {
            let reason = status.canonical_reason().unwrap_or("Injected fault.");
            return error_response(status.as_u16(), "", reason);
        }
        Some(Fault::Drop) => return faults::dropped_connection(),
        None => {}
    }
    let admitted = lock(&state.protection).admit(&route);
    if let Err(refusal) = admitted {
        let mut resp = error_response(429, refusal.code, &refusal.message);
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from(refusal.retry_after),
        );
        return resp;
    }
    let mut guard = Admitted {
        state: Arc::clone(&state),
        started: Instant::now(),
        ops: 0,
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let request = ApiRequest {
        method: method.as_str().to_owned(),
        path: path.clone(),
        query: uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default(),
        headers: headers
            .iter()
            .filter_map(|(k, v)| {
                v.to_str()
                    .ok()
                    .map(|v| (k.as_str().to_owned(), v.to_owned()))
            })
            .collect(),
        body: body.to_vec(),
    };
    let ctx = Ctx {
        base: state.base_url(),
    };
    let answer: ApiResponse = {
        let mut store = lock(&state.store);
        if path == "$batch" {
            let mut parts = Vec::new();
            let answer = batch::handle_with_parts(&ctx, &mut store, &request, &mut parts);
            lock(&state.protection).count_batch_parts(&parts);
            answer
        } else {
            routes::handle(&ctx, &mut store, &request)
        }
    };
    guard.ops = answer.ops;
    let server_time = lock(&state.protection).delay_for(answer.ops);
    if !server_time.is_zero() {
        tokio::time::sleep(server_time).await;
    }
    if method != Method::GET && answer.status < 300 {
        state.changed();
    }
    let (remaining, remaining_ms) = {
        let p = lock(&state.protection);
        (p.remaining_requests(), p.remaining_execution_ms())
    };
    drop(guard);
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("OData-Version", "4.0")
        .header("x-ms-dop-hint", dop_hint.to_string())
        .header(
            "x-ms-ratelimit-burst-remaining-xrm-requests",
            remaining.to_string(),
        )
        .header(
            "x-ms-ratelimit-time-remaining-xrm-requests",
            remaining_ms.to_string(),
        )
        .header("x-ms-service-request-id", Uuid::new_v4().to_string())
        .header("REQ_ID", Uuid::new_v4().to_string());
    for (k, v) in &answer.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let body = match answer.body {
        Some((content_type, bytes)) => {
            builder = builder.header(header::CONTENT_TYPE, content_type);
            Body::from(bytes)
        }
        None => Body::empty(),
    };
    builder
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_directory_keeps_data_between_runs() {
        let dir = tempfile::tempdir().unwrap();
        let seed = Seed {
            schema: SchemaMode::Bootstrapped,
            lists: vec![SeedList {
                id: None,
                name: "Kept".into(),
                member_type: MemberType::Contact,
                dynamic: false,
                locked: false,
                inactive: false,
                members: Vec::new(),
            }],
            ..Seed::default()
        };
        let first =
            State::new(&seed, Some(&tool_schema::fixture()), None, Some(dir.path())).unwrap();
        first.with_store(|s| {
            s.insert_raw("contact", Uuid::from_u128(7), &[]).unwrap();
        });
        drop(first);
        let second = State::new(&Seed::default(), None, None, Some(dir.path())).unwrap();
        assert_eq!(second.count("list"), 1);
        assert!(second.record("contact", Uuid::from_u128(7)).is_some());
    }

    #[test]
    fn route_keys_hide_ids() {
        assert_eq!(
            routes::route_key(
                "POST",
                "lists(5f8c0a0e-0000-4000-8000-000000000001)/Microsoft.Dynamics.CRM.AddMemberList"
            ),
            "POST lists({id})/Microsoft.Dynamics.CRM.AddMemberList"
        );
    }

    #[test]
    fn env_names_the_token_endpoint_and_credentials() {
        let state =
            State::new(&Seed::default(), Some(&tool_schema::fixture()), None, None).unwrap();
        let env = state.env("http://127.0.0.1:5");
        assert!(
            env.iter()
                .any(|(k, v)| k == "DATAVERSE_TOKEN_URL" && v.ends_with("/oauth2/v2.0/token"))
        );
        assert!(state.has_table("mcsync_tag"));
        let bare = State::new(
            &Seed {
                schema: SchemaMode::Bare,
                ..Seed::default()
            },
            None,
            None,
            None,
        )
        .unwrap();
        assert!(!bare.has_table("mcsync_tag"));
        assert!(State::new(&Seed::default(), None, None, None).is_err());
    }
}
