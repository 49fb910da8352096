//! Validation of a config file: YAML syntax, the JSON schema, and meaning.
//!
//! The driver lives here; [`words`] turns schema errors into the config's own words, [`meaning`]
//! and [`connections`] check what the schema cannot say, [`fields`] knows member fields and
//! column names.
//!
//! # Guarantees
//! - Every diagnostic carries the line and column of the token it concerns, says what is wrong
//!   in the config's own words (never a Rust type), and every error has a `help:` line. Long
//!   values are shortened.
//! - All problems of a file come in one run: repeated keys, schema errors and meaning errors are
//!   all collected; meaning checks run on every part of the file (the connections, `defaults`,
//!   each binding) that matches the schema. Only a YAML syntax error or a passed parsing limit
//!   stops reading (nothing after them can be read).
//! - Time and memory are linear in the file's size and number of bindings; never panics.

mod connections;
mod fields;
mod meaning;
mod words;

use serde::{Deserialize, Serialize};

use super::model::Config;
use super::yaml::{self, Pos, Positions};

pub use connections::has_data_centre;
pub use fields::{KNOWN_SOURCES, check_source};
pub use words::closest;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The file cannot be used.
    Error,
    /// The file works, but probably not as meant.
    Warning,
}

/// One finding, at one place of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
    /// JSON pointer of the node (`/bindings/0/name`).
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

/// What the checks need from outside.
pub struct CheckOptions<'a> {
    /// Report `${VAR}` references whose variable is not set.
    pub check_env: bool,
    /// How to look a variable up.
    pub lookup: &'a dyn Fn(&str) -> Option<String>,
}

/// The outcome of checking a file.
#[derive(Debug)]
pub struct Checked {
    /// The typed config, when the file matches the schema.
    pub config: Option<Config>,
    /// Where each node stands.
    pub positions: Positions,
    /// Errors and warnings, sorted by position.
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    /// Whether any diagnostic is an error.
    #[must_use]
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }
}

/// How many undecodable byte sequences are reported one by one.
const MAX_BAD_BYTES: usize = 10;

/// Check a config file's bytes: bytes that are not UTF-8 are reported at their place, and the
/// rest of the file is checked as well.
#[must_use]
pub fn check_bytes(bytes: &[u8], options: &CheckOptions<'_>) -> Checked {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return check(text, options);
    }
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut text = String::with_capacity(body.len());
    let mut bad = Vec::new();
    let (mut line, mut column) = (1, 1);
    for chunk in body.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\n' {
                (line, column) = (line + 1, 1);
            } else {
                column += 1;
            }
        }
        text.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            bad.push((Pos { line, column }, chunk.invalid().to_vec()));
            text.push(char::REPLACEMENT_CHARACTER);
            column += 1;
        }
    }
    let count = bad.len();
    let mut found: Vec<Diagnostic> = bad
        .into_iter()
        .take(MAX_BAD_BYTES)
        .map(|(pos, bytes)| {
            let shown: Vec<String> = bytes.iter().map(|b| format!("0x{b:02X}")).collect();
            let more = if count > MAX_BAD_BYTES {
                format!(" ({count} places in all; the first {MAX_BAD_BYTES} are shown)")
            } else {
                String::new()
            };
            diagnostic(
                Severity::Error,
                pos,
                "",
                &format!("the file is not UTF-8 text: byte {} cannot be read{more}", shown.join(" ")),
                Some("save the file with the UTF-8 encoding (the file was probably written as Latin-1 or Windows-1252)"),
            )
        })
        .collect();
    let mut checked = check(&text, options);
    found.append(&mut checked.diagnostics);
    checked.diagnostics = finish(found);
    checked.config = None;
    checked
}

