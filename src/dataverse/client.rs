//! The Dataverse Web API client: connection settings, the headers every request carries, the
//! token, bounded parallelism, the shared retry policy, and error mapping. The table-specific
//! operations live in sibling modules as further `impl Client` blocks.
//!
//! Invariants: at most `max_parallel` requests in flight (lowered or raised to the service's
//! `x-ms-dop-hint`, never above `max_parallel`); every request goes through
//! [`crate::http::RetryPolicy::send`] (429 + `Retry-After`, transient 5xx); a 401 refreshes the
//! token once; a 412 is never retried and is reported as stale by the callers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use tokio::sync::{Semaphore, SemaphorePermit};

use super::auth::{TokenSource, default_token_url};
use super::error::{Error, parse_api_error};
use crate::http::{HttpStats, Idempotency, RetryPolicy};

/// Requests in flight before the service sends `x-ms-dop-hint`.
pub const INITIAL_PARALLEL: usize = 8;
/// The default ceiling of requests in flight: the service's documented concurrency limit per
/// user and web server; `x-ms-dop-hint` moves the limit between 1 and this.
pub const DEFAULT_MAX_PARALLEL: usize = 52;
/// The page size the client asks for (the service's maximum).
pub const MAX_PAGE_SIZE: u32 = 5000;

/// The connection settings of a [`Client`], secrets resolved (the caller translates its
/// configuration into these).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Environment URL.
    pub url: String,
    /// Entra tenant.
    pub tenant_id: String,
    /// App registration.
    pub client_id: String,
    /// Its secret.
    pub client_secret: SecretString,
    /// Token endpoint override.
    pub token_url: Option<String>,
    /// Web API version (`v9.2`).
    pub api_version: String,
}

/// Builds a [`Client`].
#[derive(Default)]
pub struct Builder {
    url: Option<String>,
    tenant_id: Option<String>,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    token_url: Option<String>,
    api_version: Option<String>,
    policy: Option<RetryPolicy>,
    max_parallel: Option<usize>,
    timeout: Option<Duration>,
}

