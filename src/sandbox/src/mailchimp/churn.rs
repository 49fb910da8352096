//! Churn mode: the audience changes like a live one while requests are served. Sign-ups,
//! unsubscribes, re-subscribes, bounces (cleaned), archives, permanent deletions, e-mail address
//! changes, merge-field edits and tag edits arrive at a set rate, each recorded in a journal that
//! tests read (`GET /_sandbox/mailchimp/journal`, [`super::State::journal`]).
//!
//! No background task: at the start of every API request (before its handler, after
//! authentication) the changes that are due are applied: `rate` per second of elapsed time since
//! churn was switched on, plus `per_request` per request (a rate that does not depend on the
//! machine's speed, for tests). What happens is drawn from a generator seeded with `seed`, so
//! the same seed and the same request sequence give the same changes.
//!
//! Sources: what can happen to a member of a live audience is the member life cycle of the
//! Marketing API reference ("Lists/Members": statuses subscribed, unsubscribed, cleaned, pending,
//! archived; archive = DELETE; `actions/delete-permanent`; an e-mail change keeps the contact and
//! moves the subscriber hash) and Mailchimp's "About Your Contacts" help page (contacts
//! re-subscribe through a sign-up form, addresses bounce and are cleaned). Tag edits do not move
//! `last_changed`, as everywhere in this emulator; every other change does.

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::model::{Audience, Data, MemberInput, MemberStatus};

/// The most changes one request applies (a long pause at a high rate catches up over several).
const MAX_PER_TICK: u64 = 10_000;

/// Churn settings (seed file's `mailchimp.churn`, `PUT /_sandbox/mailchimp/churn`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Churn {
    /// Changes per second of elapsed time (0: none).
    pub rate: f64,
    /// Changes at the start of every API request (0: none).
    pub per_request: u32,
    /// Seed of the random choices.
    pub seed: u64,
    /// The audience that changes (its id); default: every audience, drawn per change.
    pub audience: Option<String>,
    /// The kinds of change drawn (default: all, weighted as a newsletter sees them).
    pub kinds: Vec<ChangeKind>,
}

/// What one change does to a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A new address signs up (subscribed).
    SignUp,
    /// A subscribed member unsubscribes.
    Unsubscribe,
    /// An unsubscribed member signs up again through a form.
    Resubscribe,
    /// A subscribed member's address bounces (cleaned).
    Clean,
    /// A member is archived.
    Archive,
    /// A member is deleted for good.
    DeletePermanent,
    /// A member changes e-mail address.
    EmailChange,
    /// A member's `FNAME` changes.
    MergeField,
    /// A tag is added to or removed from a member.
    Tag,
}

impl ChangeKind {
    /// Every kind with its weight when `kinds` is empty.
    const WEIGHTED: [(Self, u32); 9] = [
        (Self::SignUp, 30),
        (Self::Unsubscribe, 15),
        (Self::Resubscribe, 5),
        (Self::Clean, 5),
        (Self::Archive, 10),
        (Self::DeletePermanent, 5),
        (Self::EmailChange, 10),
        (Self::MergeField, 10),
        (Self::Tag, 10),
    ];
}

/// One change, as the journal records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Position in the journal, from 1.
    pub seq: u64,
    /// When it was applied (the member's new `last_changed`, except for tag edits).
    pub at: DateTime<Utc>,
    /// The audience id.
    pub audience: String,
    /// The member's contact id (unchanged by an e-mail change).
    pub contact_id: String,
    /// The member's subscriber hash after the change (before it, for a deletion).
    pub member_id: String,
    /// What happened.
    pub kind: ChangeKind,
    /// Status before (`None`: a new member).
    pub old_status: Option<MemberStatus>,
    /// Status after (`None`: deleted for good).
    pub new_status: Option<MemberStatus>,
    /// The e-mail address after the change.
    pub email: String,
    /// The address before, for an e-mail change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_email: Option<String>,
}

/// Churn settings with their generator, clock and journal.
#[derive(Debug)]
pub struct ChurnState {
    settings: Churn,
    rng: StdRng,
    started: std::time::Instant,
    by_rate: u64,
    counter: u64,
    journal: Vec<JournalEntry>,
}

impl Default for ChurnState {
    fn default() -> Self {
        Self::new(Churn::default())
    }
}

impl ChurnState {
    /// Start churning with `settings` from now (the journal is kept by the caller).
    #[must_use]
    pub fn new(settings: Churn) -> Self {
        Self {
            rng: StdRng::seed_from_u64(settings.seed),
            settings,
            started: std::time::Instant::now(),
            by_rate: 0,
            counter: 0,
            journal: Vec::new(),
        }
    }

    /// Replace the settings (restarting the clock and the generator), keeping the journal.
    pub fn set(&mut self, settings: Churn) {
        let journal = std::mem::take(&mut self.journal);
        let counter = self.counter;
        *self = Self::new(settings);
        self.journal = journal;
        self.counter = counter;
    }

