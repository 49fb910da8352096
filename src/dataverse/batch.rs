//! The OData `$batch` wire format: a multipart/mixed writer for requests (with change sets) and
//! a reader for the multipart response, matched back to the operations sent. Pure: no I/O.
//!
//! Invariants: at most [`MAX_OPERATIONS`] operations per batch; every operation inside a change
//! set carries a `Content-ID` unique in the batch; lines end in CRLF; every operation sent gets
//! exactly one [`OpOutcome`], in the order sent.

use reqwest::Method;
use serde_json::Value;

use super::error::{ApiError, Error, excerpt, parse_api_error};

/// The service's limit of operations in one `$batch`.
pub const MAX_OPERATIONS: usize = 1000;

/// How many operations the next write request carries: it starts small and adapts to the
/// service's answers, as Microsoft's service-protection guidance asks ("start with a small batch
/// size of 10 and increase", "let the server tell you": PD `api-limits.md`,
/// `optimize-performance-create-update.md`; `docs/dataverse.md` §7, §11). What the size must
/// protect against is a request that outlives the client's timeout, so a request is sized by how
/// long the last ones took:
/// - a request answered within [`Sizer::FAST`] (half of [`Sizer::SLOW`], so the doubled request
///   should still answer within it) doubles the size, up to [`MAX_OPERATIONS`];
/// - one slower than [`Sizer::SLOW`] halves it (down to [`Sizer::MIN`]); in between it stays.
///
/// A request throttled (429) on the way teaches nothing about the size: its time includes the
/// `Retry-After` waits, and the limits that throttle (6,000 requests and 20 minutes of execution
/// time per 5-minute window) are not eased by smaller requests — the same operations cost the
/// same execution time in more requests (`api-limits.md`: "You could send fewer requests by
/// bundling them in batch operations. The combined execution time limit will counter this.").
/// The throttled client waits as told instead, and the size is kept.
///
/// [`Sizer::SLOW`] is a sixth of the client's default 120 s timeout, so even a doubled request
/// that takes twice as long per operation finishes well within the timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizer {
    size: usize,
}

impl Default for Sizer {
    fn default() -> Self {
        Self { size: Self::START }
    }
}

impl Sizer {
    /// The first requests' size (Microsoft's suggested start).
    pub const START: usize = 10;
    /// Never fewer operations per request.
    pub const MIN: usize = 1;
    /// Answers faster than this grow the size.
    pub const FAST: std::time::Duration = std::time::Duration::from_secs(10);
    /// Answers slower than this shrink it.
    pub const SLOW: std::time::Duration = std::time::Duration::from_secs(20);

    /// Operations for the next request.
    #[must_use]
    pub fn next(&self) -> usize {
        self.size
    }

    /// Learn from a request of `ops` operations that took `elapsed`, `throttled` on the way.
    pub fn observe(&mut self, ops: usize, elapsed: std::time::Duration, throttled: bool) {
        if throttled {
            return;
        }
        if elapsed > Self::SLOW {
            self.size = (self.size / 2).max(Self::MIN);
        } else if elapsed < Self::FAST && ops >= self.size / 2 {
            // Only a request near the current size is evidence that the size is fast.
            self.size = (self.size * 2).min(MAX_OPERATIONS);
        }
    }
}

/// One request inside a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// The HTTP method.
    pub method: Method,
    /// The URL relative to the Web API root, e.g. `contacts(<id>)`.
    pub url: String,
    /// Extra headers, e.g. `If-Match`.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: Option<Value>,
    /// Sending it twice does no harm (decides whether the batch may be retried).
    pub idempotent: bool,
}

impl Operation {
    /// A GET (only outside change sets).
    #[must_use]
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::GET, url, None, true)
    }
    /// A POST; `idempotent` when it creates with a client-chosen id or links an existing pair.
    #[must_use]
    pub fn post(url: impl Into<String>, body: Value, idempotent: bool) -> Self {
        Self::new(Method::POST, url, Some(body), idempotent)
    }
    /// A PATCH (update or upsert).
    #[must_use]
    pub fn patch(url: impl Into<String>, body: Value) -> Self {
        Self::new(Method::PATCH, url, Some(body), true)
    }
    /// A DELETE.
    #[must_use]
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new(Method::DELETE, url, None, true)
    }
    fn new(method: Method, url: impl Into<String>, body: Option<Value>, idempotent: bool) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body,
            idempotent,
        }
    }
    /// Add a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// A top-level part of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// One operation on its own.
    Single(Operation),
    /// Operations applied all or none.
    ChangeSet(Vec<Operation>),
}

