//! What was read from both sides for one binding: compact, owned records, ready for the pure diff.
//!
//! Memory is proportional to the records, not to the JSON they came from: each member and each
//! CRM record keeps its text in one [`Row`] (one allocation), field values by position in one
//! shared path or column list per side (no map, no `serde_json::Value` per record). About 540 MiB
//! for 1,000,000 members and 960,000 CRM records with the default mappings (`examples/bench_diff.rs`).
//!
//! Invariants the observation step must keep (the diff checks the first two and refuses the
//! binding otherwise):
//! - [`MailchimpSide::field_paths`] is [`member_field_paths`] of the binding, and every member has
//!   one value per path, in that order ([`Member::new`]);
//! - [`CrmSide::columns`] is [`crm_columns`] of the binding, and every record has one value per
//!   column, in that order ([`CrmRecord::new`]); so the e-mail, the stored Mailchimp id and the
//!   subscriber status are read through the same list as the mapped columns;
//! - values are text as the API gives them (numbers and dates formatted by the observer, the same
//!   way on both sides); empty strings are none;
//! - the members are the selected ones plus those whose status matters for leaving or consent
//!   (unsubscribed, cleaned, archived);
//! - the CRM side holds every member of the marketing list (with `on_list`), plus every other
//!   contact or lead that may match a Mailchimp member (same stored Mailchimp id or e-mail);
//! - [`CrmRecord::tag_links`] holds only Tag records of this audience.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::model::ReadSummary;
use super::row::{MemberEntry, Row};
use crate::config::{Binding, MemberStatus, MemberType, Names};
use crate::dataverse::columns::ColumnType;

/// The CRM column both contacts and leads keep their main e-mail address in.
pub const EMAIL_COLUMN: &str = "emailaddress1";

/// The CRM column of the do-not-bulk-e-mail flag.
pub const DO_NOT_BULK_EMAIL_COLUMN: &str = "donotbulkemail";

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
    /// Mailchimp's time (RFC 3339) at or before which the member read began: every change
    /// after it was not necessarily read. `None` for snapshots not read from Mailchimp.
    pub read_at: Option<String>,
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

/// A Mailchimp member: its identity, version and field values packed in one [`Row`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its status.
    pub status: MemberStatus,
    /// Ids of its tags, sorted.
    pub tags: Box<[u64]>,
    /// `[id, contact_id, email, last_changed, values…]`.
    row: Row,
}

const MEMBER_FIXED: usize = MemberEntry::COUNT;

impl Member {
    /// A member. `values` has one entry per [`MailchimpSide::field_paths`] entry; `tags` is sorted here.
    #[must_use]
    pub fn new<'a>(
        id: &'a str,
        contact_id: &'a str,
        email: &'a str,
        status: MemberStatus,
        last_changed: &'a str,
        values: impl IntoIterator<Item = Option<&'a str>>,
        mut tags: Vec<u64>,
    ) -> Self {
        tags.sort_unstable();
        tags.dedup();
        let fixed = [Some(id), Some(contact_id), Some(email), Some(last_changed)];
        Self {
            status,
            tags: tags.into(),
            row: Row::new(fixed.into_iter().chain(values)),
        }
    }

    /// The subscriber hash (MD5 of the lower-cased address).
    #[must_use]
    pub fn id(&self) -> &str {
        self.row.member(MemberEntry::Id)
    }

    /// Mailchimp's contact id, the identity stored on CRM records.
    #[must_use]
    pub fn contact_id(&self) -> &str {
        self.row.member(MemberEntry::ContactId)
    }

    /// The address as Mailchimp has it.
    #[must_use]
    pub fn email(&self) -> &str {
        self.row.member(MemberEntry::Email)
    }

    /// `last_changed`, as Mailchimp wrote it: the member's version for saved plans.
    #[must_use]
    pub fn last_changed(&self) -> &str {
        self.row.member(MemberEntry::LastChanged)
    }

    /// The value of field path `i` of [`MailchimpSide::field_paths`].
    #[must_use]
    pub fn value(&self, i: usize) -> Option<&str> {
        self.row.get(MEMBER_FIXED + i)
    }

    /// How many field values it holds.
    #[must_use]
    pub fn values_len(&self) -> usize {
        self.row.len().saturating_sub(MEMBER_FIXED)
    }

    /// Bytes it holds on the heap.
    #[must_use]
    pub fn heap_size(&self) -> usize {
        self.row.heap_size() + self.tags.len() * 8
    }

    /// The packed identity, version and values.
    #[must_use]
    pub fn row(&self) -> &Row {
        &self.row
    }

    /// The same member in allocations of its own, made now: members copied in the order they
    /// will be visited lie in memory in that order.
    #[must_use]
    pub fn copied(&self) -> Self {
        Self {
            status: self.status,
            tags: self.tags.clone(),
            row: self.row.copied(),
        }
    }
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
    /// The types of the mapped columns, from the CRM's metadata (a column not here is text, kept
    /// as read). Values are converted to these types before they are compared or written.
    pub column_types: BTreeMap<String, ColumnType>,
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
    /// `lockstatus`: a locked list refuses adds and removals.
    pub locked: bool,
    /// Its ETag.
    pub etag: Box<str>,
    /// The Audience record its lookup points at.
    pub audience_record: Option<Uuid>,
}

