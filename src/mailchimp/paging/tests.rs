//! The pager against a pure model of Mailchimp's offset paging over a set that changes between
//! (and while) pages are served: members leave from anywhere, re-enter at their old place, and
//! join at the end; windows in flight are served in any order.

use std::collections::{HashMap, HashSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{GaveUp, OVERLAP, Pager, Step};

/// A sorted set: `(sort key, id)`, with the ids that are out of it (to re-enter).
struct Model {
    members: Vec<(u64, String)>,
    out: Vec<(u64, String)>,
    next_key: u64,
    /// Per id, whether it ever left or entered during the pass.
    changed: HashSet<String>,
}

impl Model {
    fn new(n: u64) -> Self {
        Self {
            members: (0..n).map(|k| (k, format!("m{k}"))).collect(),
            out: Vec::new(),
            next_key: n,
            changed: HashSet::new(),
        }
    }

    fn page(&self, offset: usize, count: usize) -> (Vec<String>, usize) {
        let ids = self
            .members
            .iter()
            .skip(offset)
            .take(count)
            .map(|(_, id)| id.clone())
            .collect();
        (ids, self.members.len())
    }

    /// One change: leave (40 %), re-enter at its place (30 %), join at the end (30 %).
    fn churn(&mut self, rng: &mut StdRng) {
        let roll = rng.random_range(0..10);
        if roll < 4 && !self.members.is_empty() {
            let gone = self.members.remove(rng.random_range(0..self.members.len()));
            self.changed.insert(gone.1.clone());
            self.out.push(gone);
        } else if roll < 7 && !self.out.is_empty() {
            let back = self.out.swap_remove(rng.random_range(0..self.out.len()));
            self.changed.insert(back.1.clone());
            let at = self.members.partition_point(|(k, _)| *k < back.0);
            self.members.insert(at, back);
        } else {
            let id = format!("m{}", self.next_key);
            self.changed.insert(id.clone());
            self.members.push((self.next_key, id));
            self.next_key += 1;
        }
    }
}

/// A window as served: its ids and `total_items`.
type Served = (Vec<String>, usize);

/// Read one pass with `ahead` windows in flight and `rate` changes per served window; the ids
/// yielded, in order.
fn read(
    model: &mut Model,
    rng: &mut StdRng,
    page: usize,
    ahead: usize,
    rate: u32,
) -> Result<Vec<String>, GaveUp> {
    let mut pager = Pager::new(page, OVERLAP.min(page / 4));
    let mut in_flight: Vec<(u64, usize, Option<Served>)> = Vec::new();
    let mut yielded = Vec::new();
    loop {
        while in_flight.len() < ahead {
            match pager.issue(in_flight.len()) {
                Some(offset) => in_flight.push((pager.generation(), offset, None)),
                None => break,
            }
        }
        assert!(
            !in_flight.is_empty(),
            "a pass that is not done always has a window to read"
        );
        for _ in 0..rng.random_range(0..=rate) {
            model.churn(rng);
        }
        // Serve one waiting window, any of them.
        let waiting: Vec<usize> = (0..in_flight.len())
            .filter(|i| in_flight[*i].2.is_none())
            .collect();
        if let Some(&i) = waiting.get(rng.random_range(0..waiting.len().max(1))) {
            in_flight[i].2 = Some(model.page(in_flight[i].1, page));
        }
        while in_flight.first().is_some_and(|w| w.2.is_some()) {
            let (generation, offset, served) = in_flight.remove(0);
            let Some((ids, total)) = served else {
                unreachable!()
            };
            if generation != pager.generation() {
                continue;
            }
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            match pager.accept(offset, &refs, total)? {
                Step::Keep(fresh) => yielded.extend(fresh.into_iter().map(|i| ids[i].clone())),
                Step::Last(fresh) => {
                    yielded.extend(fresh.into_iter().map(|i| ids[i].clone()));
                    return Ok(yielded);
                }
                Step::Again => in_flight.clear(),
            }
        }
    }
}

fn check(seed: u64, n: u64, page: usize, ahead: usize, rate: u32) -> u32 {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model = Model::new(n);
    let before: HashSet<String> = model.members.iter().map(|(_, id)| id.clone()).collect();
    let yielded = read(&mut model, &mut rng, page, ahead, rate)
        .unwrap_or_else(|e| panic!("seed {seed}: gave up: {e:?}"));
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &yielded {
        *counts.entry(id).or_default() += 1;
    }
    assert!(
        counts.values().all(|c| *c == 1),
        "seed {seed}: a member was yielded twice"
    );
    for id in before.iter().filter(|id| !model.changed.contains(*id)) {
        assert!(
            counts.contains_key(id.as_str()),
            "seed {seed}: unchanged member {id} was lost"
        );
    }
    model.changed.len() as u32
}

#[test]
fn a_still_set_is_read_once_in_overlapping_windows() {
    let mut pager = Pager::new(100, 10);
    let mut model = Model::new(250);
    let mut rng = StdRng::seed_from_u64(1);
    let yielded = read(&mut model, &mut rng, 100, 1, 0).unwrap();
    assert_eq!(yielded.len(), 250);
    assert_eq!(pager.issue(0), Some(0));
    assert_eq!(pager.issue(1), None, "the first window is read alone");
}

#[test]
fn every_unchanged_member_is_read_exactly_once_while_the_set_changes() {
    let mut changes = 0;
    for seed in 0..120 {
        changes += check(seed, 2_000 + seed * 7, 100, 1 + (seed as usize % 8), 6);
    }
    assert!(changes > 4_000, "the model churned ({changes} changes)");
}

#[test]
fn heavy_churn_between_windows_is_absorbed_by_rereads() {
    for seed in 0..30 {
        check(seed, 3_000, 100, 4, 40);
    }
}

#[test]
fn a_set_that_collapses_between_windows_is_read_again_not_skipped() {
    let mut pager = Pager::new(10, 2);
    let ids: Vec<String> = (0..10).map(|i| format!("a{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(pager.issue(0), Some(0));
    assert_eq!(
        pager.accept(0, &refs, 30).unwrap(),
        Step::Keep((0..10).collect())
    );
    let next = pager.issue(0).unwrap();
    assert_eq!(next, 8);
    // Everything of the first window left: the window at 8 has no anchor.
    assert_eq!(pager.accept(next, &["z1", "z2"], 12).unwrap(), Step::Again);
    assert!(pager.shifts() == 1);
    let reread = pager.issue(0).unwrap();
    assert!(reread < next, "read again from further back ({reread})");
}

#[test]
fn a_pass_that_never_finds_an_anchor_gives_up_with_the_count() {
    let mut pager = Pager::new(10, 2);
    let first: Vec<String> = (0..10).map(|i| format!("a{i}")).collect();
    let refs: Vec<&str> = first.iter().map(String::as_str).collect();
    let mut result = Ok(Step::Again);
    let mut round = 0;
    while result.is_ok() {
        let offset = pager.issue(0).expect("an offset");
        round += 1;
        let strangers: Vec<String> = (0..10).map(|i| format!("r{round}x{i}")).collect();
        let strangers: Vec<&str> = strangers.iter().map(String::as_str).collect();
        result = pager.accept(offset, if round == 1 { &refs } else { &strangers }, 100);
        assert!(round < 100, "bounded");
    }
    let err = result.unwrap_err();
    assert_eq!(err.restarts, super::MAX_RESTARTS);
    assert!(err.shifts >= 1);
}
