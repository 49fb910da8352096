//! [`Row`]: a list of optional strings packed into one allocation, so that a million records cost
//! a million allocations rather than ten or twenty million.
//!
//! Layout: one byte with the width `w` of the offsets (2, or 4 when the text exceeds 64 KiB), the
//! count `n` as two bytes, then `n` end offsets of `w` bytes (little-endian; the high bit marks
//! an entry that is none), then the entries' bytes back to back. Reading an entry is O(1). Only
//! whole `&str`s go in, so every entry is valid UTF-8. Empty strings are stored as none. A row
//! holds at most 65,535 entries. Clones share the allocation (a plan's member references share
//! the snapshot's member rows).

use std::fmt;
use std::sync::Arc;

/// Optional strings in one allocation.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Row(Arc<[u8]>);

const HEADER: usize = 3;

impl Row {
    /// Pack `values` (empty strings become none; entries past 65,535 are dropped).
    #[must_use]
    pub fn new<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> Self {
        let values: Vec<Option<&str>> = values
            .into_iter()
            .take(usize::from(u16::MAX))
            .map(|v| v.filter(|s| !s.is_empty()))
            .collect();
        let text: usize = values.iter().map(|v| v.map_or(0, str::len)).sum();
        let width: usize = if text < 0x8000 { 2 } else { 4 };
        let n = values.len();
        let mut out = Vec::with_capacity(HEADER + n * width + text);
        out.push(width as u8);
        out.extend_from_slice(&(n as u16).to_le_bytes());
        let mut end = 0_usize;
        for v in &values {
            end += v.map_or(0, str::len);
            let mark = if v.is_none() { 1 << (width * 8 - 1) } else { 0 };
            let word = end | mark;
            if width == 2 {
                out.extend_from_slice(&(word as u16).to_le_bytes());
            } else {
                out.extend_from_slice(&(word as u32).to_le_bytes());
            }
        }
        for s in values.iter().flatten() {
            out.extend_from_slice(s.as_bytes());
        }
        Self(Arc::from(out))
    }

    fn width(&self) -> usize {
        self.0.first().map_or(2, |w| usize::from(*w))
    }

    /// How many entries.
    #[must_use]
    pub fn len(&self) -> usize {
        match self.0.get(1..3) {
            Some(&[a, b]) => usize::from(u16::from_le_bytes([a, b])),
            _ => 0,
        }
    }

    /// No entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The end offset of entry `i` and whether it is none.
    fn end(&self, i: usize) -> (usize, bool) {
        let width = self.width();
        let at = HEADER + i * width;
        let word = match self.0.get(at..at + width) {
            Some(&[a, b]) => u32::from(u16::from_le_bytes([a, b])),
            Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
            _ => return (0, true),
        };
        let mark = 1_u32 << (width * 8 - 1);
        ((word & !mark) as usize, word & mark != 0)
    }

    /// Entry `i`, or none when it is none or out of range.
    #[must_use]
    pub fn get(&self, i: usize) -> Option<&str> {
        let n = self.len();
        if i >= n {
            return None;
        }
        let (end, none) = self.end(i);
        if none {
            return None;
        }
        let start = if i == 0 { 0 } else { self.end(i - 1).0 };
        let base = HEADER + n * self.width();
        let bytes = self.0.get(base + start..base + end)?;
        std::str::from_utf8(bytes).ok()
    }

    /// Every entry, in order.
    pub fn iter(&self) -> impl Iterator<Item = Option<&str>> {
        (0..self.len()).map(|i| self.get(i))
    }

    /// A copy with entry `i` replaced (out of range: unchanged).
    #[must_use]
    pub fn with(&self, i: usize, value: Option<&str>) -> Self {
        Self::new(
            self.iter()
                .enumerate()
                .map(|(k, v)| if k == i { value } else { v }),
        )
    }

    /// The packed bytes: a canonical encoding (equal rows, equal bytes), for hashing.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Bytes held on the heap.
    #[must_use]
    pub fn heap_size(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_reads_back() {
        let long = "x".repeat(40_000);
        let row = Row::new([
            Some("a"),
            None,
            Some(""),
            Some("héllo"),
            Some(long.as_str()),
        ]);
        assert_eq!(row.len(), 5);
        assert_eq!(row.get(0), Some("a"));
        assert_eq!(row.get(1), None);
        assert_eq!(row.get(2), None, "empty is none");
        assert_eq!(row.get(3), Some("héllo"));
        assert_eq!(row.get(4), Some(long.as_str()));
        assert_eq!(row.get(5), None);
        let changed = row.with(1, Some("b"));
        assert_eq!(changed.get(1), Some("b"));
        assert_eq!(changed.get(4), Some(long.as_str()));
        assert!(Row::new([]).is_empty());
        let short = Row::new([Some("a"), None, Some("bc")]);
        assert_eq!(
            short.iter().collect::<Vec<_>>(),
            vec![Some("a"), None, Some("bc")]
        );
        assert_eq!(short.heap_size(), 3 + 3 * 2 + 3);
    }
}
