//! `$batch`: the multipart/mixed body parsed into parts and change sets, each part answered by
//! the same handler as a lone request, and the multipart answer shaped as Dataverse shapes it.
//!
//! Rules (PD `webapi/execute-batch-operations-using-web-api.md`): at most 1000 requests; no
//! nested batches; no GET inside a change set; a change set is atomic (one failure rolls the
//! whole change set back and its answer is that one failure); `Content-ID: n` names a change
//! set request so later ones may use `$n` in their URL or body; without
//! `Prefer: odata.continue-on-error` the batch stops at the first failure and answers 400,
//! with it every part runs and the batch answers 200.

use std::collections::HashMap;

use uuid::Uuid;

use super::errors::DvError;
use super::routes::{self, ApiRequest, ApiResponse, Ctx};
use super::store::Store;

/// The most requests one batch may hold.
pub const MAX_OPERATIONS: usize = 1000;

/// One request of a batch.
#[derive(Debug, Clone)]
struct Part {
    content_id: Option<String>,
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

#[derive(Debug, Clone)]
enum Item {
    Single(Part),
    ChangeSet(Vec<Part>),
}

/// The boundary of a `multipart/mixed` content type.
#[must_use]
pub fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').map(str::trim).find_map(|p| {
        p.strip_prefix("boundary=")
            .map(|b| b.trim_matches('"').to_owned())
    })
}

fn split_parts<'a>(text: &'a str, boundary: &str) -> Result<Vec<&'a str>, DvError> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = match text.find(&delimiter) {
        Some(i) => &text[i + delimiter.len()..],
        None => {
            return Err(DvError::bad_request(format!(
                "The batch body has no part with the boundary '{boundary}'."
            )));
        }
    };
    loop {
        if rest.starts_with("--") {
            return Ok(parts);
        }
        match rest.find(&delimiter) {
            Some(i) => {
                parts.push(&rest[..i]);
                rest = &rest[i + delimiter.len()..];
            }
            None => {
                return Err(DvError::bad_request(
                    "The batch body does not end with its closing boundary.",
                ));
            }
        }
    }
}

/// Split a MIME entity or HTTP message at its first blank line.
fn split_head(entity: &str) -> (&str, &str) {
    let entity = entity.trim_start_matches(['\r', '\n']);
    match (entity.find("\r\n\r\n"), entity.find("\n\n")) {
        (Some(a), Some(b)) if b < a => (&entity[..b], &entity[b + 2..]),
        (Some(a), _) => (&entity[..a], &entity[a + 4..]),
        (None, Some(b)) => (&entity[..b], &entity[b + 2..]),
        (None, None) => (entity, ""),
    }
}

/// Split a MIME entity into headers (lower-case names) and content.
fn head_and_body(entity: &str) -> (Vec<(String, String)>, &str) {
    let (head, body) = split_head(entity);
    let headers = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (headers, body)
}

fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn parse_part(entity: &str, in_changeset: bool) -> Result<Part, DvError> {
    let (mime_headers, content) = head_and_body(entity);
    let content_type = find(&mime_headers, "content-type").unwrap_or_default();
    if !content_type.starts_with("application/http") {
        return Err(DvError::bad_request(format!(
            "A batch part must have 'Content-Type: application/http', not '{content_type}'."
        )));
    }
    let content_id = find(&mime_headers, "content-id").map(str::to_owned);
    let (request_head, body) = split_head(content);
    let mut lines = request_head.lines();
    let request_line = lines.next().unwrap_or_default().trim();
    let mut words = request_line.split_whitespace();
    let (Some(method), Some(url)) = (words.next(), words.next()) else {
        return Err(DvError::bad_request(format!(
            "The batch part request line '{request_line}' is not valid."
        )));
    };
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    if in_changeset && method.eq_ignore_ascii_case("GET") {
        return Err(DvError::bad_request(
            "GET requests are not allowed inside a change set.",
        ));
    }
    let body = body.trim_end_matches(['\r', '\n']);
    Ok(Part {
        content_id,
        method: method.to_ascii_uppercase(),
        url: url.to_owned(),
        headers,
        body: body.as_bytes().to_vec(),
    })
}

