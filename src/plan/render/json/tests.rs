//! The JSON writer against serde_json itself: arbitrary `serde_json::Value`s, every shape serde's
//! data model has, the refusals, and the plan model's scenarios, pretty and compact, byte for byte.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::Serialize;
use serde_json::Value;

use super::*;

/// Ours and serde_json's bytes, pretty and compact, must be the same.
fn assert_same<T: ?Sized + Serialize>(value: &T) {
    let pretty = to_writer_pretty(Vec::new(), value).expect("ours, pretty");
    let theirs = serde_json::to_vec_pretty(value).expect("serde_json, pretty");
    assert_eq!(
        String::from_utf8_lossy(&pretty),
        String::from_utf8_lossy(&theirs)
    );
    let compact = to_writer_compact(Vec::new(), value).expect("ours, compact");
    let theirs = serde_json::to_vec(value).expect("serde_json, compact");
    assert_eq!(
        String::from_utf8_lossy(&compact),
        String::from_utf8_lossy(&theirs)
    );
}

/// Strings made of what needs escaping, what must not be escaped, and plain runs long enough to
/// cross the scanner's eight-byte words.
fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        (0u8..0x20).prop_map(|b| char::from(b).to_string()),
        Just("\"".to_owned()),
        Just("\\".to_owned()),
        Just("\u{7f}".to_owned()),
        Just("é€😀\u{2028}".to_owned()),
        "[a-z@.]{0,20}",
        any::<String>(),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|parts| parts.concat())
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        Just(Value::from(0.0)),
        Just(Value::from(-0.0)),
        Just(Value::from(1e300)),
        Just(Value::from(5e-324)),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
        Just(Value::Array(Vec::new())),
        Just(Value::Object(serde_json::Map::new())),
    ];
    leaf.prop_recursive(12, 256, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_value_is_written_as_serde_json_writes_it(value in value()) {
        assert_same(&value);
    }

    #[test]
    fn any_string_is_escaped_as_serde_json_escapes_it(text in text()) {
        assert_same(&text);
    }
}

#[test]
fn deep_nesting_indents_past_the_constant_slice() {
    let mut deep = serde_json::json!({"leaf": [1, {}, [], "x\n\"y\""]});
    for i in 0..80 {
        deep = if i % 2 == 0 {
            serde_json::json!({"k": deep, "e": {}, "a": []})
        } else {
            serde_json::json!([deep, null, {"z": [true]}])
        };
    }
    assert_same(&deep);
}

#[derive(Serialize)]
struct Unit;

#[derive(Serialize)]
struct Newtype(i32);

#[derive(Serialize)]
struct Pair(u8, &'static str);

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
enum Shapes {
    Unit,
    Newtype(Vec<u8>),
    Tuple(i8, f32),
    EmptyTuple(),
    Struct { a: char, b: Option<u16> },
    EmptyStruct {},
}

#[derive(Serialize)]
struct Everything<'a> {
    unit: (),
    unit_struct: Unit,
    newtype: Newtype,
    pair: Pair,
    empty: Empty,
    shapes: Vec<Shapes>,
    #[serde(with = "serde_bytes_like")]
    bytes: &'a [u8],
    no_bytes: &'a [u8],
    chars: [char; 4],
    wide: (i128, u128, i128),
    floats: (f32, f64, f64, f64, f32),
    int_keys: BTreeMap<i64, bool>,
    bool_keys: BTreeMap<bool, ()>,
    char_keys: BTreeMap<char, u8>,
    str_keys: BTreeMap<&'static str, Option<Newtype>>,
    raw: Box<serde_json::value::RawValue>,
    #[serde(flatten)]
    flattened: BTreeMap<String, u8>,
}

/// `serialize_bytes` (serde's derive writes a `&[u8]` as a sequence otherwise).
mod serde_bytes_like {
    pub(super) fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }
}

#[test]
fn every_shape_of_serdes_data_model_is_written_as_serde_json_writes_it() {
    let value = Everything {
        unit: (),
        unit_struct: Unit,
        newtype: Newtype(-7),
        pair: Pair(255, "p\u{0}q"),
        empty: Empty {},
        shapes: vec![
            Shapes::Unit,
            Shapes::Newtype(vec![1, 2]),
            Shapes::Newtype(Vec::new()),
            Shapes::Tuple(-1, 0.1),
            Shapes::EmptyTuple(),
            Shapes::Struct { a: '"', b: None },
            Shapes::Struct {
                a: 'é', b: Some(9)
            },
            Shapes::EmptyStruct {},
        ],
        bytes: &[0, 127, 255],
        no_bytes: &[],
        chars: ['\n', '\u{1}', '\\', '😀'],
        wide: (i128::MIN, u128::MAX, 0),
        floats: (f32::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e21, 1.5e-7),
        int_keys: BTreeMap::from([(-3, true), (i64::MAX, false)]),
        bool_keys: BTreeMap::from([(true, ()), (false, ())]),
        char_keys: BTreeMap::from([('\t', 1), ('k', 2)]),
        str_keys: BTreeMap::from([("a", None), ("b", Some(Newtype(1)))]),
        raw: serde_json::value::RawValue::from_string("{ \"as\" :  [ 1 ] }".to_owned())
            .expect("valid JSON"),
        flattened: BTreeMap::from([("x".to_owned(), 1)]),
    };
    assert_same(&value);
}

