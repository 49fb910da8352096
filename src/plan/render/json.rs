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
    serde_json::to_writer_pretty(&mut out, plan)?;
    out.write_all(b"\n").map_err(serde_json::Error::io)?;
    Ok(())
}
