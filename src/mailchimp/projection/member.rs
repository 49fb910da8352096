//! A member page's visitors: the page, its members and each member's fixed fields, top-level
//! field paths and tags, decoded into a member's [`Buffer`] (merge fields and location:
//! [`super::merge`]).

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use chrono::{DateTime, Timelike as _};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::merge::{Location, MergeFields, Scalar};
use super::{
    CONTACT_ID, EMAIL, FIXED, ID, Kind, LAST_CHANGED, NONE, Projected, Projection, Source, Span,
};
use crate::mailchimp::row::Page;
use crate::mailchimp::{MemberStatus, PAGE_SIZE};

/// A string, borrowed from the body when it holds no escapes.
pub(super) struct Str<'de>(pub(super) Cow<'de, str>);

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

pub(super) struct PageVisitor<'p>(pub(super) &'p Projection);

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
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(PAGE_SIZE).min(PAGE_SIZE));
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
pub(super) struct Buffer {
    pub(super) text: String,
    pub(super) slots: Vec<Span>,
}

impl Buffer {
    /// The text from `start` to the end (none past 4 GiB, which no member comes near).
    fn span(&self, start: usize) -> Span {
        match (u32::try_from(start), u32::try_from(self.text.len())) {
            (Ok(start), Ok(end)) => (start, end),
            _ => NONE,
        }
    }

    pub(super) fn set(&mut self, slot: usize, text: Option<&str>) {
        self.slots[slot] = text.map_or(NONE, |t| {
            let start = self.text.len();
            self.text.push_str(t);
            self.span(start)
        });
    }

    pub(super) fn set_fmt(&mut self, slot: usize, args: fmt::Arguments<'_>) {
        let start = self.text.len();
        // Writing to a String cannot fail.
        let _ = self.text.write_fmt(args);
        self.slots[slot] = self.span(start);
    }

    pub(super) fn set_scalar(&mut self, slot: usize, scalar: &Scalar<'_>) {
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
pub(super) fn text(value: Option<Str<'_>>) -> Option<Cow<'_, str>> {
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
