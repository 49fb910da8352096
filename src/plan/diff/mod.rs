//! The diff: one binding and what was read for it → the binding's plan. Pure and deterministic
//! (no I/O, no clock, no randomness; everything sorted), so the same inputs give byte-identical JSON.
//!
//! It implements DESIGN.md's "What one binding means":
//! - **Binding checks.** A list that is missing (and not created), of the wrong member type, of
//!   accounts, dynamic or inactive is a binding error: the binding gets no changes at all.
//! - **Audience record** created when missing, renamed when the audience was; the list's Audience
//!   lookup pointed at it.
//! - **Tags.** Every synced tag (`TagRules::selects`) has one Tag record (deterministic id on
//!   create), renamed with Mailchimp; Tag records whose tag is gone or no longer selected are removed
//!   only when the binding prunes tags. With `tags.sync: false` tags and links are left alone.
//! - **Matching.** A member matches the record storing its Mailchimp contact id; failing that, the
//!   one record (not claimed by another member's id) with its e-mail, compared trimmed and
//!   case-insensitively. Two candidates are a per-member conflict: that member is skipped, and the
//!   records it touches are never removed.
//! - **Selected members** (status in `statuses`): created when unmatched (deterministic id, mapped
//!   fields, the stored id, lead templates for lead lists); otherwise updated in mapped columns only
//!   (`overwrite`: Mailchimp's non-empty value wins; `fill_empty`: only empty columns are filled;
//!   an empty Mailchimp value never clears a CRM column) and linked by stored id when matched by
//!   e-mail; added to the list; linked to the Tag records of their synced tags and unlinked from the
//!   others of this audience.
//! - **Consent.** An unsubscribed or cleaned member's record gets do-not-bulk-e-mail and the
//!   subscriber status, when `on_unsubscribe: mark_do_not_email`. A flagged record is never
//!   unflagged: a subscribed member on a flagged record is a warning.
//! - **Leaving.** A managed list member (its record stores a Mailchimp id) whose member is not
//!   selected (or gone) is removed from the list when the binding prunes members, or when it
//!   unsubscribed or was cleaned and `on_unsubscribe: remove`. Records are never deleted.
//!   Unmanaged list members (no stored id) are listed as kept and never removed.
//! - **Guards.** More removals than `max_removals` of the list's size, or an audience with no
//!   selected member while the list holds managed members, refuse the binding (still fully planned).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hasher as _};
use std::sync::Arc;

use uuid::Uuid;

use super::ids;
use super::model::{
    ALLOW_REMOVALS_FLAG, Action, AudienceRef, BindingPlan, Change, FieldChange, Guard, GuardReason,
    ListRef, MemberRef, Precondition, Problem, ProblemCode, Reason, Shared, SideDigests, TagRef,
    UnmanagedMember, Value,
};
use super::snapshot::{
    CrmRecord, DO_NOT_BULK_EMAIL_COLUMN, EMAIL_COLUMN, Member, Snapshot, crm_columns,
    member_field_paths,
};
use crate::config::{Binding, FieldPolicy, ListSelector, UnsubscribePolicy};
use crate::dataverse::lists as list_cols;
use crate::dataverse::schema::{audience as audience_cols, tag as tag_cols};
use crate::domain::{ACCOUNT_LIST_CODE, MemberStatus, MemberType, Names};

/// Plan one binding.
#[must_use]
pub fn compute(binding: &Binding, names: &Names, snapshot: &Snapshot) -> BindingPlan {
    let digests = snapshot.digests();
    let read = snapshot.read_counts();
    let audience_id = snapshot.mailchimp.audience.id.as_str();
    let mut plan = BindingPlan {
        name: binding.name.clone(),
        audience: AudienceRef {
            id: audience_id.to_owned(),
            name: snapshot.mailchimp.audience.name.clone(),
        },
        list: list_ref(binding, snapshot),
        read,
        digests: SideDigests {
            mailchimp: digests.mailchimp,
            crm: digests.crm,
        },
        tags: Vec::new(),
        changes: Vec::new(),
        counts: BTreeMap::new(),
        unmanaged: Vec::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
        guard: None,
    };
    if let Some(problem) =
        check_shape(binding, names, snapshot).or_else(|| check_list(binding, snapshot))
    {
        plan.errors.push(problem);
        return plan;
    }
    let mut diff = Diff {
        binding,
        names,
        snapshot,
        audience_id,
        plan,
        current: RefCell::new(None),
        columns: RefCell::new(HashMap::new()),
    };
    diff.audience_and_list();
    let tags = diff.tags();
    diff.members(&tags);
    diff.finish()
}