impl Builder {
    /// The environment URL, e.g. `https://contoso.crm.dynamics.com`.
    #[must_use]
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }
    /// The Entra ID tenant id.
    #[must_use]
    pub fn tenant_id(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self
    }
    /// The application (client) id.
    #[must_use]
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }
    /// The client secret.
    #[must_use]
    pub fn client_secret(mut self, secret: SecretString) -> Self {
        self.client_secret = Some(secret);
        self
    }
    /// Override the token endpoint (default: the tenant's Entra ID v2 endpoint).
    #[must_use]
    pub fn token_url(mut self, token_url: Option<String>) -> Self {
        self.token_url = token_url;
        self
    }
    /// The Web API version, default `v9.2`.
    #[must_use]
    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = Some(version.into());
        self
    }
    /// The retry policy (default: [`RetryPolicy::default`]).
    #[must_use]
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = Some(policy);
        self
    }
    /// Never more than this many requests in flight, whatever `x-ms-dop-hint` says (default
    /// [`DEFAULT_MAX_PARALLEL`]; the first requests use at most [`INITIAL_PARALLEL`]).
    #[must_use]
    pub fn max_parallel(mut self, n: usize) -> Self {
        self.max_parallel = Some(n);
        self
    }
    /// Timeout of one request (default 120 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Check the settings and build the client (no request is sent).
    ///
    /// # Errors
    /// A missing or malformed setting, named as in the config file.
    pub fn build(self) -> Result<Client, Error> {
        let missing = |name: &'static str| Error::Setting {
            name,
            message: "is not set".to_owned(),
        };
        let url = self.url.ok_or_else(|| missing("dataverse.url"))?;
        let url = url.trim().trim_end_matches('/').to_owned();
        let parsed = url::Url::parse(&url).map_err(|err| Error::Setting {
            name: "dataverse.url",
            message: format!("`{url}` is not a URL: {err}"),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(Error::Setting {
                name: "dataverse.url",
                message: format!("`{url}` is not an http(s) URL"),
            });
        }
        let tenant_id = self.tenant_id.unwrap_or_default();
        let client_id = self
            .client_id
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| missing("dataverse.client_id"))?;
        let secret = self
            .client_secret
            .filter(|s| !s.expose_secret().is_empty())
            .ok_or_else(|| missing("dataverse.client_secret"))?;
        let token_url = match self.token_url.filter(|s| !s.trim().is_empty()) {
            Some(u) => u,
            None if tenant_id.trim().is_empty() => return Err(missing("dataverse.tenant_id")),
            None => default_token_url(tenant_id.trim()),
        };
        let version = self.api_version.unwrap_or_else(|| "v9.2".to_owned());
        if !version.starts_with("v9.") {
            return Err(Error::Setting {
                name: "dataverse.api_version",
                message: format!("`{version}` is not a v9.x Web API version"),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .timeout(self.timeout.unwrap_or(Duration::from_secs(120)))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|source| Error::Transport {
                url: url.clone(),
                source,
            })?;
        let policy = self.policy.unwrap_or_default();
        let auth = TokenSource::new(
            http.clone(),
            token_url,
            client_id,
            secret,
            format!("{url}/.default"),
            policy.clone(),
        );
        let max_parallel = self.max_parallel.unwrap_or(DEFAULT_MAX_PARALLEL).max(1);
        let api_path = format!("/api/data/{version}/");
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                api_root: format!("{url}{api_path}"),
                env_url: url,
                api_path,
                auth,
                policy,
                stats: Arc::new(HttpStats::default()),
                limiter: Limiter::new(INITIAL_PARALLEL.min(max_parallel), max_parallel),
                sizer: std::sync::Mutex::new(super::batch::Sizer::default()),
                bulk: super::records::BulkSupport::default(),
            }),
        })
    }
}

/// A Dataverse Web API client. Cheap to clone; clones share the token, limits and counters.
#[derive(Clone)]
pub struct Client {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("api_root", &self.inner.api_root)
            .field("auth", &self.inner.auth)
            .finish_non_exhaustive()
    }
}

pub(super) struct Inner {
    http: reqwest::Client,
    env_url: String,
    api_root: String,
    api_path: String,
    auth: TokenSource,
    policy: RetryPolicy,
    stats: Arc<HttpStats>,
    limiter: Limiter,
    /// The size of the next write request, learnt across the client's requests.
    pub(super) sizer: std::sync::Mutex<super::batch::Sizer>,
    pub(super) bulk: super::records::BulkSupport,
}

/// A request, described once so it can be sent again.
pub(super) struct Req {
    pub method: Method,
    /// Absolute URL.
    pub url: String,
    pub body: Option<Bytes>,
    pub content_type: Option<String>,
    pub headers: Vec<(&'static str, String)>,
    pub idempotency: Idempotency,
}

impl Req {
    pub(super) fn new(method: Method, url: String, idempotency: Idempotency) -> Self {
        Self {
            method,
            url,
            body: None,
            content_type: None,
            headers: Vec::new(),
            idempotency,
        }
    }
    pub(super) fn json(mut self, body: &serde_json::Value) -> Self {
        self.body = Some(Bytes::from(body.to_string()));
        self.content_type = Some("application/json".to_owned());
        self
    }
    pub(super) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

impl Client {
    /// Start building a client.
    #[must_use]
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A client for these connection settings.
    ///
    /// # Errors
    /// A setting cannot be used (see [`Builder::build`]).
    pub fn from_settings(settings: Settings) -> Result<Self, Error> {
        Self::builder()
            .url(settings.url)
            .tenant_id(settings.tenant_id)
            .client_id(settings.client_id)
            .client_secret(settings.client_secret)
            .token_url(settings.token_url)
            .api_version(settings.api_version)
            .build()
    }

