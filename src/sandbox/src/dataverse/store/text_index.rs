//! A lazily built equality index on one text column: hash of the case-folded value → row ids.
//!
//! It may hold extra ids (hash collisions, values since changed, rows deleted or rolled back),
//! never miss one: every write adds the new value, and callers re-check candidates against the
//! filter. Keys are hashes, not strings, to keep it small (about 32 bytes a row). Adding is O(1)
//! however many rows share a value (a set per shared value, not a list searched on every add).

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;

use uuid::Uuid;

/// A fixed hasher: the same ids in the same order on every run.
type Fixed = BuildHasherDefault<DefaultHasher>;

/// See the module documentation.
#[derive(Debug, Default)]
pub struct TextIndex {
    /// The first row seen with a value (most values name one row: no set for them).
    pub(super) first: HashMap<u64, Uuid>,
    /// The other rows with that value.
    more: HashMap<u64, HashSet<Uuid, Fixed>>,
}

impl TextIndex {
    fn hash(text: &str) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = Fixed::default().build_hasher();
        hasher.write(fold(text).as_bytes());
        hasher.finish()
    }

    /// Record that row `id` holds `text`.
    pub fn add(&mut self, text: &str, id: Uuid) {
        let key = Self::hash(text);
        match self.first.get(&key) {
            None => {
                self.first.insert(key, id);
            }
            Some(existing) if *existing == id => {}
            Some(_) => {
                self.more.entry(key).or_default().insert(id);
            }
        }
    }

    /// Append the candidate ids of rows holding `text` to `out`, each once, in no particular
    /// order.
    pub fn get(&self, text: &str, out: &mut Vec<Uuid>) {
        let key = Self::hash(text);
        if let Some(id) = self.first.get(&key) {
            out.push(*id);
        }
        if let Some(ids) = self.more.get(&key) {
            out.extend(ids.iter().copied());
        }
    }
}

/// Case folding used by the text index (the service compares text case-insensitively).
#[must_use]
pub fn fold(text: &str) -> String {
    if text.is_ascii() {
        text.to_ascii_lowercase()
    } else {
        text.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_rows_sharing_a_value_are_each_a_candidate_once_whatever_the_case() {
        let mut index = TextIndex::default();
        let ids: Vec<Uuid> = (0..1000u128).map(Uuid::from_u128).collect();
        for id in &ids {
            index.add("Shared@Example.com", *id);
            // Re-written rows (an update keeping the value) are added again.
            index.add("shared@example.com", *id);
        }
        index.add("other@example.com", Uuid::from_u128(5000));
        let mut out = Vec::new();
        index.get("SHARED@example.COM", &mut out);
        out.sort_unstable();
        assert_eq!(out, ids);
        let mut other = Vec::new();
        index.get("Other@Example.com", &mut other);
        assert_eq!(other, [Uuid::from_u128(5000)]);
    }
}
