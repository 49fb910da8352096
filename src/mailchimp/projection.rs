//! Member pages decoded straight from the response body into the few fields one read needs:
//! the identity, status, version and tags every read uses, and the text of each of a binding's
//! field paths. No `serde_json::Value` or map per member: fields no path names are skipped
//! without being built ([`IgnoredAny`]), strings are borrowed from the body unless they hold
//! escapes, and each member keeps its text in one buffer.
//!
//! The text of a path is exactly what [`crate::observe::member_value`] gives for the same member
//! decoded as a [`super::Member`]: strings as sent (`""` is none), numbers as `serde_json`
//! prints them, booleans `true`/`false`, times re-printed as RFC 3339, tag names joined by
//! `, ` (the tests below compare the two on every kind of field).

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use chrono::{DateTime, Timelike as _};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::row::{MemberRow, Page, PageDecoder};
use super::{MemberStatus, MemberTag};

/// Where the text of one field path comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Email,
    Status,
    ContactId,
    LastChanged,
    Tags,
    /// A top-level field decoded into the member's buffer.
    Field(&'static str, Kind),
    /// `merge_fields.TAG` or `merge_fields.TAG.part`.
    Merge(String, Option<String>),
    /// `location.part` (one of [`LOCATION_TEXT`] or [`LOCATION_COORDS`]).
    Location(&'static str),
    /// A path no member field answers.
    Absent,
}

/// How a top-level field becomes text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Vip,
    Rating,
    WebId,
    Time,
}

const FIELDS: &[(&str, Kind)] = &[
    ("unique_email_id", Kind::Text),
    ("full_name", Kind::Text),
    ("email_type", Kind::Text),
    ("language", Kind::Text),
    ("unsubscribe_reason", Kind::Text),
    ("ip_signup", Kind::Text),
    ("ip_opt", Kind::Text),
    ("source", Kind::Text),
    ("vip", Kind::Vip),
    ("member_rating", Kind::Rating),
    ("web_id", Kind::WebId),
    ("timestamp_signup", Kind::Time),
    ("timestamp_opt", Kind::Time),
];

const LOCATION_TEXT: &[&str] = &["country_code", "timezone", "region"];
const LOCATION_COORDS: &[&str] = &["latitude", "longitude"];

/// Slots of a member's buffer before the paths' values.
const ID: usize = 0;
const CONTACT_ID: usize = 1;
const EMAIL: usize = 2;
const LAST_CHANGED: usize = 3;
const FIXED: usize = 4;

/// Where a slot's text is in the member's buffer: `start..end`, or [`NONE`].
type Span = (u32, u32);

/// No text (`text.get` of it is `None`).
const NONE: Span = (u32::MAX, 0);

/// The fields one read keeps of each member: the identity, status, `last_changed`, tags, and
/// the text of each of `paths` (a binding's field paths).
#[derive(Debug, Clone)]
pub struct Projection {
    sources: Vec<Source>,
    tag_names: bool,
    /// The merge tags the paths name, each once.
    merge: Vec<MergeTag>,
    location: bool,
}

/// The paths of one merge tag.
#[derive(Debug, Clone)]
struct MergeTag {
    tag: String,
    /// Slots of `merge_fields.TAG`.
    whole: Vec<usize>,
    /// Slots of `merge_fields.TAG.part`.
    parts: Vec<(String, usize)>,
}

impl Projection {
    /// Keep the text of these field paths (`merge_fields.ADDRESS.city`, `location.region`, …).
    #[must_use]
    pub fn new(paths: &[String]) -> Self {
        let sources: Vec<Source> = paths.iter().map(|p| source(p)).collect();
        let mut merge: Vec<MergeTag> = Vec::new();
        for (i, s) in sources.iter().enumerate() {
            let Source::Merge(tag, part) = s else {
                continue;
            };
            let at = match merge.iter().position(|m| m.tag == *tag) {
                Some(at) => at,
                None => {
                    merge.push(MergeTag {
                        tag: tag.clone(),
                        whole: Vec::new(),
                        parts: Vec::new(),
                    });
                    merge.len() - 1
                }
            };
            match part {
                None => merge[at].whole.push(FIXED + i),
                Some(part) => merge[at].parts.push((part.clone(), FIXED + i)),
            }
        }
        Self {
            tag_names: sources.contains(&Source::Tags),
            merge,
            location: sources.iter().any(|s| matches!(s, Source::Location(_))),
            sources,
        }
    }

