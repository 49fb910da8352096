//! Benchmark of `validate` on large and hostile configs: 5,000 bindings (time must grow
//! linearly with bindings) and a 9×9 YAML alias bomb (refused within the alias budget).
//!
//! `cargo run --release --example bench_validate`

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use audience_sync::config::validate::{CheckOptions, check};

const HEAD: &str = "version: 1
mailchimp:
  api_key: ${MAILCHIMP_API_KEY}
dataverse:
  url: https://contoso.crm.dynamics.com
  tenant_id: ${DATAVERSE_TENANT_ID}
  client_id: ${DATAVERSE_CLIENT_ID}
  client_secret: ${DATAVERSE_CLIENT_SECRET}
defaults:
  fields: { map: { merge_fields.COMPANY: companyname } }
bindings:
";

fn no_env(_: &str) -> Option<String> {
    None
}

fn bindings(count: usize) -> String {
    let mut text = String::from(HEAD);
    for i in 0..count {
        let _ = write!(
            text,
            "  - name: client-{i}\n    audience: {{ id: a{i:09x} }}\n    marketing_list: {{ name: List {i}, member_type: contact, create: true }}\n    fields: {{ map: {{ merge_fields.NICK: nickname }} }}\n    max_removals: 5%\n"
        );
    }
    text
}

fn alias_bomb() -> String {
    let mut text = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (prev, next) in "abcdefgh".chars().zip("bcdefghi".chars()) {
        let items = vec![format!("*{prev}"); 9].join(",");
        let _ = writeln!(text, "{next}: &{next} [{items}]");
    }
    text
}

/// The best of `runs` timings, and the number of diagnostics.
fn time(text: &str, runs: usize) -> (Duration, usize) {
    let options = CheckOptions {
        check_env: false,
        lookup: &no_env,
    };
    let mut best = Duration::MAX;
    let mut found = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let checked = check(text, &options);
        best = best.min(started.elapsed());
        found = checked.diagnostics.len();
    }
    (best, found)
}

fn main() {
    // Build the schema validator once, as any run does before its first file.
    let _ = time(&bindings(1), 1);
    for count in [1_000, 2_000, 5_000] {
        let text = bindings(count);
        let (took, found) = time(&text, 3);
        println!(
            "validate {count:>5} bindings ({:>7} bytes): {:>8.1} ms ({found} diagnostics)",
            text.len(),
            took.as_secs_f64() * 1000.0
        );
    }
    let bomb = alias_bomb();
    let (took, found) = time(&bomb, 3);
    println!(
        "validate 9×9 alias bomb ({} bytes):   {:>8.1} ms ({found} diagnostics: refused at the alias budget)",
        bomb.len(),
        took.as_secs_f64() * 1000.0
    );
}
