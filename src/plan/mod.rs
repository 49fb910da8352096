//! The plan: what must change in the CRM so that it matches Mailchimp, per binding.
//!
//! Everything here is pure: [`snapshot`] holds what observation read (compact records),
//! [`diff::compute`] turns a binding and its snapshot into a [`BindingPlan`], [`model`] is the
//! versioned plan format (JSON schema in `schemas/plan.schema.json`, see [`schema`]),
//! [`simulate::apply_to_snapshot`] is the specification of what apply does to the CRM, and
//! [`render`] shows a plan to a person (text), a reviewer (Markdown) and a machine (JSON).
//! [`ids`] makes the deterministic ids of the records apply creates.
//!
//! The `plan` command, in short:
//! 1. per binding, size the snapshot with [`snapshot::member_field_paths`] and
//!    [`snapshot::crm_columns`], then fill it from both APIs ([`snapshot::Member::new`],
//!    [`snapshot::CrmRecord::new`], …);
//! 2. [`compute`] each binding, then [`Plan::new`] with the tool version, config digest and time;
//! 3. print [`render::text`], [`render::markdown`] or [`render::json`]; save `render::json` for
//!    `-out`; `--detailed-exitcode` from [`Plan::has_changes`] and [`Plan::has_errors`];
//! 4. `apply FILE` reads it back with [`Plan::from_json`] and honours each binding's `guard`.

pub mod convert;
pub mod diff;
pub mod fields;
pub mod ids;
pub mod model;
pub mod render;
pub mod row;
pub mod schema;
pub mod simulate;
pub mod snapshot;

#[cfg(test)]
pub(crate) mod fixture;

pub use diff::compute;
pub use model::{
    Action, BindingPlan, Change, Column, Error, FORMAT_VERSION, FieldChange, FieldRef, Fields,
    Guard, GuardReason, MemberRef, MemberVersion, Plan, PlanMeta, Precondition, Problem,
    ProblemCode, Reason, Shared, Summary, Value, ValueRef,
};
pub use simulate::apply_to_snapshot;
pub use snapshot::Snapshot;

#[cfg(test)]
mod identity_tests;

#[cfg(test)]
mod tests {
    use super::fixture::scenario_plan;
    use super::render::{MarkdownOptions, TextOptions};
    use super::{Plan, render, schema};

    #[test]
    fn text_rendering_of_the_scenario() {
        let plan = scenario_plan();
        insta::assert_snapshot!("text", render::text(&plan, &TextOptions::default()));
    }

    #[test]
    fn text_rendering_cuts_long_groups_unless_full() {
        let plan = scenario_plan();
        let cut = render::text(
            &plan,
            &TextOptions {
                max_rows: 1,
                ..TextOptions::default()
            },
        );
        assert!(cut.contains("… and 1 more"), "{cut}");
        let full = render::text(
            &plan,
            &TextOptions {
                max_rows: 1,
                full: true,
                ..TextOptions::default()
            },
        );
        assert!(!full.contains("… and"), "{full}");
    }

    #[test]
    fn text_rendering_colours_only_when_asked() {
        let plan = scenario_plan();
        assert!(!render::text(&plan, &TextOptions::default()).contains('\u{1b}'));
        let coloured = render::text(
            &plan,
            &TextOptions {
                color: true,
                ..TextOptions::default()
            },
        );
        assert!(coloured.contains('\u{1b}'));
    }

    #[test]
    fn markdown_rendering_of_the_scenario() {
        let plan = scenario_plan();
        insta::assert_snapshot!(
            "markdown",
            render::markdown(&plan, &MarkdownOptions::default())
        );
    }

    #[test]
    fn markdown_masks_emails_unless_show_pii() {
        let plan = scenario_plan();
        let masked = render::markdown(&plan, &MarkdownOptions::default());
        assert!(!masked.contains("alice@example.com"));
        assert!(masked.contains("a***@example.com"));
        let shown = render::markdown(&plan, &MarkdownOptions { show_pii: true });
        assert!(shown.contains("alice@example.com"));
    }

