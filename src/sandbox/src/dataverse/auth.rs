//! The Microsoft Entra ID side: the OAuth 2.0 client-credentials token endpoint
//! (`POST /{tenant}/oauth2/v2.0/token`), the OpenID configuration MSAL reads first, and the
//! bearer-token check of the data endpoints.
//!
//! Invariants: only the configured client id and secret get a token, only for the scope
//! `{environment url}/.default`; a token is valid until its `expires_in` has passed; errors have
//! Entra ID's shape (`error`, `error_description` starting with an `AADSTS` code, `error_codes`,
//! `timestamp`, `trace_id`, `correlation_id`). Secrets and tokens are never logged.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use uuid::Uuid;

/// The default tenant id the sandbox prints.
pub const DEFAULT_TENANT: &str = "11111111-1111-4111-8111-111111111111";
/// The default client id.
pub const DEFAULT_CLIENT_ID: &str = "22222222-2222-4222-8222-222222222222";
/// The default client secret (a sandbox value, not a real secret).
pub const DEFAULT_CLIENT_SECRET: &str = "sandbox-dataverse-secret";
/// The application user's `systemuserid` (`WhoAmI`).
pub const SANDBOX_USER_ID: Uuid = Uuid::from_u128(0x3333_3333_3333_4333_8333_3333_3333_3333);
/// The business unit (`WhoAmI`).
pub const BUSINESS_UNIT_ID: Uuid = Uuid::from_u128(0x4444_4444_4444_4444_8444_4444_4444_4444);
/// The organization (`WhoAmI`).
pub const ORGANIZATION_ID: Uuid = Uuid::from_u128(0x5555_5555_5555_4555_8555_5555_5555_5555);

/// Issued tokens and the credentials that may get one.
#[derive(Debug)]
pub struct Auth {
    /// Tenant id (any tenant in the path is accepted only if it is this one).
    pub tenant: String,
    /// Accepted client id.
    pub client_id: String,
    client_secret: secrecy::SecretString,
    /// Lifetime of new tokens.
    pub lifetime: Duration,
    tokens: HashMap<String, Instant>,
}

/// A refusal by the token endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenError {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Value,
}

fn entra_error(status: u16, error: &str, code: u32, text: &str) -> TokenError {
    let trace = Uuid::new_v4();
    let correlation = Uuid::new_v4();
    let timestamp = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
    TokenError {
        status,
        body: json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {timestamp}"
            ),
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace.to_string(),
            "correlation_id": correlation.to_string(),
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    }
}

impl Auth {
    /// Credentials that may get a token.
    #[must_use]
    pub fn new(tenant: &str, client_id: &str, client_secret: &str, lifetime: Duration) -> Self {
        Self {
            tenant: tenant.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: secrecy::SecretString::from(client_secret.to_owned()),
            lifetime,
            tokens: HashMap::new(),
        }
    }

    /// The client secret (for `State::env`, which prints it as the sandbox's own value).
    #[must_use]
    pub fn client_secret(&self) -> &str {
        use secrecy::ExposeSecret as _;
        self.client_secret.expose_secret()
    }

