//! What a sandbox starts with: a seed file (YAML or JSON, one document, both halves in it) and
//! the deterministic generator's settings (`members=N,tags=T,seed=S[,audiences=K]`).
//!
//! The YAML reader is the emulator's own (on `yaml-rust2` events), so that the emulator shares no
//! code with the product: YAML 1.2 scalars (a quoted or `!!str` scalar is a string; plain
//! `true`/`false`, `null`/`~`, integers and floats are typed), anchors and aliases, JSON as a
//! subset. A repeated key or a second document is refused: silently keeping one is how a seed
//! loses a setting.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Number, Value};
use yaml_rust2::Yaml;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::{Error, dataverse, mailchimp};

/// What both halves are seeded with (a seed file holds both).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// The Mailchimp account's data.
    #[serde(default)]
    pub mailchimp: mailchimp::Seed,
    /// The Dataverse environment's data.
    #[serde(default)]
    pub dataverse: dataverse::Seed,
}

impl Seed {
    /// Read a seed file, YAML or JSON.
    ///
    /// # Errors
    /// The file cannot be read or does not describe a seed.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadSeed {
            path: path.to_owned(),
            source,
        })?;
        Self::from_text(&text).map_err(|message| Error::InvalidSeed {
            path: path.to_owned(),
            message,
        })
    }

    /// Read a seed from YAML or JSON text.
    ///
    /// # Errors
    /// The text is not one YAML document, or does not describe a seed.
    pub fn from_text(text: &str) -> Result<Self, String> {
        let value = parse_yaml(text)?;
        serde_json::from_value(value).map_err(|err| err.to_string())
    }
}

/// The deterministic generator's settings: `members=N,tags=T,seed=S[,audiences=K][,shared=P]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerateSpec {
    /// Members per audience.
    pub members: usize,
    /// Tags per audience.
    pub tags: usize,
    /// Random seed: the same seed gives the same data.
    pub seed: u64,
    /// Audiences.
    pub audiences: usize,
    /// Percent (0–100) of the members of every audience after the first that are people of the
    /// first audience: the same e-mail address (every third one in other letter case), with
    /// this audience's own Mailchimp ids, as Mailchimp keeps one member per audience. 0 gives
    /// disjoint audiences (and the same data as before this option existed).
    pub shared: usize,
}

impl std::str::FromStr for GenerateSpec {
    type Err = Error;

    fn from_str(spec: &str) -> Result<Self, Error> {
        let invalid = |message: String| Error::InvalidGenerate {
            spec: spec.to_owned(),
            message,
        };
        let mut out = GenerateSpec {
            members: 0,
            tags: 0,
            seed: 1,
            audiences: 1,
            shared: 0,
        };
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| invalid(format!("`{part}` is not KEY=VALUE")))?;
            let number: u64 = value
                .trim()
                .replace('_', "")
                .parse()
                .map_err(|_| invalid(format!("`{value}` is not a whole number")))?;
            let as_usize =
                usize::try_from(number).map_err(|_| invalid(format!("`{value}` is too large")))?;
            match key.trim() {
                "members" => out.members = as_usize,
                "tags" => out.tags = as_usize,
                "seed" => out.seed = number,
                "audiences" => out.audiences = as_usize,
                "shared" if as_usize <= 100 => out.shared = as_usize,
                "shared" => return Err(invalid(format!("shared={value} is not a percent"))),
                other => {
                    return Err(invalid(format!(
                        "unknown key `{other}` (use members, tags, seed, audiences, shared)"
                    )));
                }
            }
        }
        Ok(out)
    }
}

/// One YAML (or JSON) document as a JSON value.
fn parse_yaml(text: &str) -> Result<Value, String> {
    let mut builder = Builder::default();
    Parser::new_from_str(text)
        .load(&mut builder, true)
        .map_err(|err| {
            let mark = err.marker();
            format!(
                "YAML syntax error: {} (line {}, column {})",
                err.info(),
                mark.line().max(1),
                mark.col() + 1
            )
        })?;
    if let Some(err) = builder.error {
        return Err(err);
    }
    if builder.documents > 1 {
        return Err("more than one YAML document (`---`) in the seed".to_owned());
    }
    Ok(builder.root.unwrap_or(Value::Null))
}

enum Frame {
    Seq(Vec<Value>, usize),
    Map(Map<String, Value>, Option<String>, usize),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Value>,
    anchors: HashMap<usize, Value>,
    documents: usize,
    error: Option<String>,
}

impl Builder {
    fn fail(&mut self, message: String, mark: Marker) {
        if self.error.is_none() {
            self.error = Some(format!(
                "{message} (line {}, column {})",
                mark.line().max(1),
                mark.col() + 1
            ));
        }
    }

