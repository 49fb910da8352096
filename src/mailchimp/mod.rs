//! The Mailchimp Marketing API v3 client: audiences, merge fields, tags and members, read-only.
//!
//! ```no_run
//! # async fn demo() -> Result<(), audience_sync::mailchimp::Error> {
//! use audience_sync::mailchimp::{AudienceSelector, Client, MemberQuery, MemberStatus};
//! use futures::StreamExt;
//! use secrecy::SecretString;
//!
//! let client = Client::builder()
//!     .api_key(SecretString::from("0123456789abcdef0123456789abcdef-us21"))
//!     .base_url(None) // https://us21.api.mailchimp.com/3.0, from the key
//!     .build()?;
//! let audience = client.find_audience(&AudienceSelector::Name("Newsletter".into())).await?;
//! let query = MemberQuery { statuses: vec![MemberStatus::Subscribed], ..MemberQuery::default() };
//! let mut pages = client.members(&audience.id, query);
//! while let Some(page) = pages.next().await {
//!     for member in page? { println!("{} {}", member.id, member.email_address); }
//! }
//! # Ok(()) }
//! ```
//!
//! # Guarantees
//! - At most `max_concurrency` requests are in flight at once (default 8 of Mailchimp's 10
//!   simultaneous connections per user, which other integrations on the login share), across
//!   every call on clones of one client (one `tokio::sync::Semaphore`): one budget per process.
//!   Paged reads read ahead up to that budget.
//! - Every request goes through the shared [`RetryPolicy`]: 429, 5xx and timeouts are retried
//!   with backoff and jitter, `Retry-After` is honoured. A 403 without a body (Mailchimp's answer
//!   to too many connections under load) is backed off and retried the same way. A connection
//!   dropped while the body is read is retried the same bounded number of times.
//! - Collections are read at `count=1000` with a `fields=` projection. A member page's body is
//!   decoded once, as it arrives, and dropped: into whole [`Member`]s, or through a
//!   [`Projection`] straight into the few fields one read needs (no JSON value per member).
//! - [`Client::members`] yields pages and never holds more than a few pages per status: memory
//!   does not grow with the audience. Every member it yields has all its tags (those beyond the
//!   50 of a member object are read from `…/members/{hash}/tags`).
//! - Member pages are read in a stable order (`sort_field=timestamp_signup`, or `last_changed`
//!   for a catch-up read) in overlapping windows ([`paging`](self) module): a member that stays
//!   in the filtered set while it is read is yielded exactly once, none is yielded twice. An
//!   audience that changes too fast for the bounded re-reads ends the read with [`Error::Churn`].
//! - [`Client::server_time`] gives Mailchimp's clock (the `Date` header), for reads of what
//!   changed since.
//! - The API key is sent only as HTTP Basic credentials; it is never logged or shown by `Debug`.

mod error;
mod member_key;
mod members;
mod paging;
mod projection;
mod row;
mod types;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use self::error::ProblemBody;
pub use self::error::{Error, FieldError};
pub use self::member_key::MemberKey;
pub use self::projection::{Projected, Projection};
pub use self::row::{FullMembers, MemberRow, Page, PageDecoder};
use self::types::RawAudience;
pub use self::types::{
    ALL_STATUSES, Audience, AudienceSelector, Location, MEMBER_FIELDS, Member, MemberOrder,
    MemberQuery, MemberStatus, MemberTag, MergeField, Tag,
};
use crate::http::{HttpStats, Idempotency, RetryPolicy};

/// The largest page Mailchimp serves.
pub const PAGE_SIZE: usize = 1000;

/// Mailchimp's limit of simultaneous connections per user.
pub const MAX_CONNECTIONS: usize = 10;

/// The connections a process uses by default: Mailchimp's 10 less some for the other
/// integrations on the same login (forms, other syncs).
pub const DEFAULT_CONNECTIONS: usize = 8;

