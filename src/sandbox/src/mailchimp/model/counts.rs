//! An audience's counts: members by status and subscribed members per tag, computed in one
//! pass over the members and cached until the audience changes (its `version`, as the member
//! listings are), so a list's `stats` and a tag's `member_count` cost a lookup, not a scan of
//! every member on every request. Mailchimp keeps these counters on the list and the segment
//! (`stats.member_count`, `member_count` of `Lists/Segments`); the emulator derives them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::{Audience, MemberStatus};

/// What the counts of an audience are at one version.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    /// Subscribed members.
    pub subscribed: usize,
    /// Unsubscribed members.
    pub unsubscribed: usize,
    /// Cleaned members.
    pub cleaned: usize,
    /// All members in any status.
    pub total: usize,
    /// Subscribed members carrying each tag, by tag id (a tag no subscribed member carries is
    /// absent).
    pub tags: HashMap<u64, usize>,
}

/// The cache slot: the counts and the audience version they were computed at.
pub(super) type CountsCache = Mutex<Option<(u64, Arc<Counts>)>>;

impl Counts {
    fn of(audience: &Audience) -> Self {
        let mut counts = Self::default();
        for m in &audience.members {
            counts.total += 1;
            match m.status {
                MemberStatus::Subscribed => {
                    counts.subscribed += 1;
                    // A member holds each tag id at most once (the model's invariant).
                    for (tag, _) in &m.tags {
                        *counts.tags.entry(*tag).or_default() += 1;
                    }
                }
                MemberStatus::Unsubscribed => counts.unsubscribed += 1,
                MemberStatus::Cleaned => counts.cleaned += 1,
                _ => {}
            }
        }
        counts
    }

    /// Subscribed members carrying the tag.
    #[must_use]
    pub fn tag(&self, id: u64) -> usize {
        self.tags.get(&id).copied().unwrap_or(0)
    }
}

impl Audience {
    /// The audience's counts, from the cache while the audience is unchanged.
    #[must_use]
    pub fn counts(&self) -> Arc<Counts> {
        let mut cache = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((version, counts)) = cache.as_ref()
            && *version == self.version
        {
            return Arc::clone(counts);
        }
        let counts = Arc::new(Counts::of(self));
        *cache = Some((self.version, Arc::clone(&counts)));
        counts
    }
}
