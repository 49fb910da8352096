//! The Audience record and the list: the record created when missing and renamed when the
//! audience was; the list created when missing (with `create: true`) or its Audience lookup
//! pointed at the record.

use super::{Diff, text};
use crate::dataverse::lists as list_cols;
use crate::dataverse::schema::audience as audience_cols;
use crate::plan::ids;
use crate::plan::model::{Action, Change, Column, FieldChange, Reason, Value};

impl Diff<'_> {
    /// Audience record and list.
    pub(super) fn audience_and_list(&mut self) {
        let mc = &self.snapshot.mailchimp.audience;
        let crm = &self.snapshot.crm;
        let name_field = |before: Option<&str>| FieldChange {
            column: Column::new(audience_cols::NAME),
            before: before.and_then(text),
            after: text(&mc.name),
        };
        let audience_record = match &crm.audience {
            None => {
                let id = ids::audience_record(&mc.id);
                self.push(
                    Change::new(Action::CreateAudience, Reason::AudienceMissingInCrm, id)
                        .named(mc.name.clone())
                        .field(name_field(None))
                        .if_absent(),
                );
                id
            }
            Some(a) => {
                if a.name != mc.name {
                    self.push(
                        Change::new(
                            Action::UpdateAudience,
                            Reason::AudienceRenamedInMailchimp,
                            a.id,
                        )
                        .named(mc.name.clone())
                        .field(name_field(Some(&a.name)))
                        .if_match(Some(a.etag.to_string())),
                    );
                }
                a.id
            }
        };
        let lookup = Column::new(&self.names.list_audience_lookup);
        let lookup_field = |before: Option<Value>| FieldChange {
            column: lookup,
            before,
            after: text(&audience_record.to_string()),
        };
        match &crm.list {
            None => {
                let id = self.plan.list.id.unwrap_or_default();
                let name = self.plan.list.name.clone();
                let code = self.binding.list.member_type.list_code();
                self.push(
                    Change::new(Action::CreateList, Reason::ListMissingInCrm, id)
                        .named(name.clone())
                        .field(FieldChange {
                            column: Column::new(list_cols::MEMBER_TYPE_COLUMN),
                            before: None,
                            after: Some(Value::Number(code)),
                        })
                        .field(FieldChange {
                            column: Column::new(list_cols::NAME_COLUMN),
                            before: None,
                            after: text(&name),
                        })
                        .field(lookup_field(None))
                        .if_absent(),
                );
            }
            Some(list) if list.audience_record != Some(audience_record) => {
                self.push(
                    Change::new(Action::UpdateList, Reason::ListNotLinkedToAudience, list.id)
                        .named(list.name.clone())
                        .field(lookup_field(
                            list.audience_record.map(|id| Value::Text(id.to_string())),
                        ))
                        .if_match(Some(list.etag.to_string())),
                );
            }
            Some(_) => {}
        }
    }
}
