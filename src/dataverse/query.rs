//! A small typed builder for the OData query options the tool sends: `$select`, `$filter`,
//! `$expand`, `$orderby`, `$top`.
//!
//! Invariants: string literals are quoted with `'` doubled; GUIDs, numbers and booleans are
//! unquoted; every option value is percent-encoded (so `+` in an e-mail becomes `%2B`); column
//! names are checked to be plain identifiers, so no caller can inject an expression.

use std::fmt::Write as _;

use uuid::Uuid;

use super::error::Error;

/// A literal in a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A string, quoted and escaped.
    Str(String),
    /// A GUID, unquoted.
    Guid(Uuid),
    /// A whole number.
    Int(i64),
    /// `true` / `false`.
    Bool(bool),
    /// `null`.
    Null,
}

impl Literal {
    /// The OData text of the literal (not yet percent-encoded).
    #[must_use]
    pub fn to_odata(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, false);
        out
    }

    /// Append the OData text; `in_function` quotes GUIDs and numbers too (the `In` function
    /// takes every value as a string).
    fn write(&self, out: &mut String, in_function: bool) {
        match self {
            Self::Str(s) => write_quoted(out, s),
            Self::Guid(g) if in_function => {
                let _ = write!(out, "'{g}'");
            }
            Self::Int(n) if in_function => {
                let _ = write!(out, "'{n}'");
            }
            Self::Guid(g) => {
                let _ = write!(out, "{g}");
            }
            Self::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Self::Bool(b) => {
                let _ = write!(out, "{b}");
            }
            Self::Null => out.push_str("null"),
        }
    }

    /// The length of `encode(&self.to_odata())`, without building either.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        match self {
            // Two quotes, each quote inside doubled: `'` is encoded as `%27`.
            Self::Str(s) => 6 + encoded_len(s) + 3 * s.bytes().filter(|b| *b == b'\'').count(),
            other => encoded_len(&other.to_odata()),
        }
    }
}

/// `'text'` with every `'` inside doubled.
fn write_quoted(out: &mut String, text: &str) {
    out.push('\'');
    let mut rest = text;
    while let Some(i) = rest.find('\'') {
        out.push_str(&rest[..=i]);
        out.push('\'');
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
    out.push('\'');
}

impl From<&str> for Literal {
    fn from(value: &str) -> Self {
        Self::Str(value.to_owned())
    }
}
impl From<String> for Literal {
    fn from(value: String) -> Self {
        Self::Str(value)
    }
}
impl From<Uuid> for Literal {
    fn from(value: Uuid) -> Self {
        Self::Guid(value)
    }
}
impl From<i64> for Literal {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}
impl From<i32> for Literal {
    fn from(value: i32) -> Self {
        Self::Int(i64::from(value))
    }
}
impl From<bool> for Literal {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

/// A `$filter` expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `column eq literal`.
    Eq(String, Literal),
    /// `column ne literal`.
    Ne(String, Literal),
    /// `Microsoft.Dynamics.CRM.In(PropertyName='column',PropertyValues=[…])`.
    In(String, Vec<Literal>),
    /// All of them.
    And(Vec<Filter>),
    /// Any of them.
    Or(Vec<Filter>),
    /// `nav/any(v:<inner>)` over a collection-valued navigation property; the inner filter
    /// names columns as `v/column`.
    Any {
        /// The navigation property.
        nav: String,
        /// The lambda variable.
        var: String,
        /// The condition on the related rows.
        inner: Box<Filter>,
    },
}

impl Filter {
    /// `column eq value`.
    #[must_use]
    pub fn eq(column: &str, value: impl Into<Literal>) -> Self {
        Self::Eq(column.to_owned(), value.into())
    }

    /// `column ne value`.
    #[must_use]
    pub fn ne(column: &str, value: impl Into<Literal>) -> Self {
        Self::Ne(column.to_owned(), value.into())
    }

    /// The column is one of `values`.
    #[must_use]
    pub fn is_in(column: &str, values: Vec<Literal>) -> Self {
        Self::In(column.to_owned(), values)
    }

    fn write(&self, out: &mut String, top: bool) -> Result<(), Error> {
        match self {
            Self::Eq(column, value) | Self::Ne(column, value) => {
                check_name(column)?;
                let op = if matches!(self, Self::Eq(..)) {
                    "eq"
                } else {
                    "ne"
                };
                let _ = write!(out, "{column} {op} ");
                value.write(out, false);
            }
            Self::In(column, values) => {
                check_name(column)?;
                let _ = write!(
                    out,
                    "Microsoft.Dynamics.CRM.In(PropertyName='{column}',PropertyValues=["
                );
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    value.write(out, true);
                }
                out.push_str("])");
            }
            Self::Any { nav, var, inner } => {
                check_name(nav)?;
                if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphabetic()) {
                    return Err(Error::Request {
                        message: format!("`{var}` is not a lambda variable"),
                    });
                }
                let _ = write!(out, "{nav}/any({var}:");
                inner.write(out, true)?;
                out.push(')');
            }
            Self::And(parts) | Self::Or(parts) => {
                if parts.is_empty() {
                    return Err(Error::Request {
                        message: "an empty `and`/`or` filter".to_owned(),
                    });
                }
                let joiner = if matches!(self, Self::And(_)) {
                    " and "
                } else {
                    " or "
                };
                if !top && parts.len() > 1 {
                    out.push('(');
                }
                for (i, part) in parts.iter().enumerate() {
                    if i > 0 {
                        out.push_str(joiner);
                    }
                    part.write(out, parts.len() == 1 && top)?;
                }
                if !top && parts.len() > 1 {
                    out.push(')');
                }
            }
        }
        Ok(())
    }

    /// The expression as OData text (not yet percent-encoded).
    ///
    /// # Errors
    /// A column name that is not a plain identifier, or an empty `and`/`or`.
    pub fn to_odata(&self) -> Result<String, Error> {
        let mut out = String::new();
        self.write(&mut out, true)?;
        Ok(out)
    }
}

