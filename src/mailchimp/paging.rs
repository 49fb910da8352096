//! Offset paging over a member set that changes while it is read.
//!
//! Mailchimp pages by offset over the filtered, sorted set as it is when each page is served: a
//! member that leaves the set shifts every later offset left by one (with plain paging, the
//! member at the page boundary is skipped), one that enters shifts them right (one is repeated).
//! [`Pager`] decides which windows to read and what of each to keep; it is pure, so it is tested
//! here against a model of a set that changes between pages.
//!
//! # How
//! - Consecutive windows overlap by [`OVERLAP`] members (window `i + 1` starts at
//!   `offset_i + PAGE_SIZE - OVERLAP`), and each window must contain at least one member of the
//!   window accepted before it (its *anchor*). Members repeated by the overlap or by a shift are
//!   dropped by id.
//! - A window without an anchor shifted further than the overlap absorbs: it is read again from
//!   an earlier offset (at most [`REREADS`] times), and the read-ahead planned after it is
//!   dropped. When no earlier window finds an anchor either, the pass restarts from offset 0
//!   (keeping what it has yielded), at most [`MAX_RESTARTS`] times; then it gives up with the
//!   number of shifts seen.
//! - The pass ends at the first anchored window that is not full, so members that joined at the
//!   end during the read are read too.
//!
//! # Guarantee (one pass, given each page is a consistent view of the set when it is served,
//! and the order of two members does not change while both stay in the set)
//! Every member that is in the set from the first page to the last is yielded exactly once; no
//! member is yielded twice; every member yielded was in the set when its page was served.
//!
//! Why: an anchor `a` is in the set when both windows are served; a member `m` that stays in
//! the set and sorts between `a` and the end of the earlier window was in the earlier window; one
//! that sorts after it is in the later window or after it. By induction over windows, `m` is
//! read before the pass ends (the last window is not full, so nothing sorts after it).

use std::collections::HashSet;

use foldhash::fast::FixedState;

use super::MemberKey;

/// Members shared by consecutive windows: shifts of fewer members between two windows cost
/// nothing.
pub const OVERLAP: usize = 25;

/// How far back a shifted window is read again, in members before its planned offset (bounded
/// below by the offset of the window before it).
pub const REREADS: [usize; 3] = [4 * OVERLAP, 16 * OVERLAP, usize::MAX];

/// Full restarts of a pass before it gives up.
pub const MAX_RESTARTS: u32 = 3;

/// What to do with a window that was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Keep the members at these indices (the ones not yielded before); read on.
    Keep(Vec<usize>),
    /// Keep these, and the pass is complete.
    Last(Vec<usize>),
    /// The window shifted: drop every window in flight and ask [`Pager::issue`] again.
    Again,
}

/// The pass gave up: the set shifted more than the bounded re-reads and restarts absorb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GaveUp {
    /// Windows that had shifted beyond the overlap.
    pub shifts: u32,
    /// Full restarts made.
    pub restarts: u32,
}

/// The most ids the first window's `total_items` reserves room for up front.
const MAX_RESERVED: usize = 2_000_000;

/// The window accepted last.
#[derive(Debug)]
struct Window {
    offset: usize,
    ids: HashSet<MemberKey, FixedState>,
}

/// The paging decisions of one pass over one filtered, sorted set.
#[derive(Debug)]
pub struct Pager {
    page: usize,
    overlap: usize,
    /// The end of the set when its first window was read (`total_items`).
    planned_end: usize,
    next: usize,
    previous: Option<Window>,
    rereads: usize,
    restarts: u32,
    shifts: u32,
    generation: u64,
    /// Every member yielded (a million ids as numbers, not strings).
    seen: HashSet<MemberKey, FixedState>,
    done: bool,
}

impl Pager {
    /// A pass with windows of `page` members overlapping by `overlap` (less than `page`).
    #[must_use]
    pub fn new(page: usize, overlap: usize) -> Self {
        Self {
            page,
            overlap: overlap.min(page.saturating_sub(1)),
            planned_end: 0,
            next: 0,
            previous: None,
            rereads: 0,
            restarts: 0,
            shifts: 0,
            generation: 0,
            seen: HashSet::default(),
            done: false,
        }
    }

    fn stride(&self) -> usize {
        self.page - self.overlap
    }

    /// Windows issued under an older generation are to be dropped, not accepted.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Windows that shifted beyond the overlap so far.
    #[cfg(test)]
    #[must_use]
    pub fn shifts(&self) -> u32 {
        self.shifts
    }

    /// The next offset to read, given how many windows are in flight; `None`: wait for them.
    /// The first window, a re-read and a window past the planned end are read alone.
    pub fn issue(&mut self, in_flight: usize) -> Option<usize> {
        let alone = self.previous.is_none() || self.rereads > 0 || self.next >= self.planned_end;
        if self.done || (alone && in_flight > 0) {
            return None;
        }
        let offset = self.next;
        self.next += self.stride();
        Some(offset)
    }

    /// Judge the window read at `offset` (of the current generation): its member ids in order
    /// and the `total_items` it reported.
    ///
    /// # Errors
    /// [`GaveUp`] when the bounded re-reads and restarts are spent.
    pub fn accept(&mut self, offset: usize, ids: &[&str], total: usize) -> Result<Step, GaveUp> {
        let keys: Vec<MemberKey> = ids.iter().map(|id| MemberKey::of(id)).collect();
        let anchored = match &self.previous {
            None => true,
            Some(previous) => keys.iter().any(|key| previous.ids.contains(key)),
        };
        if !anchored {
            return self.shifted(offset);
        }
        if self.previous.is_none() {
            self.planned_end = total;
            // room for the whole set at once: a million ids rehashed while growing touched
            // twice the table's memory
            self.seen
                .reserve(total.min(MAX_RESERVED).saturating_sub(self.seen.len()));
        }
        if self.rereads > 0 {
            self.rereads = 0;
            self.next = offset + self.stride();
        }
        let fresh: Vec<usize> = keys
            .iter()
            .enumerate()
            .filter(|(_, key)| self.seen.insert((*key).clone()))
            .map(|(i, _)| i)
            .collect();
        self.previous = Some(Window {
            offset,
            ids: keys.into_iter().collect(),
        });
        if ids.len() < self.page {
            self.done = true;
            return Ok(Step::Last(fresh));
        }
        Ok(Step::Keep(fresh))
    }

    fn shifted(&mut self, offset: usize) -> Result<Step, GaveUp> {
        if self.rereads == 0 {
            self.shifts += 1;
        }
        self.generation += 1;
        let previous_offset = self.previous.as_ref().map_or(0, |w| w.offset);
        let planned = previous_offset + self.stride();
        match REREADS.get(self.rereads) {
            Some(back) if offset > previous_offset => {
                self.rereads += 1;
                self.next = planned.saturating_sub(*back).max(previous_offset);
                Ok(Step::Again)
            }
            _ => {
                self.restarts += 1;
                if self.restarts > MAX_RESTARTS {
                    self.done = true;
                    return Err(GaveUp {
                        shifts: self.shifts,
                        restarts: self.restarts - 1,
                    });
                }
                self.previous = None;
                self.rereads = 0;
                self.next = 0;
                Ok(Step::Again)
            }
        }
    }
}

#[cfg(test)]
mod tests;
