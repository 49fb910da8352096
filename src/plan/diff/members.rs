//! Members, one pass over them after [matching](super::matching):
//! - **Selected members** (status in `statuses`): created when unmatched (deterministic id, mapped
//!   fields, the stored id, lead templates for lead lists); otherwise updated in mapped columns
//!   only (`overwrite`: Mailchimp's non-empty value wins; `fill_empty`: only empty columns are
//!   filled; an empty Mailchimp value never clears a CRM column) and linked by stored id when
//!   matched by e-mail; added to the list; their tag links set (see [`super::tags`]).
//! - **Consent.** An unsubscribed or cleaned member's record gets do-not-bulk-e-mail and the
//!   subscriber status, when `on_unsubscribe: mark_do_not_email`. A flagged record is never
//!   unflagged: a subscribed member on a flagged record is a warning.
//! - **Leaving.** A managed list member (its record stores a Mailchimp id) whose member is not
//!   selected (or gone) is removed from the list when the binding prunes members, or when it
//!   unsubscribed or was cleaned and `on_unsubscribe: remove`. Records are never deleted.
//!   Unmanaged list members (no stored id) are listed as kept and never removed.

use std::collections::BTreeSet;

use uuid::Uuid;

use super::matching::{Found, Matches, is_valid_email, match_members, normalize_email};
use super::order::members_by_email;
use super::tags::TagPlan;
use super::{Diff, member_ref, opt_text, text};
use crate::config::{FieldMapping, FieldPolicy, UnsubscribePolicy};
use crate::dataverse::columns::ColumnType;
use crate::domain::{MemberStatus, MemberType};
use crate::plan::convert::{self, Converted};
use crate::plan::fields::{FieldsBuilder, ValueRef};
use crate::plan::ids;
use crate::plan::model::{
    Action, Change, Column, FieldChange, Fields, Problem, ProblemCode, Reason, UnmanagedMember,
    Value,
};
use crate::plan::snapshot::{CrmRecord, DO_NOT_BULK_EMAIL_COLUMN, EMAIL_COLUMN, Member};

/// Positions computed once per binding: the CRM columns the pass reads, and where each mapping's
/// member field and column are.
struct Layout {
    /// The stored Mailchimp id column.
    id_col: usize,
    /// The e-mail column.
    email_col: usize,
    /// The subscriber status column.
    status_col: usize,
    /// Per mapping: the member field's position.
    path_of: Vec<Option<usize>>,
    /// Per mapping: the column's position.
    col_of: Vec<Option<usize>>,
    /// Per mapping: the key its column is written under, shared by every change.
    write_as: Vec<Column>,
    /// Per mapping: its column's type, when the CRM says it.
    type_of: Vec<Option<ColumnType>>,
    /// The keys of the columns every new record gets: e-mail, stored id, subscriber status.
    email_key: Column,
    id_key: Column,
    status_key: Column,
}

/// A value of a new record: member text that goes in whole is borrowed, the rest owned (a
/// first sync creates a record per member).
enum NewValue<'m> {
    Text(&'m str),
    Owned(Value),
}

/// Whether `raw` goes into a column of type `ty` as it is: text that fits, or a column whose type
/// the CRM does not say (then both sides compare as text, as `convert` does).
fn fits_as_text(ty: Option<&ColumnType>, raw: &str) -> bool {
    match ty {
        None => true,
        // UTF-16 units never outnumber UTF-8 bytes
        Some(ColumnType::Text { max_len }) => raw.len() <= *max_len as usize,
        Some(_) => false,
    }
}

/// The CRM's value as read, typed as its column (of type `ty`) is: text as read when the type is
/// unknown or the value does not read as the type.
fn crm_value(ty: Option<&ColumnType>, old: &str) -> Value {
    ty.and_then(|ty| convert::crm_value(ty, old))
        .unwrap_or_else(|| Value::Text(old.to_owned()))
}

/// Set `column` to `value`, replacing a value set before (a few columns: a linear search).
fn put_column<'m>(columns: &mut Vec<(Column, NewValue<'m>)>, column: Column, value: NewValue<'m>) {
    match columns.iter_mut().find(|(c, _)| *c == column) {
        Some(slot) => slot.1 = value,
        None => columns.push((column, value)),
    }
}

