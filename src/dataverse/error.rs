//! The Dataverse client's errors, and the reading of Dataverse and Entra ID error bodies.
//!
//! Invariants: no variant carries a secret; Display says what failed at this layer only, with
//! the service's own code and message where it sent one.

use serde::Deserialize;

/// What went wrong talking to Dataverse or to Microsoft Entra ID.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting of the client is missing or malformed.
    #[error("invalid Dataverse setting `{name}`: {message}")]
    Setting {
        /// The setting (as named in the config file).
        name: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// No response came at all (connection refused, timeout, TLS).
    #[error("cannot reach `{url}`")]
    Transport {
        /// The URL, without query.
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The token request got no answer (connection, timeout), retries included.
    #[error(
        "the token request to `{host}` failed after {attempts} tries of at most {timeout_s}s each (`{url}`)"
    )]
    TokenTransport {
        /// The token endpoint's host.
        host: String,
        /// The token endpoint, without query.
        url: String,
        /// Tries made.
        attempts: u32,
        /// The deadline of each try, in seconds.
        timeout_s: u64,
        #[source]
        source: reqwest::Error,
    },
    /// Entra ID refused to issue a token.
    #[error("Microsoft Entra ID refused a token ({status}, `{code}`): {message}{hint}")]
    Token {
        /// HTTP status of the token response.
        status: u16,
        /// The OAuth `error` code, e.g. `invalid_client`.
        code: String,
        /// The first line of `error_description`.
        message: String,
        /// Which setting to check, when the code tells.
        hint: String,
    },
    /// Dataverse answered with an error status.
    #[error("Dataverse answered {status} to `{method} {path}`: {message}{code_suffix}", code_suffix = code_suffix(code))]
    Api {
        /// HTTP status.
        status: u16,
        /// `error.code`, often a hex code such as `0x80040217`; may be empty.
        code: String,
        /// `error.message`.
        message: String,
        /// The request method.
        method: String,
        /// The request path (relative to the Web API root), without query.
        path: String,
    },
    /// A response could not be understood.
    #[error("unexpected response to `{method} {path}`: {message}")]
    Response {
        /// The request method.
        method: String,
        /// The request path.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// The caller asked for something the client refuses before sending.
    #[error("invalid request: {message}")]
    Request {
        /// What was wrong.
        message: String,
    },
}

fn code_suffix(code: &str) -> String {
    match (code.is_empty(), meaning(code)) {
        (true, _) => String::new(),
        (false, Some(meaning)) => format!(" (code `{code}`: {meaning})"),
        (false, None) => format!(" (code `{code}`)"),
    }
}

/// Codes whose answer is the same however often the request is sent: sending again does not
/// help, so they fail at once. `0x80040216` "An unexpected error occurred." is *not* here: the
/// service answers it to passing failures as well. Sources: PD `webapi/compose-http-requests-handle-errors.md`,
/// `reference/web-service-error-codes`, `api-limits.md` (see `docs/dataverse.md` §7, §11).
const DETERMINISTIC: &[(&str, &str)] = &[
    ("0x80040333", "a duplicate detection rule matched"),
    (
        "0x80040265",
        "a plug-in or custom workflow refused the operation",
    ),
    ("0x80048d19", "the payload does not fit the column types"),
    (
        "0x80044331",
        "a validation error (e.g. a value longer than the column allows)",
    ),
    (
        "0x80040237",
        "a record with matching key values already exists",
    ),
    ("0x80040217", "the record does not exist"),
    ("0x80040220", "the caller lacks a privilege"),
    ("0x80048458", "the record is not a member of the list"),
];

/// What a deterministic Dataverse error code means; `None` for codes that may be transient
/// (or unknown).
#[must_use]
pub fn meaning(code: &str) -> Option<&'static str> {
    DETERMINISTIC
        .iter()
        .find(|(c, _)| c.eq_ignore_ascii_case(code.trim()))
        .map(|(_, m)| *m)
}

/// Whether an error body names a deterministic code (see [`meaning`]): sending it again would
/// get the same answer.
#[must_use]
pub fn is_deterministic_body(body: &[u8]) -> bool {
    std::str::from_utf8(body)
        .ok()
        .is_some_and(|text| meaning(&parse_api_error(text).code).is_some())
}

/// Dataverse's hex code for "a record with matching key values already exists".
pub const DUPLICATE_RECORD: &str = "0x80040237";
/// Dataverse's hex code for "record does not exist".
pub const NOT_FOUND: &str = "0x80040217";
/// `CannotRemoveNonListMember`: "Specified Item not a member of the specified List." (PD
/// `reference/web-service-error-codes`).
pub const NOT_A_LIST_MEMBER: &str = "0x80048458";

impl Error {
    /// The HTTP status, when Dataverse or Entra answered.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::Token { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The record already exists (a create with an id in use, a link that is already there).
    #[must_use]
    pub fn is_duplicate(&self) -> bool {
        match self {
            Self::Api { code, message, .. } => is_duplicate(code, message),
            _ => false,
        }
    }

    /// The record (or the metadata item) does not exist.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        match self {
            Self::Api { status, code, .. } => *status == 404 || code == NOT_FOUND,
            _ => false,
        }
    }
}

