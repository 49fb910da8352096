//! A JSON string's contents escaped exactly as `serde_json` escapes them (`\"` `\\` `\b` `\t`
//! `\n` `\f` `\r`, every other control as `\u00XX` in lower-case hex, everything else as is),
//! scanning eight bytes at a time (SWAR) and copying the plain runs between escapes whole.

/// `0x0101…01` times a byte: that byte in every lane of a word.
const fn lanes(byte: u8) -> u64 {
    u64::from_ne_bytes([byte; 8])
}

const ONES: u64 = lanes(0x01);
const HIGH: u64 = lanes(0x80);
const CONTROL: u64 = lanes(0x20);
const QUOTE: u64 = lanes(b'"');
const BACKSLASH: u64 = lanes(b'\\');

/// The high bit of each lane of `word` whose byte needs an escape (below 0x20, `"` or `\`).
/// Lanes above the lowest flagged one may be false positives (borrows run upwards), so only
/// the lowest flag is read: with the word read little-endian, that is the first such byte.
const fn needs_escape(word: u64) -> u64 {
    let zero_quote = (word ^ QUOTE).wrapping_sub(ONES) & !(word ^ QUOTE);
    let zero_backslash = (word ^ BACKSLASH).wrapping_sub(ONES) & !(word ^ BACKSLASH);
    let control = word.wrapping_sub(CONTROL) & !word;
    (zero_quote | zero_backslash | control) & HIGH
}

/// The index of the first byte of `bytes` at or after `from` that needs an escape. Every step
/// reads a whole word: the last one overlaps bytes already read (masked out), and a string
/// shorter than a word is padded with spaces (which need none).
fn next_escape(bytes: &[u8], mut from: usize) -> Option<usize> {
    while let Some(chunk) = bytes.get(from..from + 8) {
        let flags = needs_escape(word(chunk));
        if flags != 0 {
            return Some(from + (flags.trailing_zeros() / 8) as usize);
        }
        from += 8;
    }
    if from >= bytes.len() {
        return None;
    }
    let (start, flags) = match bytes.len().checked_sub(8) {
        // The last eight bytes, of which the first `from - start` were read already: those
        // become spaces (an escape among them would flag the lanes above it).
        Some(start) => {
            let unread = u64::MAX << (8 * (from - start));
            let word = (word(&bytes[start..]) & unread) | (lanes(b' ') & !unread);
            (start, needs_escape(word))
        }
        None => (from, needs_escape(short_word(&bytes[from..]))),
    };
    (flags != 0).then(|| start + (flags.trailing_zeros() / 8) as usize)
}

/// Fewer than eight bytes (at least one) as a little-endian word padded with spaces, read in
/// two overlapping loads (no copy through memory: a word loaded right after byte stores stalls).
fn short_word(rest: &[u8]) -> u64 {
    let n = rest.len();
    let low_lanes = (1u64 << (8 * n)) - 1;
    let word = if n >= 4 {
        let head = u64::from(u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]));
        let tail = u64::from(u32::from_le_bytes([
            rest[n - 4],
            rest[n - 3],
            rest[n - 2],
            rest[n - 1],
        ]));
        head | tail << (8 * (n - 4))
    } else if n >= 2 {
        let head = u64::from(u16::from_le_bytes([rest[0], rest[1]]));
        let tail = u64::from(u16::from_le_bytes([rest[n - 2], rest[n - 1]]));
        head | tail << (8 * (n - 2))
    } else {
        u64::from(rest[0])
    };
    word | (lanes(b' ') & !low_lanes)
}

/// Eight bytes as a little-endian word (the first byte lowest).
fn word(chunk: &[u8]) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&chunk[..8]);
    u64::from_le_bytes(word)
}

/// How serde_json writes `byte` inside a string, when not as itself.
fn escape_of(byte: u8) -> Option<Escape> {
    Some(match byte {
        b'"' => Escape::Short(b'"'),
        b'\\' => Escape::Short(b'\\'),
        0x08 => Escape::Short(b'b'),
        b'\t' => Escape::Short(b't'),
        b'\n' => Escape::Short(b'n'),
        0x0c => Escape::Short(b'f'),
        b'\r' => Escape::Short(b'r'),
        0x00..0x20 => Escape::Unicode,
        _ => return None,
    })
}

enum Escape {
    /// `\` and this letter.
    Short(u8),
    /// `\u00XX`.
    Unicode,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Append the escaped contents of `text` (no quotes) to `out`.
pub(super) fn escape_into(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let mut start = 0;
    while let Some(at) = next_escape(bytes, start) {
        out.extend_from_slice(&bytes[start..at]);
        let byte = bytes[at];
        match escape_of(byte) {
            Some(Escape::Short(letter)) => out.extend_from_slice(&[b'\\', letter]),
            Some(Escape::Unicode) | None => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]),
        }
        start = at + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_byte_alone_and_at_each_lane_is_escaped_as_serde_json_does() {
        for byte in 0..=0x7fu8 {
            let c = char::from(byte);
            for lane in 0..17 {
                let text = format!("{}{c}{}", "a".repeat(lane), "é".repeat(lane % 3));
                let mut ours = b"\"".to_vec();
                escape_into(&mut ours, &text);
                ours.push(b'"');
                assert_eq!(
                    String::from_utf8(ours).unwrap(),
                    serde_json::to_string(&text).unwrap(),
                    "byte {byte:#04x} at {lane}"
                );
            }
        }
    }

    #[test]
    fn every_pair_of_bytes_at_every_offset_is_escaped_as_serde_json_does() {
        // A byte that needs an escape raises a borrow into the lane above it: the byte after
        // it (a space after a control, `#` after a quote, `]` after a backslash) must not be
        // taken for one, in a whole word, in the overlapping last word or in a short string.
        let bytes: Vec<u8> = (0..0x24).chain([b'\\', b']', b'a', 0x7f]).collect();
        for len in 2..18 {
            for at in 0..len - 1 {
                for &a in &bytes {
                    for &b in &bytes {
                        let mut text = vec![b'x'; len];
                        text[at] = a;
                        text[at + 1] = b;
                        let text = String::from_utf8(text).unwrap();
                        let mut ours = Vec::new();
                        escape_into(&mut ours, &text);
                        let theirs = serde_json::to_string(&text).unwrap();
                        assert_eq!(ours, theirs.as_bytes()[1..theirs.len() - 1], "{text:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn high_bytes_next_to_an_escape_are_not_mistaken_for_one() {
        // Non-ASCII bytes (0x80..) and bytes just above the limits (`#`, `]`, space) around
        // escapes, in every lane: borrows in the word must not flag or hide a byte.
        let text = "\u{ff}\"#\u{80}\\] \u{1f}\u{7f}ÿ\"";
        for shift in 0..9 {
            let text = format!("{}{text}{text}", "x".repeat(shift));
            let mut ours = Vec::new();
            escape_into(&mut ours, &text);
            let theirs = serde_json::to_string(&text).unwrap();
            assert_eq!(ours, theirs.as_bytes()[1..theirs.len() - 1]);
        }
    }
}