fn is_consent_status(status: MemberStatus) -> bool {
    matches!(status, MemberStatus::Unsubscribed | MemberStatus::Cleaned)
}

fn leaving_reason(status: MemberStatus) -> Reason {
    match status {
        MemberStatus::Unsubscribed => Reason::UnsubscribedInMailchimp,
        MemberStatus::Cleaned => Reason::CleanedInMailchimp,
        MemberStatus::Archived => Reason::ArchivedInMailchimp,
        _ => Reason::StatusNotSelected,
    }
}

impl<'a> Diff<'a> {
    /// Every member, then the list members no member matched; then the guard.
    pub(super) fn members(&mut self, tags: &TagPlan) {
        let Some(layout) = self.layout() else {
            return; // check_shape guarantees these columns
        };
        let snap = self.snapshot;
        let records = &snap.crm.records;
        let members = &snap.mailchimp.members;
        let table = self.binding.list.member_type.logical_name();
        let matches = match_members(members, records, table, layout.id_col, layout.email_col);
        // Room for the most changes a member makes (four: create or update, list, tags,
        // consent) and one per record: reserved address space, not memory, until written, so
        // a million-member plan never copies its changes while growing (which held the old and
        // the new buffer at once).
        self.plan.changes.reserve(
            members
                .len()
                .saturating_mul(4)
                .saturating_add(records.len()),
        );
        let mut selected_count = 0_u64;
        // in e-mail order, so that each action's changes are made in the plan's order
        for mi in members_by_email(members) {
            let mi = mi as usize;
            let m = &members[mi];
            let selected = self.binding.statuses.contains(&m.status);
            selected_count += u64::from(selected);
            self.member(m, matches.of(mi), selected, &layout, tags);
        }
        self.unclaimed_list_members(&matches, &layout);
        let id_col = layout.id_col;
        self.guard(selected_count, move |r: &CrmRecord| {
            r.value(id_col).is_some()
        });
    }

    fn layout(&self) -> Option<Layout> {
        let crm = &self.snapshot.crm;
        let id_column = self
            .names
            .mailchimp_id_column(self.binding.list.member_type);
        let fields = &self.binding.fields;
        Some(Layout {
            id_col: crm.column_index(id_column)?,
            email_col: crm.column_index(EMAIL_COLUMN)?,
            status_col: crm.column_index(&self.names.subscriber_status_column)?,
            path_of: fields
                .iter()
                .map(|f| self.snapshot.mailchimp.path_index(&f.source))
                .collect(),
            col_of: fields.iter().map(|f| crm.column_index(&f.column)).collect(),
            write_as: fields
                .iter()
                .map(|f| self.col(&self.write_key(&f.column)))
                .collect(),
            type_of: fields
                .iter()
                .map(|f| crm.column_types.get(&f.column).cloned())
                .collect(),
            email_key: self.col(EMAIL_COLUMN),
            id_key: self.col(id_column),
            status_key: self.col(&self.names.subscriber_status_column),
        })
    }

    /// One member: skipped on a conflict or a bad address; else created, updated or leaving,
    /// and its consent written.
    fn member(
        &mut self,
        m: &'a Member,
        found: Found<'_>,
        selected: bool,
        layout: &Layout,
        tags: &TagPlan,
    ) {
        let records = &self.snapshot.crm.records;
        let index = match found {
            Found::Nothing => None,
            Found::Conflict(code, rs) => {
                self.conflict(m, code, rs);
                return;
            }
            Found::Record(r) => Some(r),
        };
        if !is_valid_email(m.email()) {
            self.plan.errors.push(Problem {
                code: ProblemCode::InvalidEmail,
                message: format!(
                    "member `{}` has an invalid e-mail address (this member is skipped)",
                    m.email()
                ),
                member: Some(member_ref(m)),
                records: index.map(|r| records[r].id).into_iter().collect(),
            });
            return;
        }
        let consent = is_consent_status(m.status)
            && self.binding.on_unsubscribe == UnsubscribePolicy::MarkDoNotEmail;
        let (record_id, rec) = match index {
            None if !selected => return,
            None => (self.create_record(m, tags, layout, consent), None),
            Some(r) => {
                let rec = &records[r];
                let consent_due = consent
                    && (!rec.do_not_bulk_email
                        || rec.value(layout.status_col) != Some(m.status.as_str()));
                if selected {
                    self.update_record(m, rec, layout, consent_due.then_some(layout.status_col));
                    self.stays(m, rec, tags);
                } else {
                    self.leaves(m, rec, layout);
                }
                if !consent_due {
                    return;
                }
                (rec.id, Some(rec))
            }
        };
        if consent {
            self.consent(m, record_id, rec, layout.status_col);
        }
    }

