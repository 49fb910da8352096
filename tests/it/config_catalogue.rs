//! The catalogue of broken configs (`tests/cases/invalid/*.yaml`). Each file ends with comment
//! lines saying how `validate` must answer:
//! `# expect: LINE:COLUMN: MESSAGE` (one per error, all of them, in order),
//! optionally `# args: …` (extra arguments) and `# env: K=V …` (variables to set).
//! Every case must exit 1, print exactly those errors at those places, and never panic.

use crate::common::{bin, files, root, texts};

struct Case {
    args: Vec<String>,
    env: Vec<(String, String)>,
    expected: Vec<String>,
}

fn read_case(text: &str) -> Case {
    let mut case = Case {
        args: Vec::new(),
        env: Vec::new(),
        expected: Vec::new(),
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# expect: ") {
            case.expected.push(rest.to_owned());
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

#[test]
fn every_broken_config_is_refused_with_its_messages_and_positions() {
    let cases = files(&root().join("tests/cases/invalid"), "yaml");
    assert!(
        cases.len() >= 25,
        "the catalogue holds {} cases; it must hold at least 25",
        cases.len()
    );
    let mut failures = Vec::new();
    for path in &cases {
        let relative = path.strip_prefix(root()).unwrap().display().to_string();
        let case = read_case(&std::fs::read_to_string(path).unwrap());
        assert!(
            !case.expected.is_empty(),
            "{relative} says nothing about what to expect"
        );
        let mut command = bin();
        command.arg("validate").args(&case.args).arg(&relative);
        for (k, v) in &case.env {
            command.env(k, v);
        }
        let output = command.output().unwrap();
        let (_, stderr) = texts(&output);
        let errors: Vec<String> = stderr
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{relative}:")))
            .filter_map(|l| {
                l.split_once(": error: ")
                    .map(|(pos, msg)| format!("{pos}: {msg}"))
            })
            .collect();
        if output.status.code() != Some(1) || errors != case.expected || stderr.contains("panicked")
        {
            failures.push(format!(
                "{relative}: exit {:?}\n  expected: {:#?}\n  got:      {:#?}\n  stderr: {stderr}",
                output.status.code(),
                case.expected,
                errors
            ));
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
fn json_format_reports_the_same_errors_for_machines() {
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
    let (_, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("cannot read config `no/such/file.yaml`"),
        "{stderr}"
    );
}
