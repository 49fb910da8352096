//! Pages read straight from a response body into typed rows: a [`RowReader`] takes each row
//! of `value` as it is parsed (the columns it wants by name, every other key skipped), so no
//! `serde_json::Map` or key `String` exists per row; `@odata.nextLink` comes along.
//!
//! Invariants: a page is parsed in one pass over the body; a key a reader does not want is
//! skipped without allocating; a row the reader cannot use (no id) is dropped, as the
//! `Map`-based readers did.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use uuid::Uuid;

/// Reads one row of a page from its JSON object.
pub trait RowReader: Send + Sync + 'static {
    /// What a row becomes (`None`: the row is dropped).
    type Row: Send + 'static;

    /// Read one row: call `map.next_key_seed` / `next_value` until the object ends.
    ///
    /// # Errors
    /// The JSON is malformed.
    fn row<'de, A: MapAccess<'de>>(&self, map: A) -> Result<Option<Self::Row>, A::Error>;
}

/// One parsed page.
pub struct Page<T> {
    /// Its rows.
    pub value: Vec<T>,
    /// `@odata.nextLink`.
    pub next_link: Option<String>,
}

/// Parse a page (`{"value": [...], "@odata.nextLink": ...}`) with `reader`.
///
/// # Errors
/// The body is not such a JSON object.
pub fn parse_page<R: RowReader>(reader: &R, body: &[u8]) -> serde_json::Result<Page<R::Row>> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let page = PageSeed(reader).deserialize(&mut de)?;
    de.end()?;
    Ok(page)
}

/// The position of a key among `names`, read without allocating (`None`: not wanted).
pub struct KeyIn<'n, S>(pub &'n [S]);

impl<'de, S: AsRef<str>> DeserializeSeed<'de> for KeyIn<'_, S> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_str(self)
    }
}

impl<S: AsRef<str>> Visitor<'_> for KeyIn<'_, S> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a column name")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|name| name.as_ref() == key))
    }
}

/// A GUID value as the `Map` readers took it: `None` unless a string holding a GUID.
///
/// # Errors
/// The JSON is malformed.
pub fn guid_value<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<Uuid>, A::Error> {
    Ok(match map.next_value::<serde_json::Value>()? {
        serde_json::Value::String(text) => Uuid::parse_str(&text).ok(),
        _ => None,
    })
}

/// Skip the value of a key that is not wanted.
///
/// # Errors
/// The JSON is malformed.
pub fn skip_value<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value::<IgnoredAny>().map(|_| ())
}

struct PageSeed<'r, R>(&'r R);

impl<'de, R: RowReader> DeserializeSeed<'de> for PageSeed<'_, R> {
    type Value = Page<R::Row>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_map(self)
    }
}

const PAGE_KEYS: [&str; 2] = ["value", "@odata.nextLink"];

impl<'de, R: RowReader> Visitor<'de> for PageSeed<'_, R> {
    type Value = Page<R::Row>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a page of rows")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut value = None;
        let mut next_link = None;
        while let Some(key) = map.next_key_seed(KeyIn(&PAGE_KEYS))? {
            match key {
                Some(0) => value = Some(map.next_value_seed(RowsSeed(self.0))?),
                Some(_) => next_link = map.next_value::<Option<String>>()?,
                None => skip_value(&mut map)?,
            }
        }
        let value = value.ok_or_else(|| serde::de::Error::missing_field("value"))?;
        Ok(Page { value, next_link })
    }
}

struct RowsSeed<'r, R>(&'r R);

impl<'de, R: RowReader> DeserializeSeed<'de> for RowsSeed<'_, R> {
    type Value = Vec<R::Row>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_seq(self)
    }
}

impl<'de, R: RowReader> Visitor<'de> for RowsSeed<'_, R> {
    type Value = Vec<R::Row>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut rows = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(row) = seq.next_element_seed(RowSeed(self.0))? {
            rows.extend(row);
        }
        Ok(rows)
    }
}

struct RowSeed<'r, R>(&'r R);

impl<'de, R: RowReader> DeserializeSeed<'de> for RowSeed<'_, R> {
    type Value = Option<R::Row>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de, R: RowReader> Visitor<'de> for RowSeed<'_, R> {
    type Value = Option<R::Row>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a row (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.row(map)
    }
}

/// Rows deserialized as a whole into `T` (a `Map`, or a `#[derive(Deserialize)]` struct).
pub struct Typed<T>(std::marker::PhantomData<fn() -> T>);

impl<T> Default for Typed<T> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<T: serde::de::DeserializeOwned + Send + 'static> RowReader for Typed<T> {
    type Row = T;

    fn row<'de, A: MapAccess<'de>>(&self, map: A) -> Result<Option<T>, A::Error> {
        T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
    }
}

/// Rows reduced to the GUID in one column (e.g. the people linked to a tag).
pub struct IdReader(pub &'static str);

impl RowReader for IdReader {
    type Row = Uuid;

    fn row<'de, A: MapAccess<'de>>(&self, mut map: A) -> Result<Option<Uuid>, A::Error> {
        let mut id = None;
        while let Some(key) = map.next_key_seed(KeyIn(&[self.0]))? {
            match key {
                Some(_) => id = guid_value(&mut map)?,
                None => skip_value(&mut map)?,
            }
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_keeps_the_wanted_column_and_the_next_link() {
        let body = br#"{"@odata.context":"x","value":[
            {"@odata.etag":"W/\"1\"","contactid":"00000000-0000-0000-0000-000000000001","n":{"a":[1]}},
            {"contactid":null},
            {"contactid":"not a guid"},
            {"other":"00000000-0000-0000-0000-000000000003","contactid":"00000000-0000-0000-0000-000000000002"}
        ],"@odata.nextLink":"http://x/next"}"#;
        let page = parse_page(&IdReader("contactid"), body).unwrap();
        assert_eq!(
            page.value,
            [Uuid::from_u128(1), Uuid::from_u128(2)],
            "rows without a GUID are dropped"
        );
        assert_eq!(page.next_link.as_deref(), Some("http://x/next"));
        let last = parse_page(&IdReader("contactid"), br#"{"value":[]}"#).unwrap();
        assert!(last.value.is_empty() && last.next_link.is_none());
        assert!(parse_page(&IdReader("contactid"), br#"{"values":[]}"#).is_err());
        assert!(parse_page(&IdReader("contactid"), br#"{"value":[]} x"#).is_err());
    }
}
