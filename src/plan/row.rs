//! [`Row`]: a list of optional strings packed into one allocation, so that a million records cost
//! a million allocations rather than ten or twenty million.
//!
//! Layout, all of it ASCII in front of the entries so that the whole row is one `str` and reading
//! an entry is a slice (no UTF-8 check per read): one byte with the width `w` of the offsets
//! (`2`, or `5` when the text reaches 8 KiB), the count `n` in three bytes, then `n` end offsets
//! of `w` bytes, then the entries' bytes back to back. Numbers are written seven bits to a byte,
//! least significant first; an offset's top bit marks an entry that is none. Reading an entry is
//! O(1). Empty strings are stored as none. A row holds at most 65,535 entries. Clones share the
//! allocation (a plan's member references share the snapshot's member rows).
//!
//! [`Row::canonical`] gives the bytes of an earlier, binary layout (which digests hash): plans'
//! digests stay the same whatever this layout becomes.

use std::fmt;
use std::sync::Arc;

/// Optional strings in one allocation.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Row(Arc<str>);

/// The entries a member's row starts with, in this order — `[id, contact_id, email,
/// last_changed, values…]`: the snapshot's members are built so, and the plan's member
/// references and versions share those rows and read them here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberEntry {
    /// The subscriber hash.
    Id,
    /// Mailchimp's contact id.
    ContactId,
    /// The address as Mailchimp has it.
    Email,
    /// `last_changed`, as Mailchimp wrote it.
    LastChanged,
}

impl MemberEntry {
    /// How many entries come before a member's field values.
    pub const COUNT: usize = 4;
}

impl Default for Row {
    fn default() -> Self {
        Self::new([])
    }
}

/// Width byte and three count bytes.
const HEADER: usize = 4;
/// Offsets of this many 7-bit bytes while the text is short, else [`WIDE`].
const NARROW: usize = 2;
const WIDE: usize = 5;

/// `value` in `width` bytes of seven bits, least significant first.
fn put_7bit(out: &mut String, mut value: u64, width: usize) {
    for _ in 0..width {
        out.push(char::from((value & 0x7f) as u8));
        value >>= 7;
    }
}

