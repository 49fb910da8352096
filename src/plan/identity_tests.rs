//! The plan of a generated 10,000-member scenario with every change kind, pinned by the SHA-256
//! of its JSON (and its size and counts): optimisations of the diff, the model or the JSON writer
//! must leave it byte-identical. A change of behaviour re-accepts the snapshot on purpose.

use sha2::{Digest as _, Sha256};

use super::fixture::{Builder, plan_of, scenario, uuid};
use super::model::Plan;
use super::render;
use crate::config::MemberStatus::{Archived, Cleaned, Subscribed, Unsubscribed};

/// Members generated on top of the fixed scenario's first binding.
const MEMBERS: usize = 10_000;

fn generated_plan() -> Plan {
    let (bindings, names, mut snapshots) = scenario();
    let id_col = names.contact_mailchimp_id_column.as_str();
    let st = names.subscriber_status_column.as_str();
    let (vip, old_promo) = (uuid(0x71), uuid(0x74));
    let mut builder = Builder {
        snapshot: snapshots[0].clone(),
    };
    for i in 0..MEMBERS {
        let email = format!("m{i:05}@example.org");
        let contact = format!("c-m{i:05}");
        let (first, last) = (format!("First{i}"), format!("Last{}", i % 97));
        let fields = [
            ("merge_fields.FNAME", first.as_str()),
            ("merge_fields.LNAME", last.as_str()),
        ];
        let stale = format!("Old{i}");
        let record = |first: &str, status: &'static str| {
            vec![
                ("emailaddress1", email.clone()),
                (id_col, contact.clone()),
                ("firstname", first.to_owned()),
                ("lastname", last.clone()),
                (st, status.to_owned()),
            ]
        };
        let id = uuid(0x10_0000 + i as u128);
        // (member status and tags, record columns, do-not-e-mail, tag links, on the list)
        let (member, columns, links, on_list) = match i % 9 {
            0 => (Some((Subscribed, vec![1])), None, vec![], false),
            1 => (
                Some((Subscribed, vec![1])),
                Some(record(&first, "subscribed")),
                vec![vip],
                true,
            ),
            2 => (
                Some((Subscribed, vec![])),
                Some(record(&stale, "subscribed")),
                vec![],
                true,
            ),
            3 => (
                Some((Subscribed, vec![3])),
                Some(record(&first, "subscribed")),
                vec![],
                false,
            ),
            4 => (
                Some((Unsubscribed, vec![])),
                Some(record(&first, "subscribed")),
                vec![],
                true,
            ),
            5 => (
                Some((Subscribed, vec![1, 2])),
                Some(record(&first, "subscribed")),
                vec![vip, old_promo],
                true,
            ),
            6 => (None, Some(record(&first, "subscribed")), vec![], true),
            7 => (
                Some((Archived, vec![])),
                Some(record(&first, "subscribed")),
                vec![],
                true,
            ),
            _ => (
                Some((Cleaned, vec![])),
                Some(record(&first, "cleaned")),
                vec![],
                true,
            ),
        };
        if let Some((status, tags)) = member {
            builder = builder.member(&email, status, &fields, &tags);
        }
        if let Some(columns) = columns {
            let columns: Vec<(&str, &str)> =
                columns.iter().map(|(k, v)| (*k, v.as_str())).collect();
            builder = builder.record(id, &columns, i % 9 == 8, &links, on_list);
        }
    }
    snapshots[0] = builder.build();
    plan_of(&bindings, &names, &snapshots)
}

#[test]
fn the_plan_of_a_generated_scenario_is_byte_identical() {
    let plan = generated_plan();
    let json = render::json(&plan).expect("serializes");
    let mut streamed = Vec::new();
    render::write_json(&plan, &mut streamed).expect("streams");
    assert_eq!(streamed, json.as_bytes(), "streamed and whole JSON differ");
    let kinds: std::collections::BTreeSet<String> = plan
        .bindings
        .iter()
        .flat_map(|b| b.changes.iter().map(|c| format!("{:?}", c.action)))
        .collect();
    let summary = format!(
        "sha256: {}\nbytes: {}\nlines: {}\nkinds: {}\nsummary: {}\nfirst change of binding 1:\n{}",
        hex::encode(Sha256::digest(json.as_bytes())),
        json.len(),
        json.lines().count(),
        kinds.into_iter().collect::<Vec<_>>().join(", "),
        serde_json::to_string(&plan.summary).expect("serializes"),
        serde_json::to_string_pretty(&plan.bindings[0].changes[0]).expect("serializes"),
    );
    insta::assert_snapshot!(summary);
}