fn list_ref(binding: &Binding, snapshot: &Snapshot) -> ListRef {
    match &snapshot.crm.list {
        Some(list) => ListRef {
            id: Some(list.id),
            name: list.name.clone(),
            member_type: binding.list.member_type,
            exists: true,
        },
        None => {
            let (id, name) = match &binding.list.selector {
                ListSelector::Id(id) => (Some(*id), id.to_string()),
                ListSelector::Name(name) => (
                    binding
                        .list
                        .create
                        .then(|| ids::list(&snapshot.mailchimp.audience.id, name)),
                    name.clone(),
                ),
            };
            ListRef {
                id,
                name,
                member_type: binding.list.member_type,
                exists: false,
            }
        }
    }
}

fn binding_error(code: ProblemCode, message: String) -> Problem {
    Problem {
        code,
        message,
        member: None,
        records: Vec::new(),
    }
}

fn check_shape(binding: &Binding, names: &Names, snapshot: &Snapshot) -> Option<Problem> {
    let paths = member_field_paths(binding);
    let columns = crm_columns(binding, names);
    let width_ok = snapshot
        .mailchimp
        .members
        .iter()
        .all(|m| m.values_len() == paths.len())
        && snapshot
            .crm
            .records
            .iter()
            .all(|r| r.values_len() == columns.len());
    if snapshot.mailchimp.field_paths != paths || snapshot.crm.columns != columns || !width_ok {
        return Some(binding_error(
            ProblemCode::SnapshotMismatch,
            format!(
                "the snapshot of binding `{}` was not read with its field mappings (internal error)",
                binding.name
            ),
        ));
    }
    None
}

fn check_list(binding: &Binding, snapshot: &Snapshot) -> Option<Problem> {
    let expected = binding.list.member_type.list_code();
    let Some(list) = &snapshot.crm.list else {
        let creatable =
            binding.list.create && matches!(binding.list.selector, ListSelector::Name(_));
        if creatable {
            return None;
        }
        let what = match &binding.list.selector {
            ListSelector::Id(id) => format!("with id `{id}`"),
            ListSelector::Name(name) => format!("named `{name}`"),
        };
        return Some(binding_error(
            ProblemCode::ListNotFound,
            format!(
                "no marketing list {what} exists; create it in the CRM or set `create: true` (with `name`) on binding `{}`",
                binding.name
            ),
        ));
    };
    let (code, message) = if i64::from(list.member_type_code) == ACCOUNT_LIST_CODE {
        (
            ProblemCode::AccountList,
            format!(
                "marketing list `{}` holds accounts; only contact and lead lists can be synced",
                list.name
            ),
        )
    } else if list.dynamic {
        (
            ProblemCode::DynamicList,
            format!(
                "marketing list `{}` is dynamic (computed from a query); only static lists can be synced",
                list.name
            ),
        )
    } else if i64::from(list.member_type_code) != expected {
        (
            ProblemCode::WrongMemberType,
            format!(
                "marketing list `{}` has member type code `{}` but binding `{}` syncs {}s (code `{expected}`)",
                list.name,
                list.member_type_code,
                binding.name,
                member_type_word(binding.list.member_type)
            ),
        )
    } else if list.statecode != 0 {
        (
            ProblemCode::InactiveList,
            format!(
                "marketing list `{}` is inactive (read-only); activate it in the CRM",
                list.name
            ),
        )
    } else {
        return None;
    };
    Some(binding_error(code, message))
}

fn member_type_word(t: MemberType) -> &'static str {
    match t {
        MemberType::Contact => "contact",
        MemberType::Lead => "lead",
    }
}

/// Trimmed and lower-cased, borrowing when it already is.
#[must_use]
pub fn normalize_email(email: &str) -> Cow<'_, str> {
    let trimmed = email.trim();
    if trimmed.chars().any(char::is_uppercase) {
        Cow::Owned(trimmed.to_lowercase())
    } else {
        Cow::Borrowed(trimmed)
    }
}

/// A plausible address: one `@`, a non-empty local part, a dotted domain, no spaces.
#[must_use]
pub fn is_valid_email(email: &str) -> bool {
    let email = email.trim();
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with(['.', '-'])
        && !domain.ends_with(['.', '-'])
        && !domain.contains("..")
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// `matches` entry of a member without a record.
const NO_MATCH: u32 = u32::MAX;
/// `matches` entry of a member in conflict (details in `conflicts`).
const CONFLICT: u32 = u32::MAX - 1;

/// Record positions by the hash of a key: the first position per hash and a chain through the
/// others (about 12 bytes per record, against ~50 for a map of string keys). Candidates must be
/// compared with the real key: different keys may share a hash.
struct Index {
    heads: HashMap<u64, u32>,
    next: Vec<u32>,
}

impl Index {
    fn build(len: usize, key: impl Fn(usize) -> Option<u64>) -> Self {
        let mut heads = HashMap::with_capacity(len);
        let mut next = vec![NO_MATCH; len];
        for (i, slot) in next.iter_mut().enumerate() {
            if let Some(hash) = key(i) {
                let i = u32::try_from(i).unwrap_or(NO_MATCH);
                if let Some(previous) = heads.insert(hash, i) {
                    *slot = previous;
                }
            }
        }
        Self { heads, next }
    }

    fn candidates(&self, hash: u64) -> impl Iterator<Item = u32> + '_ {
        let mut at = self.heads.get(&hash).copied().unwrap_or(NO_MATCH);
        std::iter::from_fn(move || {
            if at == NO_MATCH {
                return None;
            }
            let this = at;
            at = self.next.get(at as usize).copied().unwrap_or(NO_MATCH);
            Some(this)
        })
    }
}

