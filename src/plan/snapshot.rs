//! What was read from both sides for one binding: compact, owned records, ready for the pure diff.
//!
//! Memory is proportional to the records, not to the JSON they came from: text is `Box<str>`,
//! field values are stored by position in one shared column list per side (no map, no
//! `serde_json::Value` per record).
//!
//! Invariants the observation step must keep (the diff checks the first two and refuses the
//! binding otherwise):
//! - [`MailchimpSide::field_paths`] is [`member_field_paths`] of the binding, and every
//!   [`Member::values`] has one entry per path, in that order;
//! - [`CrmSide::columns`] is [`crm_columns`] of the binding, and every [`CrmRecord::values`] has
//!   one entry per column, in that order (so the e-mail, the stored Mailchimp id and the subscriber
//!   status are read through the same array as the mapped columns);
//! - empty strings are stored as `None` (use [`text`]);
//! - the CRM side holds every member of the marketing list (with `on_list`), plus every other
//!   contact or lead that may match a Mailchimp member (same stored Mailchimp id or e-mail);
//! - [`CrmRecord::tag_links`] holds only Tag records of this audience, sorted.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::model::ReadSummary;
use crate::config::{Binding, MemberStatus, MemberType, Names};

/// The CRM column both contacts and leads keep their main e-mail address in.
pub const EMAIL_COLUMN: &str = "emailaddress1";

/// The CRM column of the do-not-bulk-e-mail flag.
pub const DO_NOT_BULK_EMAIL_COLUMN: &str = "donotbulkemail";

/// The Tag record's name column, as shown in changes of Tag records (the table's primary name).
pub const TAG_NAME_COLUMN: &str = "name";

/// Text as the snapshot stores it: `None` for missing or empty.
#[must_use]
pub fn text(value: Option<&str>) -> Option<Box<str>> {
    value.filter(|v| !v.is_empty()).map(Box::from)
}

/// The member field paths a binding needs from Mailchimp: every mapped source and every field its
/// lead templates use, sorted and without duplicates.
#[must_use]
pub fn member_field_paths(binding: &Binding) -> Vec<String> {
    let mut paths: BTreeSet<String> = binding.fields.iter().map(|f| f.source.clone()).collect();
    if binding.list.member_type == MemberType::Lead {
        for template in binding.lead_values.values() {
            paths.extend(template.fields().map(str::to_owned));
        }
    }
    paths.into_iter().collect()
}

/// The CRM columns a binding needs from each contact or lead: every mapped column, the e-mail
/// column, the stored Mailchimp id column and the subscriber status column, sorted and without
/// duplicates.
#[must_use]
pub fn crm_columns(binding: &Binding, names: &Names) -> Vec<String> {
    let mut columns: BTreeSet<String> = binding.fields.iter().map(|f| f.column.clone()).collect();
    columns.insert(EMAIL_COLUMN.to_owned());
    columns.insert(
        names
            .mailchimp_id_column(binding.list.member_type)
            .to_owned(),
    );
    columns.insert(names.subscriber_status_column.clone());
    columns.into_iter().collect()
}

/// Everything read for one binding.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The Mailchimp side.
    pub mailchimp: MailchimpSide,
    /// The CRM side.
    pub crm: CrmSide,
}

/// The Mailchimp audience, as read.
#[derive(Debug, Clone, PartialEq)]
pub struct MailchimpSide {
    /// The audience.
    pub audience: Audience,
    /// Every tag of the audience.
    pub tags: Vec<Tag>,
    /// The paths the members' `values` hold, see [`member_field_paths`].
    pub field_paths: Vec<String>,
    /// The selected members and every member whose status matters for leaving or consent
    /// (unsubscribed, cleaned, archived).
    pub members: Vec<Member>,
}

/// A Mailchimp audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audience {
    /// The list id.
    pub id: String,
    /// Its name.
    pub name: String,
}

/// A Mailchimp tag (a static segment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// The segment id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Members carrying it, as Mailchimp counts them.
    pub member_count: u64,
}

/// A Mailchimp member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The subscriber hash (MD5 of the lower-cased address).
    pub id: Box<str>,
    /// Mailchimp's contact id, the identity stored on CRM records.
    pub contact_id: Box<str>,
    /// The address as Mailchimp has it.
    pub email: Box<str>,
    /// Its status.
    pub status: MemberStatus,
    /// `last_changed`, as Mailchimp wrote it: the member's version for saved plans.
    pub last_changed: Box<str>,
    /// One value per [`MailchimpSide::field_paths`] entry.
    pub values: Box<[Option<Box<str>>]>,
    /// Ids of its tags, sorted.
    pub tags: Box<[u64]>,
}

