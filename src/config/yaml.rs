//! YAML to JSON values, keeping where every node stands in the file.
//!
//! We parse with `yaml-rust2` (maintained, YAML 1.2, reports line and column for every event)
//! instead of the archived `serde_yaml`: the config is first turned into a `serde_json::Value`
//! plus a [`Positions`] index (JSON pointer → line:column of the key and of the value), so that
//! schema validation and semantic checks can report *all* errors of a file with `file:line:column`,
//! and only then deserialized into the typed model.
//!
//! # Limits
//! Any input is read in time and memory linear in its size:
//! - lists and mappings nest at most [`MAX_DEPTH`] levels (the parser's own recursion is not
//!   used: events are pulled one by one);
//! - anchors and aliases (`&name` / `*name`) may add at most [`alias_budget`] nodes and
//!   characters in total (the larger of [`ALIAS_BUDGET_FLOOR`] and four times the file's
//!   length), which defeats "billion laughs" files;
//! - the position index is a tree parallel to the document, not a map of full pointers.
//!
//! A UTF-8 byte-order mark is skipped; a key holding an invisible character is an error.

mod builder;
mod positions;

use serde_json::{Number, Value};
use yaml_rust2::Yaml;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, ScanError, TScalarStyle};

pub use builder::is_invisible;
pub use positions::Positions;

/// How deep lists and mappings may nest.
pub const MAX_DEPTH: usize = 64;

/// The least that aliases may expand to, in nodes plus characters.
pub const ALIAS_BUDGET_FLOOR: usize = 250_000;

/// How much anchors and aliases may expand to in a file of `len` bytes.
#[must_use]
pub fn alias_budget(len: usize) -> usize {
    ALIAS_BUDGET_FLOOR.max(len.saturating_mul(4))
}

/// A place in the file: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl From<Marker> for Pos {
    fn from(mark: Marker) -> Self {
        Self {
            line: mark.line().max(1),
            column: mark.col() + 1,
        }
    }
}

/// A YAML document that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (line {}, column {})", pos.line, pos.column)]
pub struct SyntaxError {
    /// Where.
    pub pos: Pos,
    /// What.
    pub message: String,
    /// How to fix it.
    pub help: String,
}

impl SyntaxError {
    fn new(pos: Pos, message: &str, help: &str) -> Self {
        Self {
            pos,
            message: message.to_owned(),
            help: help.to_owned(),
        }
    }
}

/// A document as far as it could be read.
#[derive(Debug, Default)]
pub struct Document {
    /// The value, when the whole document could be read (else `None`).
    pub value: Option<Value>,
    /// Where each node stands.
    pub positions: Positions,
    /// Every error found, in the order found; when `value` is `None` the last one stopped reading.
    pub errors: Vec<SyntaxError>,
}

/// Read one YAML document: its value, the positions of its nodes, and every error.
///
/// Repeated keys and invisible characters in keys are reported and reading goes on (the first
/// of two repeated keys is kept); a syntax error, a second document or a passed limit stop it.
#[must_use]
pub fn parse_document(text: &str) -> Document {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut builder = builder::Builder::new(text, alias_budget(text.len()));
    let mut parser = Parser::new_from_str(text);
    let mut complete = true;
    loop {
        match parser.next_token() {
            Ok((Event::StreamEnd, _)) => break,
            Ok((event, mark)) => {
                if let Err(err) = builder.on(event, mark) {
                    builder.errors.push(err);
                    complete = false;
                    break;
                }
            }
            Err(err) => {
                builder.errors.push(describe_scan_error(text, &err));
                complete = false;
                break;
            }
        }
    }
    Document {
        value: complete.then(|| builder.root.take().unwrap_or(Value::Null)),
        positions: builder.positions,
        errors: builder.errors,
    }
}

