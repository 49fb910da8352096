//! The columns a change writes, packed: one allocation per change however many columns it
//! writes, column names interned once per process ([`Column`]), values as tagged bytes.
//!
//! A first-sync plan of a million members holds about eleven million column values. As a
//! `Vec<FieldChange>` of owned strings they took about 1.1 KiB a member (a 64-byte entry and a
//! heap string per value); packed, about 200 bytes. [`Fields`] is serialized, deserialized and
//! described by its schema exactly as `Vec<FieldChange>`, so the plan format does not change.
//!
//! Encoding, per column in order: the column's id (LEB128), then the value before and the value
//! after, each a tag byte (`0` none, `1` false, `2` true, `3` text, `4` whole number, `5`
//! decimal) followed, for text and decimals, by a LEB128 length and the UTF-8 bytes, and for
//! whole numbers by the zig-zag LEB128 of the number. Only [`FieldsBuilder`] writes it.

use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError, RwLock};

use schemars::JsonSchema;
use serde::ser::SerializeStruct as _;
use serde::{Deserialize, Serialize};

use super::model::{FieldChange, Value};

/// Most distinct column names one process keeps. A real binding names a few dozen; a saved plan
/// naming more than this is refused rather than kept in memory.
pub const MAX_COLUMNS: usize = 65_536;

/// A column's logical name, interned: as cheap to copy as a number, compared, ordered, hashed
/// and shown as its name.
#[derive(Clone, Copy)]
pub struct Column {
    id: u32,
    name: &'static str,
}

#[derive(Default)]
struct Interner {
    names: Vec<&'static str>,
    ids: HashMap<&'static str, u32>,
}

/// The names of the first ids, readable without the lock: a packed field names its column by
/// id, and a million-member plan's JSON reads some eleven million of them (a binding names a
/// few dozen columns; later ids are read under the lock).
static FAST_NAMES: [OnceLock<&'static str>; 4096] = [const { OnceLock::new() }; 4096];

fn interner() -> &'static RwLock<Interner> {
    static INTERNER: OnceLock<RwLock<Interner>> = OnceLock::new();
    INTERNER.get_or_init(RwLock::default)
}

impl Column {
    /// The column named `name` (interned on first use). For names from the config and the
    /// tool's own; names read from a file go through [`Column::try_new`].
    #[must_use]
    pub fn new(name: &str) -> Self {
        Self::intern(name, usize::MAX).unwrap_or(Self { id: 0, name: "" })
    }

    /// The column named `name`, unless the process already keeps [`MAX_COLUMNS`] names.
    #[must_use]
    pub fn try_new(name: &str) -> Option<Self> {
        Self::intern(name, MAX_COLUMNS)
    }

    fn intern(name: &str, cap: usize) -> Option<Self> {
        let lock = interner();
        {
            let known = lock.read().unwrap_or_else(PoisonError::into_inner);
            if let Some((&name, &id)) = known.ids.get_key_value(name) {
                return Some(Self { id, name });
            }
        }
        let mut known = lock.write().unwrap_or_else(PoisonError::into_inner);
        if let Some((&name, &id)) = known.ids.get_key_value(name) {
            return Some(Self { id, name });
        }
        if known.names.len() >= cap {
            return None;
        }
        let id = u32::try_from(known.names.len()).ok()?;
        // Interned names live as long as the process: few, and bounded by MAX_COLUMNS for
        // names that come from files.
        let name: &'static str = Box::leak(name.to_owned().into_boxed_str());
        known.names.push(name);
        known.ids.insert(name, id);
        if let Some(slot) = FAST_NAMES.get(id as usize) {
            // set once, here, under the write lock
            let _ = slot.set(name);
        }
        Some(Self { id, name })
    }

    fn by_id(id: u32) -> Option<Self> {
        let index = usize::try_from(id).ok()?;
        if let Some(&name) = FAST_NAMES.get(index).and_then(OnceLock::get) {
            return Some(Self { id, name });
        }
        let known = interner().read().unwrap_or_else(PoisonError::into_inner);
        let name = *known.names.get(index)?;
        Some(Self { id, name })
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        self.name
    }
}