fn parse(body: &str, boundary: &str) -> Result<Vec<Item>, DvError> {
    let mut items = Vec::new();
    for part in split_parts(body, boundary)? {
        let (headers, content) = head_and_body(part);
        let content_type = find(&headers, "content-type").unwrap_or_default();
        if content_type.starts_with("multipart/mixed") {
            let inner = self::boundary(content_type)
                .ok_or_else(|| DvError::bad_request("A change set needs a boundary."))?;
            let parts = split_parts(content, &inner)?
                .into_iter()
                .map(|p| parse_part(p, true))
                .collect::<Result<Vec<_>, _>>()?;
            items.push(Item::ChangeSet(parts));
        } else {
            items.push(Item::Single(parse_part(part, false)?));
        }
    }
    let count: usize = items
        .iter()
        .map(|i| match i {
            Item::Single(_) => 1,
            Item::ChangeSet(parts) => parts.len(),
        })
        .sum();
    if count > MAX_OPERATIONS {
        return Err(DvError::bad_request(format!(
            "The number of operations in the batch ({count}) exceeds the maximum of {MAX_OPERATIONS}."
        )));
    }
    Ok(items)
}

/// Turn a part's URL into a request, resolving `$n` references.
fn to_request(part: &Part, refs: &HashMap<String, String>) -> Result<ApiRequest, DvError> {
    let mut url = part.url.clone();
    if let Some(i) = url.find("/api/data/v") {
        let after = &url[i + "/api/data/v".len()..];
        url = after
            .split_once('/')
            .map(|(_, r)| r.to_owned())
            .unwrap_or_default();
    }
    if let Some(reference) = url
        .strip_prefix('$')
        .filter(|r| r.starts_with(|c: char| c.is_ascii_digit()))
    {
        let (n, rest) = reference
            .find(|c: char| !c.is_ascii_digit())
            .map_or((reference, ""), |i| (&reference[..i], &reference[i..]));
        let target = refs.get(n).ok_or_else(|| {
            DvError::bad_request(format!(
                "Content-ID Reference: '${n}' does not exist in the batch context."
            ))
        })?;
        url = format!("{target}{rest}");
    }
    let mut body = String::from_utf8_lossy(&part.body).into_owned();
    if body.contains("\"$") {
        for (n, target) in refs {
            body = body.replace(&format!("\"${n}\""), &format!("\"/{target}\""));
        }
        if let Some(i) = body.find("\"$") {
            let rest = &body[i + 2..];
            if rest.starts_with(|c: char| c.is_ascii_digit()) {
                let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
                return Err(DvError::bad_request(format!(
                    "Content-ID Reference: '${n}' does not exist in the batch context."
                )));
            }
        }
    }
    let headers: Vec<(&str, &str)> = part
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Ok(routes::request(
        &part.method,
        url.trim_start_matches('/'),
        &headers,
        body.as_bytes(),
    ))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        412 => "Precondition Failed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

fn render_part(out: &mut String, resp: &ApiResponse, content_id: Option<&str>) {
    out.push_str("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n");
    if let Some(id) = content_id {
        out.push_str(&format!("Content-ID: {id}\r\n"));
    }
    out.push_str(&format!(
        "\r\nHTTP/1.1 {} {}\r\n",
        resp.status,
        reason(resp.status)
    ));
    for (k, v) in &resp.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("OData-Version: 4.0\r\n");
    match &resp.body {
        Some((content_type, body)) => {
            out.push_str(&format!("Content-Type: {content_type}\r\n\r\n"));
            out.push_str(&String::from_utf8_lossy(body));
            out.push_str("\r\n");
        }
        None => out.push_str("\r\n\r\n"),
    }
}

enum Outcome {
    One(ApiResponse, Option<String>),
    Set(Vec<(ApiResponse, Option<String>)>),
    FailedSet(ApiResponse, Option<String>),
}

/// Answer a `$batch` request.
pub fn handle(ctx: &Ctx, store: &mut Store, req: &ApiRequest) -> ApiResponse {
    handle_with_parts(ctx, store, req, &mut Vec::new())
}

/// Answer a `$batch` request, noting the route of every part that ran (for the counters).
pub fn handle_with_parts(
    ctx: &Ctx,
    store: &mut Store,
    req: &ApiRequest,
    parts: &mut Vec<String>,
) -> ApiResponse {
    match run(ctx, store, req, parts) {
        Ok(resp) => resp,
        Err(err) => ApiResponse::error(&err),
    }
}

fn run(
    ctx: &Ctx,
    store: &mut Store,
    req: &ApiRequest,
    routes: &mut Vec<String>,
) -> Result<ApiResponse, DvError> {
    if req.method != "POST" {
        return Err(DvError::new(
            405,
            "0x80060888",
            "The $batch endpoint accepts only POST.",
        ));
    }
    let content_type = req.header("content-type").unwrap_or_default();
    if !content_type.starts_with("multipart/mixed") {
        return Err(DvError::bad_request(
            "The $batch request must have 'Content-Type: multipart/mixed; boundary=...'.",
        ));
    }
    let outer = boundary(content_type)
        .ok_or_else(|| DvError::bad_request("The $batch content type needs a boundary."))?;
    let text = std::str::from_utf8(&req.body)
        .map_err(|_| DvError::bad_request("The $batch body is not UTF-8."))?;
    let items = parse(text, &outer)?;
    let continue_on_error = req.prefer().continue_on_error;
    let mut outcomes = Vec::new();
    let mut failed = false;
    let mut ops = 0_u64;
    for item in items {
        match item {
            Item::Single(part) => {
                let resp = match to_request(&part, &HashMap::new()) {
                    Ok(inner) => {
                        routes.push(routes::route_key(&inner.method, &inner.path));
                        dispatch(ctx, store, &inner)
                    }
                    Err(err) => ApiResponse::error(&err),
                };
                ops += resp.ops;
                let ok = resp.is_success() || resp.status == 304;
                outcomes.push(Outcome::One(resp, part.content_id.clone()));
                if !ok {
                    failed = true;
                    if !continue_on_error {
                        break;
                    }
                }
            }
            Item::ChangeSet(parts) => {
                let mut refs: HashMap<String, String> = HashMap::new();
                let mut answers = Vec::new();
                let mut failure: Option<(ApiResponse, Option<String>)> = None;
                let root = ctx.root();
                let result = store.atomically(|store| {
                    for part in &parts {
                        let resp = match to_request(part, &refs) {
                            Ok(inner) => {
                                routes.push(routes::route_key(&inner.method, &inner.path));
                                dispatch(ctx, store, &inner)
                            }
                            Err(err) => ApiResponse::error(&err),
                        };
                        if !resp.is_success() {
                            failure = Some((resp, part.content_id.clone()));
                            return Err(DvError::bad_request("change set failed"));
                        }
                        if let Some(id) = &part.content_id
                            && let Some((_, url)) =
                                resp.headers.iter().find(|(k, _)| k == "OData-EntityId")
                        {
                            refs.insert(id.clone(), url.trim_start_matches(&root).to_owned());
                        }
                        answers.push((resp, part.content_id.clone()));
                    }
                    Ok(())
                });
                match (result, failure) {
                    (Ok(()), _) => {
                        ops += answers.iter().map(|(r, _)| r.ops).sum::<u64>();
                        outcomes.push(Outcome::Set(answers));
                    }
                    (Err(_), Some((resp, id))) => {
                        failed = true;
                        outcomes.push(Outcome::FailedSet(resp, id));
                        if !continue_on_error {
                            break;
                        }
                    }
                    (Err(err), None) => return Err(err),
                }
            }
        }
    }
    let batch_boundary = format!("batchresponse_{}", Uuid::new_v4());
    let mut out = String::new();
    for outcome in &outcomes {
        out.push_str(&format!("--{batch_boundary}\r\n"));
        match outcome {
            Outcome::One(resp, id) | Outcome::FailedSet(resp, id) => {
                render_part(&mut out, resp, id.as_deref())
            }
            Outcome::Set(answers) => {
                let cs = format!("changesetresponse_{}", Uuid::new_v4());
                out.push_str(&format!(
                    "Content-Type: multipart/mixed; boundary={cs}\r\n\r\n"
                ));
                for (resp, id) in answers {
                    out.push_str(&format!("--{cs}\r\n"));
                    render_part(&mut out, resp, id.as_deref());
                }
                out.push_str(&format!("--{cs}--\r\n"));
            }
        }
    }
    out.push_str(&format!("--{batch_boundary}--\r\n"));
    let status = if failed && !continue_on_error {
        400
    } else {
        200
    };
    Ok(ApiResponse {
        status,
        headers: Vec::new(),
        body: Some((
            format!("multipart/mixed; boundary={batch_boundary}"),
            out.into_bytes(),
        )),
        ops: ops.max(1),
    })
}

fn dispatch(ctx: &Ctx, store: &mut Store, req: &ApiRequest) -> ApiResponse {
    if req.path.starts_with("$batch") {
        return ApiResponse::error(&DvError::bad_request(
            "Nested $batch requests are not supported.",
        ));
    }
    routes::handle(ctx, store, req)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "--batch_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nGET /api/data/v9.2/WhoAmI HTTP/1.1\r\nAccept: application/json\r\n\r\n--batch_1\r\nContent-Type: multipart/mixed; boundary=changeset_2\r\n\r\n--changeset_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\nPOST http://x/api/data/v9.2/contacts HTTP/1.1\r\nContent-Type: application/json; type=entry\r\n\r\n{\"firstname\":\"a\"}\r\n--changeset_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 2\r\n\r\nPATCH $1 HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"lastname\":\"b\"}\r\n--changeset_2--\r\n--batch_1--\r\n";

    #[test]
    fn parses_parts_changesets_and_content_ids() {
        let items = parse(BODY, "batch_1").unwrap();
        assert_eq!(items.len(), 2);
        let Item::ChangeSet(parts) = &items[1] else {
            panic!()
        };
        assert_eq!(parts[1].content_id.as_deref(), Some("2"));
        assert_eq!(parts[1].url, "$1");
        let refs = HashMap::from([(
            "1".to_owned(),
            "contacts(00000000-0000-0000-0000-000000000001)".to_owned(),
        )]);
        let req = to_request(&parts[1], &refs).unwrap();
        assert_eq!(req.path, "contacts(00000000-0000-0000-0000-000000000001)");
        assert!(to_request(&parts[1], &HashMap::new()).is_err());
    }

    #[test]
    fn a_changeset_runs_atomically_and_answers_in_multipart() {
        let mut store = Store::new(Some(&crate::dataverse::tool_schema::fixture()));
        let ctx = Ctx {
            base: "http://x".into(),
        };
        let req = routes::request(
            "POST",
            "$batch",
            &[("content-type", "multipart/mixed; boundary=batch_1")],
            BODY.as_bytes(),
        );
        let resp = handle(&ctx, &mut store, &req);
        assert_eq!(resp.status, 200);
        let (ct, body) = resp.body.unwrap();
        assert!(ct.starts_with("multipart/mixed; boundary=batchresponse_"));
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("Content-ID: 2"), "{text}");
        let contacts = store.table("contact").unwrap();
        assert_eq!(contacts.rows.len(), 1);
        let failing = BODY.replace("{\"lastname\":\"b\"}", "{\"nosuchcolumn\":\"b\"}");
        let req = routes::request(
            "POST",
            "$batch",
            &[("content-type", "multipart/mixed; boundary=batch_1")],
            failing.as_bytes(),
        );
        let resp = handle(&ctx, &mut store, &req);
        assert_eq!(resp.status, 400);
        assert_eq!(
            store.table("contact").unwrap().rows.len(),
            1,
            "the change set rolled back"
        );
    }
}
