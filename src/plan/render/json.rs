//! The JSON rendering: the plan model serialized, pretty, with a final newline — streamed to a
//! writer ([`write_json`]), so a plan of a million members is never one string in memory.

use std::io::Write;

use crate::plan::model::Plan;

/// The versioned JSON form of `plan` (what `plan -out FILE` saves and `--format json` prints).
///
/// # Errors
/// Only if serialization fails, which the plan's types do not allow in practice.
pub fn json(plan: &Plan) -> serde_json::Result<String> {
    let mut out = Vec::new();
    write_json(plan, &mut out)?;
    // serde_json writes UTF-8 only.
    Ok(String::from_utf8(out).unwrap_or_default())
}

/// Write the JSON form of `plan` (exactly the bytes of [`json()`]) to `out`. Buffer `out` when
/// it is a file or a pipe: the serializer writes in small pieces.
///
/// # Errors
/// Writing fails.
pub fn write_json<W: Write>(plan: &Plan, mut out: W) -> serde_json::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, Pretty::default());
    serde::Serialize::serialize(plan, &mut serializer)?;
    out.write_all(b"\n").map_err(serde_json::Error::io)?;
    Ok(())
}

/// serde_json's `PrettyFormatter` (two-space indentation) byte for byte, except that a line
/// break and its indentation go to the writer in one piece: the pretty formatter writes the
/// indentation two bytes at a time, and a million-member plan is some 80 million lines.
#[derive(Debug, Default)]
struct Pretty {
    depth: usize,
    has_value: bool,
}

/// `,\n` then the indentation of the deepest level written in one piece.
const BREAK: [u8; 2 + 2 * 64] = {
    let mut line = [b' '; 2 + 2 * 64];
    line[0] = b',';
    line[1] = b'\n';
    line
};

impl Pretty {
    /// A line break (after a comma unless `first`) and the current indentation.
    fn line<W: ?Sized + Write>(&self, out: &mut W, first: bool) -> std::io::Result<()> {
        let start = usize::from(first);
        match BREAK.get(start..2 + 2 * self.depth) {
            Some(line) => out.write_all(line),
            None => {
                out.write_all(&BREAK[start..2])?;
                (0..self.depth).try_for_each(|_| out.write_all(b"  "))
            }
        }
    }

    fn open<W: ?Sized + Write>(&mut self, out: &mut W, bracket: &[u8]) -> std::io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        out.write_all(bracket)
    }

    fn close<W: ?Sized + Write>(&mut self, out: &mut W, bracket: &[u8]) -> std::io::Result<()> {
        self.depth = self.depth.saturating_sub(1);
        if self.has_value {
            self.line(out, true)?;
        }
        out.write_all(bracket)
    }
}

impl serde_json::ser::Formatter for Pretty {
    fn begin_array<W: ?Sized + Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.open(out, b"[")
    }
    fn end_array<W: ?Sized + Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.close(out, b"]")
    }
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        out: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.line(out, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, _out: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
    fn begin_object<W: ?Sized + Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.open(out, b"{")
    }
    fn end_object<W: ?Sized + Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.close(out, b"}")
    }
    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        out: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.line(out, first)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        out.write_all(b": ")
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, _out: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pretty_is_serde_json_pretty_byte_for_byte_at_any_depth() {
        let mut deep = json!({"leaf": [1, {}, [], "x\n\"y\""]});
        for i in 0..70 {
            deep = if i % 2 == 0 {
                json!({"k": deep, "e": {}, "a": []})
            } else {
                json!([deep, null, {"z": [true]}])
            };
        }
        for value in [json!(null), json!([]), json!({}), json!([[], {}]), deep] {
            let mut ours = Vec::new();
            let mut serializer =
                serde_json::Serializer::with_formatter(&mut ours, Pretty::default());
            serde::Serialize::serialize(&value, &mut serializer).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string_pretty(&value).unwrap()
            );
        }
    }
}
