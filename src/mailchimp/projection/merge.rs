//! The visitors of `merge_fields` (a merge tag's value whole, or an address's parts) and
//! `location`, and of the scalars they hold, as [`crate::observe::member_value`] reads them.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::member::{Buffer, Str, text};
use super::{FIXED, LOCATION_COORDS, MergeTag, NONE, Projection, Source};

/// A scalar JSON value as [`crate::observe::member_value`] reads it; anything else is none.
pub(super) enum Scalar<'a> {
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
pub(super) struct MergeFields<'a> {
    pub(super) p: &'a Projection,
    pub(super) buf: &'a mut Buffer,
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
pub(super) struct Location<'a> {
    pub(super) p: &'a Projection,
    pub(super) buf: &'a mut Buffer,
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
