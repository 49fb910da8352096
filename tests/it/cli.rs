//! The command line as an interface: exit codes, usage errors, help, completions.

use crate::common::{run, texts};

#[test]
fn usage_errors_exit_64_not_2() {
    for args in [
        &["frobnicate"][..],
        &["plan", "--no-such-flag"],
        &["watch", "--interval", "soon"],
    ] {
        let output = run(args);
        assert_eq!(
            output.status.code(),
            Some(64),
            "{args:?}: {}",
            texts(&output).1
        );
    }
}

#[test]
fn help_and_version_exit_0() {
    let output = run(&["--help"]);
    let (stdout, _) = texts(&output);
    assert_eq!(output.status.code(), Some(0));
    for command in [
        "validate",
        "plan",
        "apply",
        "watch",
        "status",
        "schema",
        "sandbox",
        "demo",
        "completions",
    ] {
        assert!(stdout.contains(command), "--help lists `{command}`");
    }
    assert_eq!(run(&["--version"]).status.code(), Some(0));
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let output = run(&["completions", shell]);
        let (stdout, _) = texts(&output);
        assert_eq!(output.status.code(), Some(0));
        assert!(
            stdout.contains("audience-sync") && stdout.contains("validate"),
            "{shell}"
        );
    }
}

#[test]
fn terraform_spelling_of_out_is_accepted() {
    // `-out FILE` parses (the command itself then runs, or says it is not implemented yet).
    let output = run(&["plan", "-out", "plan.json", "no-such-config.yaml"]);
    assert_ne!(output.status.code(), Some(64), "{}", texts(&output).1);
}
