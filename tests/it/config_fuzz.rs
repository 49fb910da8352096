//! Random and mutated configs fed to `validate`: no panic, bounded time, every error placed
//! inside the file with a help line; and hostile files (deep nesting, alias expansion) fed to
//! the binary under a memory limit, which must answer with exit 0 or 1 only.

use std::time::{Duration, Instant};

use audience_sync::config::validate::{CheckOptions, Checked, check, check_bytes};
use proptest::prelude::*;

use crate::common::{bin, root};
use crate::config_catalogue::run_within;

/// Far more than any input here takes (milliseconds), far less than a quadratic blow-up.
const PER_INPUT: Duration = Duration::from_secs(3);

const VALID: &str = "version: 1
mailchimp:
  api_key: ${MAILCHIMP_API_KEY}
dataverse:
  url: https://contoso.crm.dynamics.com
  tenant_id: ${DATAVERSE_TENANT_ID}
  client_id: ${DATAVERSE_CLIENT_ID}
  client_secret: ${DATAVERSE_CLIENT_SECRET}
defaults:
  max_removals: 10%
  fields: { map: { merge_fields.NICK: nickname } }
bindings:
  - name: newsletter
    audience: { id: a1b2c3d4e5 }
    marketing_list: { name: Newsletter, member_type: contact, create: true }
    members: { statuses: [subscribed, pending], on_unsubscribe: remove }
    lead_values: { subject: 'Hi {{ merge_fields.FNAME }}' }
  - name: leads
    audience: { name: Leads }
    marketing_list: { id: 8f2c1d3e-0000-4000-8000-0123456789ab, member_type: lead }
    tags: { include: ['vip-*'], exclude: [internal] }
";

/// Pieces that YAML and the config give meaning to.
const TOKENS: &[&str] = &[
    "- ",
    ": ",
    ":",
    "\n",
    "  ",
    "    ",
    "[",
    "]",
    "{",
    "}",
    ", ",
    "&a ",
    "*a",
    "&b ",
    "*b",
    "# c",
    "'",
    "\"",
    "$",
    "${",
    "}",
    "\t",
    "\u{feff}",
    "\u{200b}",
    "version",
    "bindings",
    "name",
    "audience",
    "id",
    "marketing_list",
    "member_type",
    "contact",
    "Contact",
    "fields",
    "map",
    "column",
    "policy",
    "max_removals",
    "1",
    "0123",
    "1.0",
    "-5",
    "1e400",
    "~",
    "null",
    "true",
    "---",
    "? ",
    "|",
    ">",
    "!!str ",
    "%",
    "\\",
    "\u{e9}",
    "\r\n",
];

fn no_env(_: &str) -> Option<String> {
    None
}

/// Check `text` and assert what must hold for any input.
fn assert_sound(text: &str, checked: &Checked, took: Duration) -> Result<(), TestCaseError> {
    prop_assert!(took < PER_INPUT, "took {took:?}");
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let widths: Vec<usize> = body
        .split('\n')
        .map(|l| l.trim_end_matches('\r').chars().count())
        .collect();
    for d in &checked.diagnostics {
        prop_assert!(
            d.line >= 1 && d.line <= widths.len(),
            "{d:?} outside the file"
        );
        prop_assert!(
            d.column >= 1 && d.column <= widths[d.line - 1] + 1,
            "{d:?} outside its line"
        );
        if d.severity == audience_sync::config::Severity::Error {
            prop_assert!(d.help.is_some(), "{d:?} has no help");
        }
    }
    Ok(())
}

fn run_check(text: &str) -> Result<(), TestCaseError> {
    let started = Instant::now();
    let checked = check(
        text,
        &CheckOptions {
            check_env: false,
            lookup: &no_env,
        },
    );
    assert_sound(text, &checked, started.elapsed())
}

