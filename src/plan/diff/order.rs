//! The order of a plan's changes — by action, then e-mail or name lower-cased, then record id —
//! and the order the diff visits members in (their e-mail addresses lower-cased), so that the
//! changes of each action are made already in order and [`sort_changes`] only has to group them
//! by action: a million-member plan is never sorted by comparing e-mail addresses at its peak.

use std::cmp::Ordering;

use crate::plan::model::{Action, Change};
use crate::plan::snapshot::{Member, prefix_key};

/// The label a change sorts by within its action: the member's e-mail, else the name.
fn label(change: &Change) -> &str {
    change
        .member
        .as_ref()
        .map(|m| m.email())
        .or(change.name.as_deref())
        .unwrap_or("")
}

/// `a.to_lowercase().cmp(&b.to_lowercase())`, without allocating when both are ASCII (e-mail
/// addresses nearly always are).
fn cmp_lowercase(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        let lower = |c: u8| c.to_ascii_lowercase();
        a.bytes().map(lower).cmp(b.bytes().map(lower))
    } else {
        a.to_lowercase().cmp(&b.to_lowercase())
    }
}

/// The order of a binding's changes: by action, then [`Change::sort_key`] (compared without
/// building it).
fn cmp_changes(a: &Change, b: &Change) -> Ordering {
    a.action
        .cmp(&b.action)
        .then_with(|| cmp_lowercase(label(a), label(b)))
        .then_with(|| a.record.cmp(&b.record))
}

/// [`prefix_key`]s of the first sixteen bytes of `label` lower-cased (as [`cmp_lowercase`]
/// compares it): sixteen, because many addresses share their first eight (`margaret.…`).
fn label_prefix(label: &str) -> (u64, u64) {
    let mut lower = [0_u8; 16];
    if label.is_ascii() {
        for (l, b) in lower.iter_mut().zip(label.bytes()) {
            *l = b.to_ascii_lowercase();
        }
    } else {
        for (l, b) in lower.iter_mut().zip(label.to_lowercase().bytes()) {
            *l = b;
        }
    }
    let (head, tail) = lower.split_at(8);
    (
        prefix_key(head.iter().copied()),
        prefix_key(tail.iter().copied()),
    )
}

/// `items` (`(label, position)`) ordered by label lower-cased, then `tie`, then position: a
/// 16-byte prefix key per item, the labels compared only where prefixes are equal (as bytes when
/// both are already lower case).
fn order_by_label<'a>(
    items: impl Iterator<Item = (&'a str, u32)>,
    tie: impl Fn(u32, u32) -> Ordering,
) -> Vec<u32> {
    // (prefix, label, label is its own lower case, position)
    let mut keys: Vec<((u64, u64), &str, bool, u32)> = items
        .map(|(label, i)| {
            let lower = label
                .bytes()
                .all(|b| b.is_ascii() && !b.is_ascii_uppercase());
            (label_prefix(label), label, lower, i)
        })
        .collect();
    keys.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| {
                if a.2 && b.2 {
                    a.1.cmp(b.1)
                } else {
                    cmp_lowercase(a.1, b.1)
                }
            })
            .then_with(|| tie(a.3, b.3))
            .then(a.3.cmp(&b.3))
    });
    keys.into_iter().map(|k| k.3).collect()
}

/// Positions of `members` in the order of their e-mail addresses lower-cased (then position):
/// the order the diff visits them in.
#[must_use]
pub(super) fn members_by_email(members: &[Member]) -> Vec<u32> {
    let positions = 0..u32::try_from(members.len()).unwrap_or(u32::MAX);
    order_by_label(members.iter().map(Member::email).zip(positions), |_, _| {
        Ordering::Equal
    })
}