/// The CRM side, as read.
#[derive(Debug, Clone, PartialEq)]
pub struct CrmSide {
    /// The Audience record of this audience, if there is one.
    pub audience: Option<AudienceRecord>,
    /// The marketing list, if it exists.
    pub list: Option<MarketingList>,
    /// The Tag records of this audience.
    pub tags: Vec<TagRecord>,
    /// The columns the records' `values` hold, see [`crm_columns`].
    pub columns: Vec<String>,
    /// The list's members and every other contact or lead that may match a member.
    pub records: Vec<CrmRecord>,
}

/// The CRM Audience record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudienceRecord {
    /// Its id.
    pub id: Uuid,
    /// Its ETag.
    pub etag: Box<str>,
    /// The Mailchimp audience name it holds.
    pub name: String,
    /// Its sync status as last written by apply, for display only.
    pub sync_status: Option<Box<str>>,
}

/// The CRM marketing list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketingList {
    /// `listid`.
    pub id: Uuid,
    /// `listname`.
    pub name: String,
    /// `type`: true for a dynamic list.
    pub dynamic: bool,
    /// `createdfromcode`: 1 account, 2 contact, 4 lead.
    pub member_type_code: u8,
    /// `statecode`: 0 active, 1 inactive.
    pub statecode: i32,
    /// Its ETag.
    pub etag: Box<str>,
    /// The Audience record its lookup points at.
    pub audience_record: Option<Uuid>,
}

/// A CRM Tag record of this audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRecord {
    /// Its id.
    pub id: Uuid,
    /// The Mailchimp tag id it stands for.
    pub mailchimp_id: u64,
    /// Its name.
    pub name: String,
    /// Its ETag.
    pub etag: Box<str>,
}

/// A CRM contact or lead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmRecord {
    /// `contactid` or `leadid`.
    pub id: Uuid,
    /// Its ETag.
    pub etag: Box<str>,
    /// One value per [`CrmSide::columns`] entry.
    pub values: Box<[Option<Box<str>>]>,
    /// `donotbulkemail`.
    pub do_not_bulk_email: bool,
    /// Tag records of this audience it is linked to, sorted.
    pub tag_links: Box<[Uuid]>,
    /// A member of the marketing list.
    pub on_list: bool,
    /// The `listmember` row, when known.
    pub list_member_id: Option<Uuid>,
}

impl CrmSide {
    /// The position of `column` in [`CrmSide::columns`].
    #[must_use]
    pub fn column_index(&self, column: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == column)
    }
}

impl MailchimpSide {
    /// The position of `path` in [`MailchimpSide::field_paths`].
    #[must_use]
    pub fn path_index(&self, path: &str) -> Option<usize> {
        self.field_paths.iter().position(|c| c == path)
    }
}

/// Stable digests of what was read, one per side: equal digests mean equal input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// `sha256:<hex>` over the Mailchimp side.
    pub mailchimp: String,
    /// `sha256:<hex>` over the CRM side.
    pub crm: String,
}

/// Feeds values into a hash unambiguously (every item is length-prefixed).
struct Feed(Sha256);

