//! YAML to JSON values, keeping where every node stands in the file.
//!
//! We parse with `yaml-rust2` (maintained, YAML 1.2, reports line and column for every event)
//! instead of the archived `serde_yaml`: the config is first turned into a `serde_json::Value`
//! plus a [`Positions`] index (JSON pointer → line:column of the key and of the value), so that
//! schema validation and semantic checks can report *all* errors of a file with `file:line:column`,
//! and only then deserialized into the typed model.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::Yaml;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

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

/// Where each node of the document stands, by JSON pointer (`/bindings/0/name`).
#[derive(Debug, Default, Clone)]
pub struct Positions {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
}

impl Positions {
    /// Where the value at `pointer` starts; for a missing node, the nearest ancestor's position.
    #[must_use]
    pub fn value(&self, pointer: &str) -> Pos {
        let mut pointer = pointer;
        loop {
            if let Some(pos) = self.values.get(pointer) {
                return *pos;
            }
            match pointer.rfind('/') {
                Some(idx) => pointer = &pointer[..idx],
                None => return Pos { line: 1, column: 1 },
            }
        }
    }

    /// Where the key of the mapping entry at `pointer` stands (else where its value does).
    #[must_use]
    pub fn key(&self, pointer: &str) -> Pos {
        self.keys
            .get(pointer)
            .copied()
            .unwrap_or_else(|| self.value(pointer))
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
}

/// Parse one YAML document into a JSON value and the positions of its nodes.
///
/// Duplicate keys are reported as errors (YAML forbids them; silently keeping one is how
/// a config loses a setting).
///
/// # Errors
/// The text is not YAML, holds more than one document, or repeats a key.
pub fn parse(text: &str) -> Result<(Value, Positions), SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, true).map_err(|err| SyntaxError {
        pos: Pos::from(*err.marker()),
        message: describe_scan_error(err.info()),
    })?;
    if let Some(err) = builder.error {
        return Err(err);
    }
    if builder.documents > 1 {
        return Err(SyntaxError {
            pos: builder.second_document.unwrap_or_default(),
            message: "more than one YAML document (`---`) in the file; put everything in one"
                .to_owned(),
        });
    }
    Ok((builder.root.unwrap_or(Value::Null), builder.positions))
}

/// Parse YAML (or JSON, which is YAML) into a JSON value, without positions.
///
/// # Errors
/// As [`parse`].
pub fn parse_value(text: &str) -> Result<Value, SyntaxError> {
    parse(text).map(|(value, _)| value)
}

fn describe_scan_error(info: &str) -> String {
    // yaml-rust2's messages are terse parser states; say them in words a user can act on.
    let hint = if info.contains("while parsing a flow sequence") {
        " (a `[` list is not closed by `]`)"
    } else if info.contains("while parsing a flow mapping") {
        " (a `{` mapping is not closed by `}`)"
    } else if info.contains("mapping values are not allowed") {
        " (is a `:` missing a space after it, or is the indentation off?)"
    } else if info.contains("did not find expected key") || info.contains("did not find expected") {
        " (check the indentation of this line and the one above)"
    } else if info.contains("found character that cannot start any token") {
        " (tabs cannot indent YAML; use spaces)"
    } else if info.contains("unclosed quoted") || info.contains("did not find expected '") {
        " (a quote is not closed)"
    } else {
        ""
    };
    format!("YAML syntax error: {info}{hint}")
}

enum Frame {
    Seq {
        pointer: String,
        items: Vec<Value>,
        anchor: usize,
    },
    Map {
        pointer: String,
        map: Map<String, Value>,
        pending_key: Option<(String, Pos)>,
        anchor: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Value>,
    positions: Positions,
    anchors: HashMap<usize, Value>,
    documents: usize,
    second_document: Option<Pos>,
    error: Option<SyntaxError>,
}

impl Builder {
    /// The pointer of the node about to be produced.
    fn next_pointer(&self) -> String {
        match self.stack.last() {
            None => String::new(),
            Some(Frame::Seq { pointer, items, .. }) => format!("{pointer}/{}", items.len()),
            Some(Frame::Map {
                pointer,
                pending_key: Some((key, _)),
                ..
            }) => format!("{pointer}/{}", escape(key)),
            Some(Frame::Map { pointer, .. }) => pointer.clone(),
        }
    }

    fn expecting_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::Map {
                pending_key: None,
                ..
            })
        )
    }

    fn push_value(&mut self, value: Value, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map {
                map, pending_key, ..
            }) => {
                if let Some((key, _)) = pending_key.take() {
                    map.insert(key, value);
                }
            }
        }
    }

    fn set_key(&mut self, key: String, pos: Pos) {
        let Some(Frame::Map {
            pointer,
            map,
            pending_key,
            ..
        }) = self.stack.last_mut()
        else {
            return;
        };
        if map.is_empty() {
            // Block mappings report their start after the first key; the first key is where a
            // reader sees the mapping begin.
            let start = self.positions.values.entry(pointer.clone()).or_insert(pos);
            *start = (*start).min(pos);
        }
        let child = format!("{pointer}/{}", escape(&key));
        if map.contains_key(&key) && self.error.is_none() {
            self.error = Some(SyntaxError {
                pos,
                message: format!("duplicate key `{key}`; each key may appear once in a mapping"),
            });
        }
        self.positions.keys.insert(child, pos);
        *pending_key = Some((key, pos));
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let pos = Pos::from(mark);
        match event {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents == 2 {
                    self.second_document = Some(pos);
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let value = resolve_scalar(&text, style, tag.as_ref().map(|t| t.suffix.as_str()));
                if self.expecting_key() {
                    let key = match value {
                        Value::String(s) => s,
                        Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    self.set_key(key, pos);
                } else {
                    let pointer = self.next_pointer();
                    self.positions.values.insert(pointer, pos);
                    self.push_value(value, anchor);
                }
            }
            Event::Alias(anchor) => {
                let value = self.anchors.get(&anchor).cloned().unwrap_or(Value::Null);
                if self.expecting_key() {
                    let key = match value {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    self.set_key(key, pos);
                } else {
                    let pointer = self.next_pointer();
                    self.positions.values.insert(pointer, pos);
                    self.push_value(value, 0);
                }
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if self.expecting_key() {
                    if self.error.is_none() {
                        self.error = Some(SyntaxError {
                            pos,
                            message: "a mapping key must be a plain value, not a list or mapping"
                                .to_owned(),
                        });
                    }
                    self.set_key(String::from("?"), pos);
                }
                let pointer = self.next_pointer();
                self.positions.values.insert(pointer.clone(), pos);
                if matches!(event, Event::SequenceStart(..)) {
                    self.stack.push(Frame::Seq {
                        pointer,
                        items: Vec::new(),
                        anchor,
                    });
                } else {
                    self.stack.push(Frame::Map {
                        pointer,
                        map: Map::new(),
                        pending_key: None,
                        anchor,
                    });
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { items, anchor, .. }) => (Value::Array(items), anchor),
                    Some(Frame::Map { map, anchor, .. }) => (Value::Object(map), anchor),
                    None => return,
                };
                self.push_value(value, anchor);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
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