    /// The settings.
    #[must_use]
    pub fn settings(&self) -> &Churn {
        &self.settings
    }

    /// The journal so far.
    #[must_use]
    pub fn journal(&self) -> &[JournalEntry] {
        &self.journal
    }

    /// Whether any change can be due.
    #[must_use]
    pub fn active(&self) -> bool {
        self.settings.rate > 0.0 || self.settings.per_request > 0
    }

    /// How many changes are due at a request now.
    fn due(&mut self) -> u64 {
        let mut due = u64::from(self.settings.per_request);
        if self.settings.rate > 0.0 {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let total = (self.started.elapsed().as_secs_f64() * self.settings.rate) as u64;
            due += total.saturating_sub(self.by_rate);
            self.by_rate = self.by_rate.max(total);
        }
        due.min(MAX_PER_TICK)
    }

    /// Apply the changes due now to `data`; how many were applied.
    pub fn tick(&mut self, data: &mut Data, now: DateTime<Utc>) -> usize {
        let due = self.due();
        let mut applied = 0;
        for _ in 0..due {
            if self.one(data, now) {
                applied += 1;
            }
        }
        applied
    }

    fn kind(&mut self) -> ChangeKind {
        if !self.settings.kinds.is_empty() {
            let i = self.rng.random_range(0..self.settings.kinds.len());
            return self.settings.kinds[i];
        }
        let total: u32 = ChangeKind::WEIGHTED.iter().map(|(_, w)| w).sum();
        let mut pick = self.rng.random_range(0..total);
        for (kind, weight) in ChangeKind::WEIGHTED {
            if pick < weight {
                return kind;
            }
            pick -= weight;
        }
        ChangeKind::SignUp
    }

    /// Apply one change; false when the audience is missing.
    fn one(&mut self, data: &mut Data, now: DateTime<Utc>) -> bool {
        let kind = self.kind();
        let list_id = match &self.settings.audience {
            Some(id) => id.clone(),
            None if data.audiences.is_empty() => return false,
            None => {
                let i = self.rng.random_range(0..data.audiences.len());
                data.audiences[i].id.clone()
            }
        };
        self.counter += 1;
        let n = self.counter;
        let pick = self.rng.random_range(0..u64::MAX);
        let active = self.rng.random_bool(0.5);
        let Ok((audience, ids)) = data.audience_mut(&list_id) else {
            return false;
        };
        let wanted = match kind {
            ChangeKind::SignUp => None,
            ChangeKind::Unsubscribe | ChangeKind::Clean => Some(&[MemberStatus::Subscribed][..]),
            ChangeKind::Resubscribe => Some(&[MemberStatus::Unsubscribed][..]),
            ChangeKind::Archive => {
                Some(&[MemberStatus::Subscribed, MemberStatus::Unsubscribed][..])
            }
            ChangeKind::DeletePermanent
            | ChangeKind::EmailChange
            | ChangeKind::MergeField
            | ChangeKind::Tag => Some(
                &[
                    MemberStatus::Subscribed,
                    MemberStatus::Unsubscribed,
                    MemberStatus::Cleaned,
                ][..],
            ),
        };
        let target = wanted.and_then(|statuses| find(audience, pick, statuses));
        let (kind, i) = match (kind, target) {
            (ChangeKind::SignUp, _) | (_, None) => (ChangeKind::SignUp, None),
            (kind, Some(i)) => (kind, Some(i)),
        };
        let before = i.map(|i| audience.members[i].clone());
        let mut entry = JournalEntry {
            seq: self.journal.len() as u64 + 1,
            at: now,
            audience: list_id.clone(),
            contact_id: String::new(),
            member_id: String::new(),
            kind,
            old_status: before.as_ref().map(|m| m.status),
            new_status: None,
            email: String::new(),
            old_email: None,
        };
        let result = match (kind, i) {
            (ChangeKind::SignUp, _) => {
                let mut fields = Map::new();
                fields.insert("FNAME".into(), Value::String(format!("Churn{n}")));
                let input = MemberInput {
                    email: Some(format!("churn{}-{n}@example.net", self.settings.seed)),
                    status: Some(MemberStatus::Subscribed),
                    merge_fields: Some(fields),
                    skip_merge_validation: true,
                    ..MemberInput::default()
                };
                audience.add_member(input, ids, now).ok()
            }
            (ChangeKind::DeletePermanent, Some(i)) => {
                let hash = audience.members[i].hash.clone();
                audience.delete_permanent(&hash).ok().map(|()| i)
            }
            (ChangeKind::Archive, Some(i)) => {
                let hash = audience.members[i].hash.clone();
                audience.archive(&hash, now).ok().map(|()| i)
            }
            (ChangeKind::EmailChange, Some(i)) => {
                let input = MemberInput {
                    email: Some(format!("moved{}-{n}@example.net", self.settings.seed)),
                    skip_merge_validation: true,
                    ..MemberInput::default()
                };
                audience.update_member(i, input, ids, now).ok()
            }
            (ChangeKind::Tag, Some(i)) => {
                let hash = audience.members[i].hash.clone();
                let tag = format!("Churn {}", pick % 3);
                audience
                    .set_member_tags(&hash, &[(tag, active)], ids, now)
                    .ok()
                    .map(|()| i)
            }
            (kind, Some(i)) => {
                let m = &mut audience.members[i];
                match kind {
                    ChangeKind::Unsubscribe => {
                        m.status = MemberStatus::Unsubscribed;
                        m.unsubscribe_reason = Some("N/A (Unsubscribed by the contact)".into());
                    }
                    ChangeKind::Resubscribe => {
                        m.status = MemberStatus::Subscribed;
                        m.unsubscribe_reason = None;
                        m.timestamp_opt = Some(now);
                    }
                    ChangeKind::Clean => m.status = MemberStatus::Cleaned,
                    _ => {
                        m.merge_fields
                            .insert("FNAME".into(), Value::String(format!("Edited{n}")));
                    }
                }
                m.last_changed = now;
                Some(i)
            }
            (_, None) => None,
        };
        let Some(i) = result else {
            return false;
        };
        match (kind, before) {
            (ChangeKind::DeletePermanent, Some(b)) => {
                entry.contact_id = b.contact_id;
                entry.member_id = b.hash;
                entry.email = b.email;
            }
            (kind, before) => {
                let m = &audience.members[i];
                entry.contact_id.clone_from(&m.contact_id);
                entry.member_id.clone_from(&m.hash);
                entry.email.clone_from(&m.email);
                entry.new_status = Some(m.status);
                if kind == ChangeKind::EmailChange {
                    entry.old_email = before.map(|b| b.email);
                }
            }
        }
        self.journal.push(entry);
        true
    }
}