/// Parse one YAML document into a JSON value and the positions of its nodes.
///
/// # Errors
/// The first error of [`parse_document`]: the text is not YAML, holds more than one document,
/// repeats a key or passes a limit.
pub fn parse(text: &str) -> Result<(Value, Positions), SyntaxError> {
    let mut document = parse_document(text);
    match (document.value, document.errors.is_empty()) {
        (Some(value), true) => Ok((value, document.positions)),
        _ => Err(document.errors.swap_remove(0)),
    }
}

/// Parse YAML (or JSON, which is YAML) into a JSON value, without positions.
///
/// # Errors
/// As [`parse`].
pub fn parse_value(text: &str) -> Result<Value, SyntaxError> {
    parse(text).map(|(value, _)| value)
}

/// A value as a message shows it: invisible characters written as `<U+200B>`, and when long,
/// its first 40 characters, `…`, its last 10.
#[must_use]
pub fn shorten(text: &str) -> String {
    const KEEP: usize = 40;
    let count = text.chars().count();
    let visible = |s: &mut String, c: char| {
        if is_invisible(c) {
            s.push_str(&format!("<U+{:04X}>", u32::from(c)));
        } else {
            s.push(c);
        }
    };
    let mut out = String::new();
    if count <= KEEP + 20 {
        text.chars().for_each(|c| visible(&mut out, c));
    } else {
        text.chars().take(KEEP).for_each(|c| visible(&mut out, c));
        out.push('…');
        text.chars()
            .skip(count - 10)
            .for_each(|c| visible(&mut out, c));
    }
    out
}

fn describe_scan_error(text: &str, err: &ScanError) -> SyntaxError {
    let info = err.info();
    let mut pos = Pos::from(*err.marker());
    // yaml-rust2's messages are terse parser states; say them in words a user can act on.
    let help = if info.contains("tab") {
        if let Some(tab) = find_tab(text, err.marker()) {
            pos = tab;
        }
        "YAML is indented with spaces only; replace the tab with spaces"
    } else if info.contains("flow sequence") || info.contains("flow mapping") {
        if let Some(open) = unclosed_bracket(text, err.marker()) {
            pos = open;
        }
        if info.contains("flow sequence") {
            "a `[` list is not closed by `]`, or its items are not separated by `,`"
        } else {
            "a `{` mapping is not closed by `}`, its entries are not separated by `,`, or a value holding `: ` or `,` is not quoted"
        }
    } else if info.contains("recursion limit") {
        "`[` and `{` nest too deep; a config needs only a few levels"
    } else if info.contains("mapping values are not allowed") {
        "is a `:` missing a space after it, is a value holding `: ` not quoted, or is the indentation off?"
    } else if info.contains("quoted scalar") {
        "a quote is not closed, or a `\\` escape in double quotes is not valid; use single quotes for text with `\\`"
    } else if info.contains("block sequence entries") {
        "a `- ` item stands where a `key: value` is expected; check the indentation"
    } else if info.contains("simple key expect ':'") {
        "a key must end with `:` on its own line, within 1,024 characters"
    } else if info.contains("did not find expected key") || info.contains("simple key") {
        "check the indentation of this line and the one above: keys of one mapping start in the same column"
    } else if info.contains("did not find expected '-'") {
        "items of one list start with `- ` in the same column; check the indentation"
    } else if info.contains("anchor") || info.contains("alias") {
        "an alias `*name` must follow its anchor `&name`, and each anchor name is used once"
    } else if info.contains("unexpected character") || info.contains("cannot start any token") {
        "this character cannot start a value; quote the value (`'…'`)"
    } else if info.contains("comments must be separated") {
        "put a space before `#`, or quote the value if `#` is part of it"
    } else if info.contains("indentation") {
        "check the indentation: nested lines go further right than their parent, with spaces"
    } else {
        "check the YAML syntax around this place; quoting a value with special characters often helps"
    };
    SyntaxError {
        pos,
        message: format!("YAML syntax error: {info}"),
        help: help.to_owned(),
    }
}

