//! Tests of the whole diff: the scenario, determinism, and random cases whose plans, applied to
//! the model, leave nothing to do.

use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use rand::SeedableRng as _;
use rand::rngs::StdRng;

use std::collections::BTreeSet;

use uuid::Uuid;

use super::*;
use crate::dataverse::columns::{ChoiceOption, ColumnType};
use crate::domain::MemberStatus;
use crate::plan::fixture::{self, Builder, uuid};
use crate::plan::model::ProblemCode;
use crate::plan::simulate::apply_to_snapshot;

fn plan_json(plan: &BindingPlan) -> String {
    serde_json::to_string(plan).expect("serializes")
}

#[test]
fn scenario_holds_every_change_kind_and_every_problem() {
    let plan = fixture::scenario_plan();
    for action in Action::ALL {
        assert!(
            plan.summary.by_action.get(&action).copied().unwrap_or(0) > 0,
            "no `{}` in the scenario",
            action.code()
        );
    }
    let codes: BTreeSet<ProblemCode> = plan
        .bindings
        .iter()
        .flat_map(|b| b.errors.iter().chain(&b.warnings).map(|p| p.code))
        .collect();
    for code in [
        ProblemCode::ListNotFound,
        ProblemCode::WrongMemberType,
        ProblemCode::AccountList,
        ProblemCode::DynamicList,
        ProblemCode::InactiveList,
        ProblemCode::DuplicateEmail,
        ProblemCode::DuplicateMailchimpId,
        ProblemCode::InvalidEmail,
        ProblemCode::DoNotEmailKept,
    ] {
        assert!(codes.contains(&code), "no {code:?} in the scenario");
    }
    assert!(plan.refused());
    assert_eq!(plan.summary.unmanaged_kept, 1);
}

#[test]
fn binding_errors_skip_every_write_of_the_binding() {
    let plan = fixture::scenario_plan();
    for b in plan.bindings.iter().skip(2) {
        assert_eq!(b.errors.len(), 1, "{}", b.name);
        assert!(b.changes.is_empty(), "{}", b.name);
    }
}

#[test]
fn deterministic_ids_for_created_records() {
    let plan = fixture::scenario_plan();
    let create = plan.bindings[0]
        .changes
        .iter()
        .find(|c| c.action == Action::CreateRecord)
        .expect("a create");
    let email = create
        .member
        .as_ref()
        .expect("a member")
        .email()
        .to_lowercase();
    assert_eq!(create.record, ids::person_record("contact", &email));
    assert!(create.precondition.absent);
}

#[test]
fn same_input_gives_identical_json_whatever_the_read_order() {
    let (bindings, names, snapshots) = fixture::scenario();
    let a = compute(&bindings[0], &names, &snapshots[0]);
    let mut shuffled = snapshots[0].clone();
    shuffled.mailchimp.members.reverse();
    shuffled.crm.records.reverse();
    shuffled.crm.tags.reverse();
    shuffled.mailchimp.tags.reverse();
    let b = compute(&bindings[0], &names, &shuffled);
    assert_eq!(plan_json(&a), plan_json(&b));
}

const POOL: [&str; 10] = [
    "ann@example.com",
    "ben@example.com",
    "cat@example.com",
    "dan@example.com",
    "eve@example.org",
    "fay@example.org",
    "gus@example.net",
    "hal@example.net",
    "ivy@example.com",
    "bad-address",
];
const STATUSES: [MemberStatus; 6] = MemberStatus::ALL;
const VALUES: [&str; 4] = [
    "A",
    "B",
    "A rather long value that goes on and on so that the inline diff kicks in, version one",
    "A rather long value that goes on and on so that the inline diff kicks in, version two",
];
const TAG_NAMES: [&str; 6] = ["VIP", "Customers", "internal-x", "Webinar", "Old", "VIP 2"];

fn pick<'v, T>(rng: &mut StdRng, items: &'v [T]) -> &'v T {
    &items[rng.random_range(0..items.len())]
}

fn variant(rng: &mut StdRng, email: &str) -> String {
    match rng.random_range(0..4) {
        0 => email.to_uppercase(),
        1 => format!("  {email} "),
        _ => email.to_owned(),
    }
}