/// `members` in the order the diff visits them ([`members_by_email`]), each copied into memory
/// of its own in that order: the diff and the renderers then read a million members' rows one
/// after the other instead of at random (first touches of rows in read order were a tenth of a
/// million-member plan's CPU). The copies are all made before the originals are freed, so that
/// they do not fill the originals' scattered holes.
#[must_use]
pub fn in_visit_order(members: Vec<Member>) -> Vec<Member> {
    let copies: Vec<Member> = members_by_email(&members)
        .into_iter()
        .map(|i| members[i as usize].copied())
        .collect();
    drop(members);
    copies
}

/// Which actions' changes were made in plan order: each change is compared with the last one of
/// its action as it is made (while its member's row is still in the cache), so that sorting
/// skips those actions without reading their labels again.
#[derive(Debug)]
pub(super) struct MadeInOrder {
    /// Per action: the position of its last change, and whether all were in order.
    last: [(Option<usize>, bool); Action::ALL.len()],
}

impl Default for MadeInOrder {
    fn default() -> Self {
        Self {
            last: [(None, true); Action::ALL.len()],
        }
    }
}

impl MadeInOrder {
    /// `change` is about to be pushed onto `changes`.
    pub(super) fn push(&mut self, changes: &[Change], change: &Change) {
        let (last, in_order) = &mut self.last[change.action as usize];
        if let Some(prev) = last.and_then(|i| changes.get(i)) {
            *in_order = *in_order && cmp_changes(prev, change) != Ordering::Greater;
        }
        *last = Some(changes.len());
    }

    /// Sort `changes` (the ones pushed), see [`sort_changes`].
    pub(super) fn sort(&self, changes: &mut [Change]) {
        let in_order = self.last.map(|(_, in_order)| in_order);
        sort_changes_known(changes, &in_order);
    }
}

/// Sort changes stably by action, then e-mail or name (lower-cased), then record id: the order
/// of `sort_by_cached_key(|c| (c.action, c.sort_key()))`. Positions are grouped by action;
/// a group already in order (as the diff makes member changes) is kept, another is ordered by
/// [`order_by_label`] (record id on equal labels); then the changes are moved in place: no key
/// string per change and no second copy of the changes.
#[cfg(test)]
fn sort_changes(changes: &mut [Change]) {
    sort_changes_known(changes, &[false; Action::ALL.len()]);
}