    /// Two or more records for one member, or only an inactive one: an error, and the member
    /// is skipped.
    fn conflict(&mut self, m: &'a Member, code: ProblemCode, rs: &[u32]) {
        let records = &self.snapshot.crm.records;
        let email = m.email();
        let message = match code {
            ProblemCode::InactiveRecord => format!(
                "the only CRM record matching member `{email}` is inactive; it is not reactivated, put on the list or duplicated: reactivate or delete it in the CRM to sync this member (this member is skipped)"
            ),
            ProblemCode::DuplicateEmail => format!(
                "{} CRM records have the e-mail address of member `{email}`; merge or fix them in the CRM (this member is skipped)",
                rs.len()
            ),
            _ => format!(
                "{} CRM records store the Mailchimp id of member `{email}`; merge or fix them in the CRM (this member is skipped)",
                rs.len()
            ),
        };
        let mut ids: Vec<Uuid> = rs.iter().map(|&r| records[r as usize].id).collect();
        ids.sort_unstable();
        self.plan.errors.push(Problem {
            code,
            message,
            member: Some(member_ref(m)),
            records: ids,
        });
    }

    /// A selected member with a record: on the list, its tags linked, a kept flag warned about.
    fn stays(&mut self, m: &'a Member, rec: &CrmRecord, tags: &TagPlan) {
        if !rec.on_list {
            let change =
                self.member_change(Action::AddListMember, Reason::MemberNotOnList, rec.id, m);
            self.push(change);
        }
        self.tag_links(m, rec.id, &rec.tag_links, tags);
        if rec.do_not_bulk_email && m.status == MemberStatus::Subscribed {
            self.plan.warnings.push(Problem {
                code: ProblemCode::DoNotEmailKept,
                message: format!(
                    "record `{}` is flagged do-not-bulk-e-mail in the CRM while `{}` is subscribed in Mailchimp; the flag is kept (the tool never re-subscribes)",
                    rec.id,
                    m.email()
                ),
                member: Some(member_ref(m)),
                records: vec![rec.id],
            });
        }
    }

    /// A member not selected, with a record: kept when unmanaged; removed from the list when
    /// the binding says so.
    fn leaves(&mut self, m: &'a Member, rec: &CrmRecord, layout: &Layout) {
        let managed = rec.value(layout.id_col).is_some();
        if rec.on_list && !managed {
            self.plan.unmanaged.push(UnmanagedMember {
                record: rec.id,
                email: rec.value(layout.email_col).map(str::to_owned),
            });
        }
        let remove = rec.on_list
            && managed
            && (self.binding.prune_members
                || (is_consent_status(m.status)
                    && self.binding.on_unsubscribe == UnsubscribePolicy::Remove));
        if remove {
            let change = self.member_change(
                Action::RemoveListMember,
                leaving_reason(m.status),
                rec.id,
                m,
            );
            self.push(change);
        }
    }

    /// The consent change of `record_id` (`rec`: as read, `None` when being created).
    fn consent(
        &mut self,
        m: &'a Member,
        record_id: Uuid,
        rec: Option<&CrmRecord>,
        status_col: usize,
    ) {
        let (before_flag, before_status, etag) = match rec {
            Some(rec) => (
                rec.do_not_bulk_email,
                rec.value(status_col),
                Some(rec.etag().to_owned()),
            ),
            None => (false, None, None),
        };
        let fields: Fields = [
            (!before_flag).then(|| FieldChange {
                column: self.col(DO_NOT_BULK_EMAIL_COLUMN),
                before: Some(Value::Bool(false)),
                after: Some(Value::Bool(true)),
            }),
            (before_status != Some(m.status.as_str())).then(|| FieldChange {
                column: self.col(&self.names.subscriber_status_column),
                before: opt_text(before_status),
                after: text(m.status.as_str()),
            }),
        ]
        .into_iter()
        .flatten()
        .collect();
        let change = self
            .member_change(
                Action::SetDoNotEmail,
                leaving_reason(m.status),
                record_id,
                m,
            )
            .fields(fields)
            .if_match(etag);
        self.push(change);
    }