impl Part {
    fn operations(&self) -> &[Operation] {
        match self {
            Self::Single(op) => std::slice::from_ref(op),
            Self::ChangeSet(ops) => ops,
        }
    }
}

/// Number of operations in `parts`.
#[must_use]
pub fn operation_count(parts: &[Part]) -> usize {
    parts.iter().map(|p| p.operations().len()).sum()
}

/// Whether every operation may be sent twice.
#[must_use]
pub fn all_idempotent(parts: &[Part]) -> bool {
    parts
        .iter()
        .flat_map(Part::operations)
        .all(|op| op.idempotent)
}

/// Write the body of a `$batch` request.
///
/// `api_path` is the Web API root path (`/api/data/v9.2/`), `boundary` the batch boundary and
/// `changeset_boundary` makes one per change set.
///
/// # Errors
/// Too many operations, an empty change set, or a GET inside a change set.
pub fn write(
    parts: &[Part],
    api_path: &str,
    boundary: &str,
    changeset_boundary: &dyn Fn(usize) -> String,
) -> Result<String, Error> {
    let count = operation_count(parts);
    if count > MAX_OPERATIONS {
        return Err(Error::Request {
            message: format!("a batch holds at most {MAX_OPERATIONS} operations, not {count}"),
        });
    }
    let mut out = String::new();
    let mut content_id = 0usize;
    for (index, part) in parts.iter().enumerate() {
        out.push_str(&format!("--{boundary}\r\n"));
        match part {
            Part::Single(op) => write_operation(&mut out, op, api_path, None),
            Part::ChangeSet(ops) => {
                if ops.is_empty() {
                    return Err(Error::Request {
                        message: "an empty change set".to_owned(),
                    });
                }
                let cs = changeset_boundary(index);
                out.push_str(&format!(
                    "Content-Type: multipart/mixed; boundary={cs}\r\n\r\n"
                ));
                for op in ops {
                    if op.method == Method::GET {
                        return Err(Error::Request {
                            message: format!("a GET (`{}`) cannot be in a change set", op.url),
                        });
                    }
                    content_id += 1;
                    out.push_str(&format!("--{cs}\r\n"));
                    write_operation(&mut out, op, api_path, Some(content_id));
                }
                out.push_str(&format!("--{cs}--\r\n"));
            }
        }
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    Ok(out)
}

fn write_operation(out: &mut String, op: &Operation, api_path: &str, content_id: Option<usize>) {
    out.push_str("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n");
    if let Some(id) = content_id {
        out.push_str(&format!("Content-ID: {id}\r\n"));
    }
    out.push_str("\r\n");
    let url = if op.url.starts_with('/') || op.url.starts_with("http") || op.url.starts_with('$') {
        op.url.clone()
    } else {
        format!("{api_path}{}", op.url)
    };
    out.push_str(&format!("{} {url} HTTP/1.1\r\n", op.method));
    for (name, value) in &op.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    match &op.body {
        Some(body) => {
            let content_type = if op.url.ends_with("/$ref") {
                "application/json"
            } else {
                "application/json; type=entry"
            };
            out.push_str(&format!("Content-Type: {content_type}\r\n\r\n"));
            out.push_str(&body.to_string());
            out.push_str("\r\n");
        }
        None => out.push_str("\r\n"),
    }
}

/// One HTTP response inside a batch response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpResponse {
    /// The status code.
    pub status: u16,
    /// The headers, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body (JSON text or empty).
    pub body: String,
    /// The `Content-ID` of the operation, inside change sets.
    pub content_id: Option<String>,
}

impl OpResponse {
    /// A header's value, by case-insensitive name.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The Dataverse error in the body.
    #[must_use]
    pub fn error(&self) -> ApiError {
        parse_api_error(&self.body)
    }

    /// The body as JSON, when there is one.
    #[must_use]
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// A top-level part of a batch response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartResponse {
    /// A response to one operation (or the one error of a failed change set).
    Single(OpResponse),
    /// The responses of a change set that succeeded.
    ChangeSet(Vec<OpResponse>),
}

/// What became of one operation of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpOutcome {
    /// It succeeded (2xx).
    Ok(OpResponse),
    /// It failed with this response.
    Failed(OpResponse),
    /// Another operation of its change set failed (the response given), so it was rolled back.
    RolledBack(OpResponse),
    /// The batch stopped before it (no `continue-on-error`).
    NotExecuted,
}