/// A random binding and snapshot from a seed (the knobs proptest shrinks are the YAML).
fn random_case(seed: u64, yaml: &str) -> (Binding, Names, Snapshot) {
    let (mut bindings, names) = fixture::bindings(yaml);
    let binding = bindings.remove(0);
    let mut rng = StdRng::seed_from_u64(seed);
    let col = names
        .mailchimp_id_column(binding.list.member_type)
        .to_owned();
    let code = u8::try_from(binding.list.member_type.list_code()).unwrap_or(0);
    let mut b = Builder::new(&binding, &names, ("aud1", "Audience"));
    if rng.random_bool(0.7) {
        let name: &&str = pick(&mut rng, &["Audience", "Old name"]);
        b = b.audience_record(uuid(1), name);
    }
    if rng.random_bool(0.85) {
        let lookup = *pick(&mut rng, &[None, Some(uuid(1)), Some(uuid(9))]);
        let code = if rng.random_bool(0.05) { 1 } else { code };
        b = b.list(uuid(2), "L", code, rng.random_bool(0.03), lookup);
    }
    let mut mc_tags = Vec::new();
    for id in 1..=5_u64 {
        if rng.random_bool(0.6) {
            let name = *pick(&mut rng, &TAG_NAMES);
            b = b.tag(id, name);
            mc_tags.push(id);
        }
    }
    let mut tag_records = Vec::new();
    for id in 1..=6_u64 {
        if rng.random_bool(0.5) {
            let rec = uuid(0x700 + u128::from(id) + 16 * u128::from(rng.random_range(0..2_u8)));
            let name = *pick(&mut rng, &TAG_NAMES);
            b = b.tag_record(rec, id, name);
            tag_records.push(rec);
        }
    }
    for email in POOL {
        if !rng.random_bool(0.7) {
            continue;
        }
        let status = *pick(&mut rng, &STATUSES);
        let mut fields: Vec<(&str, &str)> = Vec::new();
        for path in [
            "merge_fields.FNAME",
            "merge_fields.LNAME",
            "merge_fields.NOTES",
            "merge_fields.COMPANY",
        ] {
            if rng.random_bool(0.6) {
                fields.push((path, *pick(&mut rng, &VALUES)));
            }
        }
        for (path, values) in TYPED_MEMBER_VALUES {
            if rng.random_bool(0.6) {
                fields.push((path, *pick(&mut rng, values)));
            }
        }
        let tags: Vec<u64> = (1..=6).filter(|_| rng.random_bool(0.4)).collect();
        b = b.member(email, status, &fields, &tags);
    }
    for n in 0..rng.random_range(0..14_u128) {
        let mut columns: Vec<(String, String)> = Vec::new();
        if rng.random_bool(0.9) {
            let email = *pick(&mut rng, &POOL);
            columns.push(("emailaddress1".to_owned(), variant(&mut rng, email)));
        }
        if rng.random_bool(0.6) {
            let local = pick(&mut rng, &POOL).split('@').next().unwrap_or("x");
            let id = if rng.random_bool(0.1) {
                "c-gone".to_owned()
            } else {
                format!("c-{local}")
            };
            columns.push((col.clone(), id));
        }
        for column in [
            "firstname",
            "lastname",
            "description",
            "company",
            "mcsync_mailchimpstatus",
        ] {
            if rng.random_bool(0.4) {
                let value = if column == "mcsync_mailchimpstatus" {
                    pick(&mut rng, &STATUSES).as_str()
                } else {
                    *pick(&mut rng, &VALUES)
                };
                columns.push((column.to_owned(), value.to_owned()));
            }
        }
        for (column, values) in TYPED_CRM_VALUES {
            if rng.random_bool(0.4) {
                columns.push((column.to_owned(), (*pick(&mut rng, values)).to_owned()));
            }
        }
        let links: Vec<Uuid> = tag_records
            .iter()
            .copied()
            .filter(|_| rng.random_bool(0.3))
            .collect();
        let refs: Vec<(&str, &str)> = columns
            .iter()
            .map(|(c, v)| (c.as_str(), v.as_str()))
            .collect();
        b = b.record(
            uuid(0x1000 + n),
            &refs,
            rng.random_bool(0.2),
            &links,
            rng.random_bool(0.6),
        );
    }
    let mut snapshot = b.build();
    snapshot.crm.column_types = typed_columns();
    (binding, names, snapshot)
}