    /// List members no member matched: kept when unmanaged, removed (they left the audience)
    /// when managed and the binding prunes members.
    fn unclaimed_list_members(&mut self, matches: &Matches, layout: &Layout) {
        for (i, rec) in self.snapshot.crm.records.iter().enumerate() {
            if matches.claimed(i) || !rec.on_list {
                continue;
            }
            let email = rec.value(layout.email_col).map(str::to_owned);
            if rec.value(layout.id_col).is_none() {
                self.plan.unmanaged.push(UnmanagedMember {
                    record: rec.id,
                    email,
                });
            } else if self.binding.prune_members {
                self.push(
                    Change::new(Action::RemoveListMember, Reason::LeftAudience, rec.id)
                        .maybe_named(email)
                        .if_match(Some(rec.etag().to_owned())),
                );
            }
        }
    }

    /// A new record for `m`, added to the list and linked to its tags.
    fn create_record(
        &mut self,
        m: &'a Member,
        tags: &TagPlan,
        layout: &Layout,
        consent: bool,
    ) -> Uuid {
        let table = self.binding.list.member_type.logical_name();
        let id = ids::person_record(table, &normalize_email(m.email()));
        let mut columns = self.new_record_columns(m, id, layout);
        if consent {
            // the consent change writes the status; do not write it twice
            columns.retain(|(c, _)| *c != layout.status_key);
        }
        columns.sort_unstable_by_key(|(column, _)| *column);
        let text: usize = columns
            .iter()
            .map(|(_, v)| match v {
                NewValue::Text(t) => t.len(),
                NewValue::Owned(_) => 16,
            })
            .sum();
        let mut fields = FieldsBuilder::with_capacity(text + 8 * columns.len());
        for (column, value) in &columns {
            match value {
                NewValue::Text(t) => fields.push(*column, None, Some(ValueRef::Text(t))),
                NewValue::Owned(v) => fields.push_values(*column, None, Some(v)),
            }
        }
        let fields = fields.build();
        let create = self
            .member_change(Action::CreateRecord, Reason::MemberMissingInCrm, id, m)
            .fields(fields)
            .if_absent();
        self.push(create);
        let add = self.member_change(Action::AddListMember, Reason::MemberMissingInCrm, id, m);
        self.push(add);
        self.tag_links(m, id, &[], tags);
        id
    }

    /// The member's value of `mapping` converted to its column's type (text where the type is
    /// not known); `None` when empty or not convertible (then an error of the plan).
    fn mapped_value(
        &mut self,
        m: &'a Member,
        mapping: &FieldMapping,
        ty: Option<&ColumnType>,
        raw: &str,
        record: Uuid,
    ) -> Option<Converted> {
        let Some(ty) = ty else {
            return Some(Converted {
                value: Value::Text(raw.to_owned()),
                trimmed_from: None,
            });
        };
        match convert::member_value(ty, raw) {
            Ok(converted) => Some(converted),
            Err(reason) => {
                self.plan.errors.push(Problem {
                    code: ProblemCode::ValueNotConvertible,
                    message: format!(
                        "`{}` of `{}` cannot go into column `{}` ({ty}): {reason}; that column is not written for this member",
                        mapping.source,
                        m.email(),
                        mapping.column
                    ),
                    member: Some(member_ref(m)),
                    records: vec![record],
                });
                None
            }
        }
    }

