//! Turns the parser's events into a JSON value and its [`Positions`], within the limits of
//! [`super::MAX_DEPTH`] and the alias budget, collecting the errors it can continue past
//! (repeated keys, invisible characters in keys) and stopping at those it cannot.

use std::collections::HashMap;

use serde_json::{Map, Value};
use yaml_rust2::parser::Event;
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::positions::{Positions, Slot};
use super::{MAX_DEPTH, Pos, SyntaxError, resolve_scalar};

enum Kind {
    Seq(Vec<Value>),
    Map {
        map: Map<String, Value>,
        pending: Option<Pending>,
    },
}

struct Pending {
    key: String,
    pos: Pos,
    duplicate: bool,
}

struct Frame {
    node: usize,
    kind: Kind,
    anchor: usize,
    weight: usize,
}

/// Builds the document; [`Builder::on`] returns an error when reading must stop.
pub(super) struct Builder<'t> {
    text: &'t str,
    stack: Vec<Frame>,
    pub root: Option<Value>,
    pub positions: Positions,
    pub errors: Vec<SyntaxError>,
    anchors: HashMap<usize, (Value, usize)>,
    budget: usize,
    used: usize,
    documents: usize,
    /// A cursor from char index to byte offset (markers count chars; they mostly move forward).
    cursor: (usize, usize),
}

impl<'t> Builder<'t> {
    pub fn new(text: &'t str, budget: usize) -> Self {
        Self {
            text,
            stack: Vec::new(),
            root: None,
            positions: Positions::default(),
            errors: Vec::new(),
            anchors: HashMap::new(),
            budget,
            used: 0,
            documents: 0,
            cursor: (0, 0),
        }
    }

