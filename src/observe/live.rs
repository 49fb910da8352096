//! A convergent read of a live audience's members: the audience may change (sign-ups,
//! unsubscribes, bounces, archives, deletions, edits) while it is read, and the read neither
//! fails nor loses, doubles or invents anyone because of it.
//!
//! # How
//! 1. `T0` = Mailchimp's clock ([`mailchimp::Client::server_time`], asked before any page) less
//!    [`MARGIN`].
//! 2. Main pass: every status the binding reads, in sign-up order, in overlapping windows (the
//!    client's pager: a member that stays in its status during the pass is read exactly once).
//! 3. Catch-up: every status (so that a member who moved out of the read statuses is seen
//!    there), `since_last_changed=T0`, in `last_changed` order.
//! 4. Merge by the member's contact id (stable when the e-mail address changes; the subscriber
//!    hash is not): the observation with the newest `last_changed` wins, a later observation
//!    on a tie. A member whose winning observation is in a status the binding does not read is
//!    dropped, as a read at that moment would not have returned it.
//!
//! # Guarantee
//! Let the read run from `S` (the first page served) to `E` (the last). Each member appears at
//! most once, by contact id. A member whose state did not change between `S` and `E` appears
//! exactly when its status is read, with that state. A member that changed appears with a state
//! it had at some moment between `S` and `E` — normally its newest, as of the catch-up — where
//! "not in a read status" is a state too (then it is absent). A member permanently deleted
//! during the read may appear with its state before the deletion (the catch-up cannot see it),
//! and the next read drops it. Nothing here loops: the client's re-reads and restarts are
//! bounded, and an audience that changes too fast fails with [`mailchimp::Error::Churn`]
//! saying how often it shifted.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use foldhash::fast::FixedState;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::config::MemberStatus;
use crate::mailchimp::{
    self, ALL_STATUSES, MemberKey, MemberOrder, MemberQuery, MemberRow, PageDecoder,
};

/// How far before the server's clock the catch-up starts: covers the `Date` header's whole
/// seconds, `since_last_changed` being exclusive, and skew between Mailchimp's servers.
pub const MARGIN: chrono::Duration = chrono::Duration::seconds(10);

/// The moment a read that begins at the server's `now` is said to begin: every change after it
/// is read by the catch-up (and by a saved plan's staleness check).
#[must_use]
pub fn read_start(now: DateTime<Utc>) -> DateTime<Utc> {
    now - MARGIN
}

/// Observations merged by member identity: the newest wins.
#[derive(Debug)]
pub struct Merged<T> {
    slots: Vec<Option<Slot<T>>>,
    by_key: HashMap<MemberKey, usize, FixedState>,
    seq: u64,
}

#[derive(Debug)]
struct Slot<T> {
    version: (i64, u64),
    value: Option<T>,
}

impl<T> Default for Merged<T> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            by_key: HashMap::default(),
            seq: 0,
        }
    }
}

/// The most members a capacity hint reserves room for up front.
const MAX_RESERVED: usize = 2_000_000;

impl<T> Merged<T> {
    /// Room for about `expected` members (a hint: at most [`MAX_RESERVED`] up front).
    #[must_use]
    pub fn with_capacity(expected: usize) -> Self {
        let n = expected.min(MAX_RESERVED);
        Self {
            slots: Vec::with_capacity(n),
            by_key: HashMap::with_capacity_and_hasher(n, FixedState::default()),
            seq: 0,
        }
    }

    /// Record one observation of the member `key` at `last_changed` (seconds): `Some` in a read
    /// status, `None` outside them. It replaces an older one (or an equal one seen earlier).
    pub fn observe(&mut self, key: &str, last_changed: i64, value: Option<T>) {
        self.seq += 1;
        let version = (last_changed, self.seq);
        // one probe of the table per observation (a million members are mostly new keys)
        match self.by_key.entry(MemberKey::of(key)) {
            Entry::Occupied(at) => {
                if let Some(slot) = &mut self.slots[*at.get()] {
                    if version > slot.version {
                        *slot = Slot { version, value };
                    }
                }
            }
            Entry::Vacant(at) => {
                at.insert(self.slots.len());
                self.slots.push(Some(Slot { version, value }));
            }
        }
    }