/// The data centre of an API key: the part after the last `-` (`…-us21` → `us21`).
///
/// # Errors
/// [`Error::MalformedKey`] when the key has no such suffix; the message never shows the key.
pub fn data_center(key: &str) -> Result<&str, Error> {
    if key.trim().is_empty() {
        return Err(Error::MissingKey);
    }
    if key.chars().any(char::is_whitespace) {
        return Err(Error::MalformedKey {
            reason: "it contains white space",
        });
    }
    let Some((secret, dc)) = key.rsplit_once('-') else {
        return Err(Error::MalformedKey {
            reason: "it has no data-centre suffix such as `-us21`",
        });
    };
    if secret.is_empty() || !secret.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Error::MalformedKey {
            reason: "the part before the data-centre suffix must be letters and digits",
        });
    }
    let letters = dc.bytes().take_while(u8::is_ascii_lowercase).count();
    if letters == 0 || letters == dc.len() || !dc[letters..].bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::MalformedKey {
            reason: "its data-centre suffix is not like `-us21`",
        });
    }
    Ok(dc)
}

/// Builds a [`Client`].
#[derive(Debug)]
#[must_use]
pub struct ClientBuilder {
    api_key: Option<SecretString>,
    base_url: Option<String>,
    max_concurrency: usize,
    retry: RetryPolicy,
    timeout: Duration,
}

impl ClientBuilder {
    /// The API key (`…-usNN`).
    pub fn api_key(mut self, key: SecretString) -> Self {
        self.api_key = Some(key);
        self
    }

    /// The API root including `/3.0` (e.g. `http://127.0.0.1:PORT/3.0`); `None`: the key's data
    /// centre, `https://<dc>.api.mailchimp.com/3.0`.
    pub fn base_url(mut self, url: Option<String>) -> Self {
        self.base_url = url.filter(|u| !u.trim().is_empty());
        self
    }

    /// Requests in flight at most (default 8, at most 10).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n.clamp(1, MAX_CONNECTIONS);
        self
    }

    /// Retry policy (default: [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Per-request timeout (default 120 s, Mailchimp's own limit).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Check the key and URL and build the client.
    ///
    /// # Errors
    /// A missing or malformed key (the data centre is needed unless a base URL is given), a
    /// base URL that is not http(s), or an HTTP client that cannot be set up.
    pub fn build(self) -> Result<Client, Error> {
        let api_key = self.api_key.ok_or(Error::MissingKey)?;
        let base_url = match self.base_url {
            Some(url) => {
                if api_key.expose_secret().trim().is_empty() {
                    return Err(Error::MissingKey);
                }
                let parsed =
                    url::Url::parse(url.trim()).map_err(|_| Error::BaseUrl { url: url.clone() })?;
                if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                    return Err(Error::BaseUrl { url });
                }
                url.trim().trim_end_matches('/').to_owned()
            }
            None => {
                let dc = data_center(api_key.expose_secret())?;
                format!("https://{dc}.api.mailchimp.com/3.0")
            }
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("audience-sync/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(self.timeout)
            .pool_max_idle_per_host(MAX_CONNECTIONS)
            .build()
            .map_err(Error::Http)?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base_url,
                api_key,
                policy: self.retry,
                stats: Arc::new(HttpStats::default()),
                limiter: Semaphore::new(self.max_concurrency),
                budget: self.max_concurrency,
            }),
        })
    }
}