fn hash_id(id: &str) -> u64 {
    let mut h = DefaultHasher::new();
    h.write(id.as_bytes());
    h.finish()
}

/// The hash of [`normalize_email`] of `email`, without allocating.
fn hash_email(email: &str) -> u64 {
    let mut h = DefaultHasher::new();
    for c in email.trim().chars().flat_map(char::to_lowercase) {
        h.write_u32(u32::from(c));
    }
    h.finish()
}

/// Equal once trimmed and lower-cased.
fn same_email(a: &str, b: &str) -> bool {
    a.trim()
        .chars()
        .flat_map(char::to_lowercase)
        .eq(b.trim().chars().flat_map(char::to_lowercase))
}

/// What the tag step decided, for the member step.
struct TagPlan {
    /// Synced: Mailchimp tag id → Tag record id (existing or to be created).
    synced: HashMap<u64, Uuid>,
    /// Tag records whose links the tool manages (this audience's, not being removed).
    managed: BTreeSet<Uuid>,
}

/// A member and the values its changes share.
type Current<'a> = (&'a Member, Shared<MemberRef>, Shared<str>);

struct Diff<'a> {
    binding: &'a Binding,
    names: &'a Names,
    snapshot: &'a Snapshot,
    audience_id: &'a str,
    plan: BindingPlan,
    /// The member whose changes are being made, with the values its changes share.
    current: RefCell<Option<Current<'a>>>,
    /// Column names, shared by the changes.
    columns: RefCell<HashMap<String, Shared<str>>>,
}

fn text(value: &str) -> Option<Value> {
    Some(Value::Text(value.to_owned()))
}

fn opt_text(value: Option<&str>) -> Option<Value> {
    value.map(|v| Value::Text(v.to_owned()))
}

fn member_ref(m: &Member) -> MemberRef {
    MemberRef {
        id: m.id().to_owned(),
        contact_id: m.contact_id().to_owned(),
        email: m.email().to_owned(),
        status: m.status,
    }
}

