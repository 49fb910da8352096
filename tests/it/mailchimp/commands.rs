//! The commands that talk to Mailchimp: `audiences`, `init`, `sandbox`.

use super::*;

// ----- commands ---------------------------------------------------------------------------------

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_audience-sync"))
}

#[tokio::test]
async fn audiences_lists_id_name_members_and_tags() {
    let sandbox = start(
        Seed::default(),
        Some("members=40,tags=3,seed=1,audiences=2"),
    )
    .await;
    let (api, key) = (
        env_of(&sandbox, "MAILCHIMP_BASE_URL"),
        env_of(&sandbox, "MAILCHIMP_API_KEY"),
    );
    let output = tokio::task::spawn_blocking(move || {
        bin()
            .arg("audiences")
            .env("MAILCHIMP_BASE_URL", api)
            .env("MAILCHIMP_API_KEY", key)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with("ID ")
            && lines[0].contains("NAME")
            && lines[0].contains("MEMBERS")
            && lines[0].ends_with("TAGS")
    );
    for ((id, name), line) in sandbox.mailchimp.audiences().iter().zip(&lines[1..]) {
        assert!(
            line.starts_with(id.as_str()) && line.contains(name.as_str()) && line.ends_with(" 3"),
            "{line}"
        );
    }

    let api = env_of(&sandbox, "MAILCHIMP_BASE_URL");
    let output = tokio::task::spawn_blocking(move || {
        bin()
            .args(["audiences", "--format", "json"])
            .env("MAILCHIMP_BASE_URL", api)
            .env("MAILCHIMP_API_KEY", "ffffffffffffffffffffffffffffffff-us21")
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("401 `API Key Invalid`"), "{stderr}");
    assert!(!stderr.contains("ffffffffffffffff"), "{stderr}");
    assert!(output.stdout.is_empty());

    // `--config` takes the connection from a config file, `${VAR}` references expanded.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("audience-sync.yaml");
    std::fs::write(
        &config,
        format!(
            "version: 1\nmailchimp:\n  api_key: \"${{MC_KEY_FOR_TEST}}\"\n  base_url: {}\n",
            env_of(&sandbox, "MAILCHIMP_BASE_URL")
        ),
    )
    .unwrap();
    let key = env_of(&sandbox, "MAILCHIMP_API_KEY");
    let output = tokio::task::spawn_blocking(move || {
        bin()
            .args(["audiences", "--format", "json", "--config"])
            .arg(&config)
            .env_remove("MAILCHIMP_BASE_URL")
            .env_remove("MAILCHIMP_API_KEY")
            .env("MC_KEY_FOR_TEST", key)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    assert_eq!(listed[0]["tag_count"], 3);
    assert!(listed[0]["member_count"].as_u64().unwrap() > 20);
}

#[tokio::test]
async fn init_writes_a_starter_config_that_becomes_valid_when_a_binding_is_uncommented() {
    let sandbox = start(
        Seed::default(),
        Some("members=10,tags=2,seed=1,audiences=2"),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("audience-sync.yaml");
    let (api, key, out2) = (
        env_of(&sandbox, "MAILCHIMP_BASE_URL"),
        env_of(&sandbox, "MAILCHIMP_API_KEY"),
        out.clone(),
    );
    let run = move || {
        bin()
            .args(["init", "--out"])
            .arg(&out2)
            .env("MAILCHIMP_BASE_URL", &api)
            .env("MAILCHIMP_API_KEY", &key)
            .env_remove("DATAVERSE_URL")
            .output()
    };
    let first = tokio::task::spawn_blocking(run.clone())
        .await
        .unwrap()
        .unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        !text.contains(&env_of(&sandbox, "MAILCHIMP_API_KEY")),
        "no secret in the file"
    );
    let again = tokio::task::spawn_blocking(run).await.unwrap().unwrap();
    assert_eq!(
        again.status.code(),
        Some(1),
        "an existing file is not overwritten without --force"
    );
    let (id, _) = &sandbox.mailchimp.audiences()[1];
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains(&format!("id: \"{id}\"")))
        .unwrap()
        - 2;
    let edited: String = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if (at..at + 7).contains(&i) {
                l.replacen("# ", "", 1)
            } else {
                (*l).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let value = audience_sync::config::yaml::parse_value(&edited).unwrap();
    let config: audience_sync::config::Config = serde_json::from_value(value).unwrap();
    assert_eq!(config.bindings.len(), 1);
    assert_eq!(config.bindings[0].name, "generated-audience-2");
    assert_eq!(config.bindings[0].audience.id.as_deref(), Some(id.as_str()));
    assert_eq!(
        config.mailchimp.base_url.as_deref(),
        Some("${MAILCHIMP_BASE_URL}")
    );
}

#[tokio::test]
async fn sandbox_prints_its_env_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("sandbox.yaml");
    let mut child = bin()
        .args([
            "sandbox",
            "--generate",
            "members=1200,tags=2,seed=1",
            "--listen",
            "127.0.0.1:0",
            "--print-config",
        ])
        .arg(&config_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut env = std::collections::HashMap::new();
    while !(env.contains_key("MAILCHIMP_BASE_URL") && env.contains_key("MAILCHIMP_API_KEY")) {
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(err) => {
                let _ = child.kill();
                panic!("the sandbox printed no env in time: {err}");
            }
        };
        let (key, value) = line.split_once('=').expect("KEY=value lines");
        env.insert(key.to_owned(), value.to_owned());
    }
    let client = Client::builder()
        .api_key(SecretString::from(env["MAILCHIMP_API_KEY"].clone()))
        .base_url(Some(env["MAILCHIMP_BASE_URL"].clone()))
        .build()
        .unwrap();
    let served = async {
        let lists = client.lists().await?;
        let all = MemberQuery {
            statuses: audience_sync::mailchimp::ALL_STATUSES.to_vec(),
            ..MemberQuery::default()
        };
        let members = read_all(&client, &lists[0].id, all).await?;
        Ok::<_, Error>((lists.len(), members.len()))
    }
    .await;
    #[cfg(unix)]
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let stopped = Arc::new(std::sync::Mutex::new(None));
    for _ in 0..100 {
        if let Ok(Some(status)) = child.try_wait() {
            *stopped.lock().unwrap() = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = *stopped.lock().unwrap();
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert_eq!(served.unwrap(), (1, 1200));
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM stops the sandbox cleanly: {status:?}"
    );
    let text = std::fs::read_to_string(&config_path).expect("--print-config wrote the file");
    let value = audience_sync::config::yaml::parse_value(&text).unwrap();
    let config: audience_sync::config::Config = serde_json::from_value(value).unwrap();
    assert_eq!(config.bindings.len(), 1, "one active binding per audience");
    assert_eq!(
        config.mailchimp.base_url.as_deref(),
        Some(env["MAILCHIMP_BASE_URL"].as_str())
    );
}

/// Whether a process has ended (gone, or a zombie nobody has reaped yet).
#[cfg(target_os = "linux")]
fn ended(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn sandbox_in_the_background_lets_eval_return() {
    let script = format!(
        "eval \"$('{}' sandbox --generate members=5,seed=1 2>/dev/null &)\"; \
         echo \"$MAILCHIMP_BASE_URL $MAILCHIMP_API_KEY $AUDIENCE_SYNC_SANDBOX_PID\"",
        env!("CARGO_BIN_EXE_audience-sync")
    );
    let mut shell = Command::new("bash")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut returned = false;
    for _ in 0..300 {
        if shell.try_wait().unwrap().is_some() {
            returned = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !returned {
        let _ = shell.kill();
    }
    let output = shell.wait_with_output().unwrap();
    assert!(
        returned,
        "eval \"$(audience-sync sandbox … &)\" did not return"
    );
    let line = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let parts: Vec<&str> = line.split(' ').collect();
    assert_eq!(parts.len(), 3, "{line}");
    let (base_url, key, pid) = (parts[0], parts[1], parts[2]);
    let client = Client::builder()
        .api_key(SecretString::from(key.to_owned()))
        .base_url(Some(base_url.to_owned()))
        .build()
        .unwrap();
    let pinged = client.ping().await;
    let _ = Command::new("kill").args(["-TERM", pid]).status();
    let mut stopped = false;
    for _ in 0..100 {
        if ended(pid) {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !stopped {
        let _ = Command::new("kill").args(["-KILL", pid]).status();
    }
    pinged.unwrap();
    assert!(stopped, "the sandbox stops on SIGTERM");
}
