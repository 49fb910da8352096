//! The [`Change`] builder: a change starts as an action, a reason and a record, and gains only
//! what it has (a member, a name, columns, tags, preconditions), so that each kind of change in
//! the diff reads as one short chain.

use uuid::Uuid;

use crate::plan::model::{
    Action, Change, FieldChange, Fields, MemberRef, MemberVersion, Precondition, Reason, Shared,
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
    pub fn for_member(mut self, member: Shared<MemberRef>, last_changed: MemberVersion) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::Value;

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
