//! Where every node of a parsed document stands, looked up by JSON pointer.
//!
//! Stored as a tree parallel to the document (one small node per YAML node, children by key or
//! index) rather than as a map from full pointer strings, so that its size is linear in the file
//! however deep or long its keys are.

use std::collections::HashMap;

use super::Pos;

/// Where each node of the document stands, by JSON pointer (`/bindings/0/name`).
#[derive(Debug, Default, Clone)]
pub struct Positions {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
struct Node {
    value: Pos,
    key: Option<Pos>,
    /// The text as written, for a plain scalar read as a number, boolean or null.
    raw: Option<Box<str>>,
    quoted: bool,
    children: Children,
}

#[derive(Debug, Clone)]
enum Children {
    Leaf,
    Seq(Vec<usize>),
    Map(HashMap<Box<str>, usize>),
}

/// How a child hangs from its parent.
pub(super) enum Slot<'a> {
    Root,
    Item,
    Key(&'a str, Pos),
    /// A node that belongs to no pointer (the value of a repeated key).
    Detached,
}

impl Positions {
    /// Add a node under `parent`; returns its id.
    pub(super) fn add(&mut self, parent: Option<usize>, slot: Slot<'_>, pos: Pos) -> usize {
        let id = self.nodes.len();
        let key = match slot {
            Slot::Key(_, key_pos) => Some(key_pos),
            _ => None,
        };
        self.nodes.push(Node {
            value: pos,
            key,
            raw: None,
            quoted: false,
            children: Children::Leaf,
        });
        let Some(parent) = parent.and_then(|p| self.nodes.get_mut(p)) else {
            return id;
        };
        match slot {
            Slot::Item => {
                if let Children::Leaf = parent.children {
                    parent.children = Children::Seq(Vec::new());
                }
                if let Children::Seq(items) = &mut parent.children {
                    items.push(id);
                }
            }
            Slot::Key(name, _) => {
                if let Children::Leaf = parent.children {
                    parent.children = Children::Map(HashMap::new());
                }
                if let Children::Map(map) = &mut parent.children {
                    map.entry(name.into()).or_insert(id);
                }
            }
            Slot::Root | Slot::Detached => {}
        }
        id
    }

    /// Record how a scalar was written.
    pub(super) fn set_scalar(&mut self, id: usize, raw: Option<&str>, quoted: bool) {
        if let Some(node) = self.nodes.get_mut(id) {
            node.raw = raw.map(Into::into);
            node.quoted = quoted;
        }
    }

    /// Move the start of node `id` back to `pos` if it is earlier.
    pub(super) fn pull_start(&mut self, id: usize, pos: Pos) {
        if let Some(node) = self.nodes.get_mut(id) {
            node.value = node.value.min(pos);
        }
    }

    /// The position of node `id`.
    pub(super) fn of(&self, id: usize) -> Option<Pos> {
        self.nodes.get(id).map(|n| n.value)
    }

    /// The deepest node on the way to `pointer`, and whether it is the node itself.
    fn walk(&self, pointer: &str) -> Option<(&Node, bool)> {
        let mut node = self.nodes.first()?;
        for segment in pointer.split('/').skip(1) {
            let next = match &node.children {
                Children::Leaf => None,
                Children::Seq(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
                Children::Map(map) => {
                    if segment.contains('~') {
                        map.get(segment.replace("~1", "/").replace("~0", "~").as_str())
                    } else {
                        map.get(segment)
                    }
                }
            };
            match next.and_then(|id| self.nodes.get(*id)) {
                Some(child) => node = child,
                None => return Some((node, false)),
            }
        }
        Some((node, true))
    }

    /// Where the value at `pointer` starts; for a missing node, the nearest ancestor's position.
    #[must_use]
    pub fn value(&self, pointer: &str) -> Pos {
        self.walk(pointer)
            .map_or(Pos { line: 1, column: 1 }, |(node, _)| node.value)
    }

    /// Where the key of the mapping entry at `pointer` stands (else where its value does).
    #[must_use]
    pub fn key(&self, pointer: &str) -> Pos {
        match self.walk(pointer) {
            Some((node, true)) => node.key.unwrap_or(node.value),
            Some((node, false)) => node.value,
            None => Pos { line: 1, column: 1 },
        }
    }

    /// The text as written of a plain scalar that YAML read as a number, boolean or null.
    #[must_use]
    pub fn raw(&self, pointer: &str) -> Option<&str> {
        match self.walk(pointer) {
            Some((node, true)) => node.raw.as_deref(),
            _ => None,
        }
    }

    /// Whether the scalar at `pointer` was written in quotes.
    #[must_use]
    pub fn quoted(&self, pointer: &str) -> bool {
        matches!(self.walk(pointer), Some((node, true)) if node.quoted)
    }

    /// Whether `pointer` names a node of the document.
    #[must_use]
    pub fn contains(&self, pointer: &str) -> bool {
        matches!(self.walk(pointer), Some((_, true)))
    }
}
