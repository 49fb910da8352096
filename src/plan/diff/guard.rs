//! Guards against mass removal: more removals than `max_removals` of the list's size, or an
//! audience with no selected member while the list holds managed members, refuse the binding
//! (still fully planned). [`removal_guard`] is the one place this is decided; apply only reads
//! the plan's guard and the override flag.

use super::Diff;
use crate::config::RemovalLimit;
use crate::plan::model::{ALLOW_REMOVALS_FLAG, Action, Guard, GuardReason};
use crate::plan::snapshot::CrmRecord;

/// What the guard looks at, counted by the diff.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GuardInput<'a> {
    /// The Mailchimp audience id (for the message).
    pub audience_id: &'a str,
    /// The binding's `max_removals`.
    pub limit: RemovalLimit,
    /// Members selected by the binding's statuses.
    pub selected: u64,
    /// Records on the list.
    pub list_size: u64,
    /// Records on the list that store a Mailchimp id (the tool manages them).
    pub managed_on_list: u64,
    /// Planned removals from the list.
    pub removals: u64,
}

/// The guard a binding's plan is refused by, if any.
#[must_use]
pub fn removal_guard(input: &GuardInput<'_>) -> Option<Guard> {
    let GuardInput {
        audience_id,
        limit,
        selected,
        list_size,
        managed_on_list,
        removals,
    } = *input;
    let allowed = limit.allowed(list_size);
    let guard = |reason, message| Guard {
        reason,
        message,
        removals,
        allowed,
        list_size,
        override_flag: ALLOW_REMOVALS_FLAG.to_owned(),
    };
    if selected == 0 && managed_on_list > 0 {
        Some(guard(
            GuardReason::EmptyAudience,
            format!(
                "audience `{audience_id}` reads as empty while the list holds {managed_on_list} managed members; this is more often an outage or a wrong id than a real wipe. Check the audience, then apply with `{ALLOW_REMOVALS_FLAG}` to override"
            ),
        ))
    } else if removals > allowed {
        Some(guard(
            GuardReason::TooManyRemovals,
            format!(
                "{removals} removals exceed max_removals `{limit}` (at most {allowed} of the list's {list_size} members); check the plan, then apply with `{ALLOW_REMOVALS_FLAG}` to override"
            ),
        ))
    } else {
        None
    }
}

impl Diff<'_> {
    /// Count what the guard looks at and set the plan's guard.
    pub(super) fn guard(&mut self, selected: u64, managed: impl Fn(&CrmRecord) -> bool) {
        let records = &self.snapshot.crm.records;
        let input = GuardInput {
            audience_id: &self.plan.audience.id,
            limit: self.binding.max_removals,
            selected,
            list_size: records.iter().filter(|r| r.on_list).count() as u64,
            managed_on_list: records.iter().filter(|r| r.on_list && managed(r)).count() as u64,
            removals: self
                .plan
                .changes
                .iter()
                .filter(|c| c.action == Action::RemoveListMember)
                .count() as u64,
        };
        self.plan.guard = removal_guard(&input);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MemberStatus;
    use crate::plan::diff::compute;
    use crate::plan::fixture::{self, Builder, uuid};

    fn input(selected: u64, managed_on_list: u64, removals: u64) -> GuardInput<'static> {
        GuardInput {
            audience_id: "a1",
            limit: RemovalLimit::Count(2),
            selected,
            list_size: 4,
            managed_on_list,
            removals,
        }
    }

    #[test]
    fn the_guard_refuses_too_many_removals_and_an_empty_audience_only() {
        assert_eq!(removal_guard(&input(1, 3, 2)), None);
        let too_many = removal_guard(&input(1, 3, 3)).expect("refused");
        assert_eq!(too_many.reason, GuardReason::TooManyRemovals);
        assert_eq!(
            (too_many.removals, too_many.allowed, too_many.list_size),
            (3, 2, 4)
        );
        let empty = removal_guard(&input(0, 1, 0)).expect("refused");
        assert_eq!(empty.reason, GuardReason::EmptyAudience);
        assert!(empty.message.contains("`a1`") && empty.message.contains(ALLOW_REMOVALS_FLAG));
        assert_eq!(
            removal_guard(&input(0, 0, 0)),
            None,
            "an empty list is fine"
        );
    }

    #[test]
    fn removals_within_max_removals_are_not_refused() {
        let (bindings, names) = fixture::bindings(
            "bindings:\n  - {name: b, audience: {id: a1}, marketing_list: {name: L, member_type: contact}, prune_members: true, max_removals: 2}\n",
        );
        let col = names.contact_mailchimp_id_column.as_str();
        let build = |gone: usize| {
            let mut b = Builder::new(&bindings[0], &names, ("a1", "A"))
                .audience_record(uuid(1), "A")
                .list(uuid(2), "L", 2, false, Some(uuid(1)))
                .member("stay@example.com", MemberStatus::Subscribed, &[], &[])
                .record(
                    uuid(10),
                    &[
                        ("emailaddress1", "stay@example.com"),
                        (col, "c-stay"),
                        ("mcsync_mailchimpstatus", "subscribed"),
                    ],
                    false,
                    &[],
                    true,
                );
            for i in 0..gone {
                let email = format!("gone{i}@example.com");
                let id = format!("c-gone{i}");
                b = b.record(
                    uuid(100 + i as u128),
                    &[("emailaddress1", &email), (col, &id)],
                    false,
                    &[],
                    true,
                );
            }
            b.build()
        };
        let ok = compute(&bindings[0], &names, &build(2));
        assert_eq!(ok.count(Action::RemoveListMember), 2);
        assert_eq!(ok.guard, None);
        let refused = compute(&bindings[0], &names, &build(3));
        let guard = refused.guard.clone().expect("refused");
        assert_eq!(guard.reason, GuardReason::TooManyRemovals);
        assert_eq!((guard.removals, guard.allowed, guard.list_size), (3, 2, 4));
        assert!(guard.message.contains("--allow-removals"));
        assert_eq!(
            refused.count(Action::RemoveListMember),
            3,
            "still fully listed"
        );
    }

    #[test]
    fn an_empty_audience_with_managed_list_members_is_refused() {
        let (bindings, names) = fixture::bindings(
            "bindings:\n  - {name: b, audience: {id: a1}, marketing_list: {name: L, member_type: contact}, prune_members: true, max_removals: \"100%\"}\n",
        );
        let col = names.contact_mailchimp_id_column.as_str();
        let snapshot = Builder::new(&bindings[0], &names, ("a1", "A"))
            .audience_record(uuid(1), "A")
            .list(uuid(2), "L", 2, false, Some(uuid(1)))
            .record(
                uuid(10),
                &[("emailaddress1", "x@example.com"), (col, "c-x")],
                false,
                &[],
                true,
            )
            .build();
        let plan = compute(&bindings[0], &names, &snapshot);
        assert_eq!(
            plan.guard.as_ref().map(|g| g.reason),
            Some(GuardReason::EmptyAudience)
        );
        assert_eq!(plan.count(Action::RemoveListMember), 1);
    }
}
