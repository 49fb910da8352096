//! Typed CRM writes with the real binary (issue 12): member fields mapped onto the standard
//! contact columns of the emulator, whose types, lengths and refusals are Dataverse's. The
//! CRM is read back through the Web API, as another client would.

use api_sandbox::dataverse::columns::PluginRefusal;
use api_sandbox::mailchimp::MemberStatus;
use api_sandbox::{Options, Sandbox, Seed};
use serde_json::{Value, json};

use super::common;

const TYPED: &str = "typed@example.com";
const QUITTER: &str = "quitter@example.com";

fn seed(first_name: &str, postal_code: &str) -> Seed {
    serde_json::from_value(json!({"mailchimp": {"audiences": [{
        "name": "Typed",
        "id": "7e57ed0001",
        "merge_fields": [
            {"tag": "FNAME"}, {"tag": "LNAME"}, {"tag": "ZIP"}, {"tag": "JOB"},
            {"tag": "BIRTHDAY", "type": "date"},
            {"tag": "CONTACTBY", "type": "dropdown"},
            {"tag": "GENDER", "type": "radio"}
        ],
        "members": [
            {"email": TYPED, "vip": true, "timestamp_signup": "2024-03-01T10:20:30+00:00",
             "merge_fields": {"FNAME": first_name, "LNAME": "Typed", "ZIP": postal_code,
                "BIRTHDAY": "1990-05-01", "CONTACTBY": "email", "GENDER": "Female", "JOB": "Tester"}},
            {"email": QUITTER, "vip": false, "timestamp_signup": "2023-11-30T23:59:59+00:00",
             "merge_fields": {"FNAME": "Quinn", "LNAME": "Quitter", "JOB": "Engineer",
                "GENDER": "Male"}}
        ]
    }]}}))
    .expect("seed")
}

const FIELDS: &str = "    fields:
      map:
        vip: donotphone
        timestamp_signup: lastusedincampaign
        member_rating: numberofchildren
        merge_fields.BIRTHDAY: birthdate
        merge_fields.CONTACTBY: preferredcontactmethodcode
        merge_fields.GENDER: gendercode
        merge_fields.ADDRESS.zip: null
        merge_fields.ZIP: address1_postalcode
        merge_fields.JOB: jobtitle
";

struct Env {
    sandbox: Sandbox,
    _dir: tempfile::TempDir,
    config: String,
}

/// A sandbox and a config of one contact binding; `extra` is appended to the binding.
async fn start(first_name: &str, postal_code: &str, extra: &str) -> Env {
    let sandbox = Sandbox::start(Options {
        seed: seed(first_name, postal_code),
        ..audience_sync::commands::sandbox::options()
    })
    .await
    .expect("sandbox starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let binding = format!(
        "  - name: typed
    audience:
      id: \"7e57ed0001\"
    marketing_list:
      name: Typed
      member_type: contact
      create: true
{FIELDS}{extra}"
    );
    let config = common::sandbox_config(dir.path(), &binding)
        .to_str()
        .expect("utf-8 path")
        .to_owned();
    Env {
        sandbox,
        _dir: dir,
        config,
    }
}

impl Env {
    /// `apply --format json`: whether it exited 0, and its report.
    async fn apply_report(&self) -> (bool, Value) {
        let out = common::run_in(
            &self.sandbox,
            &["apply", &self.config, "--auto-approve", "--format", "json"],
        )
        .await;
        let (stdout, stderr) = common::texts(&out);
        let report: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("report is JSON ({e}): {stdout}\n{stderr}"));
        (out.status.success(), report)
    }

    /// An apply that must succeed.
    async fn apply(&self) -> Value {
        let (success, report) = self.apply_report().await;
        assert!(success, "{report}");
        report
    }

    async fn plan_exit(&self) -> (Option<i32>, String) {
        let out = common::run_in(
            &self.sandbox,
            &["plan", &self.config, "--detailed-exitcode", "--show-pii"],
        )
        .await;
        let (stdout, stderr) = common::texts(&out);
        (out.status.code(), format!("{stdout}\n{stderr}"))
    }

    /// The contact with this e-mail address, read through the Web API.
    async fn contact(&self, email: &str) -> Value {
        let env: std::collections::HashMap<String, String> =
            self.sandbox.env().into_iter().collect();
        let http = reqwest::Client::new();
        let token: Value = http
            .post(&env["DATAVERSE_TOKEN_URL"])
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", env["DATAVERSE_CLIENT_ID"].as_str()),
                ("client_secret", env["DATAVERSE_CLIENT_SECRET"].as_str()),
                ("scope", &format!("{}/.default", env["DATAVERSE_URL"])),
            ])
            .send()
            .await
            .expect("token request")
            .json()
            .await
            .expect("token json");
        let url = format!(
            "{}/api/data/v9.2/contacts?$filter=emailaddress1 eq '{email}'",
            env["DATAVERSE_URL"].trim_end_matches('/')
        );
        let rows: Value = http
            .get(url)
            .bearer_auth(token["access_token"].as_str().unwrap_or_default())
            .header("Accept", "application/json")
            .send()
            .await
            .expect("query")
            .json()
            .await
            .expect("rows json");
        rows["value"][0].clone()
    }
}

