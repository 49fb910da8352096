//! Unit tests of the validation driver and its checks.

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn run(text: &str) -> Checked {
    check(
        text,
        &CheckOptions {
            check_env: false,
            lookup: &no_env,
        },
    )
}

const VALID: &str = "version: 1
mailchimp:
  api_key: ${MAILCHIMP_API_KEY}
dataverse:
  url: https://contoso.crm.dynamics.com
  tenant_id: ${DATAVERSE_TENANT_ID}
  client_id: ${DATAVERSE_CLIENT_ID}
  client_secret: ${DATAVERSE_CLIENT_SECRET}
bindings:
  - name: newsletter
    audience: { id: a1b2c3d4e5 }
    marketing_list: { name: Newsletter, member_type: contact, create: true }
";

#[test]
fn a_valid_config_has_no_diagnostics() {
    let checked = run(VALID);
    assert_eq!(checked.diagnostics, vec![]);
    assert!(checked.config.is_some());
}

#[test]
fn a_byte_order_mark_is_skipped() {
    let checked = run(&format!("\u{feff}{VALID}"));
    assert_eq!(checked.diagnostics, vec![]);
    let bytes = [b"\xEF\xBB\xBF".as_slice(), VALID.as_bytes()].concat();
    let checked = check_bytes(
        &bytes,
        &CheckOptions {
            check_env: false,
            lookup: &no_env,
        },
    );
    assert_eq!(checked.diagnostics, vec![]);
}

#[test]
fn unknown_keys_get_a_suggestion_and_their_position() {
    let text = VALID.replace("    audience:", "    prune_member: true\n    audience:");
    let checked = run(&text);
    let d = &checked.diagnostics[0];
    assert_eq!((d.line, d.column), (11, 5));
    assert_eq!(
        d.message,
        "unknown key `prune_member`; did you mean `prune_members`?"
    );
    assert!(d.help.is_some());
}

#[test]
fn all_schema_errors_come_at_once() {
    let text = VALID
        .replace("version: 1", "version: 2")
        .replace("member_type: contact", "member_type: account");
    let checked = run(&text);
    assert_eq!(checked.diagnostics.len(), 2, "{:#?}", checked.diagnostics);
}

#[test]
fn meaning_checks_run_beside_schema_errors() {
    let text = VALID.replace("version: 1", "version: 2").replace(
        "tenant_id: ${DATAVERSE_TENANT_ID}",
        "tenant_id: $DATAVERSE_TENANT_ID",
    );
    let checked = run(&text);
    let messages: Vec<&str> = checked
        .diagnostics
        .iter()
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(messages[1].contains("is not expanded"), "{messages:#?}");
    let d = &checked.diagnostics[1];
    assert_eq!((d.line, d.column), (6, 14));
}

#[test]
fn every_error_has_help() {
    let text =
        "version: 1.0\nmailchimp: 3\ndataverse:\n  url:\nbindings: [ {name: ''} ]\nx: 1\nx: 2\n";
    let checked = run(text);
    assert!(checked.diagnostics.len() >= 5, "{:#?}", checked.diagnostics);
    for d in &checked.diagnostics {
        assert!(d.help.is_some(), "{d:#?}");
        assert!(
            !d.message.contains("u32") && !d.message.contains("enum"),
            "{d:#?}"
        );
    }
}

#[test]
fn bytes_that_are_not_utf8_are_placed() {
    let mut bytes = VALID.as_bytes().to_vec();
    let at = VALID.find("Newsletter").unwrap();
    bytes[at + 3] = 0xE9;
    let checked = check_bytes(
        &bytes,
        &CheckOptions {
            check_env: false,
            lookup: &no_env,
        },
    );
    let d = &checked.diagnostics[0];
    assert_eq!((d.line, d.column), (12, 32), "{d:#?}");
    assert!(d.message.contains("0xE9"), "{d:#?}");
    assert_eq!(checked.diagnostics.len(), 1, "{:#?}", checked.diagnostics);
}

#[test]
fn data_centre_suffix() {
    assert!(has_data_centre("0123456789abcdef0123456789abcdef-us21"));
    assert!(!has_data_centre("0123456789abcdef0123456789abcdef"));
    assert!(!has_data_centre("abc-21"));
}

#[test]
fn sources_are_checked_with_suggestions() {
    assert!(check_source("merge_fields.FNAME").is_ok());
    assert!(check_source("merge_fields.ADDRESS.city").is_ok());
    assert!(check_source("location.country_code").is_ok());
    assert_eq!(
        check_source("emial_address").unwrap_err(),
        "`emial_address` is not a member field; did you mean `email_address`?"
    );
    assert!(check_source("merge_fields.fname").is_err());
}

#[test]
fn a_member_field_that_cannot_go_into_a_standard_column_is_an_error_at_the_column() {
    let text = format!(
        "{VALID}    fields:\n      map:\n        vip: donotphone\n        timestamp_signup: donotemail\n"
    );
    let checked = run(&text);
    let errors: Vec<(usize, usize, &str)> = checked
        .diagnostics
        .iter()
        .map(|d| (d.line, d.column, d.message.as_str()))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!((errors[0].0, errors[0].1), (16, 27));
    assert!(errors[0].2.contains("`timestamp_signup`"), "{errors:?}");
    assert!(checked.diagnostics[0].help.is_some());
}