    /// The text of path `i` of `member` (`joined_tags`: [`Projected::joined_tags`]).
    #[must_use]
    pub fn value<'a>(
        &self,
        member: &'a Projected,
        i: usize,
        joined_tags: Option<&'a str>,
    ) -> Option<&'a str> {
        match self.sources.get(i)? {
            Source::Email => member.slot(EMAIL),
            Source::Status => Some(member.status.as_str()),
            Source::ContactId => member.slot(CONTACT_ID),
            Source::LastChanged => member.slot(LAST_CHANGED),
            Source::Tags => joined_tags,
            Source::Field(..) | Source::Merge(..) | Source::Location(_) => member.slot(FIXED + i),
            Source::Absent => None,
        }
    }

    /// How many paths it keeps.
    #[must_use]
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// Whether it keeps no path.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }
}

fn source(path: &str) -> Source {
    match path {
        "email_address" => Source::Email,
        "status" => Source::Status,
        "contact_id" => Source::ContactId,
        "last_changed" => Source::LastChanged,
        "tags" => Source::Tags,
        _ => {
            if let Some(&(name, kind)) = FIELDS.iter().find(|(name, _)| *name == path) {
                return Source::Field(name, kind);
            }
            if let Some(rest) = path.strip_prefix("merge_fields.") {
                return match rest.split_once('.') {
                    None => Source::Merge(rest.to_owned(), None),
                    Some((tag, part)) => Source::Merge(tag.to_owned(), Some(part.to_owned())),
                };
            }
            if let Some(part) = path.strip_prefix("location.") {
                let known = LOCATION_TEXT
                    .iter()
                    .chain(LOCATION_COORDS)
                    .find(|p| **p == part);
                return known.map_or(Source::Absent, |p| Source::Location(p));
            }
            Source::Absent
        }
    }
}

/// A member as a [`Projection`] keeps it.
#[derive(Debug, Clone)]
pub struct Projected {
    status: MemberStatus,
    version: i64,
    tags_count: Option<u64>,
    tags: Vec<u64>,
    /// Only when a path reads the tags' names.
    tag_names: Vec<String>,
    text: String,
    slots: Vec<Span>,
}

impl Projected {
    fn slot(&self, i: usize) -> Option<&str> {
        let &(start, end) = self.slots.get(i)?;
        self.text.get(start as usize..end as usize)
    }

    /// The subscriber hash.
    #[must_use]
    pub fn id(&self) -> &str {
        self.slot(ID).unwrap_or_default()
    }

    /// The contact id (`""` when Mailchimp gave none).
    #[must_use]
    pub fn contact_id(&self) -> &str {
        self.slot(CONTACT_ID).unwrap_or_default()
    }

    /// The e-mail address.
    #[must_use]
    pub fn email(&self) -> &str {
        self.slot(EMAIL).unwrap_or_default()
    }

    /// `last_changed` as RFC 3339 (`""` when Mailchimp gave none).
    #[must_use]
    pub fn last_changed(&self) -> &str {
        self.slot(LAST_CHANGED).unwrap_or_default()
    }

    /// Its status.
    #[must_use]
    pub fn status(&self) -> MemberStatus {
        self.status
    }

    /// Ids of its tags.
    #[must_use]
    pub fn tag_ids(&self) -> &[u64] {
        &self.tags
    }

    /// Its tag names joined by `, `, when the projection reads them.
    #[must_use]
    pub fn joined_tags(&self, projection: &Projection) -> Option<String> {
        projection.tag_names.then(|| self.tag_names.join(", "))
    }
}

impl MemberRow for Projected {
    fn id(&self) -> &str {
        Projected::id(self)
    }

    fn key(&self) -> &str {
        self.slot(CONTACT_ID).unwrap_or_else(|| self.id())
    }

    fn status(&self) -> MemberStatus {
        self.status
    }

    fn version(&self) -> i64 {
        self.version
    }

    fn tags_incomplete(&self) -> bool {
        self.tags_count.is_some_and(|n| n > self.tags.len() as u64)
    }

    fn set_tags(&mut self, tags: Vec<MemberTag>) {
        self.tags_count = Some(tags.len() as u64);
        self.tags = tags.iter().map(|t| t.id).collect();
        self.tag_names = tags.into_iter().map(|t| t.name).collect();
    }
}