impl OpOutcome {
    /// The operation took effect.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok(_))
    }
    /// It failed on `If-Match` (412 without a duplicate code): the record changed.
    #[must_use]
    pub fn is_stale(&self) -> bool {
        match self {
            Self::Failed(r) => {
                let e = r.error();
                r.status == 412 && !super::error::is_duplicate(&e.code, &e.message)
            }
            _ => false,
        }
    }
    /// It failed because the record or link already exists.
    #[must_use]
    pub fn is_duplicate(&self) -> bool {
        match self {
            Self::Failed(r) => {
                let e = r.error();
                super::error::is_duplicate(&e.code, &e.message)
            }
            _ => false,
        }
    }
    /// A one-line reason for a failure, `None` on success.
    #[must_use]
    pub fn failure(&self) -> Option<String> {
        match self {
            Self::Ok(_) => None,
            Self::Failed(r) => Some(describe(r)),
            Self::RolledBack(r) => Some(format!(
                "rolled back because its change set failed: {}",
                describe(r)
            )),
            Self::NotExecuted => {
                Some("not executed: the batch stopped at an earlier failure".to_owned())
            }
        }
    }
}

fn describe(r: &OpResponse) -> String {
    let e = r.error();
    if e.code.is_empty() {
        format!("{}: {}", r.status, e.message)
    } else {
        format!("{}: {} (code `{}`)", r.status, e.message, e.code)
    }
}

/// The `boundary` parameter of a multipart Content-Type.
#[must_use]
pub fn boundary_of(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// Split a multipart body into its parts' raw text (LF line ends).
fn split_multipart(body: &str, boundary: &str) -> Result<Vec<String>, String> {
    let delimiter = format!("--{boundary}");
    let closing = format!("--{boundary}--");
    let mut parts = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    let mut closed = false;
    for line in body.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let trimmed = line.trim_end();
        if trimmed == closing {
            if let Some(lines) = current.take() {
                parts.push(lines.join("\n"));
            }
            closed = true;
            break;
        }
        if trimmed == delimiter {
            if let Some(lines) = current.take() {
                parts.push(lines.join("\n"));
            }
            current = Some(Vec::new());
        } else if let Some(lines) = current.as_mut() {
            lines.push(line);
        }
    }
    if !closed {
        return Err(format!("the multipart body has no closing `{closing}`"));
    }
    Ok(parts)
}

