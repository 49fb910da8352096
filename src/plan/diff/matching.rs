//! Matching members to CRM records. A member matches the record storing its Mailchimp contact
//! id; failing that, the one record (not claimed by another member's id) with its e-mail,
//! compared trimmed and case-insensitively; failing that, the record the tool created for its
//! address (its id is the person id of the address, see below). Two candidates are a per-member conflict: the member
//! is skipped, and the records it touches count as claimed (so never removed as leavers).
//!
//! Inactive records (`statecode` ≠ 0) are never a match: among the candidates of a member the
//! active ones decide; a member whose only candidates are inactive is a conflict of kind
//! [`ProblemCode::InactiveRecord`] (skipped, so the record is neither reactivated, listed nor
//! duplicated by a create).
//!
//! Stored-id matching goes in read order (it does not depend on the order); e-mail matching goes
//! by subscriber hash, because it does when records compete.
//!
//! # One person in several audiences (DESIGN's open question), and why no link table
//! Mailchimp keeps one member, with its own contact id, per audience; the CRM keeps one record
//! per person. The design chosen keeps the per-audience identity without a second table:
//! - the record the tool creates for a person gets the id `ids::person_record(table, normalised
//!   e-mail)`, the same from every audience, so two bindings planned and applied in one run (or
//!   two replicas) that both create the person make one record: the second create meets the
//!   first's id and counts as done;
//! - the record stores the Mailchimp id of **one** audience, its owner (the first to create or
//!   claim it). That audience matches it by id, as above, and alone writes its mapped columns
//!   and its stored id; every other audience matches it by e-mail (case-insensitively, which
//!   is how Mailchimp itself compares addresses within an audience), lists it and tags it, and
//!   never writes its columns (`members.rs`, `update_record`). So no two bindings write the
//!   same column, and every plan settles (tested with the real binary: `crm_semantics` in
//!   `tests/it`, two audiences sharing people, one in other letter case, four applies);
//! - the identity of the other audiences is their e-mail address: what Mailchimp uses as a
//!   member's key within an audience (the subscriber hash is the MD5 of the lower-cased
//!   address), so matching a non-owning audience by address is matching it by its own key.
//!
//! What a per-audience membership table (audience, record, Mailchimp id, e-mail) would add is
//! following a non-owning audience's member across a change of e-mail address in that audience:
//! here such a member no longer matches the record, a new record is created for the new address
//! and the old one leaves that audience's list (where the binding prunes). The owner's change of
//! address is followed (by id), and the other audiences' members, still at the old address,
//! then match nothing by e-mail, while the person id of their old address is the existing
//! record's id. So a member that matches nothing by id or e-mail is matched, last, to
//! the record whose id is the person id of its own address (`ids::person_record`): the record
//! the tool created for that address, whatever its e-mail is now. The other audiences keep
//! listing the person (never writing its columns: the record stores the owner's id), and
//! their plans settle. What a membership table would still add is following a non-owning
//! member across its own change of address (it then counts as a new person); its cost is one
//! more table to bootstrap and one more write per person and audience.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasher as _, Hasher as _};

use foldhash::fast::FixedState;

use uuid::Uuid;

use crate::plan::ids;
use crate::plan::model::ProblemCode;
use crate::plan::snapshot::{CrmRecord, Member, member_order};

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

/// `per_member` entry of a member without a record.
const NO_MATCH: u32 = u32::MAX;
/// `per_member` entry of a member in conflict (details in `conflicts`).
const CONFLICT: u32 = u32::MAX - 1;

/// What matching found for one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found<'m> {
    /// No record.
    Nothing,
    /// The record at this position.
    Record(usize),
    /// Several records (positions): a conflict of this kind.
    Conflict(ProblemCode, &'m [u32]),
}

/// The outcome of matching, by member position (4 bytes a member, conflicts aside).
pub(super) struct Matches {
    per_member: Vec<u32>,
    conflicts: HashMap<u32, (ProblemCode, Vec<u32>)>,
    claimed: Vec<bool>,
}

impl Matches {
    /// What member `mi` matched.
    pub(super) fn of(&self, mi: usize) -> Found<'_> {
        match self.per_member.get(mi).copied().unwrap_or(NO_MATCH) {
            NO_MATCH => Found::Nothing,
            CONFLICT => u32::try_from(mi)
                .ok()
                .and_then(|mi| self.conflicts.get(&mi))
                .map_or(Found::Nothing, |(code, rs)| Found::Conflict(*code, rs)),
            r => Found::Record(r as usize),
        }
    }

    /// Whether some member matched (or is in conflict over) record `r`.
    pub(super) fn claimed(&self, r: usize) -> bool {
        self.claimed.get(r).copied().unwrap_or(false)
    }
}