fn failed(report: &Value) -> u64 {
    report["totals"]["failed"].as_u64().unwrap_or(u64::MAX)
}

/// A 56-character first name and a 30-character postal code (longer than the columns' 50 and
/// 20), Yes/No, a timestamp, a number, a date and two choices by label: the apply fails no
/// record, the CRM holds typed values, the next plan is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_columns_apply_without_failures_and_converge() {
    let first_name = "Maximiliane-Alexandra-Konstantina-Friederike von Sachsen";
    assert_eq!(first_name.chars().count(), 56);
    let postal_code = "SW1A 1AA / Building 7, Floor 3";
    assert_eq!(postal_code.chars().count(), 30);
    let env = start(first_name, postal_code, "").await;

    let out = common::run_in(&env.sandbox, &["plan", &env.config, "--format", "json"]).await;
    let (plan, _) = common::texts(&out);
    assert_eq!(
        plan.matches("\"value_trimmed\"").count(),
        2,
        "the first name and the postal code are cut, and the plan says so: {plan}"
    );
    assert!(!plan.contains("value_not_convertible"), "{plan}");
    // The warnings of a shared (masked) plan name the field and lengths, never the value.
    let out = common::run_in(&env.sandbox, &["plan", &env.config, "--format", "markdown"]).await;
    let (shared, _) = common::texts(&out);
    assert!(shared.contains("value_trimmed"), "{shared}");
    for secret in ["Maximiliane", "SW1A"] {
        assert!(
            !shared.contains(secret),
            "the shared plan shows `{secret}`: {shared}"
        );
    }

    let report = env.apply().await;
    assert_eq!(failed(&report), 0, "{report}");

    let row = env.contact(TYPED).await;
    assert_eq!(row["donotphone"], true, "{row}");
    assert_eq!(row["numberofchildren"], 2, "{row}");
    assert_eq!(row["birthdate"], "1990-05-01", "{row}");
    assert_eq!(
        row["lastusedincampaign"]
            .as_str()
            .map(|t| t.starts_with("2024-03-01")),
        Some(true),
        "{row}"
    );
    assert_eq!(row["preferredcontactmethodcode"], 2, "{row}");
    assert_eq!(row["gendercode"], 2, "{row}");
    assert_eq!(
        row["firstname"],
        first_name.chars().take(50).collect::<String>()
    );
    assert_eq!(
        row["address1_postalcode"],
        postal_code.chars().take(20).collect::<String>()
    );
    let quitter = env.contact(QUITTER).await;
    assert_eq!(quitter["donotphone"], false, "{quitter}");
    assert_eq!(quitter["gendercode"], 1, "{quitter}");

    let (code, plan) = env.plan_exit().await;
    assert_eq!(code, Some(0), "the next plan is not empty: {plan}");
}

/// An unsubscribe reaches the CRM although the same member's mapped columns are refused: one
/// by the CRM itself (a plug-in refuses the new job title, 400 0x80040265), one that cannot be
/// converted (no such gender option). Unsubscribed members stay selected, so their columns are
/// written in the same run as their consent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsubscribe_is_recorded_when_a_mapped_column_is_refused() {
    let members = "    members:\n      statuses: [subscribed, unsubscribed]\n";
    let env = start("Tess", "12345", members).await;
    let report = env.apply().await;
    assert_eq!(failed(&report), 0, "{report}");
    assert_eq!(env.contact(QUITTER).await["donotbulkemail"], false);

    let mc = &env.sandbox.mailchimp;
    mc.set_status("7e57ed0001", QUITTER, MemberStatus::Unsubscribed)
        .expect("unsubscribed");
    mc.set_merge_field("7e57ed0001", QUITTER, "JOB", json!("Forbidden Title"))
        .expect("job set");
    mc.set_merge_field("7e57ed0001", QUITTER, "GENDER", json!("Unknown"))
        .expect("gender set");
    env.sandbox.dataverse.add_plugin_refusal(PluginRefusal {
        table: "contact".into(),
        column: "jobtitle".into(),
        value: json!("Forbidden Title"),
        message: "Job titles are managed by HR.".into(),
    });

    let (success, report) = env.apply_report().await;
    assert!(
        !success,
        "a failed record makes the apply exit non-zero: {report}"
    );
    assert_eq!(
        failed(&report),
        1,
        "only the refused job title fails: {report}"
    );
    assert!(
        report.to_string().contains("Job titles are managed by HR."),
        "{report}"
    );
    let row = env.contact(QUITTER).await;
    assert_eq!(
        row["donotbulkemail"], true,
        "the unsubscribe is recorded: {row}"
    );
    assert_eq!(row["mcsync_mailchimpstatus"], "unsubscribed", "{row}");
    assert_eq!(row["jobtitle"], "Engineer", "{row}");
    assert_eq!(
        row["gendercode"], 1,
        "the unconvertible value is not written: {row}"
    );
}