impl PageDecoder for Projection {
    type Row = Projected;

    fn decode(&self, body: &[u8]) -> Result<Page<Projected>, serde_json::Error> {
        // One UTF-8 check of the whole body is much cheaper than one per string.
        let body = std::str::from_utf8(body).map_err(<serde_json::Error as de::Error>::custom)?;
        let mut de = serde_json::Deserializer::from_str(body);
        let page = (&mut de).deserialize_map(PageVisitor(self))?;
        de.end()?;
        Ok(page)
    }
}

/// A string, borrowed from the body when it holds no escapes.
struct Str<'de>(Cow<'de, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

struct PageVisitor<'p>(&'p Projection);

impl<'de> Visitor<'de> for PageVisitor<'_> {
    type Value = Page<Projected>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a page of members")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut items = None;
        let mut total_items = 0;
        while let Some(key) = map.next_key::<Str<'de>>()? {
            match &*key.0 {
                "members" => items = Some(map.next_value_seed(MembersSeed(self.0))?),
                "total_items" => total_items = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let items = items.ok_or_else(|| de::Error::missing_field("members"))?;
        Ok(Page { items, total_items })
    }
}

struct MembersSeed<'p>(&'p Projection);

impl<'de> DeserializeSeed<'de> for MembersSeed<'_> {
    type Value = Vec<Projected>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for MembersSeed<'_> {
    type Value = Vec<Projected>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of members")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(
            seq.size_hint()
                .unwrap_or(super::PAGE_SIZE)
                .min(super::PAGE_SIZE),
        );
        let mut capacity = 0;
        while let Some(member) = seq.next_element_seed(MemberSeed {
            projection: self.0,
            capacity,
        })? {
            capacity = member.text.len();
            out.push(member);
        }
        Ok(out)
    }
}

/// One member; `capacity`: the text length of the member before (a good guess for this one).
struct MemberSeed<'p> {
    projection: &'p Projection,
    capacity: usize,
}

impl<'de> DeserializeSeed<'de> for MemberSeed<'_> {
    type Value = Projected;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

/// A member's text as it is decoded.
struct Buffer {
    text: String,
    slots: Vec<Span>,
}

impl Buffer {
    /// The text from `start` to the end (none past 4 GiB, which no member comes near).
    fn span(&self, start: usize) -> Span {
        match (u32::try_from(start), u32::try_from(self.text.len())) {
            (Ok(start), Ok(end)) => (start, end),
            _ => NONE,
        }
    }

    fn set(&mut self, slot: usize, text: Option<&str>) {
        self.slots[slot] = text.map_or(NONE, |t| {
            let start = self.text.len();
            self.text.push_str(t);
            self.span(start)
        });
    }

    fn set_fmt(&mut self, slot: usize, args: fmt::Arguments<'_>) {
        let start = self.text.len();
        // Writing to a String cannot fail.
        let _ = self.text.write_fmt(args);
        self.slots[slot] = self.span(start);
    }

    fn set_scalar(&mut self, slot: usize, scalar: &Scalar<'_>) {
        match scalar {
            Scalar::Text(t) => self.set(slot, Some(t).filter(|t| !t.is_empty()).map(|t| &**t)),
            Scalar::Number(n) => self.set_fmt(slot, format_args!("{n}")),
            Scalar::Bool(b) => self.set(slot, Some(if *b { "true" } else { "false" })),
            Scalar::None => self.slots[slot] = NONE,
        }
    }
}