    #[test]
    fn json_rendering_of_the_scenario() {
        let plan = scenario_plan();
        let json = render::json(&plan).expect("serializes");
        insta::assert_snapshot!("json", json);
    }

    #[test]
    fn saved_plan_round_trips() {
        let plan = scenario_plan();
        let json = render::json(&plan).expect("serializes");
        let back: Plan = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, plan);
        assert_eq!(render::json(&back).expect("serializes"), json);
    }

    #[test]
    fn plan_json_validates_against_the_committed_schema() {
        let plan = scenario_plan();
        let instance = serde_json::to_value(&plan).expect("serializes");
        let schema: serde_json::Value = serde_json::from_str(&schema::generate()).expect("schema");
        let validator = jsonschema::validator_for(&schema).expect("schema compiles");
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
    }

    fn large_plan(members: usize, gone: usize) -> Plan {
        use super::fixture::{Builder, bindings, uuid};
        use crate::config::MemberStatus;
        let (bindings, names) = bindings(
            "bindings:\n  - {name: big, audience: {id: a1}, marketing_list: {name: L, member_type: contact}, prune_members: true}\n",
        );
        let col = names.contact_mailchimp_id_column.clone();
        let mut b = Builder::new(&bindings[0], &names, ("a1", "Big"))
            .audience_record(uuid(1), "Big")
            .list(uuid(2), "L", 2, false, Some(uuid(1)))
            .tag(1, "VIP");
        for i in 0..members {
            let email = format!("member{i}@example.com");
            let status = if i % 10 == 9 {
                MemberStatus::Unsubscribed
            } else {
                MemberStatus::Subscribed
            };
            b = b.member(&email, status, &[("merge_fields.FNAME", "Someone")], &[1]);
            if i % 10 == 9 {
                let id = format!("c-member{i}");
                b = b.record(
                    uuid(0x10_0000 + i as u128),
                    &[("emailaddress1", &email), (&col, &id)],
                    false,
                    &[],
                    true,
                );
            }
        }
        for i in 0..gone {
            let email = format!("gone{i}@example.com");
            let id = format!("c-gone{i}");
            b = b.record(
                uuid(0x90_0000 + i as u128),
                &[("emailaddress1", &email), (&col, &id)],
                false,
                &[],
                true,
            );
        }
        let plan = super::compute(&bindings[0], &names, &b.build());
        Plan::new(super::fixture::meta(), vec![plan])
    }

    fn shown_rows(markdown: &str, summary_prefix: &str) -> usize {
        let Some(start) = markdown.find(&format!("<summary>{summary_prefix}")) else {
            return 0;
        };
        let section = &markdown[start..];
        let end = section.find("</details>").unwrap_or(section.len());
        section[..end]
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| subject"))
            .count()
    }

    #[test]
    fn markdown_stays_under_the_limit_and_cuts_the_least_risky_rows_first() {
        let plan = large_plan(100_000, 40);
        let b = &plan.bindings[0];
        assert_eq!(b.count(super::Action::CreateRecord), 90_000);
        assert_eq!(b.count(super::Action::RemoveListMember), 10_040);
        let md = render::markdown(&plan, &MarkdownOptions::default());
        assert!(md.len() < render::MARKDOWN_LIMIT, "{} characters", md.len());
        assert!(md.contains("rows are not shown"));
        assert!(md.contains("[!CAUTION]"), "the guard banner is shown");
        // risky rows take the room first: consent and removals are shown, creates are cut
        assert!(shown_rows(&md, "- remove from list") > 0);
        assert_eq!(shown_rows(&md, "+ create record"), 0);

        let small = large_plan(2_000, 30);
        let md = render::markdown(&small, &MarkdownOptions::default());
        assert!(md.len() < render::MARKDOWN_LIMIT);
        assert_eq!(
            shown_rows(&md, "- remove from list"),
            230,
            "every removal is shown"
        );
        assert_eq!(
            shown_rows(&md, "~ set do-not-e-mail"),
            200,
            "every consent change is shown"
        );
        assert!(
            shown_rows(&md, "+ create record") < 1_800,
            "creates are cut"
        );
        assert!(md.contains("more rows not shown"));
    }
}