fn mutate(mut text: String, edits: &[(usize, usize, usize)]) -> String {
    for &(at, op, token) in edits {
        let mut cut = at % (text.len() + 1);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let token = TOKENS[token % TOKENS.len()];
        match op % 4 {
            0 => text.insert_str(cut, token),
            1 => {
                let end = text[cut..]
                    .char_indices()
                    .nth(token.len().max(1))
                    .map_or(text.len(), |(i, _)| cut + i);
                text.replace_range(cut..end, "");
            }
            2 => {
                let line_end = text[cut..].find('\n').map_or(text.len(), |i| cut + i + 1);
                let line_start = text[..cut].rfind('\n').map_or(0, |i| i + 1);
                let line = text[line_start..line_end].to_owned();
                text.insert_str(line_end, &line);
            }
            _ => {
                let end = text[cut..]
                    .chars()
                    .next()
                    .map_or(cut, |c| cut + c.len_utf8());
                text.replace_range(cut..end, token);
            }
        }
    }
    text
}

fn alias_bomb(levels: usize, width: usize) -> String {
    let mut text = String::from("a0: &a0 [x]\n");
    for level in 1..=levels {
        let items = vec![format!("*a{}", level - 1); width].join(", ");
        text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
    }
    text
}

fn deep(kind: usize, depth: usize) -> String {
    match kind % 3 {
        0 => format!("x:\n  {}y\n", "- ".repeat(depth)),
        1 => (0..depth)
            .map(|i| format!("{}k:\n", "  ".repeat(i)))
            .collect(),
        _ => format!("x: {}{}\n", "[".repeat(depth), "]".repeat(depth)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_token_soup_is_answered_soundly(tokens in prop::collection::vec(0..TOKENS.len(), 0..80)) {
        let text: String = tokens.iter().map(|&i| TOKENS[i]).collect();
        run_check(&text)?;
    }

    #[test]
    fn mutated_configs_are_answered_soundly(edits in prop::collection::vec((0..2000usize, 0..4usize, 0..200usize), 1..8)) {
        run_check(&mutate(VALID.to_owned(), &edits))?;
    }

    #[test]
    fn random_bytes_are_answered_soundly(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let started = Instant::now();
        let checked = check_bytes(&bytes, &CheckOptions { check_env: false, lookup: &no_env });
        let text = String::from_utf8_lossy(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes)).into_owned();
        assert_sound(&text, &checked, started.elapsed())?;
    }

    #[test]
    fn nesting_and_aliases_are_bounded(levels in 1..12usize, width in 1..12usize, kind in 0..3usize, depth in 1..3000usize) {
        let bomb = format!("{VALID}{}", alias_bomb(levels, width));
        run_check(&bomb)?;
        run_check(&format!("{VALID}{}", deep(kind, depth)))?;
    }
}

#[test]
fn hostile_files_end_with_exit_0_or_1_under_a_memory_limit() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let inputs = [
        ("bomb-9x9", alias_bomb(9, 9)),
        ("bomb-12x12", alias_bomb(12, 12)),
        ("deep-block", deep(0, 30_000)),
        ("deep-maps", deep(1, 2_000)),
        ("deep-flow", deep(2, 100_000)),
        ("valid", VALID.to_owned()),
        (
            "long-key-children",
            format!("{}:\n{}", "k".repeat(1000), "  - 1\n".repeat(20_000)),
        ),
    ];
    for (name, text) in inputs {
        let path = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, &text).expect("write");
        let mut command = std::process::Command::new("sh");
        // 768 MiB of address space: far below the gigabytes an unbounded expansion reaches.
        command
            .args(["-c", "ulimit -v 786432 && exec \"$0\" validate \"$1\""])
            .arg(bin().get_program())
            .arg(&path)
            .current_dir(root());
        let result = run_within(command, Duration::from_secs(30));
        let Some((code, _, stderr)) = result else {
            panic!("{name}: took longer than 30 s");
        };
        let expected = if name == "valid" { Some(0) } else { Some(1) };
        assert_eq!(code, expected, "{name}: exit {code:?}\n{stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
}
