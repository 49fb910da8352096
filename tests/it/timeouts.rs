//! Outgoing requests have deadlines (issue 14): a token endpoint that accepts the connection and
//! never answers fails `plan` within a minute, naming the token request and the endpoint's host.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use api_sandbox::{GenerateSpec, Options, Sandbox};

use super::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_that_never_answers_fails_plan_within_a_minute() {
    let sandbox = Sandbox::start(Options {
        generate: Some(GenerateSpec {
            members: 5,
            tags: 1,
            seed: 3,
            audiences: 1,
            shared: 0,
        }),
        ..audience_sync::commands::sandbox::options()
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

/// `/healthz` of `watch` answers within a second while 1,100 clients hold connections that sent
/// half a request header and went quiet, with the server process limited to 1024 open files
/// (what a systemd service gets by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_under_1100_slow_connections_with_1024_files() {
    use tokio::io::AsyncWriteExt;
    let sandbox = Sandbox::start(audience_sync::commands::sandbox::options())
        .await
        .expect("sandbox starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = common::sandbox_config(dir.path(), "");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let bin = common::bin();
    let mut command = std::process::Command::new("sh");
    command
        .args(["-c", "ulimit -n 1024 && exec \"$0\" \"$@\""])
        .arg(bin.get_program())
        .args(["watch", config.to_str().expect("utf-8 path")])
        .args(["--listen", &format!("127.0.0.1:{port}"), "--interval", "1h"])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in sandbox.env() {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("watch starts");
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http
        .get(&url)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "watch never served /healthz");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut slow = Vec::with_capacity(1_100);
    for _ in 0..1_100 {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connects");
        stream
            .write_all(b"GET /status HTTP/1.1\r\nHost: loc")
            .await
            .expect("half a header");
        slow.push(stream);
    }
    let fresh = reqwest::Client::new();
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(1), fresh.get(&url).send()).await;
    let took = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    let response = answer
        .unwrap_or_else(|_| panic!("/healthz did not answer within a second"))
        .expect("/healthz answers");
    assert!(response.status().is_success(), "{}", response.status());
    eprintln!(
        "/healthz answered in {took:?} with {} slow connections",
        slow.len()
    );
}
