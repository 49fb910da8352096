//! The one retry and backoff policy both API clients share.
//!
//! # Guarantees
//! - Retries connection errors, timeouts, 408, 429 and 5xx (500, 502, 503, 504), at most
//!   `max_attempts` tries in all, with exponential backoff and full jitter.
//! - A `Retry-After` header (seconds or HTTP date) is honoured: the wait is at least that long.
//! - A request that is not idempotent is retried only when the server certainly did not act on it:
//!   a 429 (refused before processing) or a connection that could not be made. A 5xx or a timeout
//!   on such a request is returned to the caller, which must re-read before trying again.
//! - A 5xx whose body the caller's classifier calls *permanent* (a deterministic error code such
//!   as duplicate detection or a plug-in error) is returned at once: sending it again would get
//!   the same answer ([`RetryPolicy::send_classified`]).
//! - Every request and every 429 is counted in [`HttpStats`] (for `/metrics` and benchmarks).

pub mod gate;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode};

/// Counters of what a client sent and how the service answered.
#[derive(Debug, Default)]
pub struct HttpStats {
    requests: AtomicU64,
    throttled: AtomicU64,
    retries: AtomicU64,
}

impl HttpStats {
    /// Requests sent, retries included.
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
    /// Responses with status 429.
    #[must_use]
    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }
    /// Requests sent again after a transient failure.
    #[must_use]
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
}

/// How often and how long to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Tries in all, the first one included.
    pub max_attempts: u32,
    /// The backoff before the second try; it doubles with every further try.
    pub base_delay: Duration,
    /// No single wait is longer (a `Retry-After` above it is still honoured up to `max_retry_after`).
    pub max_delay: Duration,
    /// A `Retry-After` longer than this is treated as a failure rather than waited out.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

/// Whether the request may safely be sent twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// GET, PUT, DELETE, a PATCH of fixed values, a create with a client-chosen id.
    Idempotent,
    /// A POST whose repetition could act twice.
    NotIdempotent,
}

/// Statuses worth another try.
#[must_use]
pub fn is_retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// The wait a `Retry-After` header asks for, in seconds or as an HTTP date.
#[must_use]
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

impl RetryPolicy {
    /// The wait before try `attempt + 1` (attempt counts from 1): exponential with full jitter,
    /// and never shorter than what the server asked for.
    #[must_use]
    pub fn backoff(&self, attempt: u32, server_asked: Option<Duration>) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let cap = exp.min(self.max_delay);
        let jittered = rand::rng().random_range(cap / 2..=cap);
        match server_asked {
            Some(asked) => asked.max(jittered / 4).min(self.max_retry_after),
            None => jittered,
        }
    }

    /// Send the request that `make` builds, retrying as the module doc says. The final response
    /// is returned whatever its status; the caller maps statuses to its own errors.
    ///
    /// # Errors
    /// The transport error of the last try when no response came at all.
    pub async fn send<F>(
        &self,
        stats: &Arc<HttpStats>,
        idempotency: Idempotency,
        make: F,
    ) -> Result<Response, reqwest::Error>
    where
        F: Fn() -> RequestBuilder,
    {
        self.send_classified(stats, idempotency, make, &|_| false)
            .await
    }

    /// [`Self::send`], where a 5xx answer whose body `permanent` accepts is returned at once
    /// instead of retried (its body is read and handed back unchanged).
    ///
    /// # Errors
    /// The transport error of the last try when no response came at all.
    pub async fn send_classified<F>(
        &self,
        stats: &Arc<HttpStats>,
        idempotency: Idempotency,
        make: F,
        permanent: &(dyn Fn(&[u8]) -> bool + Sync),
    ) -> Result<Response, reqwest::Error>
    where
        F: Fn() -> RequestBuilder,
    {
        let mut attempt = 1;
        loop {
            stats.requests.fetch_add(1, Ordering::Relaxed);
            let result = make().send().await;
            let last = attempt >= self.max_attempts;
            match result {
                Ok(response) => {
                    let status = response.status();
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        stats.throttled.fetch_add(1, Ordering::Relaxed);
                    }
                    let may_retry = status == StatusCode::TOO_MANY_REQUESTS
                        || (idempotency == Idempotency::Idempotent && is_retryable_status(status));
                    if !may_retry || last || !gate::open() {
                        return Ok(response);
                    }
                    let response = if status.is_server_error() {
                        match Buffered::read(response).await {
                            Ok(read) if permanent(&read.body) => {
                                return Ok(read.into_response());
                            }
                            Ok(read) => read.into_response(),
                            Err(err) if last => return Err(err),
                            Err(_) => {
                                stats.retries.fetch_add(1, Ordering::Relaxed);
                                attempt += 1;
                                tokio::time::sleep(self.backoff(attempt, None)).await;
                                continue;
                            }
                        }
                    } else {
                        response
                    };
                    let asked = retry_after(response.headers());
                    if asked.is_some_and(|d| d > self.max_retry_after) {
                        return Ok(response);
                    }
                    let wait = self.backoff(attempt, asked);
                    tracing::warn!(url = %redact(response.url()), status = status.as_u16(), attempt, of = self.max_attempts, wait_ms = wait.as_millis() as u64, "transient response, retrying");
                    drop(response);
                    tokio::time::sleep(wait).await;
                }
                Err(err) => {
                    let transient = err.is_connect()
                        || (idempotency == Idempotency::Idempotent
                            && (err.is_timeout() || err.is_request() || is_io_error(&err)));
                    if !transient || last || !gate::open() {
                        return Err(err);
                    }
                    let wait = self.backoff(attempt, None);
                    let url = err.url().map(redact).unwrap_or_default();
                    let why = if err.is_timeout() {
                        "no answer within the deadline"
                    } else if err.is_connect() {
                        "could not connect"
                    } else {
                        "the connection failed"
                    };
                    tracing::warn!(%url, error = %err.without_url(), why, attempt, of = self.max_attempts, wait_ms = wait.as_millis() as u64, "transport error, retrying");
                    tokio::time::sleep(wait).await;
                }
            }
            stats.retries.fetch_add(1, Ordering::Relaxed);
            attempt += 1;
        }
    }
}