fn cell_of(r: &CrmRecord, col: usize) -> Option<&str> {
    r.value(col)
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
    fn shared(&self, m: &'a Member) -> (Shared<MemberRef>, Shared<str>) {
        let mut current = self.current.borrow_mut();
        if let Some((cached, member, last_changed)) = current.as_ref() {
            if std::ptr::eq(*cached, m) {
                return (member.clone(), last_changed.clone());
            }
        }
        let member = Shared(Arc::new(member_ref(m)));
        let last_changed = Shared::from(m.last_changed());
        *current = Some((m, member.clone(), last_changed.clone()));
        (member, last_changed)
    }

    /// A column name, shared by every change that writes it.
    fn col(&self, name: &str) -> Shared<str> {
        let mut columns = self.columns.borrow_mut();
        if let Some(shared) = columns.get(name) {
            return shared.clone();
        }
        let shared = Shared::from(name);
        columns.insert(name.to_owned(), shared.clone());
        shared
    }

    fn member_of(&self, m: &'a Member) -> Shared<MemberRef> {
        self.shared(m).0
    }

    fn last_changed_of(&self, m: &'a Member) -> Shared<str> {
        self.shared(m).1
    }

    fn push(&mut self, change: Change) {
        self.plan.changes.push(change);
    }

    /// Audience record and list.
    fn audience_and_list(&mut self) {
        let mc = &self.snapshot.mailchimp.audience;
        let crm = &self.snapshot.crm;
        let audience_record = match &crm.audience {
            None => {
                let id = ids::audience_record(&mc.id);
                self.push(Change {
                    action: Action::CreateAudience,
                    reason: Reason::AudienceMissingInCrm,
                    record: id,
                    member: None,
                    name: Some(mc.name.clone()),
                    fields: vec![FieldChange {
                        column: Shared::from(audience_cols::NAME),
                        before: None,
                        after: text(&mc.name),
                    }],
                    tags: Vec::new(),
                    precondition: Precondition {
                        absent: true,
                        ..Precondition::default()
                    },
                });
                id
            }
            Some(a) => {
                if a.name != mc.name {
                    self.push(Change {
                        action: Action::UpdateAudience,
                        reason: Reason::AudienceRenamedInMailchimp,
                        record: a.id,
                        member: None,
                        name: Some(mc.name.clone()),
                        fields: vec![FieldChange {
                            column: Shared::from(audience_cols::NAME),
                            before: text(&a.name),
                            after: text(&mc.name),
                        }],
                        tags: Vec::new(),
                        precondition: Precondition {
                            etag: Some(a.etag.to_string()),
                            ..Precondition::default()
                        },
                    });
                }
                a.id
            }
        };
        let lookup = self.names.list_audience_lookup.clone();
        match &crm.list {
            None => {
                let id = self.plan.list.id.unwrap_or_default();
                let name = self.plan.list.name.clone();
                let code = self.binding.list.member_type.list_code();
                self.push(Change {
                    action: Action::CreateList,
                    reason: Reason::ListMissingInCrm,
                    record: id,
                    member: None,
                    name: Some(name.clone()),
                    fields: vec![
                        FieldChange {
                            column: Shared::from(list_cols::MEMBER_TYPE_COLUMN),
                            before: None,
                            after: Some(Value::Number(code)),
                        },
                        FieldChange {
                            column: Shared::from(list_cols::NAME_COLUMN),
                            before: None,
                            after: text(&name),
                        },
                        FieldChange {
                            column: Shared::from(lookup.as_str()),
                            before: None,
                            after: text(&audience_record.to_string()),
                        },
                    ],
                    tags: Vec::new(),
                    precondition: Precondition {
                        absent: true,
                        ..Precondition::default()
                    },
                });
            }
            Some(list) if list.audience_record != Some(audience_record) => {
                self.push(Change {
                    action: Action::UpdateList,
                    reason: Reason::ListNotLinkedToAudience,
                    record: list.id,
                    member: None,
                    name: Some(list.name.clone()),
                    fields: vec![FieldChange {
                        column: Shared::from(lookup.as_str()),
                        before: list.audience_record.map(|id| Value::Text(id.to_string())),
                        after: text(&audience_record.to_string()),
                    }],
                    tags: Vec::new(),
                    precondition: Precondition {
                        etag: Some(list.etag.to_string()),
                        ..Precondition::default()
                    },
                });
            }
            Some(_) => {}
        }
    }

    fn tags(&mut self) -> TagPlan {
        let mut out = TagPlan {
            synced: HashMap::new(),
            managed: BTreeSet::new(),
        };
        let rules = &self.binding.tags;
        if !rules.sync {
            return out;
        }
        let mc_tags: BTreeMap<u64, &str> = self
            .snapshot
            .mailchimp
            .tags
            .iter()
            .map(|t| (t.id, t.name.as_str()))
            .collect();
        let mut records: Vec<&super::snapshot::TagRecord> = self.snapshot.crm.tags.iter().collect();
        records.sort_by_key(|t| t.id);
        let mut canonical: BTreeMap<u64, &super::snapshot::TagRecord> = BTreeMap::new();
        for record in records {
            if let Some(first) = canonical.get(&record.mailchimp_id) {
                self.plan.warnings.push(Problem {
                    code: ProblemCode::DuplicateTagRecord,
                    message: format!(
                        "Tag records `{}` and `{}` both stand for Mailchimp tag `{}`; only the first is used",
                        first.id, record.id, record.mailchimp_id
                    ),
                    member: None,
                    records: vec![first.id, record.id],
                });
            } else {
                canonical.insert(record.mailchimp_id, record);
            }
        }
        for (&tag_id, &name) in &mc_tags {
            if !rules.selects(name) {
                continue;
            }
            let record_id = match canonical.get(&tag_id) {
                None => {
                    let id = ids::tag_record(self.audience_id, tag_id);
                    self.push(Change {
                        action: Action::CreateTag,
                        reason: Reason::TagMissingInCrm,
                        record: id,
                        member: None,
                        name: Some(name.to_owned()),
                        fields: vec![FieldChange {
                            column: Shared::from(tag_cols::NAME),
                            before: None,
                            after: text(name),
                        }],
                        tags: Vec::new(),
                        precondition: Precondition {
                            absent: true,
                            ..Precondition::default()
                        },
                    });
                    id
                }
                Some(record) => {
                    if record.name != name {
                        self.push(Change {
                            action: Action::RenameTag,
                            reason: Reason::TagRenamedInMailchimp,
                            record: record.id,
                            member: None,
                            name: Some(name.to_owned()),
                            fields: vec![FieldChange {
                                column: Shared::from(tag_cols::NAME),
                                before: text(&record.name),
                                after: text(name),
                            }],
                            tags: Vec::new(),
                            precondition: Precondition {
                                etag: Some(record.etag.to_string()),
                                ..Precondition::default()
                            },
                        });
                    }
                    record.id
                }
            };
            out.synced.insert(tag_id, record_id);
            out.managed.insert(record_id);
            self.plan.tags.push(TagRef {
                record: record_id,
                mailchimp_id: tag_id,
                name: name.to_owned(),
            });
        }
        for (&tag_id, record) in &canonical {
            if out.synced.contains_key(&tag_id) {
                continue;
            }
            self.plan.tags.push(TagRef {
                record: record.id,
                mailchimp_id: tag_id,
                name: mc_tags
                    .get(&tag_id)
                    .map_or_else(|| record.name.clone(), |n| (*n).to_owned()),
            });
            if rules.prune {
                let reason = if mc_tags.contains_key(&tag_id) {
                    Reason::TagExcludedByConfig
                } else {
                    Reason::TagDeletedInMailchimp
                };
                self.push(Change {
                    action: Action::RemoveTag,
                    reason,
                    record: record.id,
                    member: None,
                    name: Some(record.name.clone()),
                    fields: Vec::new(),
                    tags: Vec::new(),
                    precondition: Precondition {
                        etag: Some(record.etag.to_string()),
                        ..Precondition::default()
                    },
                });
            } else {
                out.managed.insert(record.id);
            }
        }
        self.plan.tags.sort_by_key(|t| t.record);
        self.plan.tags.dedup_by_key(|t| t.record);
        out
    }

    #[allow(clippy::too_many_lines)] // one pass over the members, kept in one place on purpose
    fn members(&mut self, tags: &TagPlan) {
        let snap = self.snapshot;
        let crm = &snap.crm;
        let records = &crm.records;
        let member_type = self.binding.list.member_type;
        let id_column = self.names.mailchimp_id_column(member_type).to_owned();
        let (Some(id_col), Some(email_col), Some(status_col)) = (
            crm.column_index(&id_column),
            crm.column_index(EMAIL_COLUMN),
            crm.column_index(&self.names.subscriber_status_column),
        ) else {
            return; // check_shape guarantees these columns
        };

        let by_id = Index::build(records.len(), |i| records[i].value(id_col).map(hash_id));
        let by_email = Index::build(records.len(), |i| {
            records[i].value(email_col).map(hash_email)
        });

        let members = &snap.mailchimp.members;
        // Stored-id matching and the member pass do not depend on the order (they go in read
        // order, for locality); e-mail matching does when records compete, so it goes by
        // subscriber hash.
        let order = super::snapshot::member_order(members);
        let member_count = u32::try_from(members.len()).unwrap_or(u32::MAX);

        let mut claimed = vec![false; records.len()];
        let mut matches: Vec<u32> = vec![NO_MATCH; members.len()];
        let mut conflicts: HashMap<u32, (ProblemCode, Vec<u32>)> = HashMap::new();
        let mut found: Vec<u32> = Vec::new();
        for mi in 0..member_count {
            let contact_id = members[mi as usize].contact_id();
            found.clear();
            found.extend(
                by_id
                    .candidates(hash_id(contact_id))
                    .filter(|&r| records[r as usize].value(id_col) == Some(contact_id)),
            );
            for &r in &found {
                claimed[r as usize] = true;
            }
            match found.as_slice() {
                [] => {}
                [only] => matches[mi as usize] = *only,
                _ => {
                    matches[mi as usize] = CONFLICT;
                    conflicts.insert(mi, (ProblemCode::DuplicateMailchimpId, found.clone()));
                }
            }
        }
        for &mi in &order {
            if matches[mi as usize] != NO_MATCH {
                continue;
            }
            let email = members[mi as usize].email();
            found.clear();
            found.extend(by_email.candidates(hash_email(email)).filter(|&r| {
                !claimed[r as usize]
                    && records[r as usize]
                        .value(email_col)
                        .is_some_and(|e| same_email(e, email))
            }));
            for &r in &found {
                claimed[r as usize] = true;
            }
            match found.as_slice() {
                [] => {}
                [only] => matches[mi as usize] = *only,
                _ => {
                    matches[mi as usize] = CONFLICT;
                    conflicts.insert(mi, (ProblemCode::DuplicateEmail, found.clone()));
                }
            }
        }

        let path_of: Vec<Option<usize>> = self
            .binding
            .fields
            .iter()
            .map(|f| snap.mailchimp.path_index(&f.source))
            .collect();
        let col_of: Vec<Option<usize>> = self
            .binding
            .fields
            .iter()
            .map(|f| crm.column_index(&f.column))
            .collect();
        let policy = self.binding.on_unsubscribe;
        let mut selected_count = 0_u64;

        for mi in 0..member_count {
            let m = &members[mi as usize];
            let selected = self.binding.statuses.contains(&m.status);
            selected_count += u64::from(selected);
            let index = match matches[mi as usize] {
                NO_MATCH => None,
                CONFLICT => {
                    let Some((code, rs)) = conflicts.remove(&mi) else {
                        continue;
                    };
                    let what = if code == ProblemCode::DuplicateEmail {
                        format!("{} CRM records have the e-mail address of", rs.len())
                    } else {
                        format!("{} CRM records store the Mailchimp id of", rs.len())
                    };
                    let mut ids: Vec<Uuid> = rs.iter().map(|&r| records[r as usize].id).collect();
                    ids.sort_unstable();
                    self.plan.errors.push(Problem {
                        code,
                        message: format!(
                            "{what} member `{}`; merge or fix them in the CRM (this member is skipped)",
                            m.email()
                        ),
                        member: Some(member_ref(m)),
                        records: ids,
                    });
                    continue;
                }
                r => Some(r as usize),
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
                continue;
            }
            let consent =
                is_consent_status(m.status) && policy == UnsubscribePolicy::MarkDoNotEmail;
            let record_id = match index {
                None if !selected => continue,
                None => self.create_record(m, tags, &path_of, consent),
                Some(r) => {
                    let rec = &records[r];
                    let consent_due = consent
                        && (!rec.do_not_bulk_email
                            || rec.value(status_col) != Some(m.status.as_str()));
                    if selected {
                        self.update_record(
                            m,
                            rec,
                            &path_of,
                            &col_of,
                            consent_due.then_some(status_col),
                            id_col,
                        );
                        if !rec.on_list {
                            self.push(Change {
                                action: Action::AddListMember,
                                reason: Reason::MemberNotOnList,
                                record: rec.id,
                                member: Some(self.member_of(m)),
                                name: None,
                                fields: Vec::new(),
                                tags: Vec::new(),
                                precondition: Precondition {
                                    member_last_changed: Some(self.last_changed_of(m)),
                                    ..Precondition::default()
                                },
                            });
                        }
                        self.tag_links(m, rec.id, &rec.tag_links, tags);
                        if rec.do_not_bulk_email && m.status == MemberStatus::Subscribed {
                            self.plan.warnings.push(Problem {
                                code: ProblemCode::DoNotEmailKept,
                                message: format!(
                                    "record `{}` is flagged do-not-bulk-e-mail in the CRM while `{}` is subscribed in Mailchimp; the flag is kept (the tool never re-subscribes)",
                                    rec.id, m.email()
                                ),
                                member: Some(member_ref(m)),
                                records: vec![rec.id],
                            });
                        }
                    } else {
                        let managed = cell_of(rec, id_col).is_some();
                        if rec.on_list && !managed {
                            self.plan.unmanaged.push(UnmanagedMember {
                                record: rec.id,
                                email: rec.value(email_col).map(str::to_owned),
                            });
                        }
                        let remove = rec.on_list
                            && managed
                            && (self.binding.prune_members
                                || (is_consent_status(m.status)
                                    && policy == UnsubscribePolicy::Remove));
                        if remove {
                            self.push(Change {
                                action: Action::RemoveListMember,
                                reason: leaving_reason(m.status),
                                record: rec.id,
                                member: Some(self.member_of(m)),
                                name: None,
                                fields: Vec::new(),
                                tags: Vec::new(),
                                precondition: Precondition {
                                    member_last_changed: Some(self.last_changed_of(m)),
                                    ..Precondition::default()
                                },
                            });
                        }
                    }
                    if !consent_due {
                        continue;
                    }
                    rec.id
                }
            };
            if consent {
                let (before_flag, before_status, etag) = match index {
                    Some(r) => {
                        let rec = &records[r];
                        (
                            rec.do_not_bulk_email,
                            rec.value(status_col),
                            Some(rec.etag().to_owned()),
                        )
                    }
                    None => (false, None, None),
                };
                self.push(Change {
                    action: Action::SetDoNotEmail,
                    reason: leaving_reason(m.status),
                    record: record_id,
                    member: Some(self.member_of(m)),
                    name: None,
                    fields: [
                        (!before_flag).then(|| FieldChange {
                            column: Shared::from(DO_NOT_BULK_EMAIL_COLUMN),
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
                    .collect(),
                    tags: Vec::new(),
                    precondition: Precondition {
                        etag,
                        member_last_changed: Some(self.last_changed_of(m)),
                        absent: false,
                    },
                });
            }
        }

        for (i, rec) in records.iter().enumerate() {
            if claimed[i] || !rec.on_list {
                continue;
            }
            if cell_of(rec, id_col).is_none() {
                self.plan.unmanaged.push(UnmanagedMember {
                    record: rec.id,
                    email: rec.value(email_col).map(str::to_owned),
                });
            } else if self.binding.prune_members {
                self.push(Change {
                    action: Action::RemoveListMember,
                    reason: Reason::LeftAudience,
                    record: rec.id,
                    member: None,
                    name: rec.value(email_col).map(str::to_owned),
                    fields: Vec::new(),
                    tags: Vec::new(),
                    precondition: Precondition {
                        etag: Some(rec.etag().to_owned()),
                        ..Precondition::default()
                    },
                });
            }
        }
        self.guard(selected_count, move |r: &CrmRecord| {
            cell_of(r, id_col).is_some()
        });
    }

    fn create_record(
        &mut self,
        m: &'a Member,
        tags: &TagPlan,
        path_of: &[Option<usize>],
        consent: bool,
    ) -> Uuid {
        let id = ids::member_record(self.audience_id, m.contact_id());
        let value_of = |path: Option<usize>| path.and_then(|p| m.value(p));
        let mut columns: BTreeMap<String, String> = BTreeMap::new();
        for (mapping, path) in self.binding.fields.iter().zip(path_of) {
            if let Some(v) = value_of(*path) {
                columns.insert(mapping.column.clone(), v.to_owned());
            }
        }
        columns
            .entry(EMAIL_COLUMN.to_owned())
            .or_insert_with(|| m.email().to_owned());
        columns.insert(
            self.names
                .mailchimp_id_column(self.binding.list.member_type)
                .to_owned(),
            m.contact_id().to_owned(),
        );
        if self.binding.list.member_type == MemberType::Lead {
            let paths = &self.snapshot.mailchimp;
            for (column, template) in &self.binding.lead_values {
                if columns.contains_key(column) {
                    continue;
                }
                let rendered = template.render(|path| {
                    paths
                        .path_index(path)
                        .and_then(|p| m.value(p))
                        .map(str::to_owned)
                });
                if !rendered.is_empty() {
                    columns.insert(column.clone(), rendered);
                }
            }
        }
        if consent {
            // the consent change writes the status; do not write it twice
            columns.remove(&self.names.subscriber_status_column);
        }
        self.push(Change {
            action: Action::CreateRecord,
            reason: Reason::MemberMissingInCrm,
            record: id,
            member: Some(self.member_of(m)),
            name: None,
            fields: columns
                .into_iter()
                .map(|(column, value)| FieldChange {
                    column: self.col(&column),
                    before: None,
                    after: Some(Value::Text(value)),
                })
                .collect(),
            tags: Vec::new(),
            precondition: Precondition {
                member_last_changed: Some(self.last_changed_of(m)),
                absent: true,
                ..Precondition::default()
            },
        });
        self.push(Change {
            action: Action::AddListMember,
            reason: Reason::MemberMissingInCrm,
            record: id,
            member: Some(self.member_of(m)),
            name: None,
            fields: Vec::new(),
            tags: Vec::new(),
            precondition: Precondition {
                member_last_changed: Some(self.last_changed_of(m)),
                ..Precondition::default()
            },
        });
        self.tag_links(m, id, &[], tags);
        id
    }

    #[allow(clippy::too_many_arguments)] // positions computed once per binding, passed down
    fn update_record(
        &mut self,
        m: &'a Member,
        rec: &CrmRecord,
        path_of: &[Option<usize>],
        col_of: &[Option<usize>],
        skip_status: Option<usize>,
        id_col: usize,
    ) {
        let mut fields: Vec<FieldChange> = Vec::new();
        let mut reason = Reason::FieldEmptyInCrm;
        let mut seen: BTreeSet<usize> = BTreeSet::new();
        for ((mapping, path), col) in self.binding.fields.iter().zip(path_of).zip(col_of) {
            let Some(col) = *col else { continue };
            if skip_status == Some(col) || col == id_col || !seen.insert(col) {
                continue;
            }
            let new = path.and_then(|p| m.value(p));
            let old = rec.value(col);
            let Some(new) = new else { continue };
            let write = match mapping.policy {
                FieldPolicy::Overwrite => old != Some(new),
                FieldPolicy::FillEmpty => old.is_none(),
            };
            if write {
                if old.is_some() {
                    reason = Reason::FieldChangedInMailchimp;
                }
                fields.push(FieldChange {
                    column: self.col(&mapping.column),
                    before: opt_text(old),
                    after: text(new),
                });
            }
        }
        let stored = rec.value(id_col);
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
        fields.sort_by(|a, b| a.column.cmp(&b.column));
        self.push(Change {
            action: Action::UpdateRecord,
            reason,
            record: rec.id,
            member: Some(self.member_of(m)),
            name: None,
            fields,
            tags: Vec::new(),
            precondition: Precondition {
                etag: Some(rec.etag().to_owned()),
                member_last_changed: Some(self.last_changed_of(m)),
                absent: false,
            },
        });
    }

    fn tag_links(&mut self, m: &'a Member, record: Uuid, current: &[Uuid], tags: &TagPlan) {
        if !self.binding.tags.sync {
            return;
        }
        let mut desired: Vec<Uuid> = m
            .tags
            .iter()
            .filter_map(|t| tags.synced.get(t).copied())
            .collect();
        desired.sort_unstable();
        desired.dedup();
        let link: Vec<Uuid> = desired
            .iter()
            .copied()
            .filter(|t| current.binary_search(t).is_err())
            .collect();
        let unlink: Vec<Uuid> = current
            .iter()
            .copied()
            .filter(|t| tags.managed.contains(t) && desired.binary_search(t).is_err())
            .collect();
        for (action, reason, list) in [
            (Action::LinkTags, Reason::TagsAddedInMailchimp, link),
            (Action::UnlinkTags, Reason::TagsRemovedInMailchimp, unlink),
        ] {
            if list.is_empty() {
                continue;
            }
            self.push(Change {
                action,
                reason,
                record,
                member: Some(self.member_of(m)),
                name: None,
                fields: Vec::new(),
                tags: list,
                precondition: Precondition {
                    member_last_changed: Some(self.last_changed_of(m)),
                    ..Precondition::default()
                },
            });
        }
    }

    fn guard(&mut self, selected: u64, managed: impl Fn(&CrmRecord) -> bool) {
        let records = &self.snapshot.crm.records;
        let list_size = records.iter().filter(|r| r.on_list).count() as u64;
        let managed_on_list = records.iter().filter(|r| r.on_list && managed(r)).count() as u64;
        let removals = self
            .plan
            .changes
            .iter()
            .filter(|c| c.action == Action::RemoveListMember)
            .count() as u64;
        let allowed = self.binding.max_removals.allowed(list_size);
        let guard = |reason, message| Guard {
            reason,
            message,
            removals,
            allowed,
            list_size,
            override_flag: ALLOW_REMOVALS_FLAG.to_owned(),
        };
        self.plan.guard = if selected == 0 && managed_on_list > 0 {
            Some(guard(
                GuardReason::EmptyAudience,
                format!(
                    "audience `{}` reads as empty while the list holds {managed_on_list} managed members; this is more often an outage or a wrong id than a real wipe. Check the audience, then apply with `{ALLOW_REMOVALS_FLAG}` to override",
                    self.plan.audience.id
                ),
            ))
        } else if removals > allowed {
            Some(guard(
                GuardReason::TooManyRemovals,
                format!(
                    "{removals} removals exceed max_removals `{}` (at most {allowed} of the list's {list_size} members); check the plan, then apply with `{ALLOW_REMOVALS_FLAG}` to override",
                    self.binding.max_removals
                ),
            ))
        } else {
            None
        };
    }

    fn finish(mut self) -> BindingPlan {
        let plan = &mut self.plan;
        plan.changes
            .sort_by_cached_key(|c| (c.action, c.sort_key()));
        plan.counts.clear();
        for c in &plan.changes {
            *plan.counts.entry(c.action).or_default() += 1;
        }
        let problem_key = |p: &Problem| {
            (
                p.code,
                p.member.as_ref().map(|m| m.email.to_lowercase()),
                p.records.clone(),
            )
        };
        plan.errors.sort_by_cached_key(problem_key);
        plan.warnings.sort_by_cached_key(problem_key);
        plan.unmanaged
            .sort_by_cached_key(|u| (u.email.as_ref().map(|e| e.to_lowercase()), u.record));
        self.plan
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree as _;
    use rand::SeedableRng as _;
    use rand::rngs::StdRng;

    use super::*;
    use crate::plan::fixture::{self, Builder, uuid};
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
    fn conflicts_skip_only_their_member_and_never_remove_its_records() {
        let plan = fixture::scenario_plan();
        let news = &plan.bindings[0];
        let touched = |email: &str| {
            news.changes
                .iter()
                .any(|c| c.member.as_ref().is_some_and(|m| m.email == email))
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
    fn deterministic_ids_for_created_records() {
        let plan = fixture::scenario_plan();
        let create = plan.bindings[0]
            .changes
            .iter()
            .find(|c| c.action == Action::CreateRecord)
            .expect("a create");
        assert_eq!(create.record, ids::member_record("a1b2c3d4e5", "c-alice"));
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
        let fields: Vec<&str> = plan.changes[0].fields.iter().map(|f| &*f.column).collect();
        assert_eq!(fields, vec!["lastname"]);
        assert_eq!(plan.changes[0].reason, Reason::FieldEmptyInCrm);
    }

    #[test]
    fn emails_match_trimmed_and_case_insensitively() {
        assert_eq!(normalize_email("  Jane@Example.COM "), "jane@example.com");
        assert!(matches!(normalize_email("a@b.c"), Cow::Borrowed(_)));
        assert!(is_valid_email("jane.doe+news@example.co.uk"));
        for bad in [
            "",
            "jane",
            "@example.com",
            "jane@",
            "jane@example",
            "ja ne@example.com",
            "a@b@c.com",
            "a@.com",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
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
    const STATUSES: [MemberStatus; 6] = [
        MemberStatus::Subscribed,
        MemberStatus::Unsubscribed,
        MemberStatus::Cleaned,
        MemberStatus::Pending,
        MemberStatus::Transactional,
        MemberStatus::Archived,
    ];
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
        (binding, names, b.build())
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
                    "bindings:\n  - name: p\n    audience: {{id: aud1}}\n    marketing_list: {{name: L, member_type: {kind}, create: {create}}}\n    prune_members: {prune_members}\n    members: {{statuses: {statuses}, on_unsubscribe: {unsub}}}\n    tags: {{sync: {sync}, prune: {prune_tags}, exclude: [\"internal-*\"]}}\n    fields: {{policy: {policy}, map: {{merge_fields.NOTES: description, merge_fields.COMPANY: {{column: company, policy: fill_empty}}}}}}\n    lead_values: {{subject: \"Sign-up {{{{ merge_fields.FNAME }}}}\"}}\n"
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
}
