//! Personal data in what is shared, through the binary against the sandbox: the Markdown plan
//! (a pull-request comment) and the text plan (a CI log) of members with names, phones, street
//! addresses and Markdown/HTML in their names show none of it, only masked forms, unless
//! `--show-pii`; even then a member's Markdown is inert (a code span: no image, link, mention or
//! HTML); the JSON plan keeps full values, saved `0600`.

use serde_json::json;

use api_sandbox::mailchimp::MemberSeed;
use api_sandbox::{GenerateSpec, Options, Sandbox};

use super::common;

const IMAGE: &str = "![x](https://evil.example/p.png)";
const LINK: &str = "[click](javascript:alert(1))";
const MENTION: &str = "@octocat";
const HTML: &str = "<img src=x onerror=alert(1)>";

/// Every personal value of the members added, and the raw Markdown/HTML in their names.
const VALUES: [&str; 11] = [
    "Zebulon",
    "Quartermaine",
    "+1 555 0199",
    "742 Evergreen Terrace",
    "Springfield",
    "zebulon.q@example.org",
    "attacker@example.org",
    IMAGE,
    LINK,
    MENTION,
    HTML,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_plans_mask_member_data_and_never_carry_its_markdown() {
    let sandbox = Sandbox::start(Options {
        generate: Some(GenerateSpec {
            members: 0,
            tags: 0,
            seed: 3,
            audiences: 1,
            shared: 0,
        }),
        ..audience_sync::commands::sandbox::options()
    })
    .await
    .expect("sandbox starts");
    let (audience, name) = sandbox.mailchimp.audiences().remove(0);
    let mut plain = MemberSeed::new("zebulon.q@example.org");
    plain.merge_fields.insert("FNAME".into(), json!("Zebulon"));
    plain
        .merge_fields
        .insert("LNAME".into(), json!("Quartermaine"));
    plain
        .merge_fields
        .insert("PHONE".into(), json!("+1 555 0199"));
    plain.merge_fields.insert(
        "ADDRESS".into(),
        json!({"addr1": "742 Evergreen Terrace", "addr2": "", "city": "Springfield",
               "state": "OR", "zip": "97403", "country": "US"}),
    );
    let mut hostile = MemberSeed::new("attacker@example.org");
    hostile
        .merge_fields
        .insert("FNAME".into(), json!(format!("{IMAGE} {MENTION}")));
    // Each value within its column's length (last name 50, phone 50), so none is cut.
    hostile
        .merge_fields
        .insert("LNAME".into(), json!(format!("{LINK} | x")));
    hostile.merge_fields.insert("PHONE".into(), json!(HTML));
    for member in [&plain, &hostile] {
        sandbox
            .mailchimp
            .add_member(&audience, member)
            .expect("member added");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let config = common::sandbox_config(
        dir.path(),
        &format!(
            "  - name: main\n    audience: {{id: \"{audience}\"}}\n    marketing_list: {{name: \"{name}\", member_type: contact, create: true}}\n"
        ),
    );
    let config = config.to_str().expect("utf-8 path").to_owned();
    for format in ["markdown", "text"] {
        let out = plan(&sandbox, &config, format, false).await;
        let (stdout, stderr) = common::texts(&out);
        assert!(out.status.success(), "{stderr}");
        assert!(stdout.contains("z***@example.org"), "{stdout}");
        for value in VALUES {
            assert!(
                !stdout.contains(value),
                "{format} shows `{value}`:\n{stdout}"
            );
        }
    }

    let out = plan(&sandbox, &config, "markdown", true).await;
    let (shown, _) = common::texts(&out);
    for value in [
        "Zebulon",
        "+1 555 0199",
        "742 Evergreen Terrace",
        "zebulon.q@example.org",
    ] {
        assert!(
            shown.contains(value),
            "--show-pii shows `{value}`:\n{shown}"
        );
    }
    // The hostile name is there, but only inside code spans: inert.
    let row = shown
        .lines()
        .find(|l| l.contains("attacker@example.org") && l.contains("firstname"))
        .unwrap_or_else(|| panic!("a row of the hostile member:\n{shown}"));
    let outside = outside_code_spans(row);
    for raw in [IMAGE, LINK, MENTION, HTML] {
        assert!(row.contains(raw), "--show-pii shows `{raw}`: {row}");
        assert!(
            !outside.contains(raw),
            "`{raw}` outside a code span: {outside}"
        );
    }
    assert!(
        row.contains("\\| x"),
        "a member's pipe does not break the table: {row}"
    );
    assert_eq!(row.matches(" | ").count(), 2, "three cells: {row}");

    let file = dir.path().join("plan.json");
    let out = common::run_in(
        &sandbox,
        &["plan", config.as_str(), "-out", file.to_str().unwrap()],
    )
    .await;
    assert!(out.status.success());
    let saved = std::fs::read_to_string(&file).expect("saved");
    assert!(
        saved.contains("742 Evergreen Terrace"),
        "the JSON plan keeps full values"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary file left: {leftovers:?}"
    );
}

/// `plan CONFIG --format FORMAT [--show-pii]`.
async fn plan(sandbox: &Sandbox, config: &str, format: &str, show: bool) -> std::process::Output {
    let mut args = vec!["plan", config, "--format", format];
    if show {
        args.push("--show-pii");
    }
    common::run_in(sandbox, &args).await
}

/// The text of a Markdown line outside its inline code spans.
fn outside_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let fence_len = rest[start..].chars().take_while(|c| *c == '`').count();
        let fence = "`".repeat(fence_len);
        let body = &rest[start + fence_len..];
        match body.find(&fence) {
            Some(end) => rest = &body[end + fence_len..],
            None => {
                rest = body;
                break;
            }
        }
    }
    out.push_str(rest);
    out
}
