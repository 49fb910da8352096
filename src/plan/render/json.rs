//! The JSON rendering: the plan model serialized, pretty, with a final newline.

use crate::plan::model::Plan;

/// The versioned JSON form of `plan` (what `plan -out FILE` saves and `--format json` prints).
///
/// # Errors
/// Only if serialization fails, which the plan's types do not allow in practice.
pub fn json(plan: &Plan) -> serde_json::Result<String> {
    let mut out = serde_json::to_string_pretty(plan)?;
    out.push('\n');
    Ok(out)
}
