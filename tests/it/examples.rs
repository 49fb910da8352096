//! Every config in `examples/` is valid, with and without its environment.

use crate::common::{bin, files, root, texts};

#[test]
fn every_example_config_validates() {
    let examples = files(&root().join("examples"), "yaml");
    assert!(
        examples.len() >= 2,
        "examples/ should hold the minimal and the full config"
    );
    for path in examples {
        let relative = path.strip_prefix(root()).unwrap().display().to_string();
        let output = bin().args(["validate", &relative]).output().unwrap();
        let (stdout, stderr) = texts(&output);
        assert_eq!(output.status.code(), Some(0), "{relative}:\n{stderr}");
        assert!(stdout.contains("valid"), "{stdout}");
        assert!(!stderr.contains("error"), "{relative}: {stderr}");

        // With every variable it names set, `--check-env` passes too.
        let text = std::fs::read_to_string(&path).unwrap();
        let mut command = bin();
        command.args(["validate", "--check-env", &relative]);
        for reference in audience_sync::config::env::references(&text).unwrap() {
            let value = match reference.name.as_str() {
                "MAILCHIMP_API_KEY" => "0123456789abcdef0123456789abcdef-us21",
                name if name.ends_with("_URL") => "http://127.0.0.1:9/3.0",
                _ => "value",
            };
            command.env(&reference.name, value);
        }
        let output = command.output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{relative} with its environment: {}",
            texts(&output).1
        );
    }
}