    /// Note that `mapping`'s value of `m` is written cut to its column's length.
    fn trimmed(
        &mut self,
        m: &'a Member,
        mapping: &FieldMapping,
        converted: &Converted,
        record: Uuid,
    ) {
        let (Some(from), Value::Text(kept)) = (converted.trimmed_from, &converted.value) else {
            return;
        };
        self.plan.warnings.push(Problem {
            code: ProblemCode::ValueTrimmed,
            message: format!(
                "`{}` of `{}` has {from} characters; column `{}` holds {}, so it is written cut to that length",
                mapping.source,
                m.email(),
                mapping.column,
                kept.encode_utf16().count()
            ),
            member: Some(member_ref(m)),
            records: vec![record],
        });
    }

    /// The key a mapped column is written under (`<navigation>@odata.bind` for a lookup).
    fn write_key(&self, column: &str) -> String {
        convert::write_key(column, self.snapshot.crm.column_types.get(column))
    }

    /// The columns of a new record: mapped fields, the e-mail, the stored id, lead templates
    /// (a later one replaces an earlier one of the same column), unordered.
    fn new_record_columns(
        &mut self,
        m: &'a Member,
        record: Uuid,
        layout: &Layout,
    ) -> Vec<(Column, NewValue<'a>)> {
        let mut columns: Vec<(Column, NewValue<'a>)> =
            Vec::with_capacity(layout.write_as.len() + 2);
        let binding = self.binding;
        let mappings = binding
            .fields
            .iter()
            .zip(&layout.path_of)
            .zip(&layout.write_as)
            .zip(&layout.type_of);
        for (((mapping, path), write_as), ty) in mappings {
            let Some(raw) = path.and_then(|p| m.value(p)) else {
                continue;
            };
            let value = match ty {
                Some(ty) if !fits_as_text(Some(ty), raw) => {
                    let Some(converted) = self.mapped_value(m, mapping, Some(ty), raw, record)
                    else {
                        continue;
                    };
                    self.trimmed(m, mapping, &converted, record);
                    NewValue::Owned(converted.value)
                }
                // as `convert::member_value` does, without the copy: text that fits goes as is
                _ => NewValue::Text(raw),
            };
            put_column(&mut columns, *write_as, value);
        }
        if !columns.iter().any(|(c, _)| *c == layout.email_key) {
            columns.push((layout.email_key, NewValue::Text(m.email())));
        }
        put_column(&mut columns, layout.id_key, NewValue::Text(m.contact_id()));
        if self.binding.list.member_type == MemberType::Lead {
            let paths = &self.snapshot.mailchimp;
            for (column, template) in &self.binding.lead_values {
                let column = self.col(column);
                if columns.iter().any(|(c, _)| *c == column) {
                    continue;
                }
                let rendered = template.render(|path| {
                    paths
                        .path_index(path)
                        .and_then(|p| m.value(p))
                        .map(str::to_owned)
                });
                if !rendered.is_empty() {
                    columns.push((column, NewValue::Owned(Value::Text(rendered))));
                }
            }
        }
        columns
    }

    /// The mapped columns of `rec` that differ, compared as typed values, by policy, and the
    /// stored id when it was matched by e-mail (`skip_status`: the consent change writes the
    /// status column).
    fn update_record(
        &mut self,
        m: &'a Member,
        rec: &CrmRecord,
        layout: &Layout,
        skip_status: Option<usize>,
    ) {
        let id_col = layout.id_col;
        let stored = rec.value(id_col);
        if stored.is_some_and(|s| !s.trim().is_empty() && s != m.contact_id()) {
            // Matched by e-mail, and the record already holds another member's Mailchimp id
            // (the same person in another bound audience): that audience owns its columns, so
            // this one only lists and tags it, and the bindings never take it in turn.
            return;
        }
        let mut fields: Vec<FieldChange> = Vec::new();
        let mut reason = Reason::FieldEmptyInCrm;
        let mut seen: BTreeSet<usize> = BTreeSet::new();
        let binding = self.binding;
        let mappings = binding
            .fields
            .iter()
            .zip(&layout.path_of)
            .zip(&layout.col_of)
            .zip(&layout.write_as)
            .zip(&layout.type_of);
        for ((((mapping, path), col), write_as), ty) in mappings {
            let Some(col) = *col else { continue };
            if skip_status == Some(col) || col == id_col || !seen.insert(col) {
                continue;
            }
            let Some(raw) = path.and_then(|p| m.value(p)) else {
                continue;
            };
            let stored_text = rec.value(col);
            if stored_text.is_some()
                && fits_as_text(ty.as_ref(), raw)
                && (mapping.policy == FieldPolicy::FillEmpty || stored_text == Some(raw))
            {
                // nothing to write, decided without converting either value (a steady-state
                // plan compares every mapped column of every member)
                continue;
            }
            let old = stored_text.map(|old| crm_value(ty.as_ref(), old));
            let Some(new) = self.mapped_value(m, mapping, ty.as_ref(), raw, rec.id) else {
                continue;
            };
            let write = match mapping.policy {
                FieldPolicy::Overwrite => old.as_ref() != Some(&new.value),
                FieldPolicy::FillEmpty => old.is_none(),
            };
            if write {
                if old.is_some() {
                    reason = Reason::FieldChangedInMailchimp;
                }
                self.trimmed(m, mapping, &new, rec.id);
                fields.push(FieldChange {
                    column: *write_as,
                    before: old,
                    after: Some(new.value),
                });
            }
        }
        if stored != Some(m.contact_id()) {
            reason = Reason::MatchedByEmail;
            fields.push(FieldChange {
                column: self.col(
                    self.names
                        .mailchimp_id_column(self.binding.list.member_type),
                ),
                before: opt_text(stored),
                after: text(m.contact_id()),
            });
        }
        if fields.is_empty() {
            return;
        }
        fields.sort_by_key(|f| f.column);
        let change = self
            .member_change(Action::UpdateRecord, reason, rec.id, m)
            .fields(fields)
            .if_match(Some(rec.etag().to_owned()));
        self.push(change);
    }
}

#[cfg(test)]
mod tests {
    use crate::config::MemberStatus;
    use crate::plan::diff::compute;
    use crate::plan::fixture::{self, Builder, uuid};
    use crate::plan::model::{Action, Reason};

