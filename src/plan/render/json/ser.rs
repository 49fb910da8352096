//! The `serde::Serializer` of the JSON writer: serde_json's `Serializer` call for call (the same
//! states, the same bytes), pretty (serde_json's two-space `PrettyFormatter`) or compact
//! (`to_writer`) by a const parameter, writing into an owned buffer ([`Out`]) instead of making
//! an `io::Write` call per fragment.

use std::io::Write;

use serde::ser::{self, Serialize};

use super::Error;
use super::escape::escape_into;
use super::keys::{KeySerializer, RAW_VALUE_TOKEN, RawSerializer};
use super::out::Out;

/// The integer methods of a serializer: each writes its value with `$write` (on the serializer
/// `$s` and the value `$v`). Shared with the key serializer (which quotes them).
macro_rules! integers {
    (|$s:ident, $v:ident| $write:expr; $($method:ident: $ty:ty),* $(,)?) => {$(
        fn $method(self, $v: $ty) -> Result<(), Error> {
            let $s = self;
            $write;
            Ok(())
        }
    )*};
}
pub(super) use integers;

/// A JSON writer: pretty when `PRETTY`, else compact.
pub(super) struct Serializer<W, const PRETTY: bool> {
    pub(super) out: Out<W>,
    /// Open arrays and objects (pretty only).
    depth: usize,
    /// Whether the innermost open array or object holds a value (serde_json's `has_value`).
    has_value: bool,
}

impl<W: Write, const PRETTY: bool> Serializer<W, PRETTY> {
    pub(super) fn new(inner: W) -> Self {
        Self {
            out: Out::new(inner),
            depth: 0,
            has_value: false,
        }
    }

    fn open(&mut self, bracket: u8) {
        if PRETTY {
            self.depth += 1;
            self.has_value = false;
        }
        self.out.buf.push(bracket);
    }

    fn close(&mut self, bracket: u8) {
        if PRETTY {
            self.depth = self.depth.saturating_sub(1);
            if self.has_value {
                self.out.line(self.depth);
            }
        }
        self.out.buf.push(bracket);
    }

    /// Before an array element or an object key.
    #[inline]
    fn element(&mut self, first: bool) {
        if !first {
            self.out.buf.push(b',');
        }
        if PRETTY {
            self.out.line(self.depth);
        }
    }

    /// After an array element or an object value.
    #[inline]
    fn element_end(&mut self) -> Result<(), Error> {
        if PRETTY {
            self.has_value = true;
        }
        self.out.spill().map_err(Error::Io)
    }

    /// Between an object key and its value.
    #[inline]
    fn colon(&mut self) {
        let colon: &[u8] = if PRETTY { b": " } else { b":" };
        self.out.buf.extend_from_slice(colon);
    }

    #[inline]
    pub(super) fn string(&mut self, text: &str) {
        self.out.buf.push(b'"');
        escape_into(&mut self.out.buf, text);
        self.out.buf.push(b'"');
    }

    #[inline]
    pub(super) fn integer(&mut self, n: impl itoa::Integer) {
        self.out
            .buf
            .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }

    /// A finite float as serde_json writes it.
    pub(super) fn float(&mut self, f: impl zmij::Float) {
        self.out
            .buf
            .extend_from_slice(zmij::Buffer::new().format_finite(f).as_bytes());
    }

    /// `{"variant": ` before a newtype, tuple or struct variant's value.
    fn variant_key(&mut self, variant: &str) {
        self.open(b'{');
        self.element(true);
        self.string(variant);
        self.colon();
    }

    /// `}` after a variant's value.
    fn variant_end(&mut self) {
        if PRETTY {
            self.has_value = true;
        }
        self.close(b'}');
    }

    fn compound(&mut self, bracket: u8, len: Option<usize>) -> Compound<'_, W, PRETTY> {
        self.open(bracket);
        let state = if len == Some(0) {
            self.close(if bracket == b'[' { b']' } else { b'}' });
            State::Empty
        } else {
            State::First
        };
        Compound { ser: self, state }
    }
}

/// Where a compound is (serde_json's `State`).
#[derive(PartialEq, Eq)]
enum State {
    /// Written whole already (a length of 0 was announced).
    Empty,
    /// A `RawValue` (its one field is written as is).
    Raw,
    First,
    Rest,
}

/// An array or object being written.
pub(super) struct Compound<'a, W, const PRETTY: bool> {
    ser: &'a mut Serializer<W, PRETTY>,
    state: State,
}

impl<W: Write, const PRETTY: bool> Compound<'_, W, PRETTY> {
    fn element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.ser.element(self.state == State::First);
        self.state = State::Rest;
        value.serialize(&mut *self.ser)?;
        self.ser.element_end()
    }

    fn end(self, bracket: u8) {
        if !matches!(self.state, State::Empty | State::Raw) {
            self.ser.close(bracket);
        }
    }

    /// The end of a tuple or struct variant's value, then of the object around it.
    fn end_variant(self, bracket: u8) {
        let ser = &mut *self.ser;
        if self.state != State::Empty {
            ser.close(bracket);
        }
        ser.variant_end();
    }
}