/// When the parser ran to the end of the text looking for a `]` or `}`: the bracket left open
/// (quotes and comments skipped).
fn unclosed_bracket(text: &str, mark: &Marker) -> Option<Pos> {
    let byte = text
        .char_indices()
        .nth(mark.index())
        .map_or(text.len(), |(b, _)| b);
    let rest_is_blank = text[byte..]
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
    if !rest_is_blank {
        return None;
    }
    let mut open: Vec<Pos> = Vec::new();
    let mut quote: Option<char> = None;
    for (i, line) in text.lines().enumerate() {
        for (col, c) in line.chars().enumerate() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '#') => break,
                (None, '[' | '{') => open.push(Pos {
                    line: i + 1,
                    column: col + 1,
                }),
                (None, ']' | '}') => {
                    open.pop();
                }
                _ => {}
            }
        }
    }
    open.pop()
}

/// The tab a tab error is about: the first tab of the indentation from the line before the
/// error (the parser often notices it late), else the first tab from there.
fn find_tab(text: &str, mark: &Marker) -> Option<Pos> {
    let first_line = mark.line().saturating_sub(1).max(1);
    let mut candidates = text
        .lines()
        .enumerate()
        .skip(first_line - 1)
        .take(3)
        .flat_map(|(i, line)| {
            let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
            line.char_indices()
                .filter(|(_, c)| *c == '\t')
                .map(move |(b, _)| (b < indent, i, line, b))
        });
    let found = candidates
        .clone()
        .find(|(in_indent, ..)| *in_indent)
        .or_else(|| candidates.next());
    found.map(|(_, i, line, byte)| Pos {
        line: i + 1,
        column: line[..byte].chars().count() + 1,
    })
}

fn resolve_scalar(text: &str, style: TScalarStyle, tag: Option<&str>) -> Value {
    if style != TScalarStyle::Plain || tag == Some("str") {
        return Value::String(text.to_owned());
    }
    match Yaml::from_str(text) {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Integer(i) => Value::Number(Number::from(i)),
        Yaml::Real(r) => r
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map_or_else(|| Value::String(r.clone()), Value::Number),
        _ => Value::String(text.to_owned()),
    }
}

/// Escape a key for a JSON pointer (RFC 6901).
#[must_use]
pub fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_and_positions_of_nested_nodes() {
        let text = "version: 1\nbindings:\n  - name: news\n    prune_members: true\n    max_removals: 10%\n";
        let (value, positions) = parse(text).unwrap();
        assert_eq!(
            value,
            json!({"version": 1, "bindings": [{"name": "news", "prune_members": true, "max_removals": "10%"}]})
        );
        assert_eq!(
            positions.value("/bindings/0/name"),
            Pos {
                line: 3,
                column: 11
            }
        );
        assert_eq!(
            positions.key("/bindings/0/prune_members"),
            Pos { line: 4, column: 5 }
        );
        // A missing node falls back to its nearest ancestor.
        assert_eq!(
            positions.value("/bindings/0/nothing"),
            Pos { line: 3, column: 5 }
        );
    }

    #[test]
    fn quoted_scalars_stay_strings() {
        let (value, _) = parse("a: '1'\nb: \"true\"\nc: 1.5\nd: ~\ne: !!str 7\n").unwrap();
        assert_eq!(
            value,
            json!({"a": "1", "b": "true", "c": 1.5, "d": null, "e": "7"})
        );
    }

    #[test]
    fn duplicate_keys_are_errors_with_their_position() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.pos, Pos { line: 3, column: 1 });
        assert!(err.message.contains("duplicate key `a`"), "{}", err.message);
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let err = parse("a: 1\nb: [1, 2\n").unwrap_err();
        assert!(err.pos.line >= 2, "{err:?}");
        assert!(
            err.message.starts_with("YAML syntax error"),
            "{}",
            err.message
        );
    }

    #[test]
    fn anchors_and_aliases_are_expanded() {
        let (value, _) = parse("x: &t {a: 1}\ny: *t\n").unwrap();
        assert_eq!(value, json!({"x": {"a": 1}, "y": {"a": 1}}));
    }
}