    /// Take one event; `Err` stops reading.
    pub fn on(&mut self, event: Event, mark: Marker) -> Result<(), SyntaxError> {
        let pos = Pos::from(mark);
        match event {
            Event::DocumentStart if self.documents == 1 => {
                return Err(SyntaxError::new(
                    pos,
                    "more than one YAML document (`---`) in the file",
                    "put everything in one document: a config file holds one mapping",
                ));
            }
            Event::DocumentStart => self.documents += 1,
            Event::Scalar(text, style, anchor, tag) => {
                let plain = style == TScalarStyle::Plain;
                let value = resolve_scalar(&text, style, tag.as_ref().map(|t| t.suffix.as_str()));
                if self.expecting_key() {
                    let key = key_text(value);
                    self.set_key(key, pos, mark, plain);
                } else {
                    // An empty value (`key:` and nothing) is reported by the parser at the next
                    // token; it belongs to its key.
                    let empty = plain && text.is_empty();
                    let at = if empty {
                        self.empty_pos(mark).unwrap_or(pos)
                    } else {
                        pos
                    };
                    let id = self.add_node(at);
                    let raw = (plain && !value.is_string() && !empty).then_some(text.as_str());
                    self.positions.set_scalar(id, raw, !plain);
                    let weight = 1 + text.len();
                    self.push_value(value, anchor, weight)?;
                }
            }
            Event::Alias(anchor) => {
                let (value, weight) = self
                    .anchors
                    .get(&anchor)
                    .cloned()
                    .unwrap_or((Value::Null, 1));
                self.charge(weight, pos)?;
                if self.expecting_key() {
                    self.set_key(key_text(value), pos, mark, false);
                } else {
                    self.add_node(pos);
                    self.push_value(value, 0, weight)?;
                }
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if self.expecting_key() {
                    return Err(SyntaxError::new(
                        pos,
                        "a mapping key must be a plain value, not a list or mapping",
                        "write the key as a word followed by `:`, like `name:`",
                    ));
                }
                if self.stack.len() >= MAX_DEPTH {
                    return Err(SyntaxError::new(
                        pos,
                        &format!(
                            "the file nests lists and mappings more than {MAX_DEPTH} levels deep"
                        ),
                        "a config nests at most a few levels (bindings → fields → map → column); check the indentation",
                    ));
                }
                let node = self.add_node(pos);
                let kind = if matches!(event, Event::SequenceStart(..)) {
                    Kind::Seq(Vec::new())
                } else {
                    Kind::Map {
                        map: Map::new(),
                        pending: None,
                    }
                };
                self.stack.push(Frame {
                    node,
                    kind,
                    anchor,
                    weight: 1,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(frame) = self.stack.pop() {
                    let value = match frame.kind {
                        Kind::Seq(items) => Value::Array(items),
                        Kind::Map { map, .. } => Value::Object(map),
                    };
                    self.push_value(value, frame.anchor, frame.weight)?;
                }
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
        Ok(())
    }

    fn charge(&mut self, weight: usize, pos: Pos) -> Result<(), SyntaxError> {
        self.used = self.used.saturating_add(weight);
        if self.used > self.budget {
            return Err(SyntaxError::new(
                pos,
                &format!(
                    "anchors and aliases (`&name`, `*name`) expand to more than {} nodes and characters",
                    self.budget
                ),
                "write the repeated values out, or alias fewer of them; expansion is limited so that a small file cannot fill the memory (\"billion laughs\")",
            ));
        }
        Ok(())
    }

    fn expecting_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame {
                kind: Kind::Map { pending: None, .. },
                ..
            })
        )
    }

    /// Where the slot about to be filled stands: the pending key, or the enclosing collection.
    fn slot_pos(&self) -> Option<Pos> {
        let frame = self.stack.last()?;
        match &frame.kind {
            Kind::Map {
                pending: Some(p), ..
            } => Some(p.pos),
            _ => self.positions.of(frame.node),
        }
    }

    /// Where an empty value belongs: its key, or the `-` of its list item (searched back from
    /// the next token over a bounded stretch of blanks), or the enclosing collection.
    fn empty_pos(&mut self, mark: Marker) -> Option<Pos> {
        let frame = self.stack.last()?;
        if let Kind::Map {
            pending: Some(p), ..
        } = &frame.kind
        {
            return Some(p.pos);
        }
        let fallback = self.positions.of(frame.node);
        let byte = self.byte_of(mark.index())?;
        // At the end of the text the parser's line may count a line break that is not there.
        let mut line = if byte >= self.text.len() {
            self.text.matches('\n').count() + 1
        } else {
            mark.line()
        };
        let mut end = byte;
        let mut dash = None;
        // The parser reports an empty item at the next token; when that token is on a line of
        // its own after a `- `, that `-` starts the next item, not this one.
        let mut next_item = self
            .text
            .get(byte..)
            .and_then(|t| t.chars().next())
            .is_some_and(|c| !c.is_whitespace());
        // Walk back over blanks and whole comment lines, at most a few lines' worth.
        for _ in 0..64 {
            let before = self.text.get(..end).unwrap_or_default();
            let trimmed = before.trim_end_matches([' ', '\t', '\r']);
            let line_start = trimmed.rfind('\n').map_or(0, |i| i + 1);
            let rest = &trimmed[line_start..];
            if trimmed.ends_with('\n') {
                end = trimmed.len() - 1;
                line -= 1;
                next_item = false;
            } else if rest.trim_start().starts_with('#') && line_start > 0 {
                end = line_start - 1;
                line -= 1;
            } else if trimmed.ends_with('-') && next_item {
                end = trimmed.len() - 1;
                next_item = false;
                continue;
            } else if trimmed.ends_with('-') {
                dash = Some(trimmed.len() - 1);
                break;
            } else {
                break;
            }
        }
        let Some(dash) = dash else { return fallback };
        let line_start = self.text[..dash].rfind('\n').map_or(0, |i| i + 1);
        Some(Pos {
            line: line.max(1),
            column: self.text[line_start..dash].chars().count() + 1,
        })
    }

    fn add_node(&mut self, pos: Pos) -> usize {
        let Some(frame) = self.stack.last() else {
            return self.positions.add(None, Slot::Root, pos);
        };
        let parent = Some(frame.node);
        let slot = match &frame.kind {
            Kind::Seq(_) => Slot::Item,
            Kind::Map {
                pending: Some(p), ..
            } if !p.duplicate => Slot::Key(&p.key, p.pos),
            Kind::Map { .. } => Slot::Detached,
        };
        self.positions.add(parent, slot, pos)
    }

    fn push_value(
        &mut self,
        value: Value,
        anchor: usize,
        weight: usize,
    ) -> Result<(), SyntaxError> {
        if anchor > 0 {
            // Keeping a copy for aliases costs as much as expanding one.
            let pos = self.slot_pos().unwrap_or_default();
            self.charge(weight, pos)?;
            self.anchors.insert(anchor, (value.clone(), weight));
        }
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(frame) => {
                frame.weight = frame.weight.saturating_add(weight);
                match &mut frame.kind {
                    Kind::Seq(items) => items.push(value),
                    Kind::Map { map, pending } => {
                        if let Some(p) = pending.take() {
                            frame.weight = frame.weight.saturating_add(p.key.len());
                            if !p.duplicate {
                                map.insert(p.key, value);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn set_key(&mut self, key: String, pos: Pos, mark: Marker, plain: bool) {
        if let Some(err) = self.invisible_in_key(&key, pos, mark, plain) {
            self.errors.push(err);
        }
        let Some(frame) = self.stack.last_mut() else {
            return;
        };
        let node = frame.node;
        let Kind::Map { map, pending } = &mut frame.kind else {
            return;
        };
        let first = map.is_empty();
        let duplicate = map.contains_key(&key);
        *pending = Some(Pending {
            key: key.clone(),
            pos,
            duplicate,
        });
        if first {
            // Block mappings report their start after the first key; the first key is where a
            // reader sees the mapping begin.
            self.positions.pull_start(node, pos);
        }
        if duplicate {
            self.errors.push(SyntaxError::new(
                pos,
                &format!(
                    "duplicate key `{}`: each key may appear once in a mapping",
                    super::shorten(&key)
                ),
                "delete one of the two; YAML keeps only one of them, so one setting would be lost",
            ));
        }
    }

    fn invisible_in_key(
        &mut self,
        key: &str,
        pos: Pos,
        mark: Marker,
        plain: bool,
    ) -> Option<SyntaxError> {
        let (index, c) = key.chars().enumerate().find(|(_, c)| is_invisible(*c))?;
        // For a plain key on one line, point at the character itself.
        let at = if plain && self.char_at(mark.index() + index) == Some(c) {
            Pos {
                line: pos.line,
                column: pos.column + index,
            }
        } else {
            pos
        };
        Some(SyntaxError::new(
            at,
            &format!(
                "the key `{}` contains an invisible character (U+{:04X})",
                super::shorten(key),
                u32::from(c)
            ),
            "delete the key and type it again; invisible characters often come with copied text",
        ))
    }

    /// The character at char index `index` of the text.
    fn char_at(&mut self, index: usize) -> Option<char> {
        let byte = self.byte_of(index)?;
        self.text.get(byte..)?.chars().next()
    }

    /// The byte offset of char index `index` (the text's length just past its end).
    fn byte_of(&mut self, index: usize) -> Option<usize> {
        let (mut chars, mut bytes) = self.cursor;
        if index < chars {
            (chars, bytes) = (0, 0);
        }
        let mut iter = self.text.get(bytes..)?.char_indices();
        for _ in chars..index {
            iter.next()?;
        }
        let offset = iter.next().map_or(self.text.len(), |(o, _)| bytes + o);
        self.cursor = (index, offset);
        Some(offset)
    }
}

/// A key as text (YAML allows numbers and booleans as keys; the config's keys are words).
fn key_text(value: Value) -> String {
    match value {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Characters that take no room on screen: controls and Unicode format characters.
#[must_use]
pub fn is_invisible(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
        )
}