impl From<&str> for Column {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

impl std::ops::Deref for Column {
    type Target = str;
    fn deref(&self) -> &str {
        self.name
    }
}

impl PartialEq for Column {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for Column {}

impl PartialOrd for Column {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Column {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name.cmp(other.name)
    }
}

impl std::hash::Hash for Column {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

/// Consistent with `Eq`, `Ord` and `Hash` (one name, one id): a map keyed by columns is
/// searched by name.
impl std::borrow::Borrow<str> for Column {
    fn borrow(&self) -> &str {
        self.name
    }
}

impl PartialEq<str> for Column {
    fn eq(&self, other: &str) -> bool {
        self.name == other
    }
}

impl PartialEq<&str> for Column {
    fn eq(&self, other: &&str) -> bool {
        self.name == *other
    }
}

impl std::fmt::Display for Column {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl std::fmt::Debug for Column {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.name)
    }
}

impl Serialize for Column {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name)
    }
}

impl<'de> Deserialize<'de> for Column {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Self::try_new(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "more than {MAX_COLUMNS} distinct column names; a plan names a few dozen"
            ))
        })
    }
}

impl JsonSchema for Column {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        String::schema_name()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
    fn inline_schema() -> bool {
        true
    }
}

/// A column value, borrowed from where it is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueRef<'a> {
    /// A two-option column.
    Bool(bool),
    /// Text.
    Text(&'a str),
    /// A whole number.
    Number(i64),
    /// A decimal number, as JSON writes it.
    Decimal(&'a str),
}

impl ValueRef<'_> {
    /// The owned value.
    #[must_use]
    pub fn to_value(self) -> Value {
        match self {
            Self::Bool(b) => Value::Bool(b),
            Self::Text(t) => Value::Text(t.to_owned()),
            Self::Number(n) => Value::Number(n),
            Self::Decimal(d) => {
                serde_json::from_str(d).map_or_else(|_| Value::Text(d.to_owned()), Value::Decimal)
            }
        }
    }

    /// The text, for a text value.
    #[must_use]
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(t) => Some(t),
            _ => None,
        }
    }
}

/// As [`Value`] shows itself.
impl std::fmt::Display for ValueRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "{b}"),
            Self::Text(t) => write!(f, "{t:?}"),
            Self::Number(n) => write!(f, "{n}"),
            Self::Decimal(d) => f.write_str(d),
        }
    }
}

/// As [`Value`] serializes itself.
impl Serialize for ValueRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            Self::Bool(b) => serializer.serialize_bool(b),
            Self::Text(t) => serializer.serialize_str(t),
            Self::Number(n) => serializer.serialize_i64(n),
            Self::Decimal(_) => self.to_value().serialize(serializer),
        }
    }
}

impl PartialEq<Value> for ValueRef<'_> {
    fn eq(&self, other: &Value) -> bool {
        match (*self, other) {
            (Self::Bool(a), Value::Bool(b)) => a == *b,
            (Self::Text(a), Value::Text(b)) => a == b,
            (Self::Number(a), Value::Number(b)) => a == *b,
            (Self::Decimal(a), Value::Decimal(b)) => a == b.to_string(),
            _ => false,
        }
    }
}

/// One column's change, borrowed from [`Fields`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldRef<'a> {
    /// The column's logical name.
    pub column: Column,
    /// The value before (none: empty).
    pub before: Option<ValueRef<'a>>,
    /// The value after (none: empty).
    pub after: Option<ValueRef<'a>>,
}

impl FieldRef<'_> {
    /// The owned column change.
    #[must_use]
    pub fn to_owned(&self) -> FieldChange {
        FieldChange {
            column: self.column,
            before: self.before.map(ValueRef::to_value),
            after: self.after.map(ValueRef::to_value),
        }
    }
}

/// As `FieldChange` serializes itself.
impl Serialize for FieldRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let n = 1 + usize::from(self.before.is_some()) + usize::from(self.after.is_some());
        let mut s = serializer.serialize_struct("FieldChange", n)?;
        s.serialize_field("column", &self.column)?;
        match &self.before {
            Some(v) => s.serialize_field("before", v)?,
            None => s.skip_field("before")?,
        }
        match &self.after {
            Some(v) => s.serialize_field("after", v)?,
            None => s.skip_field("after")?,
        }
        s.end()
    }
}

/// The columns one change writes, packed (see the module doc).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Fields(Box<[u8]>);

