//! Where the JSON writer puts its bytes: an owned buffer, handed to the inner writer in pieces of
//! about [`CHUNK`] bytes (one `io::Write` call per piece, none per fragment), and the layout of
//! pretty output (line breaks, indentation from a constant slice).

use std::io::Write;

/// How many bytes gather before they go to the inner writer.
pub(super) const CHUNK: usize = 1 << 20;

/// A line break and the indentation of the deepest level written in one piece (two spaces a
/// level, as serde_json's pretty formatter); deeper levels add [`INDENT`] piece by piece.
const BREAK: [u8; 1 + 2 * 64] = {
    let mut line = [b' '; 1 + 2 * 64];
    line[0] = b'\n';
    line
};

/// Indentation beyond [`BREAK`]'s.
const INDENT: &[u8] = &[b' '; 2 * 64];

/// The buffer in front of the inner writer.
pub(super) struct Out<W> {
    pub(super) buf: Vec<u8>,
    inner: W,
}

impl<W: Write> Out<W> {
    pub(super) fn new(inner: W) -> Self {
        Self {
            buf: Vec::with_capacity(CHUNK + CHUNK / 8),
            inner,
        }
    }

    /// Hand the buffer to the inner writer once it holds a piece.
    #[inline]
    pub(super) fn spill(&mut self) -> std::io::Result<()> {
        if self.buf.len() >= CHUNK {
            self.inner.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Everything to the inner writer, flushed; the inner writer back.
    pub(super) fn finish(mut self) -> std::io::Result<W> {
        self.inner.write_all(&self.buf)?;
        self.inner.flush()?;
        Ok(self.inner)
    }

    /// A line break then the indentation of `depth` levels.
    #[inline]
    pub(super) fn line(&mut self, depth: usize) {
        let mut width = 2 * depth;
        let first = width.min(BREAK.len() - 1);
        self.buf.extend_from_slice(&BREAK[..=first]);
        width -= first;
        while width > 0 {
            let part = width.min(INDENT.len());
            self.buf.extend_from_slice(&INDENT[..part]);
            width -= part;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_indent_two_spaces_a_level_at_any_depth() {
        for depth in [0, 1, 63, 64, 65, 200] {
            let mut out = Out::new(Vec::new());
            out.line(depth);
            assert_eq!(out.buf, format!("\n{}", "  ".repeat(depth)).into_bytes());
        }
    }

    #[test]
    fn pieces_go_out_once_a_chunk_is_full_and_the_rest_at_the_end() {
        let mut out = Out::new(Vec::new());
        out.buf.extend_from_slice(&[b'x'; CHUNK - 1]);
        out.spill().unwrap();
        assert_eq!(out.inner.len(), 0);
        out.buf.extend_from_slice(b"yz");
        out.spill().unwrap();
        assert_eq!((out.inner.len(), out.buf.len()), (CHUNK + 1, 0));
        out.buf.push(b'!');
        assert_eq!(out.finish().unwrap().len(), CHUNK + 2);
    }
}