    /// Counters of the data requests sent (token requests not included).
    #[must_use]
    pub fn stats(&self) -> Arc<HttpStats> {
        Arc::clone(&self.inner.stats)
    }

    /// Counters of the token requests sent.
    #[must_use]
    pub fn token_stats(&self) -> Arc<HttpStats> {
        self.inner.auth.stats()
    }

    /// The requests allowed in flight now.
    #[must_use]
    pub fn parallelism(&self) -> usize {
        self.inner.limiter.limit.load(Ordering::Relaxed)
    }

    /// The environment URL, without a trailing slash.
    #[must_use]
    pub fn env_url(&self) -> &str {
        &self.inner.env_url
    }

    /// The Web API root, e.g. `https://x.crm.dynamics.com/api/data/v9.2/`.
    #[must_use]
    pub fn api_root(&self) -> &str {
        &self.inner.api_root
    }

    /// The Web API root path, e.g. `/api/data/v9.2/`.
    #[must_use]
    pub fn api_path(&self) -> &str {
        &self.inner.api_path
    }

    /// An absolute URL for a path relative to the Web API root (absolute URLs pass unchanged).
    #[must_use]
    pub fn url(&self, relative: &str) -> String {
        if relative.starts_with("http://") || relative.starts_with("https://") {
            relative.to_owned()
        } else {
            format!(
                "{}{}",
                self.inner.api_root,
                relative.trim_start_matches('/')
            )
        }
    }

    /// Operations for the next write request (see [`super::batch::Sizer`]).
    pub(super) fn batch_size(&self) -> usize {
        self.inner
            .sizer
            .lock()
            .map_or(super::batch::Sizer::START, |s| s.next())
    }

    /// Learn from a write request of `ops` operations sent at `started`; `throttled_before` is
    /// [`HttpStats::throttled`] when it was sent.
    pub(super) fn batch_done(
        &self,
        ops: usize,
        started: std::time::Instant,
        throttled_before: u64,
    ) {
        let throttled = self.inner.stats.throttled() > throttled_before;
        if let Ok(mut sizer) = self.inner.sizer.lock() {
            sizer.observe(ops, started.elapsed(), throttled);
        }
    }

    /// Get a token now (checks the credentials without touching data).
    ///
    /// # Errors
    /// Entra ID refused or could not be reached.
    pub async fn authenticate(&self) -> Result<(), Error> {
        self.inner.auth.token().await.map(|_| ())
    }

    /// Send one request: a permit, the token, the standard headers, the retry policy, one
    /// token refresh on 401. The response is returned whatever its status.
    pub(super) async fn send(&self, req: &Req) -> Result<Response, Error> {
        // The lease's renewals do not queue behind data writes (see `crate::http::gate`).
        let _permit = if crate::http::gate::is_priority() {
            None
        } else {
            Some(self.inner.limiter.acquire().await)
        };
        // A run that lost its lease sends nothing more (see `crate::http::gate`).
        crate::http::gate::check().map_err(|message| Error::Request { message })?;
        let mut refreshed = false;
        loop {
            let token = self.inner.auth.token().await?;
            // Again after the last wait before sending: a run paused or slowed past its lease
            // sends nothing once it resumes.
            crate::http::gate::check().map_err(|message| Error::Request { message })?;
            let throttled_before = self.inner.stats.throttled();
            let response = self
                .inner
                .policy
                .send_classified(
                    &self.inner.stats,
                    req.idempotency,
                    || self.build(req, &token),
                    &super::error::is_deterministic_body,
                )
                .await
                .map_err(|source| Error::Transport {
                    url: strip_query(&req.url),
                    source: source.without_url(),
                })?;
            if let Some(hint) = response
                .headers()
                .get("x-ms-dop-hint")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<usize>().ok())
            {
                self.inner.limiter.set_limit(hint);
            } else if self.inner.stats.throttled() > throttled_before {
                // Throttled on the way (429): fewer requests in flight until the server says
                // more (`x-ms-dop-hint`).
                let current = self.inner.limiter.limit.load(Ordering::Acquire);
                self.inner.limiter.set_limit(current / 2);
            }
            if response.status() == StatusCode::UNAUTHORIZED && !refreshed {
                refreshed = true;
                self.inner.auth.invalidate(&token).await;
                continue;
            }
            return Ok(response);
        }
    }