/// A member in one of `statuses`, from a random position onwards (wrapping), if any.
fn find(audience: &Audience, pick: u64, statuses: &[MemberStatus]) -> Option<usize> {
    let n = audience.members.len();
    if n == 0 {
        return None;
    }
    #[allow(clippy::cast_possible_truncation)]
    let start = (pick % n as u64) as usize;
    (0..n)
        .map(|k| (start + k) % n)
        .find(|&i| statuses.contains(&audience.members[i].status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailchimp::populate;
    use crate::mailchimp::seed::{AudienceSeed, MemberSeed, Seed};

    fn data(n: usize) -> Data {
        let mut data = Data::default();
        let seed = Seed {
            audiences: vec![AudienceSeed {
                name: "Churn".into(),
                members: (0..n)
                    .map(|i| MemberSeed::new(&format!("m{i}@example.com")))
                    .collect(),
                ..AudienceSeed::default()
            }],
            ..Seed::default()
        };
        populate::apply_seed(&mut data, &seed).expect("seed");
        data
    }

    fn run(seed: u64, requests: usize) -> (Vec<JournalEntry>, usize) {
        let mut data = data(200);
        let mut churn = ChurnState::new(Churn {
            per_request: 3,
            seed,
            ..Churn::default()
        });
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("a valid time");
        for _ in 0..requests {
            churn.tick(&mut data, now);
        }
        (churn.journal().to_vec(), data.audiences[0].members.len())
    }

    #[test]
    fn the_same_seed_gives_the_same_changes_and_every_kind_happens() {
        let (a, len_a) = run(7, 100);
        let (b, len_b) = run(7, 100);
        assert!(a == b, "the same seed gave different changes");
        assert_eq!(len_a, len_b);
        assert_eq!(a.len(), 300);
        let kinds: std::collections::HashSet<ChangeKind> = a.iter().map(|e| e.kind).collect();
        assert_eq!(kinds.len(), ChangeKind::WEIGHTED.len(), "{kinds:?}");
        let (c, _) = run(8, 100);
        assert!(a != c, "another seed gave the same changes");
    }

    #[test]
    fn the_journal_says_what_the_data_holds() {
        let mut data = data(50);
        let mut churn = ChurnState::new(Churn {
            per_request: 1,
            seed: 3,
            ..Churn::default()
        });
        for _ in 0..200 {
            churn.tick(&mut data, Utc::now());
        }
        let audience = &data.audiences[0];
        let mut last: std::collections::HashMap<&str, &JournalEntry> = Default::default();
        for e in churn.journal() {
            last.insert(&e.contact_id, e);
        }
        for (contact, e) in last {
            let now = audience.members.iter().find(|m| m.contact_id == contact);
            match e.new_status {
                None => assert!(now.is_none(), "{e:?}"),
                Some(status) => {
                    let m = now.expect("the member is there");
                    assert_eq!(m.status, status, "{e:?}");
                    assert_eq!(m.email, e.email, "{e:?}");
                }
            }
        }
    }

    #[test]
    fn rate_zero_and_no_per_request_change_nothing() {
        let mut data = data(5);
        let mut churn = ChurnState::default();
        assert!(!churn.active());
        assert_eq!(churn.tick(&mut data, Utc::now()), 0);
        assert!(churn.journal().is_empty());
    }
}