impl<'de> Visitor<'de> for MemberSeed<'_> {
    type Value = Projected;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let p = self.projection;
        let mut buf = Buffer {
            text: String::with_capacity(self.capacity),
            slots: vec![NONE; FIXED + p.sources.len()],
        };
        for (i, s) in p.sources.iter().enumerate() {
            if *s == Source::Field("vip", Kind::Vip) {
                buf.set(FIXED + i, Some("false"));
            }
        }
        let (mut id, mut email, mut status) = (false, false, None);
        let mut version = i64::MIN;
        let (mut tags_count, mut tags, mut tag_names) = (None, Vec::new(), Vec::new());
        while let Some(key) = map.next_key::<Str<'de>>()? {
            match &*key.0 {
                "id" => {
                    buf.set(ID, Some(&map.next_value::<Str<'de>>()?.0));
                    id = true;
                }
                "email_address" => {
                    buf.set(EMAIL, Some(&map.next_value::<Str<'de>>()?.0));
                    email = true;
                }
                "status" => status = Some(map.next_value::<MemberStatus>()?),
                "contact_id" => buf.set(CONTACT_ID, text(map.next_value()?).as_deref()),
                "last_changed" => {
                    version =
                        time(&mut buf, LAST_CHANGED, map.next_value()?)?.map_or(i64::MIN, |t| t);
                }
                "tags_count" => tags_count = map.next_value()?,
                "tags" => {
                    let names = p.tag_names.then_some(&mut tag_names);
                    map.next_value_seed(TagsSeed {
                        ids: &mut tags,
                        names,
                    })?;
                }
                "merge_fields" if !p.merge.is_empty() => {
                    map.next_value_seed(MergeFields { p, buf: &mut buf })?
                }
                "location" if p.location => map.next_value_seed(Location { p, buf: &mut buf })?,
                name => {
                    let wanted = p.sources.iter().enumerate().find_map(|(i, s)| match s {
                        Source::Field(n, kind) if *n == name => Some((FIXED + i, *kind)),
                        _ => None,
                    });
                    match wanted {
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                        Some((slot, kind)) => field(&mut map, &mut buf, slot, kind)?,
                    }
                }
            }
        }
        if !id {
            return Err(de::Error::missing_field("id"));
        }
        if !email {
            return Err(de::Error::missing_field("email_address"));
        }
        let status = status.ok_or_else(|| de::Error::missing_field("status"))?;
        Ok(Projected {
            status,
            version,
            tags_count,
            tags,
            tag_names,
            text: buf.text,
            slots: buf.slots,
        })
    }
}

/// A text field: `""` is none.
fn text(value: Option<Str<'_>>) -> Option<Cow<'_, str>> {
    value.map(|s| s.0).filter(|s| !s.is_empty())
}

/// A time field into `slot` as RFC 3339 (re-printed unless already so); its seconds.
fn time<E: de::Error>(
    buf: &mut Buffer,
    slot: usize,
    value: Option<Str<'_>>,
) -> Result<Option<i64>, E> {
    let Some(value) = text(value) else {
        buf.slots[slot] = NONE;
        return Ok(None);
    };
    let parsed = DateTime::parse_from_rfc3339(&value).map_err(E::custom)?;
    let canonical = value.len() == 25
        && value.as_bytes()[10] == b'T'
        && value.ends_with("+00:00")
        && parsed.nanosecond() == 0;
    if canonical {
        buf.set(slot, Some(&value));
    } else {
        buf.set(slot, Some(&parsed.to_rfc3339()));
    }
    Ok(Some(parsed.timestamp()))
}

fn field<'de, A: MapAccess<'de>>(
    map: &mut A,
    buf: &mut Buffer,
    slot: usize,
    kind: Kind,
) -> Result<(), A::Error> {
    match kind {
        Kind::Text => buf.set(slot, text(map.next_value()?).as_deref()),
        Kind::Vip => {
            let vip: bool = map.next_value()?;
            buf.set(slot, Some(if vip { "true" } else { "false" }));
        }
        Kind::Rating => match map.next_value::<Option<u8>>()? {
            Some(r) => buf.set_fmt(slot, format_args!("{r}")),
            None => buf.slots[slot] = NONE,
        },
        Kind::WebId => match map.next_value::<Option<u64>>()? {
            Some(w) => buf.set_fmt(slot, format_args!("{w}")),
            None => buf.slots[slot] = NONE,
        },
        Kind::Time => {
            time::<A::Error>(buf, slot, map.next_value()?)?;
        }
    }
    Ok(())
}

/// A member's tags: ids, and names when asked.
struct TagsSeed<'a> {
    ids: &'a mut Vec<u64>,
    names: Option<&'a mut Vec<String>>,
}

impl<'de> DeserializeSeed<'de> for TagsSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for TagsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of tags")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        #[derive(Deserialize)]
        struct Tag<'a> {
            id: u64,
            #[serde(borrow)]
            name: Str<'a>,
        }
        self.ids.clear();
        if let Some(names) = self.names.as_mut() {
            names.clear();
        }
        while let Some(tag) = seq.next_element::<Tag<'de>>()? {
            self.ids.push(tag.id);
            if let Some(names) = self.names.as_mut() {
                names.push(tag.name.0.into_owned());
            }
        }
        Ok(())
    }
}