/// Whether an error code and message say "duplicate".
#[must_use]
pub fn is_duplicate(code: &str, message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    code.eq_ignore_ascii_case(DUPLICATE_RECORD)
        || lower.contains("duplicate key")
        || lower.contains("matching key values already exists")
}

/// The `{"error":{"code","message"}}` body of a Dataverse error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiError {
    /// `error.code` (may be empty).
    pub code: String,
    /// `error.message`, or the raw body start when it was not JSON.
    pub message: String,
}

#[derive(Deserialize)]
struct Envelope {
    error: Inner,
}

#[derive(Deserialize)]
struct Inner {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Read a Dataverse error body; anything else becomes a short excerpt of the body.
#[must_use]
pub fn parse_api_error(body: &str) -> ApiError {
    match serde_json::from_str::<Envelope>(body) {
        Ok(envelope) => ApiError {
            code: envelope.error.code,
            message: envelope.error.message,
        },
        Err(_) => ApiError {
            code: String::new(),
            message: excerpt(body),
        },
    }
}

/// The first 300 characters of a body, on one line, or `(empty body)`.
#[must_use]
pub fn excerpt(body: &str) -> String {
    let line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return "(empty body)".to_owned();
    }
    let mut out: String = line.chars().take(300).collect();
    if line.chars().count() > 300 {
        out.push('…');
    }
    out
}

#[derive(Deserialize)]
struct EntraBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// Turn an Entra ID token error body into [`Error::Token`], naming the setting to check.
#[must_use]
pub fn token_error(status: u16, body: &str) -> Error {
    let (code, description) = match serde_json::from_str::<EntraBody>(body) {
        Ok(parsed) if !parsed.error.is_empty() => (parsed.error, parsed.error_description),
        _ => (String::new(), excerpt(body)),
    };
    let message = description
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let hint = token_hint(&code, &message)
        .map(|setting| format!(" (check `{setting}`)"))
        .unwrap_or_default();
    Error::Token {
        status,
        code,
        message,
        hint,
    }
}

/// The config setting an Entra ID error points at.
fn token_hint(code: &str, message: &str) -> Option<&'static str> {
    let aadsts = message
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find(|word| word.starts_with("AADSTS"))
        .unwrap_or_default();
    match aadsts {
        "AADSTS7000215" | "AADSTS7000222" => Some("dataverse.client_secret"),
        "AADSTS700016" => Some("dataverse.client_id"),
        "AADSTS90002" | "AADSTS90013" | "AADSTS900023" => Some("dataverse.tenant_id"),
        "AADSTS500011" | "AADSTS70011" | "AADSTS1002012" => Some("dataverse.url"),
        _ => match code {
            "invalid_client" | "unauthorized_client" => {
                Some("dataverse.client_id and dataverse.client_secret")
            }
            "invalid_scope" | "invalid_resource" => Some("dataverse.url"),
            "invalid_tenant" | "invalid_request" if message.contains("tenant") => {
                Some("dataverse.tenant_id")
            }
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataverse_error_bodies_are_read() {
        let parsed = parse_api_error(
            r#"{"error":{"code":"0x80040217","message":"contact With Id = 1 Does Not Exist"}}"#,
        );
        assert_eq!(parsed.code, "0x80040217");
        assert_eq!(parsed.message, "contact With Id = 1 Does Not Exist");
        let raw = parse_api_error("<html>\n  Bad gateway </html>");
        assert_eq!(raw.code, "");
        assert_eq!(raw.message, "<html> Bad gateway </html>");
        assert_eq!(parse_api_error("").message, "(empty body)");
    }

    #[test]
    fn wrong_secret_names_the_setting() {
        let err = token_error(
            401,
            r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x","error_codes":[7000215]}"#,
        );
        let text = err.to_string();
        assert!(text.contains("`invalid_client`"), "{text}");
        assert!(
            text.contains("AADSTS7000215: Invalid client secret provided."),
            "{text}"
        );
        assert!(text.contains("check `dataverse.client_secret`"), "{text}");
        assert!(!text.contains("Trace ID"), "{text}");
        let unknown_app = token_error(
            400,
            r#"{"error":"unauthorized_client","error_description":"AADSTS700016: Application with identifier 'x' was not found"}"#,
        );
        assert!(unknown_app.to_string().contains("`dataverse.client_id`"));
    }

    #[test]
    fn deterministic_codes_are_named_and_not_retried() {
        let body = br#"{"error":{"code":"0x80040333","message":"A record was not created or updated because a duplicate of the current record already exists."}}"#;
        assert!(is_deterministic_body(body));
        assert!(!is_deterministic_body(
            br#"{"error":{"code":"0x80072321","message":"Combined execution time of incoming requests exceeded limit"}}"#
        ));
        assert!(!is_deterministic_body(b"<html>gateway</html>"));
        let err = Error::Api {
            status: 500,
            code: "0x80040265".to_owned(),
            message: "plug-in said no".to_owned(),
            method: "POST".to_owned(),
            path: "contacts".to_owned(),
        };
        assert!(
            err.to_string()
                .contains("a plug-in or custom workflow refused"),
            "{err}"
        );
    }

    #[test]
    fn duplicates_are_recognised_by_code_or_message() {
        assert!(is_duplicate("0x80040237", ""));
        assert!(is_duplicate("", "Cannot insert duplicate key."));
        assert!(!is_duplicate("0x80040217", "Does Not Exist"));
    }
}