    fn build(&self, req: &Req, token: &SecretString) -> reqwest::RequestBuilder {
        let mut builder = self
            .inner
            .http
            .request(req.method.clone(), &req.url)
            .bearer_auth(token.expose_secret())
            .header("Accept", "application/json")
            .header("OData-MaxVersion", "4.0")
            .header("OData-Version", "4.0");
        if req.method == Method::GET {
            builder = builder.header("If-None-Match", "null");
        }
        if let Some(content_type) = &req.content_type {
            builder = builder.header("Content-Type", content_type);
        }
        for (name, value) in &req.headers {
            builder = builder.header(*name, value);
        }
        if let Some(body) = &req.body {
            builder = builder.body(body.clone());
        }
        builder
    }

    /// Send and turn any non-2xx status into [`Error::Api`].
    pub(super) async fn send_ok(&self, req: &Req) -> Result<Response, Error> {
        let response = self.send(req).await?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(self.api_error(&req.method, &req.url, response).await)
        }
    }

    /// The [`Error::Api`] of an error response.
    pub(super) async fn api_error(&self, method: &Method, url: &str, response: Response) -> Error {
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        let parsed = parse_api_error(&body);
        Error::Api {
            status,
            code: parsed.code,
            message: parsed.message,
            method: method.to_string(),
            path: self.relative(url),
        }
    }

    /// A URL relative to the Web API root, without query (for messages).
    pub(super) fn relative(&self, url: &str) -> String {
        let url = strip_query(url);
        url.strip_prefix(&self.inner.api_root)
            .map_or(url.clone(), str::to_owned)
    }

    /// GET a JSON document.
    pub(super) async fn get_json<T: DeserializeOwned>(&self, relative: &str) -> Result<T, Error> {
        let req = Req::new(Method::GET, self.url(relative), Idempotency::Idempotent);
        let response = self.send_ok(&req).await?;
        self.read_json(&req, response).await
    }

    /// Read a response body as JSON.
    pub(super) async fn read_json<T: DeserializeOwned>(
        &self,
        req: &Req,
        response: Response,
    ) -> Result<T, Error> {
        let bytes = self.read_body(req, response).await?;
        serde_json::from_slice(&bytes).map_err(|err| self.not_expected(req, &err))
    }

    /// Read a page of rows with `reader` straight from the body.
    pub(super) async fn read_page<R: super::rows::RowReader>(
        &self,
        req: &Req,
        response: Response,
        reader: &R,
    ) -> Result<super::rows::Page<R::Row>, Error> {
        let bytes = self.read_body(req, response).await?;
        super::rows::parse_page(reader, &bytes).map_err(|err| self.not_expected(req, &err))
    }

    async fn read_body(&self, req: &Req, response: Response) -> Result<Bytes, Error> {
        response.bytes().await.map_err(|source| Error::Transport {
            url: strip_query(&req.url),
            source: source.without_url(),
        })
    }

    fn not_expected(&self, req: &Req, err: &serde_json::Error) -> Error {
        Error::Response {
            method: req.method.to_string(),
            path: self.relative(&req.url),
            message: format!("the body is not the JSON expected: {err}"),
        }
    }
}

fn strip_query(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_owned()
}

/// A semaphore whose size can shrink and grow while permits are out.
struct Limiter {
    semaphore: Semaphore,
    /// The current limit.
    limit: AtomicUsize,
    /// The configured ceiling.
    max: usize,
    /// Permits to forget when they come back (the limit shrank while they were out).
    debt: AtomicUsize,
    adjust: std::sync::Mutex<()>,
}