/// Split `Name: value` header lines from the rest at the first empty line.
fn split_headers(text: &str) -> (Vec<(String, String)>, &str) {
    let mut headers = Vec::new();
    let mut rest = text;
    loop {
        let (line, after) = match rest.split_once('\n') {
            Some((line, after)) => (line, after),
            None => (rest, ""),
        };
        if line.trim().is_empty() {
            return (headers, after);
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        rest = after;
        if after.is_empty() {
            return (headers, "");
        }
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn parse_http_part(text: &str) -> Result<OpResponse, String> {
    let (mime_headers, http) = split_headers(text);
    let content_id = header(&mime_headers, "Content-ID").map(str::to_owned);
    let http = http.trim_start_matches('\n');
    let (status_line, rest) = http.split_once('\n').unwrap_or((http, ""));
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("`{}` is not an HTTP status line", excerpt(status_line)))?;
    let (headers, body) = split_headers(rest);
    Ok(OpResponse {
        status,
        headers,
        body: body.trim().to_owned(),
        content_id,
    })
}

/// Read a `$batch` response body whose Content-Type is `content_type`.
///
/// # Errors
/// The body is not the multipart document the Content-Type announces (message only).
pub fn parse(content_type: &str, body: &str) -> Result<Vec<PartResponse>, String> {
    let boundary = boundary_of(content_type)
        .ok_or_else(|| format!("Content-Type `{content_type}` has no boundary"))?;
    let mut out = Vec::new();
    for part in split_multipart(body, &boundary)? {
        let (headers, rest) = split_headers(&part);
        let part_type = header(&headers, "Content-Type").unwrap_or_default();
        if part_type
            .to_ascii_lowercase()
            .starts_with("multipart/mixed")
        {
            let inner = boundary_of(part_type)
                .ok_or_else(|| format!("change set Content-Type `{part_type}` has no boundary"))?;
            let responses = split_multipart(rest, &inner)?
                .iter()
                .map(|p| parse_http_part(p))
                .collect::<Result<Vec<_>, _>>()?;
            out.push(PartResponse::ChangeSet(responses));
        } else {
            out.push(PartResponse::Single(parse_http_part(&part)?));
        }
    }
    Ok(out)
}

/// Give every operation of `parts` its outcome from `responses`, in the order sent.
#[must_use]
pub fn match_outcomes(parts: &[Part], responses: Vec<PartResponse>) -> Vec<OpOutcome> {
    let mut outcomes = Vec::with_capacity(operation_count(parts));
    let mut responses = responses.into_iter();
    let mut content_id = 0usize;
    for part in parts {
        let first_id = content_id + 1;
        if let Part::ChangeSet(ops) = part {
            content_id += ops.len();
        }
        match (part, responses.next()) {
            (_, None) => outcomes.extend(part.operations().iter().map(|_| OpOutcome::NotExecuted)),
            (Part::Single(_), Some(PartResponse::Single(r))) => outcomes.push(single(r)),
            (Part::Single(_), Some(PartResponse::ChangeSet(mut rs))) => {
                outcomes.push(rs.pop().map_or(OpOutcome::NotExecuted, single));
            }
            (Part::ChangeSet(ops), Some(PartResponse::ChangeSet(rs))) => {
                for (i, _) in ops.iter().enumerate() {
                    let wanted = (first_id + i).to_string();
                    let found = rs
                        .iter()
                        .find(|r| r.content_id.as_deref() == Some(wanted.as_str()))
                        .or_else(|| rs.get(i));
                    outcomes.push(found.cloned().map_or(OpOutcome::NotExecuted, single));
                }
            }
            (Part::ChangeSet(ops), Some(PartResponse::Single(r))) => {
                if (200..300).contains(&r.status) {
                    outcomes.extend(ops.iter().map(|_| OpOutcome::Ok(r.clone())));
                    continue;
                }
                let failing = r
                    .content_id
                    .as_deref()
                    .and_then(|id| id.parse::<usize>().ok())
                    .filter(|id| (first_id..first_id + ops.len()).contains(id));
                for i in 0..ops.len() {
                    if failing == Some(first_id + i) {
                        outcomes.push(OpOutcome::Failed(r.clone()));
                    } else {
                        outcomes.push(OpOutcome::RolledBack(r.clone()));
                    }
                }
            }
        }
    }
    outcomes
}

fn single(r: OpResponse) -> OpOutcome {
    if (200..300).contains(&r.status) {
        OpOutcome::Ok(r)
    } else {
        OpOutcome::Failed(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cs(_: usize) -> String {
        "changeset_B".to_owned()
    }

    #[test]
    fn writes_singles_and_change_sets_with_content_ids() {
        let parts = vec![
            Part::ChangeSet(vec![
                Operation::post("contacts", json!({"firstname":"A"}), true),
                Operation::patch("contacts(1)", json!({"lastname":"B"}))
                    .header("If-Match", "W/\"7\""),
            ]),
            Part::Single(Operation::get("contacts?$select=fullname")),
        ];
        let text = write(&parts, "/api/data/v9.2/", "batch_A", &cs).unwrap();
        let expected = "--batch_A\r\nContent-Type: multipart/mixed; boundary=changeset_B\r\n\r\n\
--changeset_B\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n\
POST /api/data/v9.2/contacts HTTP/1.1\r\nContent-Type: application/json; type=entry\r\n\r\n{\"firstname\":\"A\"}\r\n\
--changeset_B\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 2\r\n\r\n\
PATCH /api/data/v9.2/contacts(1) HTTP/1.1\r\nIf-Match: W/\"7\"\r\nContent-Type: application/json; type=entry\r\n\r\n{\"lastname\":\"B\"}\r\n\
--changeset_B--\r\n\
--batch_A\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
GET /api/data/v9.2/contacts?$select=fullname HTTP/1.1\r\n\r\n\
--batch_A--\r\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn refuses_what_the_service_refuses() {
        let too_many = vec![Part::Single(Operation::delete("contacts(1)")); MAX_OPERATIONS + 1];
        assert!(write(&too_many, "/", "b", &cs).is_err());
        let get_in_cs = vec![Part::ChangeSet(vec![Operation::get("contacts")])];
        assert!(write(&get_in_cs, "/", "b", &cs).is_err());
        assert!(write(&[Part::ChangeSet(vec![])], "/", "b", &cs).is_err());
    }

    const RESPONSE: &str = "--batchresponse_1\r\n\
Content-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n\
--changesetresponse_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n\
HTTP/1.1 204 No Content\r\nOData-Version: 4.0\r\nOData-EntityId: http://x/api/data/v9.2/contacts(1)\r\n\r\n\r\n\
--changesetresponse_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 2\r\n\r\n\
HTTP/1.1 204 No Content\r\nOData-Version: 4.0\r\n\r\n\r\n\
--changesetresponse_2--\r\n\
--batchresponse_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
HTTP/1.1 200 OK\r\nContent-Type: application/json; odata.metadata=minimal\r\n\r\n\
{\"value\":[{\"fullname\":\"A B\"}]}\r\n\
--batchresponse_1--\r\n";

    #[test]
    fn reads_a_response_and_matches_it_to_the_operations() {
        let parsed = parse("multipart/mixed; boundary=\"batchresponse_1\"", RESPONSE).unwrap();
        assert_eq!(parsed.len(), 2);
        let parts = vec![
            Part::ChangeSet(vec![
                Operation::post("contacts", json!({}), true),
                Operation::patch("contacts(1)", json!({})),
            ]),
            Part::Single(Operation::get("contacts")),
        ];
        let outcomes = match_outcomes(&parts, parsed);
        assert_eq!(outcomes.len(), 3);
        assert!(outcomes.iter().all(OpOutcome::is_ok));
        let OpOutcome::Ok(first) = &outcomes[0] else {
            panic!()
        };
        assert_eq!(
            first.header("odata-entityid"),
            Some("http://x/api/data/v9.2/contacts(1)")
        );
        let OpOutcome::Ok(last) = &outcomes[2] else {
            panic!()
        };
        assert_eq!(last.json().unwrap()["value"][0]["fullname"], "A B");
    }

    #[test]
    fn a_failed_change_set_rolls_back_and_the_rest_is_not_executed() {
        let body = "--batchresponse_9\n\
Content-Type: application/http\nContent-Transfer-Encoding: binary\nContent-ID: 2\n\n\
HTTP/1.1 412 Precondition Failed\nContent-Type: application/json\n\n\
{\"error\":{\"code\":\"0x80060882\",\"message\":\"The version of the existing record doesn't match\"}}\n\
--batchresponse_9--\n";
        let parsed = parse("multipart/mixed; boundary=batchresponse_9", body).unwrap();
        let parts = vec![
            Part::ChangeSet(vec![
                Operation::post("contacts", json!({}), true),
                Operation::patch("contacts(1)", json!({})),
                Operation::delete("contacts(2)"),
            ]),
            Part::Single(Operation::delete("contacts(3)")),
        ];
        let outcomes = match_outcomes(&parts, parsed);
        assert!(matches!(outcomes[0], OpOutcome::RolledBack(_)));
        assert!(outcomes[1].is_stale());
        assert!(matches!(outcomes[2], OpOutcome::RolledBack(_)));
        assert_eq!(outcomes[3], OpOutcome::NotExecuted);
        assert!(outcomes[0].failure().unwrap().contains("rolled back"));
    }

    #[test]
    fn the_batch_size_starts_small_grows_while_fast_shrinks_when_slow_and_ignores_throttled_answers()
     {
        use std::time::Duration;
        let mut sizer = Sizer::default();
        assert_eq!(sizer.next(), 10);
        for _ in 0..10 {
            let n = sizer.next();
            sizer.observe(n, Duration::from_millis(300), false);
        }
        assert_eq!(sizer.next(), MAX_OPERATIONS);
        sizer.observe(MAX_OPERATIONS, Duration::from_secs(30), false);
        assert_eq!(sizer.next(), 500);
        // A throttled answer's time is mostly Retry-After waiting: kept, neither way.
        sizer.observe(500, Duration::from_secs(90), true);
        assert_eq!(sizer.next(), 500);
        sizer.observe(500, Duration::from_millis(10), true);
        assert_eq!(sizer.next(), 500);
        sizer.observe(500, Duration::from_secs(15), false);
        assert_eq!(sizer.next(), 500, "in between: kept");
        // 10 ms an operation (the emulator's default cost): 500 in 5 s grows to the maximum,
        // whose 10 s then keep it there.
        sizer.observe(500, Duration::from_secs(5), false);
        assert_eq!(sizer.next(), MAX_OPERATIONS);
        sizer.observe(MAX_OPERATIONS, Duration::from_millis(10_050), false);
        assert_eq!(sizer.next(), MAX_OPERATIONS);
        // Any slow answer halves; a small fast tail request says nothing about the size.
        sizer.observe(250, Duration::from_secs(21), false);
        assert_eq!(sizer.next(), 500);
        sizer.observe(3, Duration::from_millis(10), false);
        assert_eq!(sizer.next(), 500);
        for _ in 0..20 {
            sizer.observe(1, Duration::from_secs(60), false);
        }
        assert_eq!(sizer.next(), Sizer::MIN);
    }

    #[test]
    fn malformed_responses_are_errors_not_panics() {
        assert!(parse("multipart/mixed", "x").is_err());
        assert!(parse("multipart/mixed; boundary=b", "--b\nno end").is_err());
        assert!(parse("multipart/mixed; boundary=b", "--b\n\nnot http\n--b--").is_err());
        assert!(parse("multipart/mixed; boundary=b", "").is_err());
    }
}
