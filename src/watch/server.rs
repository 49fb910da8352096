//! The HTTP side of `watch`: probes, status, metrics and "reconcile now".
//!
//! | route | auth | answer |
//! |---|---|---|
//! | `GET /healthz` | none | `200 ok`: the process serves requests |
//! | `GET /readyz` | none | `200` when the file on disk is a valid config in force and the probe of both APIs succeeds, else `503`; JSON says which part is not ready, never config text, error details or URLs |
//! | `GET /status` | bearer | JSON [`Status`](super::status::Status) |
//! | `GET /metrics` | bearer | Prometheus text format 0.0.4 |
//! | `POST /reconcile[?binding=NAME]` | bearer | `202` queued, `404` unknown binding, `409` suspended, `503` shutting down |
//!
//! [`serve`] bounds what clients can hold: at most [`MAX_CONNECTIONS`] open connections (at the
//! limit, a new connection closes the oldest one that is not in the middle of a request: a slow
//! or idle client, never a request being answered), and [`HEADER_TIMEOUT`] to send a request's
//! headers, which also bounds how long a kept-alive connection may sit idle. So `/healthz`
//! answers under slow-connection pressure, within the 1024 open files a systemd service gets.
//! HTTP/1.1 only (probes and Prometheus speak it).
//!
//! With a token configured, the bearer routes answer `401` (with `WWW-Authenticate: Bearer`)
//! unless the request carries `Authorization: Bearer <token>`. The probes stay open so that
//! Kubernetes can reach them. The token is compared in constant time and never logged.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use super::shared::{Command, Shared, lock};

/// Open connections at most (well under a 1024 file limit, with room for the API clients).
pub const MAX_CONNECTIONS: usize = 256;

/// Time to send a request's headers, and the longest a kept-alive connection may sit idle.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// One open connection: whether it is answering a request, and how to close it.
struct Slot {
    id: u64,
    busy: Arc<AtomicBool>,
    close: CancellationToken,
}

/// Serve `router` on `listener` until `stop`, with the bounds of the module doc.
///
/// # Errors
/// None so far: accept errors (e.g. out of file descriptors) are logged and waited out.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let slots: Arc<Mutex<VecDeque<Slot>>> = Arc::default();
    let mut next_id = 0u64;
    loop {
        let (stream, _) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "status server: accept failed");
                    // Out of descriptors, typically: let connections close first.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        next_id += 1;
        let id = next_id;
        let busy = Arc::new(AtomicBool::new(false));
        let close = stop.child_token();
        {
            let mut open = slots.lock().unwrap_or_else(PoisonError::into_inner);
            if open.len() >= MAX_CONNECTIONS {
                if let Some(i) = open.iter().position(|s| !s.busy.load(Ordering::Acquire)) {
                    if let Some(old) = open.remove(i) {
                        old.close.cancel();
                    }
                }
            }
            open.push_back(Slot {
                id,
                busy: Arc::clone(&busy),
                close: close.clone(),
            });
        }
        let router = router.clone();
        let slots = Arc::clone(&slots);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |request: axum::http::Request<hyper::body::Incoming>| {
                    busy.store(true, Ordering::Release);
                    let answer = router.clone().oneshot(request.map(axum::body::Body::new));
                    let busy = Arc::clone(&busy);
                    async move {
                        let response = answer.await;
                        busy.store(false, Ordering::Release);
                        response
                    }
                },
            );
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::select! {
                result = connection => {
                    if let Err(err) = result {
                        tracing::debug!(error = %err, "status server: connection ended");
                    }
                }
                () = close.cancelled() => {}
            }
            slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|s| s.id != id);
        });
    }
    Ok(())
}

/// The router over the shared state.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/reconcile", post(reconcile))
        .with_state(shared)
}

/// Equal in time independent of where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, byte) in a.iter().enumerate() {
        diff |= usize::from(byte ^ b.get(i % b.len().max(1)).copied().unwrap_or(0));
    }
    diff == 0
}

/// `None` when the request may go on, else the 401 answer.
fn check_auth(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let expected = shared.token.as_ref()?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    if given.is_some_and(|token| {
        constant_time_eq(token.as_bytes(), expected.expose_secret().as_bytes())
    }) {
        return None;
    }
    let mut response = (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({ "error": "a valid bearer token is required" })),
    )
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"audience-sync\""),
    );
    Some(response)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready or not, and which part is not: never the config's text, an error's detail or a URL
/// (the probes are unauthenticated; the detail is in `/status`, behind the token).
async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let not_ready = |reason: &str, extra: serde_json::Value| {
        let mut body = json!({ "ready": false, "reason": reason });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    };
    if shared.shutdown.is_cancelled() {
        return not_ready("shutting down", json!({}));
    }
    let config_invalid = !lock(&shared.status).config.valid;
    if config_invalid {
        return not_ready(
            "the config file is invalid (details in /status)",
            json!({ "config": "invalid" }),
        );
    }
    match shared.probe().await {
        Ok(()) => (
            StatusCode::OK,
            axum::Json(json!({ "ready": true, "config": "ok", "apis": "ok" })),
        )
            .into_response(),
        Err(reason) => {
            // Only which service: the rest of the reason may hold a URL or a server's words.
            let service = ["mailchimp", "dataverse"]
                .into_iter()
                .find(|s| reason.to_ascii_lowercase().starts_with(s))
                .unwrap_or("unknown");
            not_ready(
                "an API is not reachable (details in /status)",
                json!({ "config": "ok", "apis": "unreachable", "service": service }),
            )
        }
    }
}

async fn status(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(denied) = check_auth(&shared, &headers) {
        return denied;
    }
    let document = lock(&shared.status).clone();
    axum::Json(document).into_response()
}

async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(denied) = check_auth(&shared, &headers) {
        return denied;
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(super::metrics::CONTENT_TYPE),
        )],
        shared.metrics.render(),
    )
        .into_response()
}

/// Query of `POST /reconcile`.
#[derive(Debug, Deserialize)]
struct ReconcileQuery {
    binding: Option<String>,
}

async fn reconcile(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<ReconcileQuery>,
) -> Response {
    if let Some(denied) = check_auth(&shared, &headers) {
        return denied;
    }
    if shared.shutdown.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "error": "shutting down" })),
        )
            .into_response();
    }
    let queued: Vec<String> = {
        let status = lock(&shared.status);
        match &query.binding {
            Some(name) => match status.bindings.iter().find(|b| &b.name == name) {
                None => {
                    let names: Vec<&str> =
                        status.bindings.iter().map(|b| b.name.as_str()).collect();
                    return (
                        StatusCode::NOT_FOUND,
                        axum::Json(json!({ "error": format!("no binding is named `{name}`"), "bindings": names })),
                    )
                        .into_response();
                }
                Some(b) if b.suspended => {
                    return (
                        StatusCode::CONFLICT,
                        axum::Json(json!({ "error": format!("binding `{name}` is suspended in the config") })),
                    )
                        .into_response();
                }
                Some(b) => vec![b.name.clone()],
            },
            None => status
                .bindings
                .iter()
                .filter(|b| !b.suspended)
                .map(|b| b.name.clone())
                .collect(),
        }
    };
    let command = Command::Reconcile {
        binding: query.binding,
    };
    if shared.commands.send(command).await.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "error": "the reconcile loop has stopped" })),
        )
            .into_response();
    }
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({ "queued": queued })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison_is_exact() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(!constant_time_eq(b"x", b""));
        assert!(constant_time_eq(b"", b""));
    }
}