/// Check a config file's text.
#[must_use]
pub fn check(text: &str, options: &CheckOptions<'_>) -> Checked {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let document = yaml::parse_document(text);
    let mut out = Findings {
        positions: &document.positions,
        source: text,
        list: Vec::new(),
    };
    for err in &document.errors {
        out.error_at(err.pos, "", &err.message, &err.help);
    }
    let mut config = None;
    match &document.value {
        None => {}
        Some(value) if value.is_null() => out.error_at(
            Pos { line: 1, column: 1 },
            "",
            "the file is empty",
            "start from `audience-sync init` or examples/minimal.yaml",
        ),
        Some(value) => {
            let broken = words::schema_errors(value, &mut out);
            let parts = meaning::Parts::read(value, &broken, &mut out);
            meaning::check(&parts, options, &mut out);
            if broken.is_empty() {
                config = Config::deserialize(value).ok();
            }
        }
    }
    let mut diagnostics = finish(out.list);
    keep_inside(text, &mut diagnostics);
    Checked {
        config,
        positions: document.positions,
        diagnostics,
    }
}

fn finish(mut diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diagnostics.sort_by(|a, b| {
        (a.line, a.column, a.severity, &a.message).cmp(&(b.line, b.column, b.severity, &b.message))
    });
    diagnostics.dedup_by(|a, b| {
        (a.line, a.column, a.severity, &a.message) == (b.line, b.column, b.severity, &b.message)
    });
    diagnostics
}

/// Move any position past the end of its line (or of the file) back onto the last character
/// there is: the parser places some errors at the end of the stream.
fn keep_inside(text: &str, diagnostics: &mut [Diagnostic]) {
    if diagnostics.is_empty() {
        return;
    }
    let widths: Vec<usize> = text
        .split('\n')
        .map(|l| l.trim_end_matches('\r').chars().count())
        .collect();
    for d in diagnostics {
        d.line = d.line.clamp(1, widths.len().max(1));
        let width = widths.get(d.line - 1).copied().unwrap_or(0);
        d.column = d.column.clamp(1, width + 1);
    }
}

fn diagnostic(
    severity: Severity,
    pos: Pos,
    path: &str,
    message: &str,
    help: Option<&str>,
) -> Diagnostic {
    Diagnostic {
        severity,
        line: pos.line,
        column: pos.column,
        path: path.to_owned(),
        message: message.to_owned(),
        help: help.map(str::to_owned),
    }
}

/// Diagnostics being collected, with what is needed to place them.
struct Findings<'a> {
    positions: &'a Positions,
    source: &'a str,
    list: Vec<Diagnostic>,
}

impl Findings<'_> {
    fn error_at(&mut self, pos: Pos, path: &str, message: &str, help: &str) {
        self.list
            .push(diagnostic(Severity::Error, pos, path, message, Some(help)));
    }
    /// An error at the value of `path`.
    fn error(&mut self, path: &str, message: &str, help: &str) {
        let pos = self.positions.value(path);
        self.error_at(pos, path, message, help);
    }
    /// An error at the key of `path` (a missing value, an entry as a whole).
    fn error_key(&mut self, path: &str, message: &str, help: &str) {
        let pos = self.positions.key(path);
        self.error_at(pos, path, message, help);
    }
    fn warning(&mut self, path: &str, message: &str, help: Option<&str>) {
        let pos = self.positions.value(path);
        self.list
            .push(diagnostic(Severity::Warning, pos, path, message, help));
    }
    /// The place of the character `expected` at `offset` characters into the scalar at
    /// `path`, when the scalar is written on one line; else the scalar's start.
    fn char_pos(&self, path: &str, offset: usize, expected: char) -> Pos {
        let start = self.positions.value(path);
        let shifted = Pos {
            line: start.line,
            column: start.column + offset + usize::from(self.positions.quoted(path)),
        };
        let found = self
            .source
            .lines()
            .nth(start.line.saturating_sub(1))
            .and_then(|l| l.chars().nth(shifted.column - 1));
        if found == Some(expected) {
            shifted
        } else {
            start
        }
    }
}

#[cfg(test)]
mod tests;