impl MarketingList {
    /// Contacts or leads; `None` for a list of accounts or of an unknown type.
    #[must_use]
    pub fn member_type(&self) -> Option<MemberType> {
        MemberType::from_list_code(i64::from(self.member_type_code))
    }
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

/// A CRM contact or lead; its ETag and column values packed in one [`Row`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmRecord {
    /// `contactid` or `leadid`.
    pub id: Uuid,
    /// `donotbulkemail`.
    pub do_not_bulk_email: bool,
    /// A member of the marketing list.
    pub on_list: bool,
    /// The `listmember` row, when known.
    pub list_member_id: Option<Uuid>,
    /// `statecode` is not 0: the record is deactivated (never matched, listed or reactivated).
    pub inactive: bool,
    /// Tag records of this audience it is linked to, sorted.
    pub tag_links: Box<[Uuid]>,
    /// `[etag, values…]`.
    row: Row,
}

impl CrmRecord {
    /// A record. `values` has one entry per [`CrmSide::columns`] entry; `tag_links` is sorted here.
    #[must_use]
    pub fn new<'a>(
        id: Uuid,
        etag: &'a str,
        values: impl IntoIterator<Item = Option<&'a str>>,
        do_not_bulk_email: bool,
        mut tag_links: Vec<Uuid>,
        on_list: bool,
    ) -> Self {
        tag_links.sort_unstable();
        tag_links.dedup();
        Self {
            id,
            do_not_bulk_email,
            on_list,
            list_member_id: None,
            inactive: false,
            tag_links: tag_links.into(),
            row: Row::new(std::iter::once(Some(etag)).chain(values)),
        }
    }

    /// Its ETag.
    #[must_use]
    pub fn etag(&self) -> &str {
        self.row.get(0).unwrap_or_default()
    }

    /// The value of column `i` of [`CrmSide::columns`].
    #[must_use]
    pub fn value(&self, i: usize) -> Option<&str> {
        self.row.get(1 + i)
    }

    /// How many column values it holds.
    #[must_use]
    pub fn values_len(&self) -> usize {
        self.row.len().saturating_sub(1)
    }

    /// Replace the value of column `i`.
    pub fn set_value(&mut self, i: usize, value: Option<&str>) {
        self.row = self.row.with(1 + i, value);
    }

    /// Replace the ETag.
    pub fn set_etag(&mut self, etag: &str) {
        self.row = self.row.with(0, Some(etag));
    }

    /// Bytes it holds on the heap.
    #[must_use]
    pub fn heap_size(&self) -> usize {
        self.row.heap_size() + self.tag_links.len() * 16
    }

    /// The packed ETag and values.
    #[must_use]
    pub fn row(&self) -> &Row {
        &self.row
    }
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

/// The first eight of `bytes`, big-endian and zero-padded: texts whose keys differ order as the
/// texts do, so a sort compares the texts only where keys are equal (a million texts sort
/// without a million times twenty comparisons of heap strings).
#[must_use]
pub fn prefix_key(bytes: impl IntoIterator<Item = u8>) -> u64 {
    let mut key = [0_u8; 8];
    for (k, b) in key.iter_mut().zip(bytes) {
        *k = b;
    }
    u64::from_be_bytes(key)
}