    #[test]
    fn conflicts_skip_only_their_member_and_never_remove_its_records() {
        let plan = fixture::scenario_plan();
        let news = &plan.bindings[0];
        let touched = |email: &str| {
            news.changes
                .iter()
                .any(|c| c.member.as_ref().is_some_and(|m| m.email() == email))
        };
        assert!(!touched("gina@example.com"));
        assert!(!touched("henry@example.com"));
        assert!(!touched("not-an-email"));
        // henry's record is on the list and managed, but never removed while in conflict
        assert!(!news.changes.iter().any(|c| c.record == uuid(0x81)));
        assert!(touched("alice@example.com"));
    }

    #[test]
    fn unmanaged_list_members_are_kept_even_when_pruning() {
        let plan = fixture::scenario_plan();
        let news = &plan.bindings[0];
        assert_eq!(news.unmanaged.len(), 1);
        assert_eq!(
            news.unmanaged[0].email.as_deref(),
            Some("walter@example.com")
        );
        assert!(!news.changes.iter().any(|c| c.record == uuid(0x3a)));
    }

    #[test]
    fn without_prune_leavers_stay_and_only_consent_is_written() {
        let (bindings, names) = fixture::bindings(
            "bindings:\n  - {name: b, audience: {id: a1}, marketing_list: {name: L, member_type: contact}}\n",
        );
        let col = names.contact_mailchimp_id_column.as_str();
        let snapshot = Builder::new(&bindings[0], &names, ("a1", "A"))
            .audience_record(uuid(1), "A")
            .list(uuid(2), "L", 2, false, Some(uuid(1)))
            .member("u@example.com", MemberStatus::Unsubscribed, &[], &[])
            .member("s@example.com", MemberStatus::Subscribed, &[], &[])
            .record(
                uuid(10),
                &[("emailaddress1", "u@example.com"), (col, "c-u")],
                false,
                &[],
                true,
            )
            .record(
                uuid(11),
                &[
                    ("emailaddress1", "s@example.com"),
                    (col, "c-s"),
                    ("mcsync_mailchimpstatus", "subscribed"),
                ],
                false,
                &[],
                true,
            )
            .build();
        let plan = compute(&bindings[0], &names, &snapshot);
        let actions: Vec<Action> = plan.changes.iter().map(|c| c.action).collect();
        assert_eq!(actions, vec![Action::SetDoNotEmail]);
        assert_eq!(plan.guard, None);
    }