/// [`sort_changes`], told which actions' changes are known to be in order already.
fn sort_changes_known(changes: &mut [Change], known_in_order: &[bool; Action::ALL.len()]) {
    let Ok(n) = u32::try_from(changes.len()) else {
        changes.sort_by(cmp_changes);
        return;
    };
    let mut starts = [0_usize; Action::ALL.len() + 1];
    for c in changes.iter() {
        starts[c.action as usize + 1] += 1;
    }
    for a in 1..starts.len() {
        starts[a] += starts[a - 1];
    }
    let mut order = vec![0_u32; changes.len()];
    let mut next = starts;
    for (i, c) in (0..n).zip(changes.iter()) {
        let slot = &mut next[c.action as usize];
        order[*slot] = i;
        *slot += 1;
    }
    for (group, known) in starts.windows(2).zip(known_in_order) {
        let slice = &mut order[group[0]..group[1]];
        let in_order = *known
            || slice.windows(2).all(|w| {
                cmp_changes(&changes[w[0] as usize], &changes[w[1] as usize]) != Ordering::Greater
            });
        if in_order {
            continue;
        }
        let sorted = order_by_label(
            slice.iter().map(|&i| (label(&changes[i as usize]), i)),
            |a, b| changes[a as usize].record.cmp(&changes[b as usize].record),
        );
        slice.copy_from_slice(&sorted);
    }
    // position k takes the change now at order[k]: follow each cycle once, swapping
    for k in 0..order.len() {
        let mut at = k;
        while order[at] as usize != k {
            let from = order[at] as usize;
            changes.swap(at, from);
            order[at] = at as u32;
            at = from;
        }
        order[at] = at as u32;
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::plan::model::{MemberRef, Reason, Shared};

    #[test]
    fn members_are_copied_in_the_order_they_are_visited() {
        let member = |id: &str, email: &str, tags: Vec<u64>| {
            Member::new(
                id,
                "c",
                email,
                crate::config::MemberStatus::Subscribed,
                "2024-01-01T00:00:00+00:00",
                [Some("v")],
                tags,
            )
        };
        let members = vec![
            member("1", "zed@x.io", vec![2, 1]),
            member("2", "Amy@x.io", vec![]),
            member("3", "bob@x.io", vec![7]),
            member("4", "amy@x.io", vec![3]),
        ];
        let expected: Vec<Member> = members_by_email(&members)
            .into_iter()
            .map(|i| members[i as usize].clone())
            .collect();
        let ordered = in_visit_order(members);
        assert_eq!(ordered, expected);
        let ids: Vec<&str> = ordered.iter().map(Member::id).collect();
        assert_eq!(ids, ["2", "4", "3", "1"]);
        assert_eq!(members_by_email(&ordered), [0, 1, 2, 3]);
    }

    #[test]
    fn changes_sort_as_their_sort_key_says() {
        let change = |action, email: Option<&str>, name: Option<&str>, record: u128| {
            let mut c = Change::new(action, Reason::MemberMissingInCrm, Uuid::from_u128(record));
            c.member = email.map(|e| {
                Shared(std::sync::Arc::new(MemberRef::new(
                    "",
                    "",
                    e,
                    crate::config::MemberStatus::Subscribed,
                )))
            });
            c.maybe_named(name.map(str::to_owned))
        };
        let mut changes = vec![
            change(Action::LinkTags, Some("b@x.io"), None, 1),
            change(Action::CreateRecord, Some("B@x.io"), None, 2),
            change(Action::CreateRecord, Some("a@x.io"), None, 9),
            change(Action::CreateRecord, Some("ÄSA@x.io"), None, 3),
            change(Action::CreateRecord, Some("äsa@x.io"), None, 1),
            change(Action::CreateRecord, None, Some("Zed"), 4),
            change(Action::CreateRecord, None, None, 5),
            change(Action::CreateRecord, Some("b@X.io"), None, 2),
            change(Action::CreateTag, None, Some("vip"), 7),
        ];
        let mut expected = changes.clone();
        expected.sort_by_cached_key(|c| (c.action, c.sort_key()));
        sort_changes(&mut changes);
        assert_eq!(changes, expected);
        assert_eq!(
            changes[1].record,
            Uuid::from_u128(5),
            "no label sorts first"
        );
    }

    proptest::proptest! {
        #[test]
        fn prefix_keys_sort_as_the_full_comparison(
            labels in proptest::collection::vec(("[aAbB.@é\\x00]{0,24}", 0_usize..4, 0_u128..3, proptest::bool::ANY), 0..200)
        ) {
            let actions = [Action::CreateRecord, Action::AddListMember, Action::LinkTags, Action::RemoveTag];
            let mut changes: Vec<Change> = labels
                .iter()
                .map(|(label, action, record, named)| {
                    let c = Change::new(actions[*action], Reason::MemberMissingInCrm, Uuid::from_u128(*record));
                    if *named {
                        c.named(label.clone())
                    } else {
                        let m = MemberRef::new("", "", label, crate::config::MemberStatus::Subscribed);
                        c.for_member(Shared(std::sync::Arc::new(m)), label.as_str().into())
                    }
                })
                .collect();
            let mut expected = changes.clone();
            expected.sort_by_cached_key(|c| (c.action, c.sort_key()));
            // as the diff does: noting the order while pushing, in made order and pre-sorted
            for mut made in [changes.clone(), expected.clone()] {
                let mut order = MadeInOrder::default();
                let mut pushed = Vec::new();
                for c in made.drain(..) {
                    order.push(&pushed, &c);
                    pushed.push(c);
                }
                order.sort(&mut pushed);
                proptest::prop_assert_eq!(&pushed, &expected);
            }
            sort_changes(&mut changes);
            proptest::prop_assert_eq!(changes, expected);
        }
    }
}