impl Fields {
    /// No columns.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many columns.
    #[must_use]
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// The columns, in the order they were added.
    #[must_use]
    pub fn iter(&self) -> FieldsIter<'_> {
        FieldsIter {
            bytes: &self.0,
            at: 0,
        }
    }

    /// The change of `column`, if written.
    #[must_use]
    pub fn get(&self, column: &str) -> Option<FieldRef<'_>> {
        self.iter().find(|f| f.column == column)
    }

    /// These columns and then `field`.
    #[must_use]
    pub fn with(self, field: &FieldChange) -> Self {
        let mut builder = FieldsBuilder(self.0.into_vec());
        builder.push_owned(field);
        builder.build()
    }

    /// Bytes held on the heap.
    #[must_use]
    pub fn heap_size(&self) -> usize {
        self.0.len()
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = FieldRef<'a>;
    type IntoIter = FieldsIter<'a>;
    fn into_iter(self) -> FieldsIter<'a> {
        self.iter()
    }
}

impl FromIterator<FieldChange> for Fields {
    fn from_iter<I: IntoIterator<Item = FieldChange>>(iter: I) -> Self {
        let mut builder = FieldsBuilder::default();
        for field in iter {
            builder.push_owned(&field);
        }
        builder.build()
    }
}

impl From<Vec<FieldChange>> for Fields {
    fn from(fields: Vec<FieldChange>) -> Self {
        fields.into_iter().collect()
    }
}

impl std::fmt::Debug for Fields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Fields {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<FieldChange>::deserialize(deserializer).map(Self::from)
    }
}

impl JsonSchema for Fields {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        Vec::<FieldChange>::schema_name()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        Vec::<FieldChange>::json_schema(generator)
    }
    fn inline_schema() -> bool {
        Vec::<FieldChange>::inline_schema()
    }
}

const NONE: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const TEXT: u8 = 3;
const NUMBER: u8 = 4;
const DECIMAL: u8 = 5;

/// Writes [`Fields`] one column at a time.
#[derive(Debug, Default)]
pub struct FieldsBuilder(Vec<u8>);

impl FieldsBuilder {
    /// One more column, its values borrowed.
    pub fn push(
        &mut self,
        column: Column,
        before: Option<ValueRef<'_>>,
        after: Option<ValueRef<'_>>,
    ) {
        put_varint(&mut self.0, u64::from(column.id));
        self.put(before);
        self.put(after);
    }

    /// Room for columns of about `bytes` bytes in all.
    #[must_use]
    pub fn with_capacity(bytes: usize) -> Self {
        Self(Vec::with_capacity(bytes))
    }

    /// One more column, from an owned change.
    pub fn push_owned(&mut self, field: &FieldChange) {
        self.push_values(field.column, field.before.as_ref(), field.after.as_ref());
    }

    /// One more column, its values owned elsewhere.
    pub fn push_values(&mut self, column: Column, before: Option<&Value>, after: Option<&Value>) {
        put_varint(&mut self.0, u64::from(column.id));
        self.put_value(before);
        self.put_value(after);
    }

    /// No column yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The packed columns (exactly as long as they need).
    #[must_use]
    pub fn build(self) -> Fields {
        Fields(self.0.into_boxed_slice())
    }

    fn put_value(&mut self, value: Option<&Value>) {
        match value {
            Some(Value::Decimal(n)) => self.put(Some(ValueRef::Decimal(&n.to_string()))),
            Some(Value::Text(t)) => self.put(Some(ValueRef::Text(t))),
            Some(Value::Bool(b)) => self.put(Some(ValueRef::Bool(*b))),
            Some(Value::Number(n)) => self.put(Some(ValueRef::Number(*n))),
            None => self.put(None),
        }
    }