/// The number at `at` written by [`put_7bit`].
fn get_7bit(bytes: &[u8], at: usize, width: usize) -> Option<u64> {
    let word = bytes.get(at..at + width)?;
    Some(match *word {
        [a, b] => u64::from(a) | u64::from(b) << 7,
        [a, b, c] => u64::from(a) | u64::from(b) << 7 | u64::from(c) << 14,
        _ => word
            .iter()
            .rev()
            .fold(0_u64, |acc, b| (acc << 7) | u64::from(b & 0x7f)),
    })
}

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
        let width = if text < 1 << (NARROW * 7 - 1) {
            NARROW
        } else {
            WIDE
        };
        let n = values.len();
        let mut out = String::with_capacity(HEADER + n * width + text);
        out.push(char::from(b'0' + width as u8));
        put_7bit(&mut out, n as u64, HEADER - 1);
        let none = 1_u64 << (width * 7 - 1);
        let mut end = 0_u64;
        for v in &values {
            end += v.map_or(0, str::len) as u64;
            put_7bit(&mut out, if v.is_none() { end | none } else { end }, width);
        }
        for s in values.iter().flatten() {
            out.push_str(s);
        }
        Self(Arc::from(out))
    }

    fn width(&self) -> usize {
        match self.0.as_bytes().first() {
            Some(b) if *b == b'0' + WIDE as u8 => WIDE,
            _ => NARROW,
        }
    }

    /// How many entries.
    #[must_use]
    pub fn len(&self) -> usize {
        get_7bit(self.0.as_bytes(), 1, HEADER - 1).map_or(0, |n| n as usize)
    }

    /// No entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The end offset of entry `i` and whether it is none.
    fn end(&self, i: usize, width: usize) -> (usize, bool) {
        let Some(word) = get_7bit(self.0.as_bytes(), HEADER + i * width, width) else {
            return (0, true);
        };
        let none = 1_u64 << (width * 7 - 1);
        ((word & !none) as usize, word & none != 0)
    }

    /// Entry `i`, or none when it is none or out of range.
    #[must_use]
    pub fn get(&self, i: usize) -> Option<&str> {
        let n = self.len();
        if i >= n {
            return None;
        }
        let width = self.width();
        let (end, none) = self.end(i, width);
        if none {
            return None;
        }
        let start = if i == 0 { 0 } else { self.end(i - 1, width).0 };
        let base = HEADER + n * width;
        self.0.get(base + start..base + end)
    }

    /// The same entries in an allocation of their own (a clone shares the allocation).
    #[must_use]
    pub fn copied(&self) -> Self {
        Self(Arc::from(&*self.0))
    }

    /// A member row's `entry` (empty when none).
    #[must_use]
    pub fn member(&self, entry: MemberEntry) -> &str {
        self.get(entry as usize).unwrap_or_default()
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

    /// The row's canonical bytes (equal rows, equal bytes), for digests, handed to `feed`
    /// after their length: one byte with the width `w` (2, or 4 when the text exceeds 32 KiB),
    /// the count as two bytes, `n` end offsets of `w` bytes (little-endian; the high bit marks
    /// an entry that is none), then the entries' bytes back to back.
    pub fn canonical(&self, mut feed: impl FnMut(&[u8])) {
        let (n, width) = (self.len(), self.width());
        let base = HEADER + n * width;
        let text = self.0.len() - base.min(self.0.len());
        let old_width: usize = if text < 0x8000 { 2 } else { 4 };
        feed(&((3 + n * old_width + text) as u64).to_le_bytes());
        // The header goes out through a small buffer: no allocation per row.
        let mut buf = [0_u8; 256];
        buf[0] = old_width as u8;
        buf[1..3].copy_from_slice(&(n as u16).to_le_bytes());
        let mut len = 3;
        let mark = 1_usize << (old_width * 8 - 1);
        for i in 0..n {
            if len + old_width > buf.len() {
                feed(&buf[..len]);
                len = 0;
            }
            let (end, none) = self.end(i, width);
            let word = if none { end | mark } else { end };
            if old_width == 2 {
                buf[len..len + 2].copy_from_slice(&(word as u16).to_le_bytes());
            } else {
                buf[len..len + 4].copy_from_slice(&(word as u32).to_le_bytes());
            }
            len += old_width;
        }
        feed(&buf[..len]);
        feed(self.0.as_bytes().get(base..).unwrap_or_default());
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
        assert_eq!(short.heap_size(), 4 + 3 * 2 + 3);
    }

    /// The canonical bytes as the earlier layout packed them (the digests' input).
    fn old_layout(values: &[Option<&str>]) -> Vec<u8> {
        let values: Vec<Option<&str>> =
            values.iter().map(|v| v.filter(|s| !s.is_empty())).collect();
        let text: usize = values.iter().map(|v| v.map_or(0, str::len)).sum();
        let width: usize = if text < 0x8000 { 2 } else { 4 };
        let mut out = vec![width as u8];
        out.extend_from_slice(&(values.len() as u16).to_le_bytes());
        let mut end = 0_usize;
        for v in &values {
            end += v.map_or(0, str::len);
            let word = end | if v.is_none() { 1 << (width * 8 - 1) } else { 0 };
            if width == 2 {
                out.extend_from_slice(&(word as u16).to_le_bytes());
            } else {
                out.extend_from_slice(&(word as u32).to_le_bytes());
            }
        }
        for s in values.iter().flatten() {
            out.extend_from_slice(s.as_bytes());
        }
        out
    }

    #[test]
    fn canonical_bytes_are_the_earlier_layout_at_every_width() {
        let mid = "y".repeat(10_000);
        let long = "x".repeat(40_000);
        let cases: Vec<Vec<Option<&str>>> = vec![
            vec![],
            vec![None],
            vec![Some("a"), None, Some(""), Some("héllo")],
            vec![Some(mid.as_str()), None, Some("z")],
            vec![Some("a"), Some(long.as_str()), None, Some("b")],
            // Headers longer than the canonical writer's buffer, at both widths.
            [Some("v"), None].repeat(150),
            [Some(long.as_str()), None, Some("w")].repeat(40),
        ];
        for values in cases {
            let row = Row::new(values.iter().copied());
            let mut fed = Vec::new();
            row.canonical(|bytes| fed.extend_from_slice(bytes));
            let old = old_layout(&values);
            assert_eq!(fed[..8], (old.len() as u64).to_le_bytes());
            assert_eq!(fed[8..], old[..]);
            for (i, v) in values.iter().enumerate() {
                assert_eq!(row.get(i), v.filter(|s| !s.is_empty()));
            }
        }
    }
}