/// Member values for the typed mappings, some of which do not convert.
const TYPED_MEMBER_VALUES: [(&str, &[&str]); 5] = [
    ("vip", &["true", "false", "maybe"]),
    (
        "timestamp_signup",
        &[
            "2024-03-01T10:20:30+00:00",
            "2024-03-01T12:20:30+02:00",
            "soon",
        ],
    ),
    ("member_rating", &["1", "5", "4.0", "lots"]),
    ("merge_fields.BIRTHDAY", &["1990-04-12", "04/12"]),
    ("merge_fields.GENDER", &["Male", "female", "2", "Robot"]),
];

/// CRM values of the typed columns, as the observer reads them.
const TYPED_CRM_VALUES: [(&str, &[&str]); 5] = [
    ("donotphone", &["true", "false"]),
    (
        "lastusedincampaign",
        &["2024-03-01T10:20:30Z", "2020-01-01T00:00:00Z"],
    ),
    ("numberofchildren", &["1", "5"]),
    ("birthdate", &["1990-04-12"]),
    ("gendercode", &["1", "2"]),
];

/// The column types of the typed mappings (and a short first name, so text is trimmed).
fn typed_columns() -> std::collections::BTreeMap<String, ColumnType> {
    let choice = |value: i64, label: &str| ChoiceOption {
        value,
        labels: vec![label.to_owned()],
    };
    [
        ("firstname", ColumnType::Text { max_len: 5 }),
        ("donotphone", ColumnType::Boolean),
        ("lastusedincampaign", ColumnType::DateTime),
        (
            "numberofchildren",
            ColumnType::Integer {
                min: 0,
                max: 1_000_000_000,
            },
        ),
        ("birthdate", ColumnType::DateOnly),
        (
            "gendercode",
            ColumnType::Choice {
                options: vec![choice(1, "Male"), choice(2, "Female")],
            },
        ),
    ]
    .into_iter()
    .map(|(c, t)| (c.to_owned(), t))
    .collect()
}

fn yaml_strategy() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("contact"), Just("lead")],
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just("mark_do_not_email"), Just("remove"), Just("keep")],
        prop_oneof![Just("[subscribed]"), Just("[subscribed, unsubscribed]"), Just("[subscribed, pending, cleaned]")],
        prop_oneof![Just("overwrite"), Just("fill_empty")],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(kind, prune_members, prune_tags, unsub, statuses, policy, sync, create)| {
            format!(
                "bindings:\n  - name: p\n    audience: {{id: aud1}}\n    marketing_list: {{name: L, member_type: {kind}, create: {create}}}\n    prune_members: {prune_members}\n    members: {{statuses: {statuses}, on_unsubscribe: {unsub}}}\n    tags: {{sync: {sync}, prune: {prune_tags}, exclude: [\"internal-*\"]}}\n    fields: {{policy: {policy}, map: {{merge_fields.NOTES: description, merge_fields.COMPANY: {{column: company, policy: fill_empty}}, vip: donotphone, timestamp_signup: lastusedincampaign, member_rating: numberofchildren, merge_fields.BIRTHDAY: birthdate, merge_fields.GENDER: gendercode}}}}\n    lead_values: {{subject: \"Sign-up {{{{ merge_fields.FNAME }}}}\"}}\n"
            )
        })
}