    /// Answer a token request (form fields, plus HTTP Basic credentials if sent).
    ///
    /// # Errors
    /// Entra ID's refusal for a wrong tenant, client, secret, scope or grant.
    pub fn issue(
        &mut self,
        tenant: &str,
        form: &HashMap<String, String>,
        basic: Option<(String, String)>,
        env_url: &str,
    ) -> Result<Value, TokenError> {
        if !tenant.eq_ignore_ascii_case(&self.tenant) && tenant != "organizations" {
            return Err(entra_error(
                400,
                "invalid_request",
                90002,
                &format!(
                    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
                ),
            ));
        }
        match form.get("grant_type").map(String::as_str) {
            Some("client_credentials") => {}
            Some(other) => {
                return Err(entra_error(
                    400,
                    "unsupported_grant_type",
                    70003,
                    &format!("The app requested an unsupported grant type '{other}'."),
                ));
            }
            None => {
                return Err(entra_error(
                    400,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'grant_type'.",
                ));
            }
        }
        let (client_id, secret) = match (basic, form.get("client_id"), form.get("client_secret")) {
            (Some((id, secret)), _, _) => (id, Some(secret)),
            (None, Some(id), secret) => (id.clone(), secret.cloned()),
            (None, None, _) => {
                return Err(entra_error(
                    400,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'client_id'.",
                ));
            }
        };
        if client_id != self.client_id {
            return Err(entra_error(
                400,
                "unauthorized_client",
                700016,
                &format!(
                    "Application with identifier '{client_id}' was not found in the directory '{}'.",
                    self.tenant
                ),
            ));
        }
        let Some(secret) = secret else {
            return Err(entra_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ));
        };
        if secret != self.client_secret() {
            return Err(entra_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app.",
            ));
        }
        let scope = form.get("scope").map(String::as_str).unwrap_or_default();
        if !scope_matches(scope, env_url) {
            return Err(entra_error(
                400,
                "invalid_scope",
                1002012,
                &format!(
                    "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            ));
        }
        let now = chrono::Utc::now().timestamp();
        let secs = self.lifetime.as_secs();
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"typ":"JWT","alg":"none"}"#);
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            json!({
                "aud": env_url.trim_end_matches('/'),
                "iss": format!("https://sts.windows.net/{}/", self.tenant),
                "iat": now,
                "nbf": now,
                "exp": now + i64::try_from(secs).unwrap_or(i64::MAX / 2),
                "appid": self.client_id,
                "tid": self.tenant,
                "oid": SANDBOX_USER_ID.to_string(),
                "jti": Uuid::new_v4().to_string(),
            })
            .to_string(),
        );
        let token = format!("{header}.{payload}.{}", Uuid::new_v4().simple());
        self.tokens.retain(|_, expiry| *expiry > Instant::now());
        self.tokens
            .insert(token.clone(), Instant::now() + self.lifetime);
        Ok(json!({
            "token_type": "Bearer",
            "expires_in": secs,
            "ext_expires_in": secs,
            "access_token": token,
        }))
    }

    /// Check a bearer token: `Ok` when valid, else the reason (`expired` or `invalid`).
    ///
    /// # Errors
    /// Missing, unknown or expired token.
    pub fn check(&self, authorization: Option<&str>) -> Result<(), &'static str> {
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or("missing")?;
        match self.tokens.get(token) {
            Some(expiry) if *expiry > Instant::now() => Ok(()),
            Some(_) => Err("expired"),
            None => Err("invalid"),
        }
    }

    /// Forget every token (tests of refresh).
    pub fn revoke_all(&mut self) {
        self.tokens.clear();
    }
}

/// Whether a scope is `{env url}/.default` for this environment (trailing slash and
/// `localhost`/`127.0.0.1` tolerated).
#[must_use]
pub fn scope_matches(scope: &str, env_url: &str) -> bool {
    let normalize = |s: &str| {
        s.trim_end_matches('/')
            .replace("://localhost:", "://127.0.0.1:")
            .to_ascii_lowercase()
    };
    scope.split_whitespace().any(|one| {
        one.strip_suffix("/.default")
            .is_some_and(|resource| normalize(resource) == normalize(env_url))
    })
}

/// The OpenID configuration document for a tenant, pointing at this server.
#[must_use]
pub fn openid_configuration(base_url: &str, tenant: &str) -> Value {
    json!({
        "token_endpoint": format!("{base_url}/{tenant}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base_url}/{tenant}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{base_url}/{tenant}/v2.0"),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": format!("{base_url}/{tenant}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base_url}/{tenant}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base_url}/{tenant}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid"],
        "kerberos_endpoint": format!("{base_url}/{tenant}/kerberos"),
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn issues_only_to_the_configured_client_and_scope() {
        let env = "http://127.0.0.1:9";
        let mut auth = Auth::new(DEFAULT_TENANT, "cid", "sec", Duration::from_secs(60));
        let good = form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "cid"),
            ("client_secret", "sec"),
            ("scope", "http://localhost:9/.default"),
        ]);
        let token = auth.issue(DEFAULT_TENANT, &good, None, env).unwrap();
        let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());
        assert!(auth.check(Some(&bearer)).is_ok());
        assert_eq!(auth.check(None), Err("missing"));
        let mut bad = good.clone();
        bad.insert("client_secret".into(), "nope".into());
        let err = auth.issue(DEFAULT_TENANT, &bad, None, env).unwrap_err();
        assert_eq!(err.status, 401);
        assert_eq!(err.body["error_codes"][0], 7_000_215);
        assert!(
            err.body["error_description"]
                .as_str()
                .unwrap()
                .starts_with("AADSTS7000215:")
        );
        let mut scope = good.clone();
        scope.insert(
            "scope".into(),
            "https://other.crm.dynamics.com/.default".into(),
        );
        assert_eq!(
            auth.issue(DEFAULT_TENANT, &scope, None, env)
                .unwrap_err()
                .body["error"],
            "invalid_scope"
        );
    }
}