/// Match `members` to `records` of `table` (a logical name), whose stored Mailchimp id is at
/// `id_col` and e-mail at `email_col`.
pub(super) fn match_members(
    members: &[Member],
    records: &[CrmRecord],
    table: &str,
    id_col: usize,
    email_col: usize,
) -> Matches {
    let by_id = Index::build(records.len(), |i| records[i].value(id_col).map(hash_id));
    let by_email = Index::build(records.len(), |i| {
        records[i].value(email_col).map(hash_email)
    });
    let mut out = Matches {
        per_member: vec![NO_MATCH; members.len()],
        conflicts: HashMap::new(),
        claimed: vec![false; records.len()],
    };
    if records.is_empty() {
        // a first sync: nothing to match, and no member's row needs reading for it
        return out;
    }
    let member_count = u32::try_from(members.len()).unwrap_or(u32::MAX);
    let mut found: Vec<u32> = Vec::new();
    for mi in 0..member_count {
        let contact_id = members[mi as usize].contact_id();
        found.clear();
        found.extend(
            by_id
                .candidates(hash_id(contact_id))
                .filter(|&r| records[r as usize].value(id_col) == Some(contact_id)),
        );
        out.settle(mi, &found, records, ProblemCode::DuplicateMailchimpId);
    }
    // hashed in the order the members lie in memory; visited in the order of their ids, where
    // a member's row is read again only for a record with the same hash
    let email_hashes: Vec<u64> = members.iter().map(|m| hash_email(m.email())).collect();
    for mi in member_order(members) {
        if out.per_member[mi as usize] != NO_MATCH {
            continue;
        }
        found.clear();
        found.extend(by_email.candidates(email_hashes[mi as usize]).filter(|&r| {
            !out.claimed[r as usize]
                && records[r as usize]
                    .value(email_col)
                    .is_some_and(|e| same_email(e, members[mi as usize].email()))
        }));
        out.settle(mi, &found, records, ProblemCode::DuplicateEmail);
    }
    out.by_person_id(members, records, table);
    out
}

impl Matches {
    /// Members still without a record, to the unclaimed record whose id is the person id of
    /// their address (the record the tool created for it, whose e-mail has changed since). Costs
    /// memory by the unmatched members, and nothing when there are no records (a first sync).
    fn by_person_id(&mut self, members: &[Member], records: &[CrmRecord], table: &str) {
        if records.is_empty() {
            return;
        }
        let mut wanted: HashMap<Uuid, u32> = HashMap::new();
        for (mi, m) in members.iter().enumerate() {
            if self.per_member[mi] == NO_MATCH
                && let Ok(mi) = u32::try_from(mi)
            {
                let id = ids::person_record(table, &normalize_email(m.email()));
                // two members of one address: the first keeps it, as e-mail matching does
                wanted.entry(id).or_insert(mi);
            }
        }
        if wanted.is_empty() {
            return;
        }
        for (r, rec) in records.iter().enumerate() {
            if self.claimed[r] {
                continue;
            }
            if let (Some(&mi), Ok(r)) = (wanted.get(&rec.id), u32::try_from(r)) {
                self.settle(mi, &[r], records, ProblemCode::DuplicateEmail);
            }
        }
    }

    /// Record what was found for member `mi`: claim the records, then of the active ones one
    /// is a match and more are a conflict of kind `code`; only inactive ones are a conflict of
    /// kind [`ProblemCode::InactiveRecord`].
    fn settle(&mut self, mi: u32, found: &[u32], records: &[CrmRecord], code: ProblemCode) {
        for &r in found {
            self.claimed[r as usize] = true;
        }
        let active: Vec<u32> = found
            .iter()
            .copied()
            .filter(|&r| !records[r as usize].inactive)
            .collect();
        match (active.as_slice(), found) {
            (_, []) => {}
            ([only], _) => self.per_member[mi as usize] = *only,
            ([], _) => self.conflict(mi, ProblemCode::InactiveRecord, found.to_vec()),
            (_, _) => self.conflict(mi, code, active),
        }
    }

    fn conflict(&mut self, mi: u32, code: ProblemCode, records: Vec<u32>) {
        self.per_member[mi as usize] = CONFLICT;
        self.conflicts.insert(mi, (code, records));
    }
}

/// Record positions by the hash of a key: the first position per hash and a chain through the
/// others (about 12 bytes per record, against ~50 for a map of string keys). Candidates must be
/// compared with the real key: different keys may share a hash.
struct Index {
    heads: HashMap<u64, u32, FixedState>,
    next: Vec<u32>,
}

impl Index {
    fn build(len: usize, key: impl Fn(usize) -> Option<u64>) -> Self {
        let mut heads = HashMap::with_capacity_and_hasher(len, FixedState::default());
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
    FixedState::default().hash_one(id.as_bytes())
}

/// The hash of [`normalize_email`] of `email`: lower-cased in a stack buffer when ASCII (as
/// addresses nearly always are), so without allocating; the lower-cased text hashed in 64-byte
/// pieces either way, so equal addresses hash equal whichever way they were lower-cased.
fn hash_email(email: &str) -> u64 {
    let email = email.trim();
    let mut h = FixedState::default().build_hasher();
    if email.is_ascii() {
        let mut buf = [0_u8; 64];
        for piece in email.as_bytes().chunks(buf.len()) {
            let lower = &mut buf[..piece.len()];
            lower.copy_from_slice(piece);
            lower.make_ascii_lowercase();
            h.write(lower);
        }
    } else {
        let lower: String = email.chars().flat_map(char::to_lowercase).collect();
        for piece in lower.as_bytes().chunks(64) {
            h.write(piece);
        }
    }
    h.write_u8(0xff);
    h.finish()
}

/// Equal once trimmed and lower-cased.
fn same_email(a: &str, b: &str) -> bool {
    a.trim()
        .chars()
        .flat_map(char::to_lowercase)
        .eq(b.trim().chars().flat_map(char::to_lowercase))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(same_email(" Jane@Example.com", "jane@example.COM "));
        assert_eq!(
            hash_email(" Jane@Example.com"),
            hash_email("jane@example.com")
        );
        // The Kelvin sign lower-cases to an ASCII `k`; long addresses hash piece by piece.
        assert_eq!(hash_email("\u{212A}@x.io"), hash_email("K@X.IO"));
        let long = format!("{}@example.com", "Ab".repeat(70));
        assert_eq!(hash_email(&long), hash_email(&long.to_lowercase()));
        assert_ne!(hash_email(&long), hash_email(&long[1..]));
    }
}