    fn put(&mut self, value: Option<ValueRef<'_>>) {
        let out = &mut self.0;
        match value {
            None => out.push(NONE),
            Some(ValueRef::Bool(false)) => out.push(FALSE),
            Some(ValueRef::Bool(true)) => out.push(TRUE),
            Some(ValueRef::Text(t)) => {
                out.push(TEXT);
                put_varint(out, t.len() as u64);
                out.extend_from_slice(t.as_bytes());
            }
            Some(ValueRef::Number(n)) => {
                out.push(NUMBER);
                put_varint(out, ((n << 1) ^ (n >> 63)) as u64);
            }
            Some(ValueRef::Decimal(d)) => {
                out.push(DECIMAL);
                put_varint(out, d.len() as u64);
                out.extend_from_slice(d.as_bytes());
            }
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The columns of [`Fields`], in order.
#[derive(Debug, Clone)]
pub struct FieldsIter<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> FieldsIter<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut n = 0_u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes.get(self.at)?;
            self.at += 1;
            n |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    fn text(&mut self) -> Option<&'a str> {
        let len = usize::try_from(self.varint()?).ok()?;
        let bytes = self.bytes.get(self.at..self.at.checked_add(len)?)?;
        self.at += len;
        std::str::from_utf8(bytes).ok()
    }

    /// `Some(None)` for an absent value, `None` when the bytes end.
    fn value(&mut self) -> Option<Option<ValueRef<'a>>> {
        let tag = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(match tag {
            NONE => None,
            FALSE => Some(ValueRef::Bool(false)),
            TRUE => Some(ValueRef::Bool(true)),
            TEXT => Some(ValueRef::Text(self.text()?)),
            NUMBER => {
                let z = self.varint()?;
                Some(ValueRef::Number(((z >> 1) as i64) ^ -((z & 1) as i64)))
            }
            DECIMAL => Some(ValueRef::Decimal(self.text()?)),
            _ => return None,
        })
    }
}

impl<'a> Iterator for FieldsIter<'a> {
    type Item = FieldRef<'a>;

    fn next(&mut self) -> Option<FieldRef<'a>> {
        if self.at >= self.bytes.len() {
            return None;
        }
        let id = u32::try_from(self.varint()?).ok()?;
        let column = Column::by_id(id)?;
        let before = self.value()?;
        let after = self.value()?;
        Some(FieldRef {
            column,
            before,
            after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(column: &str, before: Option<Value>, after: Option<Value>) -> FieldChange {
        FieldChange {
            column: Column::new(column),
            before,
            after,
        }
    }

    #[test]
    fn packed_columns_read_back_and_serialize_as_the_owned_ones() {
        let owned = vec![
            change("firstname", None, Some(Value::Text("Åsa".into()))),
            change(
                "donotbulkemail",
                Some(Value::Bool(false)),
                Some(Value::Bool(true)),
            ),
            change(
                "mcsync_score",
                Some(Value::Number(-7)),
                Some(Value::Number(i64::MAX)),
            ),
            change(
                "creditlimit",
                None,
                Some(Value::Decimal(
                    serde_json::Number::from_f64(2.5).expect("finite"),
                )),
            ),
            change("telephone1", Some(Value::Text(String::new())), None),
            change(&"x".repeat(200), None, Some(Value::Text("y".repeat(300)))),
        ];
        let packed = Fields::from(owned.clone());
        assert_eq!(packed.len(), owned.len());
        let back: Vec<FieldChange> = packed.iter().map(|f| f.to_owned()).collect();
        assert_eq!(back, owned);
        assert_eq!(
            serde_json::to_string(&packed).expect("serializes"),
            serde_json::to_string(&owned).expect("serializes")
        );
        let read: Fields =
            serde_json::from_str(&serde_json::to_string(&owned).expect("serializes"))
                .expect("reads");
        assert_eq!(read, packed);
        assert_eq!(
            packed.get("donotbulkemail").and_then(|f| f.after),
            Some(ValueRef::Bool(true))
        );
        assert!(packed.get("lastname").is_none());
        assert!(Fields::default().is_empty());
    }

    #[test]
    fn values_show_as_the_owned_ones() {
        for value in [
            Value::Text("a \"b\"".into()),
            Value::Bool(true),
            Value::Number(42),
            Value::Decimal(serde_json::Number::from_f64(0.1).expect("finite")),
        ] {
            let packed = Fields::from(vec![change("c", None, Some(value.clone()))]);
            let after = packed.iter().next().and_then(|f| f.after).expect("a value");
            assert_eq!(after.to_string(), value.to_string());
            assert_eq!(after, value);
            assert_eq!(after.to_value(), value);
        }
    }

    #[test]
    fn columns_intern_once_and_compare_by_name() {
        let a = Column::new("address1_city");
        let b = Column::new(&String::from("address1_city"));
        assert_eq!(a, b);
        assert!(std::ptr::eq(a.as_str(), b.as_str()));
        assert!(Column::new("a_column") < Column::new("b_column"));
        assert_eq!(a, "address1_city");
    }
}
