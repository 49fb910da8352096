//! OAuth 2.0 client credentials against Microsoft Entra ID: one token, cached, refreshed before
//! it expires and once more when Dataverse answers 401.
//!
//! Invariants: the client secret and the access token live only in [`SecretString`]s and are
//! never logged; at most one token request is in flight (callers wait on the cache's lock).

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::error::{Error, token_error};
use crate::http::{HttpStats, Idempotency, RetryPolicy};

/// The default token endpoint of a tenant.
#[must_use]
pub fn default_token_url(tenant_id: &str) -> String {
    format!("https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token")
}

/// The deadline of one token request, connection included: Entra ID answers in well under a
/// second, so a silent endpoint fails a run in seconds rather than minutes.
pub const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Tries of a token request in all (the policy's, at most this many): with [`TOKEN_TIMEOUT`] a
/// token endpoint that never answers fails after about half a minute.
pub const TOKEN_ATTEMPTS: u32 = 3;

/// How long before its expiry a token is replaced: a tenth of its lifetime, at most five minutes.
#[must_use]
pub fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(Duration::from_secs(300))
}

/// Issues and caches access tokens for one environment.
pub struct TokenSource {
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    client_secret: SecretString,
    scope: String,
    policy: RetryPolicy,
    stats: Arc<HttpStats>,
    cached: Mutex<Option<Cached>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

struct Cached {
    token: SecretString,
    refresh_at: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: String,
    expires_in: Option<serde_json::Value>,
}

impl TokenSource {
    /// A token source for `scope` (the environment URL + `/.default`).
    #[must_use]
    pub fn new(
        http: reqwest::Client,
        token_url: String,
        client_id: String,
        client_secret: SecretString,
        scope: String,
        policy: RetryPolicy,
    ) -> Self {
        Self {
            http,
            token_url,
            client_id,
            client_secret,
            scope,
            policy: RetryPolicy {
                max_attempts: policy.max_attempts.clamp(1, TOKEN_ATTEMPTS),
                ..policy
            },
            stats: Arc::new(HttpStats::default()),
            cached: Mutex::new(None),
        }
    }

    /// Counters of the token requests sent.
    #[must_use]
    pub fn stats(&self) -> Arc<HttpStats> {
        Arc::clone(&self.stats)
    }

    /// A valid token: the cached one, or a new one when it is missing or about to expire.
    ///
    /// # Errors
    /// Entra ID refused (with the setting to check) or could not be reached.
    pub async fn token(&self) -> Result<SecretString, Error> {
        let mut cached = self.cached.lock().await;
        if let Some(current) = cached.as_ref() {
            if Instant::now() < current.refresh_at {
                return Ok(current.token.clone());
            }
        }
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Forget `used` (Dataverse refused it with 401) so that the next [`Self::token`] fetches
    /// anew. A token already replaced by another task is left alone.
    pub async fn invalidate(&self, used: &SecretString) {
        let mut cached = self.cached.lock().await;
        if cached
            .as_ref()
            .is_some_and(|c| c.token.expose_secret() == used.expose_secret())
        {
            *cached = None;
        }
    }

    async fn fetch(&self) -> Result<Cached, Error> {
        let form = [
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose_secret()),
            ("scope", self.scope.as_str()),
            ("grant_type", "client_credentials"),
        ];
        let started = Instant::now();
        let response = self
            .policy
            .send(&self.stats, Idempotency::Idempotent, || {
                self.http
                    .post(&self.token_url)
                    .timeout(TOKEN_TIMEOUT)
                    .header(reqwest::header::ACCEPT, "application/json")
                    .form(&form)
            })
            .await
            .map_err(|source| Error::TokenTransport {
                host: reqwest::Url::parse(&self.token_url)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_default(),
                url: self.token_url.clone(),
                attempts: self.policy.max_attempts,
                timeout_s: TOKEN_TIMEOUT.as_secs(),
                source: source.without_url(),
            })?;
        let status = response.status();
        let body = response.text().await.map_err(|source| Error::Transport {
            url: self.token_url.clone(),
            source: source.without_url(),
        })?;
        if !status.is_success() {
            return Err(token_error(status.as_u16(), &body));
        }
        let parsed: TokenResponse = serde_json::from_str(&body).map_err(|err| Error::Token {
            status: status.as_u16(),
            code: String::new(),
            message: format!("the token response is not understood: {err}"),
            hint: String::new(),
        })?;
        if !parsed.token_type.is_empty() && !parsed.token_type.eq_ignore_ascii_case("bearer") {
            return Err(Error::Token {
                status: status.as_u16(),
                code: String::new(),
                message: format!("token type `{}` is not Bearer", parsed.token_type),
                hint: String::new(),
            });
        }
        let lifetime = parse_expires_in(parsed.expires_in.as_ref());
        tracing::debug!(
            lifetime_s = lifetime.as_secs(),
            "obtained a Dataverse access token"
        );
        Ok(Cached {
            token: SecretString::from(parsed.access_token),
            refresh_at: started + lifetime.saturating_sub(refresh_margin(lifetime)),
        })
    }
}

/// `expires_in` in seconds, as a number or a string (older endpoints send strings); one hour
/// when absent or unreadable.
fn parse_expires_in(value: Option<&serde_json::Value>) -> Duration {
    let secs = match value {
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match secs {
        Some(s) if s.is_finite() && s >= 0.0 => Duration::from_secs_f64(s),
        _ => Duration::from_secs(3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_refreshed_early_but_not_too_early() {
        assert_eq!(
            refresh_margin(Duration::from_secs(3599)),
            Duration::from_secs(300)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(2)),
            Duration::from_millis(200)
        );
    }

    #[test]
    fn expires_in_is_read_as_number_or_string() {
        let n = serde_json::json!(3599);
        let s = serde_json::json!("120");
        assert_eq!(parse_expires_in(Some(&n)), Duration::from_secs(3599));
        assert_eq!(parse_expires_in(Some(&s)), Duration::from_secs(120));
        assert_eq!(parse_expires_in(None), Duration::from_secs(3600));
    }

    #[test]
    fn debug_shows_no_secret() {
        let source = TokenSource::new(
            reqwest::Client::new(),
            default_token_url("t"),
            "app".into(),
            SecretString::from("hunter2"),
            "https://x/.default".into(),
            RetryPolicy::default(),
        );
        let text = format!("{source:?}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