/// A column, entity set or navigation property name: letters, digits, `_`, and `/` or `.` for
/// paths such as `sdkmessageid/name`.
fn check_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '/' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Request {
            message: format!("`{name}` is not a column name"),
        })
    }
}

/// Percent-encode a query option value: every byte but the unreserved characters of RFC 3986
/// (`A-Z a-z 0-9 - . _ ~`) as `%XX` (upper-case hex). Runs of unreserved bytes are copied
/// whole: a lookup of a million e-mail addresses encodes tens of megabytes.
#[must_use]
pub fn encode(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(encoded_len(value));
    // `start..i` holds only unreserved (ASCII) bytes, so both ends are character boundaries.
    let mut start = 0;
    for (i, byte) in value.bytes().enumerate() {
        if unreserved(byte) {
            continue;
        }
        out.push_str(value.get(start..i).unwrap_or_default());
        out.push('%');
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
        start = i + 1;
    }
    out.push_str(value.get(start..).unwrap_or_default());
    out
}

/// The length of `encode(value)`.
#[must_use]
pub fn encoded_len(value: &str) -> usize {
    value
        .bytes()
        .map(|b| if unreserved(b) { 1 } else { 3 })
        .sum()
}

/// The unreserved characters of RFC 3986, as a table (this runs over every byte of a lookup).
const UNRESERVED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~');
        b += 1;
    }
    table
};

fn unreserved(byte: u8) -> bool {
    UNRESERVED[usize::from(byte)]
}

/// A query on one entity set (or a navigation path such as `lists(<id>)/listcontact_association`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    path: String,
    select: Vec<String>,
    filter: Option<Filter>,
    expand: Vec<String>,
    orderby: Vec<String>,
    top: Option<u32>,
}

impl Query {
    /// A query on `path`, relative to the Web API root.
    #[must_use]
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            ..Self::default()
        }
    }

    /// Return only these columns.
    #[must_use]
    pub fn select<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.select.extend(columns.into_iter().map(Into::into));
        self
    }

    /// Only rows matching `filter`.
    #[must_use]
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Expand a navigation property, e.g. `sdkmessageid($select=name)`.
    #[must_use]
    pub fn expand(mut self, expand: impl Into<String>) -> Self {
        self.expand.push(expand.into());
        self
    }

    /// Order by a column, e.g. `createdon desc`.
    #[must_use]
    pub fn orderby(mut self, orderby: impl Into<String>) -> Self {
        self.orderby.push(orderby.into());
        self
    }

    /// At most `n` rows (do not combine with paging).
    #[must_use]
    pub fn top(mut self, n: u32) -> Self {
        self.top = Some(n);
        self
    }

    /// The path and query string, relative to the Web API root.
    ///
    /// # Errors
    /// A column name that is not a plain identifier.
    pub fn to_relative_url(&self) -> Result<String, Error> {
        let mut options = Vec::new();
        if !self.select.is_empty() {
            for column in &self.select {
                check_name(column)?;
            }
            options.push(format!("$select={}", self.select.join(",")));
        }
        if let Some(filter) = &self.filter {
            options.push(format!("$filter={}", encode(&filter.to_odata()?)));
        }
        if !self.expand.is_empty() {
            options.push(format!("$expand={}", encode(&self.expand.join(","))));
        }
        if !self.orderby.is_empty() {
            options.push(format!("$orderby={}", encode(&self.orderby.join(","))));
        }
        if let Some(top) = self.top {
            options.push(format!("$top={top}"));
        }
        if options.is_empty() {
            Ok(self.path.clone())
        } else {
            Ok(format!("{}?{}", self.path, options.join("&")))
        }
    }
}

/// Split `values` into chunks whose `In` filter, percent-encoded, stays under `max_encoded`
/// characters and `max_values` values (so every URL stays well under the service's limit).
#[must_use]
pub fn in_chunks(
    column: &str,
    values: &[Literal],
    max_encoded: usize,
    max_values: usize,
) -> Vec<Vec<Literal>> {
    let mut values = values.iter();
    in_chunk_sizes(column, values.as_slice(), max_encoded, max_values)
        .into_iter()
        .map(|n| values.by_ref().take(n).cloned().collect())
        .collect()
}