impl<'a, W: Write, const PRETTY: bool> ser::Serializer for &'a mut Serializer<W, PRETTY> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a, W, PRETTY>;
    type SerializeTuple = Compound<'a, W, PRETTY>;
    type SerializeTupleStruct = Compound<'a, W, PRETTY>;
    type SerializeTupleVariant = Compound<'a, W, PRETTY>;
    type SerializeMap = Compound<'a, W, PRETTY>;
    type SerializeStruct = Compound<'a, W, PRETTY>;
    type SerializeStructVariant = Compound<'a, W, PRETTY>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        let text: &[u8] = if v { b"true" } else { b"false" };
        self.out.buf.extend_from_slice(text);
        Ok(())
    }
    integers! { |s, v| s.integer(v);
        serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_i128: i128, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_u128: u128,
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        if v.is_finite() {
            self.float(v);
            Ok(())
        } else {
            self.serialize_unit()
        }
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        if v.is_finite() {
            self.float(v);
            Ok(())
        } else {
            self.serialize_unit()
        }
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.string(v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.string(v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.open(b'[');
        for (i, byte) in v.iter().enumerate() {
            self.element(i == 0);
            self.integer(*byte);
            self.element_end()?;
        }
        self.close(b']');
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.out.buf.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.string(variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.variant_key(variant);
        value.serialize(&mut *self)?;
        self.variant_end();
        Ok(())
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Ok(self.compound(b'[', len))
    }
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, Error> {
        Ok(self.compound(b'[', Some(len)))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Ok(self.compound(b'[', Some(len)))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        self.variant_key(variant);
        Ok(self.compound(b'[', Some(len)))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Ok(self.compound(b'{', len))
    }
    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, Error> {
        if name == RAW_VALUE_TOKEN {
            return Ok(Compound {
                ser: self,
                state: State::Raw,
            });
        }
        Ok(self.compound(b'{', Some(len)))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        self.variant_key(variant);
        Ok(self.compound(b'{', Some(len)))
    }
    fn collect_str<T: ?Sized + std::fmt::Display>(self, value: &T) -> Result<(), Error> {
        /// Display output escaped straight into the buffer.
        struct Escaping<'b>(&'b mut Vec<u8>);
        impl std::fmt::Write for Escaping<'_> {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                escape_into(self.0, s);
                Ok(())
            }
        }
        self.out.buf.push(b'"');
        std::fmt::write(&mut Escaping(&mut self.out.buf), format_args!("{value}"))
            .map_err(|_| <Error as ser::Error>::custom("a value failed to display itself"))?;
        self.out.buf.push(b'"');
        Ok(())
    }
}

/// The sequence traits, each an array: `$add` writes an element, `end` closes the array.
macro_rules! arrays {
    ($($trait:ident::$add:ident;)*) => {$(
        impl<W: Write, const PRETTY: bool> ser::$trait for Compound<'_, W, PRETTY> {
            type Ok = ();
            type Error = Error;
            fn $add<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
                self.element(value)
            }
            fn end(self) -> Result<(), Error> {
                Compound::end(self, b']');
                Ok(())
            }
        }
    )*};
}

arrays! {
    SerializeSeq::serialize_element;
    SerializeTuple::serialize_element;
    SerializeTupleStruct::serialize_field;
}

impl<W: Write, const PRETTY: bool> ser::SerializeTupleVariant for Compound<'_, W, PRETTY> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.end_variant(b']');
        Ok(())
    }
}

impl<W: Write, const PRETTY: bool> ser::SerializeMap for Compound<'_, W, PRETTY> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Error> {
        self.ser.element(self.state == State::First);
        self.state = State::Rest;
        key.serialize(KeySerializer(&mut *self.ser))
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.ser.colon();
        value.serialize(&mut *self.ser)?;
        self.ser.element_end()
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self, b'}');
        Ok(())
    }
}

impl<W: Write, const PRETTY: bool> ser::SerializeStruct for Compound<'_, W, PRETTY> {
    type Ok = ();
    type Error = Error;
    #[inline]
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        if self.state == State::Raw {
            return match key {
                RAW_VALUE_TOKEN => value.serialize(RawSerializer(&mut self.ser.out.buf)),
                _ => Err(Error::ExpectedValue),
            };
        }
        self.ser.element(self.state == State::First);
        self.state = State::Rest;
        self.ser.string(key);
        ser::SerializeMap::serialize_value(self, value)
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self, b'}');
        Ok(())
    }
}

impl<W: Write, const PRETTY: bool> ser::SerializeStructVariant for Compound<'_, W, PRETTY> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }
    fn end(self) -> Result<(), Error> {
        self.end_variant(b'}');
        Ok(())
    }
}