/// The generator is worth something: its cases plan every action and reach every conflict.
#[test]
fn random_cases_cover_every_action() {
    let mut seen: BTreeSet<Action> = BTreeSet::new();
    let mut problems: BTreeSet<ProblemCode> = BTreeSet::new();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let yaml = yaml_strategy();
    for seed in 0..300_u64 {
        let text = yaml.new_tree(&mut runner).expect("a case").current();
        let (binding, names, snapshot) = random_case(seed, &text);
        let plan = compute(&binding, &names, &snapshot);
        seen.extend(plan.changes.iter().map(|c| c.action));
        problems.extend(plan.errors.iter().chain(&plan.warnings).map(|p| p.code));
    }
    let missing: Vec<Action> = Action::ALL
        .into_iter()
        .filter(|a| !seen.contains(a))
        .collect();
    assert!(missing.is_empty(), "never planned: {missing:?}");
    for code in [
        ProblemCode::DuplicateEmail,
        ProblemCode::DuplicateMailchimpId,
        ProblemCode::InvalidEmail,
        ProblemCode::DoNotEmailKept,
        ProblemCode::ValueNotConvertible,
        ProblemCode::ValueTrimmed,
    ] {
        assert!(problems.contains(&code), "never reached: {code:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Apply the plan to the model, plan again: nothing is left to do.
    #[test]
    fn applying_a_plan_leaves_nothing_to_do(seed in any::<u64>(), yaml in yaml_strategy()) {
        let (binding, names, mut snapshot) = random_case(seed, &yaml);
        let first = compute(&binding, &names, &snapshot);
        apply_to_snapshot(&first, &mut snapshot);
        let second = compute(&binding, &names, &snapshot);
        prop_assert!(
            second.changes.is_empty(),
            "left after apply: {:#?}\nfirst plan: {:#?}",
            second.changes,
            first.changes
        );
        prop_assert_eq!(&first.errors, &second.errors);
    }

    /// The same input twice gives byte-identical JSON.
    #[test]
    fn the_diff_is_deterministic(seed in any::<u64>(), yaml in yaml_strategy()) {
        let (binding, names, snapshot) = random_case(seed, &yaml);
        let a = plan_json(&compute(&binding, &names, &snapshot));
        let b = plan_json(&compute(&binding, &names, &snapshot.clone()));
        prop_assert_eq!(a, b);
    }
}

/// One contact-list binding of audience `aud`, for the CRM-semantics cases below.
fn crm_case(aud: &str) -> (Binding, Names) {
    let yaml = format!(
        "bindings:\n  - name: b-{aud}\n    audience: {{id: {aud}}}\n    marketing_list: {{name: List {aud}, member_type: contact}}\n"
    );
    let (mut bindings, names) = fixture::bindings(&yaml);
    (bindings.remove(0), names)
}

/// The changes of a plan that come from members (not the Audience record or the list's link).
fn member_changes(plan: &BindingPlan) -> Vec<&Change> {
    plan.changes.iter().filter(|c| c.member.is_some()).collect()
}

#[test]
fn a_member_whose_only_match_is_inactive_is_a_conflict_and_nothing_is_written() {
    let (binding, names) = crm_case("aud1");
    let mut snapshot = Builder::new(&binding, &names, ("aud1", "A"))
        .list(uuid(0x11), "List aud1", 2, false, None)
        .member("gone@example.com", MemberStatus::Subscribed, &[], &[])
        .record(
            uuid(0x21),
            &[("emailaddress1", "Gone@Example.com")],
            false,
            &[],
            false,
        )
        .build();
    snapshot.crm.records[0].inactive = true;
    let plan = compute(&binding, &names, &snapshot);
    assert!(member_changes(&plan).is_empty(), "{:?}", plan.changes);
    let problem = plan
        .errors
        .iter()
        .find(|p| p.code == ProblemCode::InactiveRecord)
        .expect("an inactive-record conflict");
    assert_eq!(problem.records, vec![uuid(0x21)]);
    assert!(problem.message.contains("gone@example.com") && problem.message.contains("inactive"));
    // An active record with the same address is matched instead of the inactive one.
    let mut with_active = snapshot.clone();
    with_active.crm.records.push(
        Builder::new(&binding, &names, ("aud1", "A"))
            .record(
                uuid(0x22),
                &[("emailaddress1", "gone@example.com")],
                false,
                &[],
                false,
            )
            .build()
            .crm
            .records
            .remove(0),
    );
    let plan = compute(&binding, &names, &with_active);
    assert!(plan.errors.is_empty(), "{:?}", plan.errors);
    assert!(!member_changes(&plan).is_empty());
    assert!(member_changes(&plan).iter().all(|c| c.record == uuid(0x22)));
}

#[test]
fn a_locked_list_is_refused_at_plan_time() {
    let (binding, names) = crm_case("aud1");
    let mut snapshot = Builder::new(&binding, &names, ("aud1", "A"))
        .list(uuid(0x11), "List aud1", 2, false, None)
        .member("new@example.com", MemberStatus::Subscribed, &[], &[])
        .build();
    if let Some(list) = snapshot.crm.list.as_mut() {
        list.locked = true;
    }
    let plan = compute(&binding, &names, &snapshot);
    assert!(plan.changes.is_empty());
    assert_eq!(plan.errors.len(), 1);
    assert_eq!(plan.errors[0].code, ProblemCode::LockedList);
    assert!(plan.errors[0].message.contains("locked"));
}

#[test]
fn a_person_in_two_audiences_is_one_record_and_the_plans_settle() {
    let (first, names) = crm_case("aud1");
    let (second, _) = crm_case("aud2");
    let side = |b: &Binding, aud: &str, email: &str| {
        Builder::new(b, &names, (aud, aud))
            .list(uuid(0x11), &format!("List {aud}"), 2, false, None)
            .member(
                email,
                MemberStatus::Subscribed,
                &[("merge_fields.LNAME", aud)],
                &[],
            )
    };
    // Both plans, made before either is applied, create the same record.
    let one = compute(
        &first,
        &names,
        &side(&first, "aud1", "pat@example.com").build(),
    );
    let two = compute(
        &second,
        &names,
        &side(&second, "aud2", "Pat@Example.COM").build(),
    );
    let created = |p: &BindingPlan| {
        p.changes
            .iter()
            .find(|c| c.action == Action::CreateRecord)
            .map(|c| c.record)
    };
    assert!(created(&one).is_some());
    assert_eq!(created(&one), created(&two));
    // Applied: the first audience's member id is stored; the second audience only lists it.
    let record = uuid(0x31);
    let columns = [
        ("emailaddress1", "pat@example.com"),
        (names.contact_mailchimp_id_column.as_str(), "c-pat"),
        ("lastname", "aud1"),
        (names.subscriber_status_column.as_str(), "subscribed"),
    ];
    let after = side(&second, "aud2", "Pat@Example.COM")
        .record(record, &columns, false, &[], false)
        .build();
    let plan = compute(&second, &names, &after);
    let changes = member_changes(&plan);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].action, Action::AddListMember);
    let mut listed = after.clone();
    listed.crm.records[0].on_list = true;
    assert!(member_changes(&compute(&second, &names, &listed)).is_empty());
    let first_after = side(&first, "aud1", "pat@example.com")
        .record(record, &columns, false, &[], true)
        .build();
    let first_plan = compute(&first, &names, &first_after);
    assert!(
        member_changes(&first_plan).is_empty(),
        "{:?}",
        member_changes(&first_plan)
    );
}