    #[test]
    fn fill_empty_never_overwrites() {
        let (bindings, names) = fixture::bindings(
            "bindings:\n  - {name: b, audience: {id: a1}, marketing_list: {name: L, member_type: contact}, fields: {policy: fill_empty}}\n",
        );
        let col = names.contact_mailchimp_id_column.as_str();
        let snapshot = Builder::new(&bindings[0], &names, ("a1", "A"))
            .audience_record(uuid(1), "A")
            .list(uuid(2), "L", 2, false, Some(uuid(1)))
            .member(
                "s@example.com",
                MemberStatus::Subscribed,
                &[
                    ("merge_fields.FNAME", "New"),
                    ("merge_fields.LNAME", "Last"),
                ],
                &[],
            )
            .record(
                uuid(11),
                &[
                    ("emailaddress1", "s@example.com"),
                    (col, "c-s"),
                    ("firstname", "Old"),
                    ("mcsync_mailchimpstatus", "subscribed"),
                ],
                false,
                &[],
                true,
            )
            .build();
        let plan = compute(&bindings[0], &names, &snapshot);
        assert_eq!(plan.changes.len(), 1);
        let fields: Vec<&str> = plan.changes[0]
            .fields
            .iter()
            .map(|f| f.column.as_str())
            .collect();
        assert_eq!(fields, vec!["lastname"]);
        assert_eq!(plan.changes[0].reason, Reason::FieldEmptyInCrm);
    }

    #[test]
    fn typed_columns_compare_as_typed_values_and_long_text_is_cut_with_a_note() {
        use crate::dataverse::columns::ColumnType;
        use crate::plan::model::{ProblemCode, Value};
        let (bindings, names) = fixture::bindings(
            "bindings:\n  - {name: b, audience: {id: a1}, marketing_list: {name: L, member_type: contact}, fields: {map: {timestamp_signup: lastusedincampaign, vip: donotphone}}}\n",
        );
        let col = names.contact_mailchimp_id_column.as_str();
        let long = "Bartholomew-Maximilian Alexander-Christophe Featherstone"; // 56
        let mut snapshot = Builder::new(&bindings[0], &names, ("a1", "A"))
            .audience_record(uuid(1), "A")
            .list(uuid(2), "L", 2, false, Some(uuid(1)))
            .member(
                "s@example.com",
                MemberStatus::Subscribed,
                &[
                    ("timestamp_signup", "2024-03-01T10:20:30+00:00"),
                    ("vip", "true"),
                    ("merge_fields.FNAME", long),
                ],
                &[],
            )
            .record(
                uuid(11),
                &[
                    ("emailaddress1", "s@example.com"),
                    (col, "c-s"),
                    ("lastusedincampaign", "2024-03-01T10:20:30Z"),
                    ("donotphone", "false"),
                    ("mcsync_mailchimpstatus", "subscribed"),
                ],
                false,
                &[],
                true,
            )
            .build();
        snapshot.crm.column_types = [
            ("lastusedincampaign", ColumnType::DateTime),
            ("donotphone", ColumnType::Boolean),
            ("firstname", ColumnType::Text { max_len: 50 }),
        ]
        .into_iter()
        .map(|(c, t)| (c.to_owned(), t))
        .collect();
        let plan = compute(&bindings[0], &names, &snapshot);
        assert_eq!(plan.changes.len(), 1, "{:#?}", plan.changes);
        let fields: Vec<(&str, Option<Value>)> = plan.changes[0]
            .fields
            .iter()
            .map(|f| (f.column.as_str(), f.after.map(|v| v.to_value())))
            .collect();
        // the time is the same instant (`+00:00` = `Z`): not written
        assert_eq!(
            fields,
            vec![
                ("donotphone", Some(Value::Bool(true))),
                ("firstname", Some(Value::Text(long[..50].to_owned()))),
            ]
        );
        assert_eq!(plan.warnings.len(), 1);
        assert_eq!(plan.warnings[0].code, ProblemCode::ValueTrimmed);
        assert!(plan.warnings[0].message.contains("56 characters"));
    }
}