/// A Mailchimp client. Cheap to clone; clones share the connection pool, the concurrency
/// limit and the counters.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: String,
    api_key: SecretString,
    policy: RetryPolicy,
    stats: Arc<HttpStats>,
    limiter: Semaphore,
    /// The limiter's size: how far paged reads read ahead.
    budget: usize,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url)
            .field("api_key", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// What a 404 means for the call that got it.
#[derive(Debug, Clone, Copy)]
enum NotFound<'a> {
    Audience(&'a str),
    Other,
}

impl Client {
    /// Start building a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            api_key: None,
            base_url: None,
            max_concurrency: DEFAULT_CONNECTIONS,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(120),
        }
    }

    /// The API root requests go to (no secrets in it).
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// Counters of the requests sent (retries included) and 429s received.
    #[must_use]
    pub fn stats(&self) -> Arc<HttpStats> {
        Arc::clone(&self.inner.stats)
    }

    /// GET `path` (below the API root) and decode the JSON answer.
    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        not_found: NotFound<'_>,
    ) -> Result<T, Error> {
        let (body, _) = self.get_raw(path, query, not_found).await?;
        serde_json::from_slice(&body).map_err(|source| Error::Decode {
            method: "GET".into(),
            path: path.to_owned(),
            source,
        })
    }

    /// GET `path`: the body of a successful answer, and its `Date` header.
    async fn get_raw(
        &self,
        path: &str,
        query: &[(&str, String)],
        not_found: NotFound<'_>,
    ) -> Result<(bytes::Bytes, Option<DateTime<Utc>>), Error> {
        let inner = &self.inner;
        let url = format!("{}{path}", inner.base_url);
        // The semaphore is never closed, so the permit is always granted.
        let _permit = inner.limiter.acquire().await.ok();
        let mut attempt = 1;
        loop {
            let response = inner
                .policy
                .send(&inner.stats, Idempotency::Idempotent, || {
                    inner
                        .http
                        .get(&url)
                        .query(query)
                        .basic_auth("audience-sync", Some(inner.api_key.expose_secret()))
                })
                .await
                .map_err(|source| Error::Transport {
                    method: "GET".into(),
                    path: path.to_owned(),
                    source,
                })?;
            let status = response.status();
            tracing::debug!(path, status = status.as_u16(), "mailchimp answered");
            let date = response
                .headers()
                .get(reqwest::header::DATE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| httpdate::parse_http_date(v).ok())
                .map(DateTime::<Utc>::from);
            let retry = attempt < inner.policy.max_attempts;
            let body = match response.bytes().await {
                // Under load Mailchimp may refuse with a 403 that has no body: back off.
                Ok(body)
                    if status == reqwest::StatusCode::FORBIDDEN && body.is_empty() && retry =>
                {
                    let wait = inner.policy.backoff(attempt, None);
                    tracing::warn!(
                        path,
                        attempt,
                        "403 without a body (connection limit), backing off"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                    continue;
                }
                Ok(body) => body,
                Err(source) if retry => {
                    let wait = inner.policy.backoff(attempt, None);
                    tracing::debug!(path, attempt, error = %source.without_url(), "answer cut off, retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                    continue;
                }
                Err(source) => {
                    return Err(Error::Transport {
                        method: "GET".into(),
                        path: path.to_owned(),
                        source,
                    });
                }
            };
            if status.is_success() {
                return Ok((body, date));
            }
            return Err(api_error("GET", path, status, &body, not_found));
        }
    }

    /// Mailchimp's clock: the `Date` of a `GET /ping` answer (whole seconds). Reads of what
    /// changed since a moment compare it with `last_changed`, which that clock writes.
    ///
    /// # Errors
    /// Any transport or API error; an answer without a `Date` header.
    pub async fn server_time(&self) -> Result<DateTime<Utc>, Error> {
        let (_, date) = self.get_raw("/ping", &[], NotFound::Other).await?;
        date.ok_or_else(|| Error::Api {
            method: "GET".into(),
            path: "/ping".into(),
            status: 200,
            title: "No Date header".into(),
            detail: "the answer did not say the server's time".into(),
            errors: Vec::new(),
        })
    }

    /// Every item of a collection: the first page, then the rest concurrently.
    async fn all_pages<T: DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        query: &[(&str, String)],
        not_found: NotFound<'_>,
    ) -> Result<Vec<T>, Error> {
        let page_query = |offset: usize| {
            let mut q: Vec<(&str, String)> = query.to_vec();
            q.push(("count", PAGE_SIZE.to_string()));
            q.push(("offset", offset.to_string()));
            q
        };
        let first: Page<T> = self.get(path, &page_query(0), not_found).await?;
        let total = first.total_items;
        let mut items = first.items;
        let rest: Vec<Vec<T>> = stream::iter((PAGE_SIZE..total).step_by(PAGE_SIZE))
            .map(|offset| {
                let q = page_query(offset);
                async move {
                    let page: Page<T> = self.get(path, &q, not_found).await?;
                    Ok::<_, Error>(page.items)
                }
            })
            .buffered(self.inner.budget)
            .try_collect()
            .await?;
        items.extend(rest.into_iter().flatten());
        Ok(items)
    }

    /// `GET /ping`: the key works and the service is up.
    ///
    /// # Errors
    /// 401 for a wrong key, or any transport or API error.
    pub async fn ping(&self) -> Result<(), Error> {
        #[derive(Deserialize)]
        struct Health {
            #[allow(dead_code)] // read to check the shape
            health_status: String,
        }
        let _: Health = self.get("/ping", &[], NotFound::Other).await?;
        Ok(())
    }

    /// Every audience of the account (`GET /lists`, paged).
    ///
    /// # Errors
    /// Any transport or API error.
    pub async fn lists(&self) -> Result<Vec<Audience>, Error> {
        let query = [
            (
                "fields",
                "lists.id,lists.name,lists.stats.member_count,lists.stats.total_contacts,total_items"
                    .to_owned(),
            ),
            ("include_total_contacts", "true".to_owned()),
        ];
        let raw: Vec<RawAudience> = self.all_pages("/lists", &query, NotFound::Other).await?;
        Ok(raw.into_iter().map(Audience::from).collect())
    }

    /// The audience a binding names, by id or exact name.
    ///
    /// # Errors
    /// [`Error::AudienceNotFound`], [`Error::AudienceNameNotFound`],
    /// [`Error::AmbiguousAudienceName`], or any transport or API error.
    pub async fn find_audience(&self, selector: &AudienceSelector) -> Result<Audience, Error> {
        match selector {
            AudienceSelector::Id(id) => {
                let query = [
                    (
                        "fields",
                        "id,name,stats.member_count,stats.total_contacts".to_owned(),
                    ),
                    ("include_total_contacts", "true".to_owned()),
                ];
                let path = format!("/lists/{}", encode(id));
                let raw: RawAudience = self.get(&path, &query, NotFound::Audience(id)).await?;
                Ok(raw.into())
            }
            AudienceSelector::Name(name) => {
                let all = self.lists().await?;
                let matching: Vec<&Audience> = all.iter().filter(|a| &a.name == name).collect();
                match matching.as_slice() {
                    [one] => Ok((*one).clone()),
                    [] => {
                        let names: Vec<String> = all
                            .iter()
                            .take(10)
                            .map(|a| format!("`{}`", a.name))
                            .collect();
                        let hint = if names.is_empty() {
                            " (the account has no audiences)".to_owned()
                        } else {
                            format!(" (audiences: {})", names.join(", "))
                        };
                        Err(Error::AudienceNameNotFound {
                            name: name.clone(),
                            hint,
                        })
                    }
                    many => Err(Error::AmbiguousAudienceName {
                        name: name.clone(),
                        count: many.len(),
                        ids: many
                            .iter()
                            .map(|a| a.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    }),
                }
            }
        }
    }

    /// The audience's merge fields (`GET /lists/{list_id}/merge-fields`, paged).
    ///
    /// # Errors
    /// [`Error::AudienceNotFound`], or any transport or API error.
    pub async fn merge_fields(&self, list_id: &str) -> Result<Vec<MergeField>, Error> {
        let query = [(
            "fields",
            "merge_fields.merge_id,merge_fields.tag,merge_fields.name,merge_fields.type,merge_fields.required,total_items"
                .to_owned(),
        )];
        let path = format!("/lists/{}/merge-fields", encode(list_id));
        self.all_pages(&path, &query, NotFound::Audience(list_id))
            .await
    }

    /// The audience's tags: its static segments (`GET /lists/{list_id}/segments?type=static`,
    /// paged, all of them).
    ///
    /// # Errors
    /// [`Error::AudienceNotFound`], or any transport or API error.
    pub async fn tags(&self, list_id: &str) -> Result<Vec<Tag>, Error> {
        let query = [
            ("type", "static".to_owned()),
            (
                "fields",
                "segments.id,segments.name,segments.member_count,total_items".to_owned(),
            ),
        ];
        let path = format!("/lists/{}/segments", encode(list_id));
        self.all_pages(&path, &query, NotFound::Audience(list_id))
            .await
    }

    /// A cheap version of an audience's members: how many there are and when the most recently
    /// changed one changed (one request: `count=1`, sorted by `last_changed`, descending). Any
    /// added, removed or changed member moves it.
    ///
    /// # Errors
    /// As every read: unknown audience, auth, transport.
    pub async fn latest_change(&self, list_id: &str) -> Result<(u64, Option<String>), Error> {
        let query = [
            ("count", "1".to_owned()),
            ("sort_field", "last_changed".to_owned()),
            ("sort_dir", "DESC".to_owned()),
            ("fields", "members.last_changed,total_items".to_owned()),
        ];
        #[derive(Deserialize)]
        struct Latest {
            #[serde(default)]
            last_changed: Option<String>,
        }
        #[derive(Deserialize)]
        struct Version {
            #[serde(default)]
            members: Vec<Latest>,
            #[serde(default)]
            total_items: u64,
        }
        let path = format!("/lists/{}/members", encode(list_id));
        let version: Version = self.get(&path, &query, NotFound::Audience(list_id)).await?;
        let latest = version
            .members
            .into_iter()
            .next()
            .and_then(|m| m.last_changed);
        Ok((version.total_items, latest))
    }

    /// The number of tags of an audience (one small request).
    ///
    /// # Errors
    /// [`Error::AudienceNotFound`], or any transport or API error.
    pub async fn tag_count(&self, list_id: &str) -> Result<usize, Error> {
        let query = [
            ("type", "static".to_owned()),
            ("count", "1".to_owned()),
            ("fields", "total_items".to_owned()),
        ];
        #[derive(Deserialize)]
        struct Total {
            #[serde(default)]
            total_items: usize,
        }
        let path = format!("/lists/{}/segments", encode(list_id));
        let total: Total = self.get(&path, &query, NotFound::Audience(list_id)).await?;
        Ok(total.total_items)
    }

    /// All tags of one member (`GET /lists/{list_id}/members/{subscriber_hash}/tags`, paged).
    ///
    /// # Errors
    /// Any transport or API error (404 when the member is gone).
    pub async fn member_tags(
        &self,
        list_id: &str,
        subscriber_hash: &str,
    ) -> Result<Vec<MemberTag>, Error> {
        let query = [("fields", "tags.id,tags.name,total_items".to_owned())];
        let path = format!(
            "/lists/{}/members/{}/tags",
            encode(list_id),
            encode(subscriber_hash)
        );
        self.all_pages(&path, &query, NotFound::Other).await
    }
}

fn encode(segment: &str) -> String {
    urlencoding::encode(segment).into_owned()
}

fn api_error(
    method: &str,
    path: &str,
    status: reqwest::StatusCode,
    body: &[u8],
    not_found: NotFound<'_>,
) -> Error {
    let problem = ProblemBody::parse(status, body);
    match (status.as_u16(), not_found) {
        (401, _) => Error::Unauthorized {
            title: problem.title,
            detail: problem.detail,
        },
        (403, _) => Error::Forbidden {
            method: method.to_owned(),
            path: path.to_owned(),
            title: problem.title,
            detail: problem.detail,
        },
        (404, NotFound::Audience(list_id)) => Error::AudienceNotFound {
            list_id: list_id.to_owned(),
        },
        (code, _) => Error::Api {
            method: method.to_owned(),
            path: path.to_owned(),
            status: code,
            title: problem.title,
            detail: problem.detail,
            errors: problem.errors,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_centre_comes_from_the_key_suffix() {
        assert_eq!(
            data_center("0123456789abcdef0123456789abcdef-us21").unwrap(),
            "us21"
        );
        for bad in [
            "0123456789abcdef",
            "abc-",
            "-us21",
            "abc-21",
            "abc-us",
            "abc-US21",
            "ab c-us1",
        ] {
            let err = data_center(bad).unwrap_err();
            assert!(matches!(err, Error::MalformedKey { .. }), "{bad}: {err:?}");
            assert!(
                !err.to_string().contains(bad),
                "the message must not show the key"
            );
        }
        assert!(matches!(data_center(" "), Err(Error::MissingKey)));
    }

    #[test]
    fn the_base_url_is_derived_from_the_key_unless_given() {
        let key = || SecretString::from("0123456789abcdef0123456789abcdef-us6");
        let client = Client::builder().api_key(key()).build().unwrap();
        assert_eq!(client.base_url(), "https://us6.api.mailchimp.com/3.0");
        let client = Client::builder()
            .api_key(key())
            .base_url(Some("http://127.0.0.1:9/3.0/".into()))
            .build()
            .unwrap();
        assert_eq!(client.base_url(), "http://127.0.0.1:9/3.0");
        assert!(matches!(
            Client::builder()
                .api_key(key())
                .base_url(Some("ftp://x".into()))
                .build(),
            Err(Error::BaseUrl { .. })
        ));
        let debug = format!("{client:?}");
        assert!(!debug.contains("0123456789abcdef"), "{debug}");
    }
}