/// A map serialized from its entries as they are (serde's `HashMap`/`BTreeMap` need `Ord` or
/// `Hash` keys, which floats are not).
struct Entries<K, V>(Vec<(K, V)>);

impl<K: Serialize, V: Serialize> Serialize for Entries<K, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

#[test]
fn keys_serde_json_quotes_are_quoted_and_keys_it_refuses_are_refused() {
    assert_same(&Entries(vec![(1.5f64, 1), (-0.0, 2), (1e300, 3)]));
    assert_same(&Entries(vec![(2.5f32, 1)]));
    assert_same(&Entries(vec![(Newtype(4), "n")]));
    assert_same(&Entries(vec![(Some("k"), 0)]));
    assert_same(&Entries(vec![(Shapes::Unit, 0)]));

    let refused = |ours: JsonError, theirs: serde_json::Error| {
        assert_eq!(ours.to_string(), theirs.to_string());
    };
    for (ours, theirs) in [
        (
            to_writer_compact(Vec::new(), &Entries(vec![(vec![1], 1)])).err(),
            serde_json::to_vec(&Entries(vec![(vec![1], 1)])).err(),
        ),
        (
            to_writer_pretty(Vec::new(), &Entries(vec![((), 1)])).err(),
            serde_json::to_vec_pretty(&Entries(vec![((), 1)])).err(),
        ),
        (
            to_writer_compact(Vec::new(), &Entries(vec![(None::<u8>, 1)])).err(),
            serde_json::to_vec(&Entries(vec![(None::<u8>, 1)])).err(),
        ),
        (
            to_writer_compact(Vec::new(), &Entries(vec![(Shapes::Newtype(vec![]), 1)])).err(),
            serde_json::to_vec(&Entries(vec![(Shapes::Newtype(vec![]), 1)])).err(),
        ),
        (
            to_writer_compact(Vec::new(), &Entries(vec![(f64::NAN, 1)])).err(),
            serde_json::to_vec(&Entries(vec![(f64::NAN, 1)])).err(),
        ),
        (
            to_writer_compact(Vec::new(), &Entries(vec![(f32::INFINITY, 1)])).err(),
            serde_json::to_vec(&Entries(vec![(f32::INFINITY, 1)])).err(),
        ),
    ] {
        refused(
            ours.expect("we refuse"),
            theirs.expect("serde_json refuses"),
        );
    }
    assert!(matches!(
        to_writer_compact(Vec::new(), &Entries(vec![(vec![1], 1)])),
        Err(JsonError::KeyMustBeAString)
    ));
    assert!(matches!(
        to_writer_compact(Vec::new(), &Entries(vec![(f64::NAN, 1)])),
        Err(JsonError::FloatKeyMustBeFinite)
    ));
}

#[test]
fn a_failing_writer_fails_the_write_with_its_error() {
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let error = to_writer_compact(Broken, &"x").err().expect("fails");
    assert!(matches!(&error, JsonError::Io(e) if e.to_string() == "disk on fire"));
    let error = serde_json::Error::from(error);
    assert!(error.is_io(), "{error}");
}

#[test]
fn the_plan_scenarios_are_written_as_serde_json_writes_them() {
    let plan = crate::plan::fixture::scenario_plan();
    assert_same(&plan);
    let mut ours = Vec::new();
    write_json(&plan, &mut ours).expect("writes");
    let mut theirs = serde_json::to_vec_pretty(&plan).expect("serializes");
    theirs.push(b'\n');
    assert_eq!(ours, theirs);
    assert_eq!(json(&plan).expect("writes").as_bytes(), theirs);
    for binding in &plan.bindings {
        assert_same(binding);
        assert_same(&binding.changes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Members with arbitrary names (controls, quotes, non-ASCII) on top of the fixed scenario:
    /// new contacts, updates of stale names, do-not-e-mail flips.
    #[test]
    fn plans_of_arbitrary_member_data_are_written_as_serde_json_writes_them(
        members in prop::collection::vec((text(), text(), text(), 0u8..3), 1..10)
    ) {
        use crate::config::MemberStatus::Subscribed;
        use crate::plan::fixture::{Builder, plan_of, scenario, uuid};

        let (bindings, names, mut snapshots) = scenario();
        let id_col = names.contact_mailchimp_id_column.clone();
        let status_col = names.subscriber_status_column.clone();
        let mut builder = Builder { snapshot: snapshots[0].clone() };
        for (i, (first, last, stale, kind)) in members.iter().enumerate() {
            let email = format!("p{i}@example.org");
            let fields = [("merge_fields.FNAME", first.as_str()), ("merge_fields.LNAME", last.as_str())];
            builder = builder.member(&email, Subscribed, &fields, &[1]);
            if *kind > 0 {
                let contact = format!("c-p{i}");
                let columns = [
                    ("emailaddress1", email.as_str()),
                    (id_col.as_str(), contact.as_str()),
                    ("firstname", stale.as_str()),
                    ("lastname", last.as_str()),
                    (status_col.as_str(), "subscribed"),
                ];
                let id = uuid(0x20_0000 + i as u128);
                builder = builder.record(id, &columns, *kind == 2, &[], true);
            }
        }
        snapshots[0] = builder.build();
        let plan = plan_of(&bindings, &names, &snapshots);
        assert_same(&plan);
    }
}
