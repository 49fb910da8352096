//! The [`Change`] builder: a change starts as an action, a reason and a record, and gains only
//! what it has (a member, a name, columns, tags, preconditions), so that each kind of change in
//! the diff reads as one short chain; and the order changes are sorted in.

use std::cmp::Ordering;

use uuid::Uuid;

use crate::plan::model::{
    Action, Change, FieldChange, Fields, MemberRef, Precondition, Reason, Shared,
};

impl Change {
    /// A change of `record` with nothing else said: no member, name, columns, tags or
    /// precondition.
    #[must_use]
    pub fn new(action: Action, reason: Reason, record: Uuid) -> Self {
        Self {
            action,
            reason,
            record,
            member: None,
            name: None,
            fields: Fields::default(),
            tags: Box::default(),
            precondition: Precondition::default(),
        }
    }

    /// The display name of the record.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into().into_boxed_str());
        self
    }

    /// The display name, when there is one.
    #[must_use]
    pub fn maybe_named(mut self, name: Option<String>) -> Self {
        self.name = name.map(String::into_boxed_str);
        self
    }

    /// The Mailchimp member the change comes from, and its `last_changed` at plan time (the
    /// change is stale once the member moved on).
    #[must_use]
    pub fn for_member(mut self, member: Shared<MemberRef>, last_changed: Shared<str>) -> Self {
        self.member = Some(member);
        self.precondition.member_last_changed = Some(last_changed);
        self
    }

    /// One more column written.
    #[must_use]
    pub fn field(mut self, field: FieldChange) -> Self {
        self.fields = std::mem::take(&mut self.fields).with(&field);
        self
    }

    /// The columns written.
    #[must_use]
    pub fn fields(mut self, fields: impl Into<Fields>) -> Self {
        self.fields = fields.into();
        self
    }

    /// The Tag records linked or unlinked.
    #[must_use]
    pub fn tags(mut self, tags: Vec<Uuid>) -> Self {
        self.tags = tags.into_boxed_slice();
        self
    }

    /// Only while the record does not exist (creates with a deterministic id).
    #[must_use]
    pub fn if_absent(mut self) -> Self {
        self.precondition.absent = true;
        self
    }

    /// Only while the record is at this version (`If-Match`).
    #[must_use]
    pub fn if_match(mut self, etag: Option<String>) -> Self {
        self.precondition.etag = etag.map(String::into_boxed_str);
        self
    }
}

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

/// The first eight bytes of `label` lower-cased (as [`cmp_lowercase`] compares it), big-endian
/// and zero-padded: keys that differ order their labels as the full comparison does.
fn label_prefix(label: &str) -> u64 {
    let mut key = [0_u8; 8];
    if label.is_ascii() {
        for (k, b) in key.iter_mut().zip(label.bytes()) {
            *k = b.to_ascii_lowercase();
        }
    } else {
        for (k, b) in key.iter_mut().zip(label.to_lowercase().bytes()) {
            *k = b;
        }
    }
    u64::from_be_bytes(key)
}

/// Sort changes stably by action, then e-mail or name (lower-cased), then record id: the order
/// of `sort_by_cached_key(|c| (c.action, c.sort_key()))`. Positions are grouped by action, each
/// group sorted by an 8-byte label prefix (then the label, read once per change, and the record
/// id where prefixes tie, and the position last, which keeps equal changes in order), then the changes are moved in place: no
/// key string per change and no second copy of the changes (a million-member plan holds
/// millions).
pub(super) fn sort_changes(changes: &mut [Change]) {
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
    for group in starts.windows(2) {
        let slice = &mut order[group[0]..group[1]];
        let mut keys: Vec<(u64, &str, u32)> = slice
            .iter()
            .map(|&i| {
                let label = label(&changes[i as usize]);
                (label_prefix(label), label, i)
            })
            .collect();
        keys.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| cmp_lowercase(a.1, b.1))
                .then_with(|| changes[a.2 as usize].record.cmp(&changes[b.2 as usize].record))
                .then(a.2.cmp(&b.2))
        });
        for (slot, (_, _, i)) in slice.iter_mut().zip(keys) {
            *slot = i;
        }
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
    use super::*;
    use crate::plan::model::Value;

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
            labels in proptest::collection::vec(("[aAbB.@é\\x00]{0,12}", 0_usize..4, 0_u128..3, proptest::bool::ANY), 0..200)
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
                        c.for_member(Shared(std::sync::Arc::new(m)), Shared::from(label.as_str()))
                    }
                })
                .collect();
            let mut expected = changes.clone();
            expected.sort_by_cached_key(|c| (c.action, c.sort_key()));
            sort_changes(&mut changes);
            proptest::prop_assert_eq!(changes, expected);
        }
    }

    #[test]
    fn the_builder_sets_only_what_it_is_given() {
        let bare = Change::new(
            Action::RemoveTag,
            Reason::TagDeletedInMailchimp,
            Uuid::nil(),
        );
        assert_eq!(
            (
                bare.member.is_none(),
                bare.name.is_none(),
                bare.fields.is_empty()
            ),
            (true, true, true)
        );
        assert_eq!(bare.precondition, Precondition::default());
        let full = Change::new(Action::CreateTag, Reason::TagMissingInCrm, Uuid::nil())
            .named("VIP")
            .field(FieldChange {
                column: "mcsync_name".into(),
                before: None,
                after: Some(Value::Text("VIP".into())),
            })
            .if_absent()
            .if_match(Some("W/\"1\"".into()));
        assert_eq!(full.name.as_deref(), Some("VIP"));
        assert_eq!(full.fields.len(), 1);
        assert!(full.precondition.absent);
        assert_eq!(full.precondition.etag.as_deref(), Some("W/\"1\""));
    }
}
