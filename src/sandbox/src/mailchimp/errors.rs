//! Mailchimp's error answers: `application/problem+json` documents with `type`, `title`,
//! `status`, `detail` and `instance` (all five always present, as the spec requires), `errors[]`
//! for "Invalid Resource", and the `X-Request-Id` and `Link: …; rel="describedBy"` headers the
//! real service sends. Also the error names the `X-Trigger-Error` request header accepts.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The `type` URI Mailchimp puts in every problem document.
pub const PROBLEM_TYPE: &str = "https://mailchimp.com/developer/marketing/docs/errors/";

/// One field error of an "Invalid Resource" answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field, e.g. `LNAME` or `email_address`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// HTTP status.
    pub status: StatusCode,
    /// Mailchimp's title, e.g. `Member Exists`.
    pub title: String,
    /// The human-readable detail.
    pub detail: String,
    /// Field errors (only "Invalid Resource" has them).
    pub errors: Vec<FieldError>,
    /// Extra headers, e.g. `Allow` on a 405.
    pub allow: Option<&'static str>,
}

impl Problem {
    /// A problem with no field errors.
    #[must_use]
    pub fn new(status: StatusCode, title: &str, detail: impl Into<String>) -> Self {
        Self {
            status,
            title: title.to_owned(),
            detail: detail.into(),
            errors: Vec::new(),
            allow: None,
        }
    }

    /// 404 Resource Not Found, with Mailchimp's detail.
    #[must_use]
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Resource Not Found",
            "The requested resource could not be found.",
        )
    }

    /// 400 Bad Request.
    #[must_use]
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Bad Request", detail)
    }

    /// 400 Invalid Resource with field errors.
    #[must_use]
    pub fn invalid_resource(detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        Self {
            errors,
            ..Self::new(StatusCode::BAD_REQUEST, "Invalid Resource", detail)
        }
    }

    /// A required field left out: Mailchimp's "Schema describes <kind>, NULL found instead".
    #[must_use]
    pub fn missing(field: &str, kind: &str) -> Self {
        Self::invalid_field(
            field,
            format!("Schema describes {kind}, NULL found instead"),
        )
    }

    /// 400 Invalid Resource naming one field.
    #[must_use]
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::invalid_resource(
            "The resource submitted could not be validated. For field-specific details, see the 'errors' array.",
            vec![FieldError {
                field: field.to_owned(),
                message: message.into(),
            }],
        )
    }

    /// 405 Method Not Allowed.
    #[must_use]
    pub fn method_not_allowed(detail: impl Into<String>, allow: &'static str) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed", detail)
        }
    }

    /// 429 as the real service answers the 11th simultaneous connection.
    #[must_use]
    pub fn too_many_connections() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests",
            "You have exceeded the limit of 10 simultaneous connections.",
        )
    }

    /// The problem an `X-Trigger-Error` header names, as Mailchimp's error glossary lists them.
    #[must_use]
    pub fn triggered(name: &str) -> Option<Self> {
        let (status, title, detail) = match name {
            "BadRequest" => (400, "Bad Request", "Your request could not be processed."),
            "InvalidAction" => (
                400,
                "Invalid Action",
                "The action requested was not valid for this resource.",
            ),
            "InvalidResource" => (
                400,
                "Invalid Resource",
                "The resource submitted could not be validated.",
            ),
            "JSONParseError" => (
                400,
                "JSON Parse Exception",
                "We encountered an unspecified JSON parsing error.",
            ),
            "APIKeyMissing" => (
                401,
                "API Key Missing",
                "Your request did not include an API key.",
            ),
            "APIKeyInvalid" => (
                401,
                "API Key Invalid",
                "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
            ),
            "Forbidden" => (
                403,
                "Forbidden",
                "You are not permitted to access this resource.",
            ),
            "UserDisabled" => (403, "User Disabled", "This account has been disabled."),
            "WrongDatacenter" => (
                403,
                "Wrong Datacenter",
                "The API key provided is linked to a different datacenter.",
            ),
            "ResourceNotFound" => (
                404,
                "Resource Not Found",
                "The requested resource could not be found.",
            ),
            "MethodNotAllowed" => (
                405,
                "Method Not Allowed",
                "The requested method and resource are not compatible. See the Allow header for this resource's available methods.",
            ),
            "ResourceNestingTooDeep" => (
                414,
                "Resource Nesting Too Deep",
                "The sub-resource requested is nested too deeply.",
            ),
            "InvalidMethodOverride" => (
                422,
                "Invalid Method Override",
                "You can only use the X-HTTP-Method-Override header with the POST method.",
            ),
            "RequestedFieldsInvalid" => (
                422,
                "Requested Fields Invalid",
                "The fields requested from this resource are invalid.",
            ),
            "TooManyRequests" => (
                429,
                "Too Many Requests",
                "You have exceeded the limit of 10 simultaneous connections.",
            ),
            "InternalServerError" => (
                500,
                "Internal Server Error",
                "An unexpected internal error has occurred. Please contact Support for more information.",
            ),
            "ComplianceRelated" => (
                403,
                "Compliance Related",
                "This account is currently under compliance review.",
            ),
            _ => return None,
        };
        let status = StatusCode::from_u16(status).ok()?;
        Some(Self::new(status, title, detail))
    }

    /// The problem a bare status stands for (fault injection).
    #[must_use]
    pub fn for_status(status: StatusCode) -> Self {
        match status.as_u16() {
            429 => Self::too_many_connections(),
            500 => Self::new(
                status,
                "Internal Server Error",
                "An unexpected internal error has occurred. Please contact Support for more information.",
            ),
            503 => Self::new(
                status,
                "Service Unavailable",
                "The service is temporarily unavailable. Please try again later.",
            ),
            _ => Self::new(
                status,
                status.canonical_reason().unwrap_or("Error"),
                "The request could not be completed.",
            ),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let instance = uuid::Uuid::new_v4().to_string();
        let mut body = json!({
            "type": PROBLEM_TYPE,
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
            "instance": instance,
        });
        if !self.errors.is_empty()
            && let Some(map) = body.as_object_mut()
        {
            map.insert(
                "errors".to_owned(),
                self.errors
                    .iter()
                    .map(|e| json!({"field": e.field, "message": e.message}))
                    .collect(),
            );
        }
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json; charset=utf-8"),
        );
        if let Ok(value) = HeaderValue::from_str(&instance) {
            headers.insert("x-request-id", value);
        }
        headers.insert(
            header::LINK,
            HeaderValue::from_static(
                "<https://us21.api.mailchimp.com/schema/3.0/ProblemDetailDocument.json>; rel=\"describedBy\"",
            ),
        );
        if let Some(allow) = self.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}