    /// The members in a read status, in the order they were first seen.
    pub fn into_members(self) -> Vec<T> {
        self.slots
            .into_iter()
            .flatten()
            .filter_map(|slot| slot.value)
            .collect()
    }
}

/// What a live read reads.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    /// The audience.
    pub list_id: &'a str,
    /// The statuses read.
    pub statuses: &'a [MemberStatus],
    /// The member fields requested (`fields=`; the decoder reads from them).
    pub fields: Vec<String>,
    /// [`read_start`] of the server's time before the first page.
    pub start: DateTime<Utc>,
    /// About how many members there are (a capacity hint; 0: unknown).
    pub expected: usize,
}

/// Read the members `spec` names, each page decoded by `decoder` and each member converted with
/// `convert` as its page arrives (the page is dropped then), as the module doc says. A member's
/// identity is [`MemberRow::key`], its version [`MemberRow::version`].
///
/// # Errors
/// A read failed, or the audience changed too fast ([`mailchimp::Error::Churn`]).
pub async fn read<D: PageDecoder, T>(
    client: &mailchimp::Client,
    spec: Spec<'_>,
    decoder: Arc<D>,
    convert: impl Fn(&D::Row) -> T,
) -> Result<Vec<T>, mailchimp::Error> {
    let Spec {
        list_id,
        statuses,
        fields,
        start,
        expected,
    } = spec;
    let mut merged = Merged::with_capacity(expected);
    let main = MemberQuery {
        statuses: statuses.to_vec(),
        since_last_changed: None,
        fields: Some(fields.clone()),
        order: MemberOrder::Signup,
    };
    let mut pages = client.members_as(list_id, main, Arc::clone(&decoder));
    while let Some(page) = pages.next().await {
        for member in page? {
            merged.observe(member.key(), member.version(), Some(convert(&member)));
        }
    }
    let catch_up = MemberQuery {
        statuses: ALL_STATUSES.to_vec(),
        since_last_changed: Some(start),
        fields: Some(fields),
        order: MemberOrder::LastChanged,
    };
    let mut pages = client.members_as(list_id, catch_up, decoder);
    while let Some(page) = pages.next().await {
        for member in page? {
            let value = statuses
                .contains(&member.status())
                .then(|| convert(&member));
            merged.observe(member.key(), member.version(), value);
        }
    }
    Ok(merged.into_members())
}

#[cfg(test)]
mod tests {
    use super::Merged;

    #[test]
    fn the_newest_observation_wins_and_a_tie_goes_to_the_later_one() {
        let mut merged = Merged::default();
        merged.observe("a", 10, Some("a@10"));
        merged.observe("b", 10, Some("b@10"));
        merged.observe("a", 5, Some("a@5 (older, read later)"));
        merged.observe("b", 10, Some("b@10 again"));
        merged.observe("c", 7, Some("c@7"));
        assert_eq!(merged.into_members(), vec!["a@10", "b@10 again", "c@7"]);
    }

    #[test]
    fn a_member_that_moved_out_of_the_read_statuses_is_dropped_and_can_come_back() {
        let mut merged = Merged::default();
        merged.observe("a", 10, Some("a subscribed"));
        merged.observe("b", 10, Some("b subscribed"));
        merged.observe("a", 12, None);
        merged.observe("b", 9, None);
        merged.observe("c", 12, None);
        assert_eq!(merged.into_members(), vec!["b subscribed"]);
        let mut merged = Merged::default();
        merged.observe("a", 10, None);
        merged.observe("a", 11, Some("a back"));
        assert_eq!(merged.into_members(), vec!["a back"]);
    }

    #[test]
    fn hex_ids_and_other_keys_stay_distinct() {
        let id = "0123456789abcdef0123456789abcdef";
        let mut merged = Merged::default();
        merged.observe(id, 10, Some("hex"));
        merged.observe(&id.to_uppercase(), 10, Some("upper-case is another key"));
        merged.observe(&id[1..], 10, Some("31 digits"));
        merged.observe(id, 11, Some("hex, newer"));
        assert_eq!(
            merged.into_members(),
            vec!["hex, newer", "upper-case is another key", "31 digits"]
        );
    }
}