    /// Take `value` as the next key (when a mapping waits for one) or the next value.
    fn node(&mut self, value: Value, anchor: usize, mark: Marker) {
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq(items, _)) => items.push(value),
            Some(Frame::Map(map, pending @ None, _)) => {
                let key = match value {
                    Value::String(s) => s,
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                let repeated = map.contains_key(&key);
                *pending = Some(key.clone());
                if repeated {
                    self.fail(
                        format!("duplicate key `{key}`; each key may appear once in a mapping"),
                        mark,
                    );
                }
            }
            Some(Frame::Map(map, pending, _)) => {
                if let Some(key) = pending.take() {
                    map.insert(key, value);
                }
            }
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::DocumentStart => self.documents += 1,
            Event::Scalar(text, style, anchor, tag) => {
                let tag = tag.as_ref().map(|t| t.suffix.as_str());
                self.node(scalar(&text, style, tag), anchor, mark);
            }
            Event::Alias(anchor) => {
                let value = self.anchors.get(&anchor).cloned().unwrap_or(Value::Null);
                self.node(value, 0, mark);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if matches!(self.stack.last(), Some(Frame::Map(_, None, _))) {
                    self.fail(
                        "a mapping key must be a plain value, not a list or mapping".to_owned(),
                        mark,
                    );
                    self.node(Value::String("?".to_owned()), 0, mark);
                }
                self.stack
                    .push(if matches!(event, Event::SequenceStart(..)) {
                        Frame::Seq(Vec::new(), anchor)
                    } else {
                        Frame::Map(Map::new(), None, anchor)
                    });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor) = match self.stack.pop() {
                    Some(Frame::Seq(items, anchor)) => (Value::Array(items), anchor),
                    Some(Frame::Map(map, _, anchor)) => (Value::Object(map), anchor),
                    None => return,
                };
                self.node(value, anchor, mark);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

/// A scalar's JSON value (YAML 1.2 core schema; quoted and `!!str` scalars are strings).
fn scalar(text: &str, style: TScalarStyle, tag: Option<&str>) -> Value {
    if style != TScalarStyle::Plain || tag == Some("str") {
        return Value::String(text.to_owned());
    }
    match Yaml::from_str(text) {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Integer(i) => Value::Number(Number::from(i)),
        Yaml::Real(r) => r
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map_or_else(|| Value::String(r.clone()), Value::Number),
        _ => Value::String(text.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn yaml_and_json_read_alike_with_typed_plain_scalars() {
        let yaml =
            "a: '1'\nb: \"true\"\nc: 1.5\nd: ~\ne: !!str 7\nf: [1, x]\ng: &g {h: 2}\ni: *g\n";
        assert_eq!(
            parse_yaml(yaml).unwrap(),
            json!({"a": "1", "b": "true", "c": 1.5, "d": null, "e": "7", "f": [1, "x"],
                   "g": {"h": 2}, "i": {"h": 2}})
        );
        let json_text = r#"{"a": "1", "f": [1, "x"], "n": {"m": null}}"#;
        assert_eq!(
            parse_yaml(json_text).unwrap(),
            json!({"a": "1", "f": [1, "x"], "n": {"m": null}})
        );
    }

    #[test]
    fn repeated_keys_second_documents_and_bad_syntax_are_refused() {
        let err = parse_yaml("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert!(
            err.contains("duplicate key `a`") && err.contains("line 3"),
            "{err}"
        );
        assert!(
            parse_yaml("a: 1\n---\nb: 2\n")
                .unwrap_err()
                .contains("more than one")
        );
        assert!(
            parse_yaml("a: [1, 2\n")
                .unwrap_err()
                .contains("YAML syntax error")
        );
    }

    #[test]
    fn a_seed_refuses_unknown_sections() {
        assert!(Seed::from_text("mailchimp: {}\ndataverse: {}\n").is_ok());
        assert!(Seed::from_text("salesforce: {}\n").is_err());
    }

    #[test]
    fn generate_spec_parses_and_refuses_nonsense() {
        let spec: GenerateSpec = "members=2_500,tags=5,seed=7,audiences=2,shared=30"
            .parse()
            .unwrap();
        assert_eq!(
            spec,
            GenerateSpec {
                members: 2500,
                tags: 5,
                seed: 7,
                audiences: 2,
                shared: 30,
            }
        );
        assert!("members=1,shared=101".parse::<GenerateSpec>().is_err());
        let spec: GenerateSpec = "members=10".parse().unwrap();
        assert_eq!(spec.audiences, 1);
        assert!("members=ten".parse::<GenerateSpec>().is_err());
        assert!("people=3".parse::<GenerateSpec>().is_err());
    }
}