/// A response whose body has been read.
struct Buffered {
    status: StatusCode,
    version: reqwest::Version,
    headers: HeaderMap,
    url: reqwest::Url,
    body: bytes::Bytes,
}

impl Buffered {
    async fn read(response: Response) -> Result<Self, reqwest::Error> {
        Ok(Self {
            status: response.status(),
            version: response.version(),
            headers: response.headers().clone(),
            url: response.url().clone(),
            body: response.bytes().await?,
        })
    }

    /// The response again, body included (its URL kept for messages).
    fn into_response(self) -> Response {
        use reqwest::ResponseBuilderExt as _;
        let mut builder = http::Response::builder()
            .status(self.status)
            .version(self.version)
            .url(self.url);
        if let Some(headers) = builder.headers_mut() {
            *headers = self.headers;
        }
        match builder.body(self.body.clone()) {
            Ok(rebuilt) => Response::from(rebuilt),
            // Unreachable: every part came from a valid response.
            Err(_) => Response::from(http::Response::new(self.body)),
        }
    }
}

fn is_io_error(err: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if cause.downcast_ref::<std::io::Error>().is_some() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// A URL with any user info and query removed, safe for logs.
#[must_use]
pub fn redact(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        let later = std::time::SystemTime::now() + Duration::from_secs(120);
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap(),
        );
        let got = retry_after(&headers).unwrap();
        assert!(
            got > Duration::from_secs(100) && got <= Duration::from_secs(120),
            "{got:?}"
        );
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_the_server() {
        let policy = RetryPolicy::default();
        for attempt in 1..20 {
            let wait = policy.backoff(attempt, None);
            assert!(wait <= policy.max_delay);
        }
        assert!(policy.backoff(1, None) <= Duration::from_millis(200));
        assert!(policy.backoff(1, Some(Duration::from_secs(5))) >= Duration::from_secs(5));
        assert_eq!(
            policy.backoff(1, Some(Duration::from_secs(9999))),
            policy.max_retry_after
        );
    }

    /// A server answering every request with `500` and `body`; returns its URL and a counter.
    async fn failing_server(body: &'static str) -> (String, Arc<AtomicU64>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicU64::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::Relaxed);
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        (url, hits)
    }

    #[tokio::test]
    async fn permanent_server_errors_are_returned_at_once_with_their_body() {
        let policy = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            ..RetryPolicy::default()
        };
        let http = reqwest::Client::new();
        let stats = Arc::new(HttpStats::default());
        let body = r#"{"error":{"code":"0x80040333","message":"duplicate"}}"#;
        let (url, hits) = failing_server(body).await;
        let permanent = |b: &[u8]| b.windows(10).any(|w| w == b"0x80040333");
        let send = |url: String| {
            let (policy, stats, http) = (&policy, &stats, &http);
            async move {
                policy
                    .send_classified(
                        stats,
                        Idempotency::Idempotent,
                        || http.get(&url),
                        &permanent,
                    )
                    .await
                    .unwrap()
            }
        };
        let response = send(url).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.url().as_str().ends_with("/x"));
        assert_eq!(response.text().await.unwrap(), body);
        assert_eq!(hits.load(Ordering::Relaxed), 1);
        // A transient one is tried again, up to the limit.
        let (url, hits) = failing_server(r#"{"error":{"code":"","message":"busy"}}"#).await;
        let response = send(url).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(hits.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn retryable_statuses_are_the_transient_ones() {
        let retried: Vec<u16> = (100..600)
            .filter(|&code| StatusCode::from_u16(code).is_ok_and(is_retryable_status))
            .collect();
        assert_eq!(retried, vec![408, 429, 500, 502, 503, 504]);
    }
}