/// How many of `values` go in each chunk of [`in_chunks`], in order (no value copied).
#[must_use]
pub fn in_chunk_sizes(
    column: &str,
    values: &[Literal],
    max_encoded: usize,
    max_values: usize,
) -> Vec<usize> {
    let overhead = encoded_len(&format!(
        "Microsoft.Dynamics.CRM.In(PropertyName='{column}',PropertyValues=[])"
    ));
    let mut sizes = Vec::new();
    let (mut current, mut size) = (0, overhead);
    for value in values {
        let cost = value.encoded_len() + 6; // quotes and a comma, encoded
        if current > 0 && (size + cost > max_encoded || current >= max_values) {
            sizes.push(current);
            (current, size) = (0, overhead);
        }
        size += cost;
        current += 1;
    }
    if current > 0 {
        sizes.push(current);
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_matches_the_urlencoding_crate_and_its_length_is_known_in_advance() {
        for text in [
            "",
            "a+b@x.io",
            "o'k@x.io",
            "Ünïcödé ✓ 日本",
            "~-._AZaz09 !\"#$%&()*,/:;<=>?[]^`{|}",
            "'",
            "é",
        ] {
            assert_eq!(encode(text), urlencoding::encode(text), "{text}");
            assert_eq!(encoded_len(text), encode(text).len(), "{text}");
            let literal = Literal::from(text);
            assert_eq!(literal.encoded_len(), encode(&literal.to_odata()).len());
        }
        let id = Literal::from(Uuid::from_u128(7));
        assert_eq!(id.encoded_len(), 36);
    }

    #[test]
    fn literals_are_escaped_and_guids_unquoted() {
        assert_eq!(Literal::from("O'Brien").to_odata(), "'O''Brien'");
        let id = Uuid::nil();
        assert_eq!(
            Literal::from(id).to_odata(),
            "00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(Literal::from(false).to_odata(), "false");
    }

    #[test]
    fn filters_nest_with_parentheses_and_encode_plus() {
        let q = Query::new("contacts")
            .select(["contactid", "emailaddress1"])
            .filter(Filter::And(vec![
                Filter::eq("statecode", 0),
                Filter::Or(vec![
                    Filter::eq("emailaddress1", "a+b@x.io"),
                    Filter::eq("emailaddress1", "o'k@x.io"),
                ]),
            ]));
        let url = q.to_relative_url().unwrap();
        assert_eq!(
            url,
            "contacts?$select=contactid,emailaddress1&$filter=statecode%20eq%200%20and%20%28emailaddress1%20eq%20%27a%2Bb%40x.io%27%20or%20emailaddress1%20eq%20%27o%27%27k%40x.io%27%29"
        );
        let decoded = urlencoding::decode(url.split("$filter=").nth(1).unwrap()).unwrap();
        assert_eq!(
            decoded,
            "statecode eq 0 and (emailaddress1 eq 'a+b@x.io' or emailaddress1 eq 'o''k@x.io')"
        );
    }

    #[test]
    fn in_function_quotes_every_value() {
        let id = Uuid::from_u128(1);
        let f = Filter::is_in("contactid", vec![id.into(), "x'y".into()]);
        assert_eq!(
            f.to_odata().unwrap(),
            "Microsoft.Dynamics.CRM.In(PropertyName='contactid',PropertyValues=['00000000-0000-0000-0000-000000000001','x''y'])"
        );
    }

    #[test]
    fn lambda_any_over_a_relationship() {
        let id = Uuid::from_u128(2);
        let f = Filter::Any {
            nav: "mcsync_tag_contact".into(),
            var: "t".into(),
            inner: Box::new(Filter::eq("t/mcsync_tagid", id)),
        };
        assert_eq!(
            f.to_odata().unwrap(),
            "mcsync_tag_contact/any(t:t/mcsync_tagid eq 00000000-0000-0000-0000-000000000002)"
        );
    }

    #[test]
    fn names_cannot_inject() {
        let bad = Query::new("contacts").filter(Filter::eq("a eq 1 or b", 1));
        assert!(bad.to_relative_url().is_err());
        let bad = Query::new("contacts").select(["a,b"]);
        assert!(bad.to_relative_url().is_err());
        assert!(Filter::Or(vec![]).to_odata().is_err());
    }

    #[test]
    fn chunks_respect_both_bounds() {
        let values: Vec<Literal> = (0..1000)
            .map(|i| Literal::Str(format!("user{i}+tag@example.com")))
            .collect();
        let chunks = in_chunks("emailaddress1", &values, 2000, 100);
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 1000);
        for chunk in &chunks {
            assert!(chunk.len() <= 100);
            let f = Filter::is_in("emailaddress1", chunk.clone());
            assert!(encode(&f.to_odata().unwrap()).len() <= 2000);
        }
        assert!(in_chunks("x", &[], 100, 10).is_empty());
    }
}