struct Permit<'a> {
    permit: Option<SemaphorePermit<'a>>,
    limiter: &'a Limiter,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            let owed = self
                .limiter
                .debt
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| d.checked_sub(1));
            if owed.is_ok() {
                permit.forget();
            }
        }
    }
}

impl Limiter {
    fn new(initial: usize, max: usize) -> Self {
        Self {
            semaphore: Semaphore::new(initial),
            limit: AtomicUsize::new(initial),
            max,
            debt: AtomicUsize::new(0),
            adjust: std::sync::Mutex::new(()),
        }
    }

    async fn acquire(&self) -> Permit<'_> {
        // The semaphore is never closed, so acquire cannot fail.
        Permit {
            permit: self.semaphore.acquire().await.ok(),
            limiter: self,
        }
    }

    fn set_limit(&self, hint: usize) {
        let wanted = hint.clamp(1, self.max);
        let Ok(_guard) = self.adjust.lock() else {
            return;
        };
        let current = self.limit.load(Ordering::Acquire);
        if wanted > current {
            let mut grow = wanted - current;
            // Cancel debt first, then add permits.
            while grow > 0
                && self
                    .debt
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| d.checked_sub(1))
                    .is_ok()
            {
                grow -= 1;
            }
            self.semaphore.add_permits(grow);
        } else if wanted < current {
            let shrink = current - wanted;
            let forgotten = self.semaphore.forget_permits(shrink);
            self.debt.fetch_add(shrink - forgotten, Ordering::AcqRel);
        }
        self.limit.store(wanted, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_names_the_missing_setting() {
        let err = Client::builder().build().unwrap_err();
        assert!(err.to_string().contains("`dataverse.url`"), "{err}");
        let err = Client::builder()
            .url("https://x.crm.dynamics.com")
            .client_id("a")
            .client_secret(SecretString::from("s"))
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("`dataverse.tenant_id`"), "{err}");
        let err = Client::builder().url("not a url").build().unwrap_err();
        assert!(err.to_string().contains("not a URL"), "{err}");
    }

    #[test]
    fn urls_are_built_under_the_api_root() {
        let client = Client::builder()
            .url("https://x.crm.dynamics.com/")
            .tenant_id("t")
            .client_id("a")
            .client_secret(SecretString::from("hunter2-secret"))
            .build()
            .unwrap();
        assert_eq!(
            client.url("contacts"),
            "https://x.crm.dynamics.com/api/data/v9.2/contacts"
        );
        assert_eq!(client.url("https://y/z"), "https://y/z");
        assert_eq!(
            client.relative("https://x.crm.dynamics.com/api/data/v9.2/contacts(1)?$select=a"),
            "contacts(1)"
        );
        let debug = format!("{client:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(
            debug.contains("login.microsoftonline.com/t/oauth2/v2.0/token"),
            "{debug}"
        );
    }

    #[tokio::test]
    async fn the_limit_follows_the_hint_within_the_ceiling() {
        let limiter = Limiter::new(8, 8);
        let a = limiter.acquire().await;
        let b = limiter.acquire().await;
        limiter.set_limit(1);
        assert_eq!(limiter.limit.load(Ordering::Relaxed), 1);
        drop(a);
        drop(b);
        assert_eq!(limiter.semaphore.available_permits(), 1);
        limiter.set_limit(100);
        assert_eq!(limiter.limit.load(Ordering::Relaxed), 8);
        assert_eq!(limiter.semaphore.available_permits(), 8);
        let _c = limiter.acquire().await;
        limiter.set_limit(4);
        assert_eq!(limiter.semaphore.available_permits(), 3);
        let grows = Limiter::new(2, 52);
        grows.set_limit(20);
        assert_eq!(grows.semaphore.available_permits(), 20);
        grows.set_limit(500);
        assert_eq!(grows.limit.load(Ordering::Relaxed), 52);
    }
}