/// A scalar JSON value as [`crate::observe::member_value`] reads it; anything else is none.
enum Scalar<'a> {
    Text(Cow<'a, str>),
    Number(serde_json::Number),
    Bool(bool),
    None,
}

struct ScalarSeed;

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Scalar<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

macro_rules! scalar_visits {
    () => {
        fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
            Ok(self.scalar(Scalar::Bool(v)))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(self.scalar(Scalar::Number(v.into())))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(self.scalar(Scalar::Number(v.into())))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
            Ok(self.scalar(serde_json::Number::from_f64(v).map_or(Scalar::None, Scalar::Number)))
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(self.scalar(Scalar::Text(Cow::Borrowed(v))))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(self.scalar(Scalar::Text(Cow::Owned(v.to_owned()))))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(self.scalar(Scalar::None))
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(self.scalar(Scalar::None))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(self.scalar(Scalar::None))
        }
    };
}

impl ScalarSeed {
    #[allow(clippy::unused_self)] // the shape `scalar_visits!` calls
    fn scalar(self, s: Scalar<'_>) -> Scalar<'_> {
        s
    }
}

impl<'de> Visitor<'de> for ScalarSeed {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    scalar_visits!();

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::None)
    }
}

/// `merge_fields`: the values of the merge tags the paths name.
struct MergeFields<'a> {
    p: &'a Projection,
    buf: &'a mut Buffer,
}

impl<'de> DeserializeSeed<'de> for MergeFields<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MergeFields<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("merge fields")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Str<'de>>()? {
            match self.p.merge.iter().find(|m| m.tag == *key.0) {
                Some(tag) => map.next_value_seed(MergeValue {
                    tag,
                    buf: &mut *self.buf,
                })?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// The value of one merge tag: a scalar for `merge_fields.TAG`, an object (an address) for
/// `merge_fields.TAG.part`.
struct MergeValue<'a> {
    tag: &'a MergeTag,
    buf: &'a mut Buffer,
}

/// The slots of the paths `location.{part}`.
fn location_slots<'s>(p: &'s Projection, part: &'s str) -> impl Iterator<Item = usize> + 's {
    p.sources
        .iter()
        .enumerate()
        .filter_map(move |(i, s)| match s {
            Source::Location(q) if *q == part => Some(FIXED + i),
            _ => None,
        })
}

impl MergeValue<'_> {
    /// A value that is not an object: the whole value's paths get it, the parts' none.
    fn scalar(self, value: Scalar<'_>) {
        for &slot in &self.tag.whole {
            self.buf.set_scalar(slot, &value);
        }
        for (_, slot) in &self.tag.parts {
            self.buf.slots[*slot] = NONE;
        }
    }
}

impl<'de> DeserializeSeed<'de> for MergeValue<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MergeValue<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a merge field value")
    }

    scalar_visits!();

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let tag = self.tag;
        for &slot in tag.whole.iter().chain(tag.parts.iter().map(|(_, s)| s)) {
            self.buf.slots[slot] = NONE;
        }
        while let Some(key) = map.next_key::<Str<'de>>()? {
            let mut slots = tag.parts.iter().filter(|(part, _)| *part == *key.0);
            let Some((_, first)) = slots.next() else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let value = map.next_value_seed(ScalarSeed)?;
            self.buf.set_scalar(*first, &value);
            for (_, slot) in slots {
                self.buf.set_scalar(*slot, &value);
            }
        }
        Ok(())
    }
}

/// `location`: the parts the paths name.
struct Location<'a> {
    p: &'a Projection,
    buf: &'a mut Buffer,
}

impl<'de> DeserializeSeed<'de> for Location<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for Location<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a location")
    }

    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Str<'de>>()? {
            let part = &*key.0;
            if location_slots(self.p, part).next().is_none() {
                map.next_value::<IgnoredAny>()?;
            } else if LOCATION_COORDS.contains(&part) {
                let value = map.next_value::<Option<f64>>()?;
                let number = value.and_then(serde_json::Number::from_f64);
                for slot in location_slots(self.p, part) {
                    match &number {
                        Some(n) => self.buf.set_fmt(slot, format_args!("{n}")),
                        None => self.buf.slots[slot] = NONE,
                    }
                }
            } else {
                let value = text(map.next_value()?);
                for slot in location_slots(self.p, part) {
                    self.buf.set(slot, value.as_deref());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