/// Positions of `members` ordered by subscriber hash (ties, which Mailchimp does not have, by
/// position). Sorts compact keys, not the members, so it stays fast for millions.
#[must_use]
pub fn member_order(members: &[Member]) -> Vec<u32> {
    let mut keys: Vec<(u64, u32)> = members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            (
                prefix_key(m.id().bytes()),
                u32::try_from(i).unwrap_or(u32::MAX),
            )
        })
        .collect();
    keys.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0).then_with(|| {
            members[a.1 as usize]
                .id()
                .cmp(members[b.1 as usize].id())
                .then(a.1.cmp(&b.1))
        })
    });
    keys.into_iter().map(|(_, i)| i).collect()
}

/// Stable digests of what was read, one per side: equal digests mean equal input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// `sha256:<hex>` over the Mailchimp side.
    pub mailchimp: String,
    /// `sha256:<hex>` over the CRM side.
    pub crm: String,
}

/// Feeds values into a hash unambiguously (every item is length-prefixed), through a buffer:
/// a million members are some twenty million items of a few bytes, and the hash takes them
/// in 64 KiB pieces rather than one call each.
struct Feed {
    hash: Sha256,
    buffer: Vec<u8>,
}

/// How many bytes [`Feed`] gathers before hashing them.
const FEED_BUFFER: usize = 64 * 1024;

impl Feed {
    fn new() -> Self {
        Self {
            hash: Sha256::new(),
            buffer: Vec::with_capacity(FEED_BUFFER),
        }
    }
    fn str(&mut self, s: &str) {
        self.bytes(&(s.len() as u64).to_le_bytes());
        self.bytes(s.as_bytes());
    }
    fn opt(&mut self, s: Option<&str>) {
        match s {
            None => self.bytes(&[0]),
            Some(s) => {
                self.bytes(&[1]);
                self.str(s);
            }
        }
    }
    fn u64(&mut self, n: u64) {
        self.bytes(&n.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        if self.buffer.len() + b.len() > FEED_BUFFER {
            self.hash.update(&self.buffer);
            self.buffer.clear();
            if b.len() > FEED_BUFFER {
                self.hash.update(b);
                return;
            }
        }
        self.buffer.extend_from_slice(b);
    }
    fn finish(mut self) -> String {
        self.hash.update(&self.buffer);
        format!("sha256:{}", hex::encode(self.hash.finalize()))
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
        let mut f = Feed::new();
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
        let order = member_order(&self.members);
        f.u64(order.len() as u64);
        for i in order {
            let m = &self.members[i as usize];
            f.str(m.status.as_str());
            m.row.canonical(|bytes| f.bytes(bytes));
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
        let mut f = Feed::new();
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
        let mut order: Vec<(Uuid, usize)> = self
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id, i))
            .collect();
        order.sort_unstable();
        f.u64(order.len() as u64);
        for (_, i) in order {
            let r = &self.records[i];
            f.bytes(r.id.as_bytes());
            r.row.canonical(|bytes| f.bytes(bytes));
            f.bytes(&[
                u8::from(r.do_not_bulk_email),
                u8::from(r.on_list),
                u8::from(r.inactive),
            ]);
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
        let member = |id: &str| {
            Member::new(
                id,
                &format!("c{id}"),
                &format!("{id}@example.com"),
                MemberStatus::Subscribed,
                "2026-01-01T00:00:00+00:00",
                [Some("x"), None],
                vec![1],
            )
        };
        MailchimpSide {
            audience: Audience {
                id: "a1".into(),
                name: "A".into(),
            },
            tags: vec![],
            field_paths: vec!["a".into(), "b".into()],
            members: vec![member("1"), member("2")],
            read_at: None,
        }
    }

    #[test]
    fn digest_ignores_read_order_but_not_content() {
        let a = side();
        let mut b = side();
        b.members.reverse();
        assert_eq!(a.digest(), b.digest());
        let m = &b.members[0];
        b.members[0] = Member::new(
            m.id(),
            m.contact_id(),
            m.email(),
            m.status,
            m.last_changed(),
            [None, Some("x")],
            vec![1],
        );
        assert_ne!(a.digest(), b.digest());
        assert!(a.digest().starts_with("sha256:"));
    }
}
