//! `fields` / `exclude_fields`: comma-separated dot paths that pick or drop parts of a response
//! (`fields=members.id,members.email_address,total_items`). A path keeps or drops the whole
//! subtree below it; inside arrays a path applies to every element. The two parameters are
//! mutually exclusive. Pure logic: renderers ask [`Projection::child`] before they build a value,
//! so a member page with a narrow `fields` costs little to render.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A set of dot paths as a tree; an empty node means "this whole subtree".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree(BTreeMap<String, Tree>);

impl Tree {
    /// Parse `a.b,c` into a tree. Empty segments are ignored.
    #[must_use]
    pub fn parse(text: &str) -> Self {
        let mut root = Tree::default();
        for path in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut node = &mut root;
            let mut whole = false;
            for segment in path.split('.').filter(|s| !s.is_empty()) {
                if whole {
                    break;
                }
                let existed_as_leaf = node.0.get(segment).is_some_and(|n| n.0.is_empty());
                node = node.0.entry(segment.to_owned()).or_default();
                // A shorter path already asked for the whole subtree: keep it whole.
                whole = existed_as_leaf;
            }
            if !whole {
                node.0.clear();
            }
        }
        root
    }

    fn is_leaf(&self) -> bool {
        self.0.is_empty()
    }
}

/// What of a value to render.
#[derive(Debug, Clone, Copy, Default)]
pub struct Projection<'a> {
    include: Option<&'a Tree>,
    exclude: Option<&'a Tree>,
}

impl<'a> Projection<'a> {
    /// Everything.
    #[must_use]
    pub fn all() -> Self {
        Self::default()
    }

    /// From the parsed parameters (at most one of them is `Some`).
    #[must_use]
    pub fn new(include: Option<&'a Tree>, exclude: Option<&'a Tree>) -> Self {
        Self { include, exclude }
    }

    /// The projection for `key` of an object, or `None` when `key` is not rendered at all.
    #[must_use]
    pub fn child(&self, key: &str) -> Option<Projection<'a>> {
        let include = match self.include {
            None => None,
            Some(tree) => match tree.0.get(key) {
                None => return None,
                Some(sub) if sub.is_leaf() => None,
                Some(sub) => Some(sub),
            },
        };
        let exclude = match self.exclude {
            None => None,
            Some(tree) => match tree.0.get(key) {
                None => None,
                Some(sub) if sub.is_leaf() => return None,
                Some(sub) => Some(sub),
            },
        };
        Some(Projection { include, exclude })
    }

    /// Whether this projection keeps everything below it.
    #[must_use]
    pub fn is_all(&self) -> bool {
        self.include.is_none() && self.exclude.is_none()
    }

    /// Apply to a value already built.
    #[must_use]
    pub fn apply(&self, value: Value) -> Value {
        if self.is_all() {
            return value;
        }
        match value {
            Value::Object(map) => Value::Object(self.apply_map(map)),
            Value::Array(items) => Value::Array(items.into_iter().map(|v| self.apply(v)).collect()),
            other => other,
        }
    }

    fn apply_map(&self, map: Map<String, Value>) -> Map<String, Value> {
        map.into_iter()
            .filter_map(|(key, value)| self.child(&key).map(|p| (key, p.apply(value))))
            .collect()
    }
}

/// Put `key` into `map` if the projection keeps it, building the value only then.
pub fn put(
    map: &mut Map<String, Value>,
    proj: Projection<'_>,
    key: &str,
    make: impl FnOnce() -> Value,
) {
    if let Some(sub) = proj.child(key) {
        map.insert(key.to_owned(), sub.apply(make()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "members": [
                {"id": "a", "email_address": "a@x", "merge_fields": {"FNAME": "A", "LNAME": "B"}, "_links": []},
                {"id": "b", "email_address": "b@x", "merge_fields": {"FNAME": "C", "LNAME": "D"}, "_links": []}
            ],
            "total_items": 2,
            "_links": []
        })
    }

    #[test]
    fn fields_keep_only_the_named_paths_in_every_array_element() {
        let tree = Tree::parse("members.id,members.merge_fields.FNAME,total_items");
        let out = Projection::new(Some(&tree), None).apply(doc());
        assert_eq!(
            out,
            json!({
                "members": [
                    {"id": "a", "merge_fields": {"FNAME": "A"}},
                    {"id": "b", "merge_fields": {"FNAME": "C"}}
                ],
                "total_items": 2
            })
        );
    }

    #[test]
    fn exclude_fields_drop_the_named_paths() {
        let tree = Tree::parse("members._links,members.merge_fields.LNAME,_links");
        let out = Projection::new(None, Some(&tree)).apply(doc());
        assert_eq!(
            out,
            json!({
                "members": [
                    {"id": "a", "email_address": "a@x", "merge_fields": {"FNAME": "A"}},
                    {"id": "b", "email_address": "b@x", "merge_fields": {"FNAME": "C"}}
                ],
                "total_items": 2
            })
        );
    }

    #[test]
    fn a_shorter_path_keeps_the_whole_subtree_whatever_the_order() {
        let one = Tree::parse("members.merge_fields.FNAME,members.merge_fields");
        let two = Tree::parse("members.merge_fields,members.merge_fields.FNAME");
        assert_eq!(one, two);
        let out = Projection::new(Some(&one), None).apply(doc());
        assert_eq!(out["members"][0]["merge_fields"]["LNAME"], "B");
    }

    #[test]
    fn no_parameters_keep_everything() {
        assert_eq!(Projection::all().apply(doc()), doc());
    }
}
