//! Outgoing requests have deadlines (issue 14): a token endpoint that accepts the connection and
//! never answers fails `plan` within a minute, naming the token request and the endpoint's host.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use audience_sync::sandbox::{GenerateSpec, Options, Sandbox};

use super::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_that_never_answers_fails_plan_within_a_minute() {
    let sandbox = Sandbox::start(Options {
        generate: Some(GenerateSpec {
            members: 5,
            tags: 1,
            seed: 3,
            audiences: 1,
        }),
        ..Options::default()
    })
    .await
    .expect("sandbox starts");
    let (audience, name) = sandbox.mailchimp.audiences().remove(0);
    // Accepts every connection, reads nothing, answers nothing; the sockets stay open.
    let silent = TcpListener::bind("127.0.0.1:0").expect("binds");
    let addr = silent.local_addr().expect("address");
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in silent.incoming().flatten() {
            open.push(stream);
        }
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let binding = format!(
        "  - name: main\n    audience:\n      id: \"{audience}\"\n    marketing_list:\n      name: \"{name}\"\n      member_type: contact\n      create: true"
    );
    let config = common::sandbox_config(dir.path(), &binding);
    let mut command = common::bin();
    for (k, v) in sandbox.env() {
        command.env(k, v);
    }
    let token_url = format!("http://{addr}/tenant/oauth2/v2.0/token");
    command
        .env("DATAVERSE_TOKEN_URL", &token_url)
        .args(["plan", config.to_str().expect("utf-8 path")]);
    let started = Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::task::spawn_blocking(move || command.output().expect("runs")),
    )
    .await
    .expect("plan ends")
    .expect("joined");
    let took = started.elapsed();
    let (stdout, stderr) = common::texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        took < Duration::from_secs(60),
        "plan took {took:?}: {stderr}"
    );
    assert!(
        stderr.contains("token request") && stderr.contains(&addr.ip().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("retrying"), "retries are logged: {stderr}");
}