impl Feed {
    fn str(&mut self, s: &str) {
        self.0.update((s.len() as u64).to_le_bytes());
        self.0.update(s.as_bytes());
    }
    fn opt(&mut self, s: Option<&str>) {
        match s {
            None => self.0.update([0]),
            Some(s) => {
                self.0.update([1]);
                self.str(s);
            }
        }
    }
    fn u64(&mut self, n: u64) {
        self.0.update(n.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.0.update(b);
    }
    fn finish(self) -> String {
        format!("sha256:{}", hex::encode(self.0.finalize()))
    }
}

impl Snapshot {
    /// Digests of both sides, independent of the order records were read in.
    #[must_use]
    pub fn digests(&self) -> Digests {
        Digests {
            mailchimp: self.mailchimp.digest(),
            crm: self.crm.digest(),
        }
    }
}

impl MailchimpSide {
    /// `sha256:<hex>` over the audience, its tags and its members, sorted.
    #[must_use]
    pub fn digest(&self) -> String {
        let mut f = Feed(Sha256::new());
        f.str("mailchimp/1");
        f.str(&self.audience.id);
        f.str(&self.audience.name);
        let mut tags: Vec<&Tag> = self.tags.iter().collect();
        tags.sort_by(|a, b| (a.id, &a.name).cmp(&(b.id, &b.name)));
        f.u64(tags.len() as u64);
        for t in tags {
            f.u64(t.id);
            f.str(&t.name);
            f.u64(t.member_count);
        }
        f.u64(self.field_paths.len() as u64);
        for p in &self.field_paths {
            f.str(p);
        }
        let mut order: Vec<usize> = (0..self.members.len()).collect();
        order.sort_unstable_by(|&a, &b| self.members[a].id.cmp(&self.members[b].id));
        f.u64(order.len() as u64);
        for i in order {
            let m = &self.members[i];
            f.str(&m.id);
            f.str(&m.contact_id);
            f.str(&m.email);
            f.str(m.status.as_str());
            f.str(&m.last_changed);
            f.u64(m.values.len() as u64);
            for v in &m.values {
                f.opt(v.as_deref());
            }
            f.u64(m.tags.len() as u64);
            for t in &m.tags {
                f.u64(*t);
            }
        }
        f.finish()
    }
}

impl CrmSide {
    /// `sha256:<hex>` over the Audience record, the list, the Tag records and the records, sorted.
    #[must_use]
    pub fn digest(&self) -> String {
        let mut f = Feed(Sha256::new());
        f.str("crm/1");
        match &self.audience {
            None => f.bytes(&[0]),
            Some(a) => {
                f.bytes(&[1]);
                f.bytes(a.id.as_bytes());
                f.str(&a.etag);
                f.str(&a.name);
                f.opt(a.sync_status.as_deref());
            }
        }
        match &self.list {
            None => f.bytes(&[0]),
            Some(l) => {
                f.bytes(&[1]);
                f.bytes(l.id.as_bytes());
                f.str(&l.name);
                f.bytes(&[u8::from(l.dynamic), l.member_type_code]);
                f.u64(u64::from(l.statecode.unsigned_abs()));
                f.str(&l.etag);
                f.bytes(l.audience_record.unwrap_or_default().as_bytes());
            }
        }
        let mut tags: Vec<&TagRecord> = self.tags.iter().collect();
        tags.sort_by_key(|t| t.id);
        f.u64(tags.len() as u64);
        for t in tags {
            f.bytes(t.id.as_bytes());
            f.u64(t.mailchimp_id);
            f.str(&t.name);
            f.str(&t.etag);
        }
        f.u64(self.columns.len() as u64);
        for c in &self.columns {
            f.str(c);
        }
        let mut order: Vec<usize> = (0..self.records.len()).collect();
        order.sort_unstable_by_key(|&i| self.records[i].id);
        f.u64(order.len() as u64);
        for i in order {
            let r = &self.records[i];
            f.bytes(r.id.as_bytes());
            f.str(&r.etag);
            f.u64(r.values.len() as u64);
            for v in &r.values {
                f.opt(v.as_deref());
            }
            f.bytes(&[u8::from(r.do_not_bulk_email), u8::from(r.on_list)]);
            f.bytes(r.list_member_id.unwrap_or_default().as_bytes());
            f.u64(r.tag_links.len() as u64);
            for t in &r.tag_links {
                f.bytes(t.as_bytes());
            }
        }
        f.finish()
    }
}

impl Snapshot {
    /// How much was read.
    #[must_use]
    pub fn read_counts(&self) -> ReadSummary {
        ReadSummary {
            members: self.mailchimp.members.len() as u64,
            tags: self.mailchimp.tags.len() as u64,
            records: self.crm.records.len() as u64,
            list_members: self.crm.records.iter().filter(|r| r.on_list).count() as u64,
            tag_records: self.crm.tags.len() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side() -> MailchimpSide {
        let member = |id: &str| Member {
            id: id.into(),
            contact_id: format!("c{id}").into(),
            email: format!("{id}@example.com").into(),
            status: MemberStatus::Subscribed,
            last_changed: "2026-01-01T00:00:00+00:00".into(),
            values: vec![Some("x".into()), None].into(),
            tags: vec![1].into(),
        };
        MailchimpSide {
            audience: Audience {
                id: "a1".into(),
                name: "A".into(),
            },
            tags: vec![],
            field_paths: vec!["a".into(), "b".into()],
            members: vec![member("1"), member("2")],
        }
    }

    #[test]
    fn digest_ignores_read_order_but_not_content() {
        let a = side();
        let mut b = side();
        b.members.reverse();
        assert_eq!(a.digest(), b.digest());
        b.members[0].values = vec![None, Some("x".into())].into();
        assert_ne!(a.digest(), b.digest());
        assert!(a.digest().starts_with("sha256:"));
    }

    #[test]
    fn empty_text_is_none() {
        assert_eq!(text(Some("")), None);
        assert_eq!(text(Some("a")).as_deref(), Some("a"));
    }
}
