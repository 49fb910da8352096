//! The JSON rendering: the plan model serialized, pretty, with a final newline, streamed to a
//! writer ([`write_json`]), so a plan of a million members is never one string in memory; and
//! the compact form the saved plan's identity digests ([`to_writer_compact`]).
//!
//! The writer is this module's own `serde::Serializer` ([`ser`]), byte for byte serde_json's
//! (`to_writer_pretty` and `to_writer`) for any `Serialize` value, and faster on a plan: strings
//! are scanned for escapes eight bytes at a time ([`escape`]) and the output gathers in an owned
//! buffer handed on in 1 MiB pieces ([`out`]), instead of an `io::Write` call per fragment.
//!
//! `sonic-rs` was weighed and not taken: ten more crates (SIMD and `unsafe` code among them) for
//! one writer, writers of its own `WriteExt` rather than any `io::Write`, and not serde_json's
//! bytes for every value (a `serde_json::value::RawValue` comes out as an object).

mod escape;
mod keys;
mod out;
mod ser;
#[cfg(test)]
mod tests;

use std::io::Write;

use serde::Serialize;

use crate::plan::model::Plan;

/// Why a value could not be written as JSON: the writer failed, or the value is one serde_json
/// refuses too (with the same message).
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// Writing failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A map key that is not a string, a char, a number, a boolean or a unit variant.
    #[error("key must be a string")]
    KeyMustBeAString,
    /// A float map key that is NaN or infinite.
    #[error("float key must be finite (got NaN or +/-inf)")]
    FloatKeyMustBeFinite,
    /// A `RawValue` that does not serialize as one.
    #[error("expected value")]
    ExpectedValue,
    /// The value's own `Serialize` refused.
    #[error("{0}")]
    Custom(String),
}

use JsonError as Error;

impl serde::ser::Error for JsonError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Self::Custom(msg.to_string())
    }
}

impl From<JsonError> for serde_json::Error {
    fn from(error: JsonError) -> Self {
        match error {
            JsonError::Io(e) => Self::io(e),
            other => <Self as serde::ser::Error>::custom(other),
        }
    }
}

/// The versioned JSON form of `plan` (what `plan -out FILE` saves and `--format json` prints).
///
/// # Errors
/// Only if serialization fails, which the plan's types do not allow in practice.
pub fn json(plan: &Plan) -> serde_json::Result<String> {
    let mut out = Vec::new();
    write_json(plan, &mut out)?;
    // The writer writes UTF-8 only.
    Ok(String::from_utf8(out).unwrap_or_default())
}

/// Write the JSON form of `plan` (exactly the bytes of [`json()`]) to `out`, flushed, in pieces
/// of about 1 MiB (no need to buffer `out`).
///
/// # Errors
/// Writing fails.
pub fn write_json<W: Write>(plan: &Plan, out: W) -> serde_json::Result<()> {
    write::<W, Plan, true>(out, plan, b"\n")?;
    Ok(())
}

/// `value` as `serde_json::to_writer_pretty` writes it (two-space indentation), flushed: what the
/// tests compare with serde_json ([`write_json`] is it for a plan, with the final newline).
///
/// # Errors
/// Writing fails, or the value is one serde_json refuses.
#[cfg(test)]
pub fn to_writer_pretty<W: Write, T: ?Sized + Serialize>(
    out: W,
    value: &T,
) -> Result<W, JsonError> {
    write::<W, T, true>(out, value, b"")
}

/// `value` as `serde_json::to_writer` writes it (compact), flushed.
///
/// # Errors
/// Writing fails, or the value is one serde_json refuses.
pub fn to_writer_compact<W: Write, T: ?Sized + Serialize>(
    out: W,
    value: &T,
) -> Result<W, JsonError> {
    write::<W, T, false>(out, value, b"")
}

/// `value`, then `end`, to `out`, flushed.
fn write<W: Write, T: ?Sized + Serialize, const PRETTY: bool>(
    out: W,
    value: &T,
    end: &[u8],
) -> Result<W, JsonError> {
    let mut serializer = ser::Serializer::<W, PRETTY>::new(out);
    value.serialize(&mut serializer)?;
    serializer.out.buf.extend_from_slice(end);
    Ok(serializer.out.finish()?)
}
