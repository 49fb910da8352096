//! What can go wrong talking to Mailchimp, worded for the person who must fix it: a malformed
//! key, a refused key (401), missing rights (403), an unknown audience (404, named), any other
//! problem+json answer with its `title`, `detail` and `errors[]`, no answer at all, an answer that
//! is not the expected JSON, and an audience that changed too fast to be read.
//!
//! No variant ever holds the API key.

use serde::Deserialize;

/// One field error of an "Invalid Resource" answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FieldError {
    /// The field, e.g. `LNAME`.
    #[serde(default)]
    pub field: String,
    /// What is wrong with it.
    #[serde(default)]
    pub message: String,
}

/// Mailchimp client errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No API key was given.
    #[error("no Mailchimp API key was given (set `MAILCHIMP_API_KEY`)")]
    MissingKey,
    /// The API key does not look like a Mailchimp key.
    #[error("the Mailchimp API key is malformed: {reason}")]
    MalformedKey {
        /// What is wrong (never the key itself).
        reason: &'static str,
    },
    /// The base URL override is not a usable URL.
    #[error("the Mailchimp base URL `{url}` is not an http(s) URL")]
    BaseUrl {
        /// The URL as given.
        url: String,
    },
    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client")]
    Http(#[source] reqwest::Error),
    /// 401: the key is wrong, revoked, or belongs to another data centre.
    #[error(
        "the Mailchimp API key was refused (401 `{title}`): {detail} Check `MAILCHIMP_API_KEY` and its `-usNN` suffix"
    )]
    Unauthorized {
        /// Mailchimp's title, e.g. `API Key Invalid`.
        title: String,
        /// Mailchimp's detail.
        detail: String,
    },
    /// 403: the key's user may not do this.
    #[error("the Mailchimp API key may not `{method} {path}` (403 `{title}`): {detail}")]
    Forbidden {
        /// HTTP method.
        method: String,
        /// Path below the API root.
        path: String,
        /// Mailchimp's title.
        title: String,
        /// Mailchimp's detail.
        detail: String,
    },
    /// 404 on an audience.
    #[error(
        "the Mailchimp audience `{list_id}` was not found: the id is wrong, or the API key belongs to another account (see `audience-sync audiences`)"
    )]
    AudienceNotFound {
        /// The audience id asked for.
        list_id: String,
    },
    /// No audience has this exact name.
    #[error("no Mailchimp audience is named `{name}`{hint}")]
    AudienceNameNotFound {
        /// The name asked for.
        name: String,
        /// ` (audiences: `A`, `B`)` or empty.
        hint: String,
    },
    /// Several audiences have this name.
    #[error("{count} Mailchimp audiences are named `{name}` ({ids}): bind by id instead")]
    AmbiguousAudienceName {
        /// The name asked for.
        name: String,
        /// How many.
        count: usize,
        /// Their ids, comma-separated.
        ids: String,
    },
    /// Any other error answer.
    #[error(
        "`{method} {path}` was answered by Mailchimp with {status} `{title}`: {detail}{}",
        field_list(errors)
    )]
    Api {
        /// HTTP method.
        method: String,
        /// Path below the API root.
        path: String,
        /// HTTP status.
        status: u16,
        /// Mailchimp's title (or the status's reason when the body was not problem+json).
        title: String,
        /// Mailchimp's detail.
        detail: String,
        /// Field errors.
        errors: Vec<FieldError>,
    },
    /// No answer came (connection, timeout), retries included.
    #[error("`{method} {path}` to Mailchimp got no answer")]
    Transport {
        /// HTTP method.
        method: String,
        /// Path below the API root.
        path: String,
        /// The last transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The answer was not the JSON expected.
    #[error("`{method} {path}` answered with a body that is not the expected JSON")]
    Decode {
        /// HTTP method.
        method: String,
        /// Path below the API root.
        path: String,
        /// Why it did not decode.
        #[source]
        source: serde_json::Error,
    },
    /// The audience changed so fast that its pages kept shifting beyond the bounded re-reads.
    #[error(
        "audience `{list_id}` changed too fast to be read consistently: the {status} members shifted {shifts} times in {seconds} s and the read was restarted {restarts} times; try again when it is quieter"
    )]
    Churn {
        /// The audience.
        list_id: String,
        /// The status filter of the pass (`all` without one).
        status: String,
        /// Windows that shifted beyond the overlap.
        shifts: u32,
        /// Full restarts made.
        restarts: u32,
        /// How long the pass ran.
        seconds: u64,
    },
}

fn field_list(errors: &[FieldError]) -> String {
    if errors.is_empty() {
        return String::new();
    }
    let list: Vec<String> = errors
        .iter()
        .map(|e| {
            if e.field.is_empty() {
                e.message.clone()
            } else {
                format!("`{}`: {}", e.field, e.message)
            }
        })
        .collect();
    format!(" ({})", list.join("; "))
}

impl Error {
    /// The HTTP status of an error answer, if this is one.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Unauthorized { .. } => Some(401),
            Self::Forbidden { .. } => Some(403),
            Self::AudienceNotFound { .. } => Some(404),
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The problem+json document of an error answer.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ProblemBody {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub detail: String,
    #[serde(default)]
    pub errors: Vec<FieldError>,
}

impl ProblemBody {
    /// Parse a body; a body that is not problem+json (a CDN's HTML, an empty 429) gives the
    /// status's reason as title.
    pub(super) fn parse(status: reqwest::StatusCode, body: &[u8]) -> Self {
        match serde_json::from_slice::<ProblemBody>(body) {
            Ok(mut problem) => {
                if problem.title.is_empty() {
                    status
                        .canonical_reason()
                        .unwrap_or("Error")
                        .clone_into(&mut problem.title);
                }
                problem
            }
            Err(_) => Self {
                title: status.canonical_reason().unwrap_or("Error").to_owned(),
                detail: "(the answer was not a problem document)".to_owned(),
                errors: Vec::new(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_resource_lists_its_field_errors() {
        let problem = ProblemBody::parse(
            reqwest::StatusCode::BAD_REQUEST,
            br#"{"type":"x","title":"Invalid Resource","status":400,"detail":"Your merge fields were invalid.","instance":"i","errors":[{"field":"LNAME","message":"Please enter a value"}]}"#,
        );
        let err = Error::Api {
            method: "POST".into(),
            path: "/lists/a/members".into(),
            status: 400,
            title: problem.title,
            detail: problem.detail,
            errors: problem.errors,
        };
        assert_eq!(
            err.to_string(),
            "`POST /lists/a/members` was answered by Mailchimp with 400 `Invalid Resource`: Your merge fields were invalid. (`LNAME`: Please enter a value)"
        );
    }

    #[test]
    fn a_body_that_is_not_json_still_gives_a_title() {
        let problem = ProblemBody::parse(reqwest::StatusCode::BAD_GATEWAY, b"<html>timeout</html>");
        assert_eq!(problem.title, "Bad Gateway");
    }
}
