//! The standard contact and lead columns over real HTTP: their metadata as
//! `EntityDefinitions(...)/Attributes(...)` answers it, and writes refused as the real service
//! refuses them. Each test names its source (see also `src/dataverse/columns.rs`).

use api_sandbox::dataverse::columns::PluginRefusal;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

mod support;

use support::{Api, start};

async fn attribute(api: &Api, table: &str, column: &str) -> Value {
    let (status, body) = api
        .get(&format!(
            "EntityDefinitions(LogicalName='{table}')/Attributes(LogicalName='{column}')"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{table}.{column}: {body}");
    body
}

/// Source: powerapps-docs `reference/entities/contact.md` and CE `reference/entities/lead.md`
/// (MaxLength, Format, Type, DateTimeBehavior, MinValue/MaxValue of each column).
#[tokio::test]
async fn metadata_gives_the_documented_types_lengths_and_formats() {
    let sb = start(json!({})).await;
    let api = Api::new(&sb).await;
    for (table, column, max, format) in [
        ("contact", "firstname", 50, "Text"),
        ("contact", "lastname", 50, "Text"),
        ("contact", "telephone1", 50, "Phone"),
        ("contact", "emailaddress1", 100, "Email"),
        ("contact", "address1_stateorprovince", 50, "Text"),
        ("contact", "address1_postalcode", 20, "Text"),
        ("contact", "address1_city", 80, "Text"),
        ("contact", "address1_country", 80, "Text"),
        ("contact", "address1_line1", 250, "Text"),
        ("contact", "jobtitle", 100, "Text"),
        ("contact", "websiteurl", 200, "Url"),
        ("contact", "description", 2000, "TextArea"),
        ("lead", "subject", 300, "Text"),
        ("lead", "companyname", 100, "Text"),
        ("lead", "mobilephone", 20, "Phone"),
    ] {
        let meta = attribute(&api, table, column).await;
        assert_eq!(meta["MaxLength"], max, "{table}.{column}");
        assert_eq!(meta["Format"], format, "{table}.{column}");
    }
    let birth = attribute(&api, "contact", "birthdate").await;
    assert_eq!(birth["AttributeType"], "DateTime");
    assert_eq!(birth["Format"], "DateOnly");
    assert_eq!(birth["DateTimeBehavior"]["Value"], "DateOnly");
    let campaign = attribute(&api, "contact", "lastusedincampaign").await;
    assert_eq!(campaign["Format"], "DateOnly");
    assert_eq!(campaign["DateTimeBehavior"]["Value"], "UserLocal");
    let children = attribute(&api, "contact", "numberofchildren").await;
    assert_eq!(children["AttributeType"], "Integer");
    assert_eq!(children["MinValue"], 0);
    assert_eq!(children["MaxValue"], 1_000_000_000);
    let phone = attribute(&api, "contact", "donotphone").await;
    assert_eq!(phone["AttributeType"], "Boolean");
    assert_eq!(
        phone["@odata.type"],
        "#Microsoft.Dynamics.CRM.BooleanAttributeMetadata"
    );
    let (status, _) = api
        .get("EntityDefinitions(LogicalName='lead')/Attributes(LogicalName='birthdate')")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "lead has no birthdate");
}

/// Source: powerapps-docs `webapi/query-metadata-web-api.md` (options come with the
/// `PicklistAttributeMetadata` cast and `$expand=OptionSet`); labels from the table references.
#[tokio::test]
async fn choices_give_their_labels_on_the_cast_with_expanded_option_set() {
    let sb = start(json!({})).await;
    let api = Api::new(&sb).await;
    let base = "EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='gendercode')";
    let (status, body) = api
        .get(&format!(
            "{base}/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName&$expand=OptionSet"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let options = body["OptionSet"]["Options"].as_array().expect("options");
    let labels: Vec<(i64, &str)> = options
        .iter()
        .map(|o| {
            (
                o["Value"].as_i64().unwrap_or_default(),
                o["Label"]["UserLocalizedLabel"]["Label"]
                    .as_str()
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(labels, [(1, "Male"), (2, "Female")]);
    let (_, method) = api
        .get(
            "EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='preferredcontactmethodcode')/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$expand=OptionSet",
        )
        .await;
    assert_eq!(method["OptionSet"]["Options"][1]["Value"], 2);
    let (_, industry) = api
        .get(
            "EntityDefinitions(LogicalName='lead')/Attributes(LogicalName='industrycode')/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$expand=OptionSet",
        )
        .await;
    assert_eq!(
        industry["OptionSet"]["Options"].as_array().map(Vec::len),
        Some(33)
    );
    // OptionSet is a property of the derived type only; a cast to the wrong type is refused.
    let (status, _) = api.get(&format!("{base}?$expand=OptionSet")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = api
        .get(&format!(
            "{base}/Microsoft.Dynamics.CRM.BooleanAttributeMetadata"
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

fn error_of(body: &Value) -> (&str, &str) {
    (
        body["error"]["code"].as_str().unwrap_or_default(),
        body["error"]["message"].as_str().unwrap_or_default(),
    )
}

/// Sources: fact sheet `docs/dataverse.md` §11 (0x80048d19 envelope quoted from mautic/mautic#4467
/// and MarcusRisanger/Dataverse-API#30; 0x80044331 length validation), §7 (0x80044331).
#[tokio::test]
async fn writes_of_the_wrong_type_length_choice_or_date_are_refused_with_the_real_codes() {
    let sb = start(json!({})).await;
    let api = Api::new(&sb).await;
    let refused = [
        (json!({"donotphone": "yes"}), "0x80048d19", "'Edm.Boolean'"),
        (
            json!({"numberofchildren": "2"}),
            "0x80048d19",
            "'Edm.Int32'",
        ),
        (
            json!({"birthdate": "1990-13-01"}),
            "0x80048d19",
            "'Edm.Date'",
        ),
        (
            json!({"birthdate": "1990-05-01T00:00:00Z"}),
            "0x80048d19",
            "'Edm.Date'",
        ),
        (
            json!({"lastusedincampaign": "yesterday"}),
            "0x80048d19",
            "'Edm.DateTimeOffset'",
        ),
        (
            json!({"firstname": "x".repeat(51)}),
            "0x80044331",
            "maximum allowed length of '50'",
        ),
        (
            json!({"address1_postalcode": "1".repeat(21)}),
            "0x80044331",
            "maximum allowed length of '20'",
        ),
        (
            json!({"gendercode": 3}),
            "0x80044331",
            "outside the valid range",
        ),
        (
            json!({"numberofchildren": -1}),
            "0x80044331",
            "outside the valid range",
        ),
    ];
    for (body, code, words) in refused {
        let (status, _, answer) = api.send(Method::POST, "contacts", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let (got, message) = error_of(&answer);
        assert_eq!(got, code, "{body}: {answer}");
        assert!(message.contains(words), "{body}: {message}");
    }
    let (_, _, answer) = api
        .send(Method::POST, "contacts", &json!({"donotphone": "yes"}))
        .await;
    let (_, message) = error_of(&answer);
    assert!(
        message
            .starts_with("Error identified in Payload provided by the user for Entity :'contacts'")
            && message
                .contains("Cannot convert the literal 'yes' to the expected type 'Edm.Boolean'"),
        "{message}"
    );
    assert_eq!(sb.dataverse.count("contact"), 0, "nothing was written");

    let id = Uuid::new_v4();
    let typed = json!({
        "contactid": id, "firstname": "x".repeat(50), "donotphone": true, "numberofchildren": 2,
        "birthdate": "1990-05-01", "lastusedincampaign": "2024-01-02T10:00:00+02:00",
        "gendercode": 2, "preferredcontactmethodcode": 3, "address1_postalcode": "1".repeat(20)
    });
    let (status, _, answer) = api.send(Method::POST, "contacts", &typed).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    let (_, row) = api.get(&format!("contacts({id})")).await;
    assert_eq!(row["donotphone"], true);
    assert_eq!(row["numberofchildren"], 2);
    assert_eq!(row["birthdate"], "1990-05-01");
    assert_eq!(row["lastusedincampaign"], "2024-01-02T08:00:00Z");
    assert_eq!(row["gendercode"], 2);
    // Yes/No columns not given start at their documented default (DefaultValue 0), not null.
    assert_eq!(row["donotbulkemail"], false);
}

/// A seed adds custom columns of any type; a plug-in stand-in refuses one value with 400
/// `0x80040265` (fact sheet §7, §11: plug-in errors are deterministic).
#[tokio::test]
async fn seeded_custom_columns_of_any_type_and_plugin_refusals() {
    let sb = start(json!({
        "columns": [
            {"table": "contact", "name": "new_vip", "kind": "boolean"},
            {"table": "contact", "name": "new_tier", "kind": {"choice": {"options": [
                {"value": 100000000, "label": "Gold"}, {"value": 100000001, "label": "Silver"}]}}},
            {"table": "contact", "name": "new_score", "kind": {"integer": {"min": 0, "max": 5}}},
            {"table": "contact", "name": "new_since", "kind": "date"},
            {"table": "lead", "name": "new_note", "kind": {"string": {"max_len": 5}}}
        ],
        "plugin_refusals": [{"table": "contact", "column": "emailaddress1",
            "value": "blocked@example.com", "message": "Blocked by the compliance plug-in."}]
    }))
    .await;
    let api = Api::new(&sb).await;
    let tier = api
        .get("EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='new_tier')/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$expand=OptionSet")
        .await
        .1;
    assert_eq!(tier["IsCustomAttribute"], true);
    assert_eq!(
        tier["OptionSet"]["Options"][0]["Label"]["UserLocalizedLabel"]["Label"],
        "Gold"
    );
    let since = attribute(&api, "contact", "new_since").await;
    assert_eq!(since["Format"], "DateOnly");
    let (status, _, answer) = api
        .send(
            Method::POST,
            "contacts",
            &json!({"new_vip": true, "new_tier": 100000001, "new_score": 5, "new_since": "2020-02-29"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    let (_, _, answer) = api
        .send(Method::POST, "contacts", &json!({"new_score": 6}))
        .await;
    assert_eq!(error_of(&answer).0, "0x80044331");
    let (_, _, answer) = api
        .send(Method::POST, "leads", &json!({"new_note": "toolong"}))
        .await;
    assert_eq!(error_of(&answer).0, "0x80044331");

    let (status, _, answer) = api
        .send(
            Method::POST,
            "contacts",
            &json!({"emailaddress1": "Blocked@Example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_of(&answer),
        ("0x80040265", "Blocked by the compliance plug-in.")
    );
    sb.dataverse.add_plugin_refusal(PluginRefusal {
        table: "contact".into(),
        column: "lastname".into(),
        value: json!("Refused"),
        message: "No.".into(),
    });
    let (status, _, _) = api
        .send(Method::POST, "contacts", &json!({"lastname": "Refused"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
