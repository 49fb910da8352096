//! The catalogue of broken configs (`tests/cases/invalid/*.yaml`). Each file ends with comment
//! lines saying how `validate` must answer:
//! `# expect: LINE:COLUMN: MESSAGE` (one per error, all of them, in order), each followed by
//! `# help: HELP` (the error's help line; every error has one),
//! optionally `# args: …` (extra arguments) and `# env: K=V …` (variables to set).
//! Every case must exit 1 within [`CASE_TIME`], print exactly those errors at those places with
//! those help lines, give the same in `--format json`, and never panic.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{bin, files, root};

/// The longest a case may take (a debug build on a busy machine; a case takes milliseconds).
const CASE_TIME: Duration = Duration::from_secs(20);

struct Case {
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// `LINE:COLUMN: MESSAGE` and its help line.
    expected: Vec<(String, Option<String>)>,
}

fn read_case(text: &str) -> Case {
    let mut case = Case {
        args: Vec::new(),
        env: Vec::new(),
        expected: Vec::new(),
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# expect: ") {
            case.expected.push((rest.to_owned(), None));
        } else if let Some(rest) = line.strip_prefix("# help: ") {
            if let Some(last) = case.expected.last_mut() {
                last.1 = Some(rest.to_owned());
            }
        } else if let Some(rest) = line.strip_prefix("# args: ") {
            case.args.extend(rest.split_whitespace().map(str::to_owned));
        } else if let Some(rest) = line.strip_prefix("# env: ") {
            for pair in rest.split_whitespace() {
                let (k, v) = pair.split_once('=').expect("K=V");
                case.env.push((k.to_owned(), v.to_owned()));
            }
        }
    }
    case
}

/// Run a command to its end, within `limit`; `None` when it took longer (it is killed).
pub(crate) fn run_within(
    mut command: Command,
    limit: Duration,
) -> Option<(Option<i32>, String, String)> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    status.map(|s| (s.code(), out, err))
}

/// The errors of a text report: `LINE:COLUMN: MESSAGE` and the help line under each.
fn text_errors(relative: &str, stderr: &str) -> Vec<(String, Option<String>)> {
    let mut errors: Vec<(String, Option<String>)> = Vec::new();
    let mut in_error = false;
    for line in stderr.lines() {
        if let Some(rest) = line.strip_prefix(&format!("{relative}:")) {
            in_error = false;
            if let Some((pos, msg)) = rest.split_once(": error: ") {
                errors.push((format!("{pos}: {msg}"), None));
                in_error = true;
            }
        } else if let Some(help) = line.strip_prefix("  help: ")
            && in_error
            && let Some(last) = errors.last_mut()
        {
            last.1 = Some(help.to_owned());
        }
    }
    errors
}

/// The errors of a JSON report, in the same form.
fn json_errors(stdout: &str) -> Vec<(String, Option<String>)> {
    let report: serde_json::Value = serde_json::from_str(stdout).unwrap_or_default();
    report["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    (
                        format!(
                            "{}:{}: {}",
                            e["line"].as_u64().unwrap_or(0),
                            e["column"].as_u64().unwrap_or(0),
                            e["message"].as_str().unwrap_or("")
                        ),
                        e["help"].as_str().map(str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_broken_config_is_refused_with_its_messages_positions_and_help() {
    let cases = files(&root().join("tests/cases/invalid"), "yaml");
    assert!(
        cases.len() >= 75,
        "the catalogue holds {} cases; it must hold at least 75",
        cases.len()
    );
    let mut failures = Vec::new();
    for path in &cases {
        let relative = path.strip_prefix(root()).unwrap().display().to_string();
        let bytes = std::fs::read(path).unwrap();
        let case = read_case(&String::from_utf8_lossy(&bytes));
        assert!(
            !case.expected.is_empty(),
            "{relative} says nothing about what to expect"
        );
        assert!(
            case.expected.iter().all(|(_, help)| help.is_some()),
            "{relative}: every `# expect:` line needs its `# help:` line"
        );
        for format in ["text", "json"] {
            let mut command = bin();
            command
                .arg("validate")
                .args(["--format", format])
                .args(&case.args)
                .arg(&relative);
            for (k, v) in &case.env {
                command.env(k, v);
            }
            let started = Instant::now();
            let Some((code, stdout, stderr)) = run_within(command, CASE_TIME) else {
                failures.push(format!(
                    "{relative} ({format}): took longer than {CASE_TIME:?}"
                ));
                continue;
            };
            let errors = if format == "json" {
                json_errors(&stdout)
            } else {
                text_errors(&relative, &stderr)
            };
            if code != Some(1) || errors != case.expected || stderr.contains("panicked") {
                failures.push(format!(
                    "{relative} ({format}, {:?}): exit {code:?}\n  expected: {:#?}\n  got:      {errors:#?}\n  stderr: {stderr}",
                    started.elapsed(),
                    case.expected,
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn json_format_reports_the_path_of_each_error() {
    let output = bin()
        .args([
            "validate",
            "--format",
            "json",
            "tests/cases/invalid/unknown_binding_key.yaml",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("stdout is JSON");
    assert_eq!(report["valid"], false);
    let error = &report["errors"][0];
    assert_eq!(
        (error["line"].as_u64(), error["column"].as_u64()),
        (Some(13), Some(5))
    );
    assert_eq!(error["path"], "/bindings/0/prune_member");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `prune_members`")
    );
}

#[test]
fn a_missing_file_is_an_error_not_a_panic() {
    let output = bin()
        .args(["validate", "no/such/file.yaml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("cannot read config `no/such/file.yaml`"),
        "{stderr}"
    );
}