#[test]
fn a_person_whose_owning_audience_changed_their_address_is_still_one_record() {
    let (second, names) = crm_case("aud2");
    // Created for pat@ (so its id is the person id of that address), then the owning audience
    // (aud1, whose member id it stores) changed the address; aud2 still knows pat@.
    let record = ids::person_record("contact", "pat@example.com");
    let columns = [
        ("emailaddress1", "pat.new@example.com"),
        (names.contact_mailchimp_id_column.as_str(), "c-pat-in-aud1"),
        ("lastname", "aud1"),
    ];
    let snapshot = |on_list: bool| {
        Builder::new(&second, &names, ("aud2", "aud2"))
            .list(uuid(0x11), "List aud2", 2, false, None)
            .member(
                "Pat@Example.COM",
                MemberStatus::Subscribed,
                &[("merge_fields.LNAME", "aud2")],
                &[],
            )
            .record(record, &columns, false, &[], on_list)
            .build()
    };
    let plan = compute(&second, &names, &snapshot(false));
    let changes = member_changes(&plan);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].action, Action::AddListMember);
    assert_eq!(changes[0].record, record);
    // Listed: nothing to do, run after run (no create of the old address again).
    assert!(member_changes(&compute(&second, &names, &snapshot(true))).is_empty());
}
