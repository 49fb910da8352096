//! Schema errors in the config's own words: each `jsonschema` error becomes a message that names
//! the key as the user wrote it, shows the value (shortened), suggests the closest allowed word,
//! and says how to fix it. Also the checks of numbers the schema lets through (`version: 1.0`,
//! a `max_removals` beyond any list).

use std::collections::BTreeSet;
use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use super::Findings;
use crate::config::schema;
use crate::config::yaml::{self, shorten};

/// The schema and its compiled validator, built once.
fn compiled() -> Option<&'static (Value, Validator)> {
    static COMPILED: OnceLock<Option<(Value, Validator)>> = OnceLock::new();
    COMPILED
        .get_or_init(|| {
            let schema = schema::generate();
            let validator = jsonschema::draft7::new(&schema).ok()?;
            Some((schema, validator))
        })
        .as_ref()
}

/// Report every schema error; returns the pointers of the nodes found wrong.
pub(super) fn schema_errors(value: &Value, out: &mut Findings<'_>) -> BTreeSet<String> {
    let mut broken = BTreeSet::new();
    let Some((schema, validator)) = compiled() else {
        out.error(
            "",
            "internal error: the config schema does not compile",
            "report this as a bug",
        );
        broken.insert(String::new());
        return broken;
    };
    for error in validator.iter_errors(value) {
        broken.insert(error.instance_path().as_str().to_owned());
        describe(&error, schema, value, out);
    }
    number_errors(value, out, &mut broken);
    broken
}

/// Whole numbers the schema accepts but the model cannot hold: `1.0`, `1e30`.
fn number_errors(value: &Value, out: &mut Findings<'_>, broken: &mut BTreeSet<String>) {
    if value.get("version").is_some_and(Value::is_f64) && !broken.contains("/version") {
        let written = out.positions.raw("/version").unwrap_or_default().to_owned();
        out.error(
            "/version",
            &format!(
                "`version` must be a whole number, not `{}`",
                shorten(&written)
            ),
            "write `version: 1`",
        );
        broken.insert("/version".to_owned());
    }
    let mut places: Vec<String> = vec!["/defaults/max_removals".to_owned()];
    if let Some(bindings) = value.get("bindings").and_then(Value::as_array) {
        places.extend((0..bindings.len()).map(|i| format!("/bindings/{i}/max_removals")));
    }
    for path in places {
        if value.pointer(&path).is_some_and(Value::is_f64) && !broken.contains(&path) {
            let written = out.positions.raw(&path).unwrap_or_default().to_owned();
            out.error(
                &path,
                &format!("`max_removals: {}` is not a number of members this tool can count", shorten(&written)),
                "write a whole number of members (`50`), or a percent (`100%` allows removing every member)",
            );
            broken.insert(path);
        }
    }
}

/// How a message names the node at `path`: `` `prune_members` ``, `` `statuses[0]` ``,
/// ``binding `newsletter` ``, or "the file".
fn label(root: &Value, path: &str) -> String {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    match segments.as_slice() {
        [] => "the file".to_owned(),
        ["bindings", index] => {
            let name = root
                .pointer(path)
                .and_then(|b| b.get("name"))
                .and_then(Value::as_str)
                .filter(|n| !n.trim().is_empty());
            match (name, index.parse::<usize>()) {
                (Some(name), _) => format!("binding `{}`", shorten(name)),
                (None, Ok(i)) => format!("binding #{}", i + 1),
                (None, Err(_)) => format!("`{}`", shorten(index)),
            }
        }
        [.., parent, last] if last.parse::<usize>().is_ok() => {
            format!("`{}[{last}]`", shorten(&unescape(parent)))
        }
        _ => format!("`{}`", shorten(&key_name(path))),
    }
}

fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

/// The last segment of a JSON pointer, unescaped: the key a user sees.
pub(super) fn key_name(path: &str) -> String {
    unescape(path.rsplit('/').next().unwrap_or(""))
}

fn describe(error: &ValidationError<'_>, schema: &Value, root: &Value, out: &mut Findings<'_>) {
    let path = error.instance_path().as_str().to_owned();
    let instance = error.instance();
    let key = label(root, &path);
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed = properties_at(schema, &path);
            for name in unexpected {
                let child = format!("{path}/{}", yaml::escape(name));
                let message = match closest(name, &allowed) {
                    Some(s) => format!("unknown key `{}`; did you mean `{s}`?", shorten(name)),
                    None => format!("unknown key `{}`", shorten(name)),
                };
                let help = if allowed.is_empty() {
                    "remove it".to_owned()
                } else {
                    format!("keys allowed here: {}", allowed.join(", "))
                };
                out.error_key(&child, &message, &help);
            }
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            let help =
                required_help(name).map_or_else(|| format!("add `{name}: …`"), str::to_owned);
            out.error(
                &path,
                &format!("missing required key `{name}` in {key}"),
                &help,
            );
        }
        ValidationErrorKind::Type { kind } => {
            let types: Vec<String> = match kind {
                TypeKind::Single(t) => vec![t.to_string()],
                TypeKind::Multiple(set) => set.iter().map(|t| t.to_string()).collect(),
            };
            describe_type(&path, &key, instance, &types, out);
        }
        ValidationErrorKind::Enum { options } => {
            let choices: Vec<String> = options
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            describe_enum(&path, &key, instance, &choices, out);
        }
        ValidationErrorKind::Constant { expected_value } => {
            let choices: Vec<String> = expected_value
                .as_str()
                .map(str::to_owned)
                .into_iter()
                .collect();
            describe_enum(&path, &key, instance, &choices, out);
        }
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context }
            if !context.is_empty()
                && context.iter().all(|errors| {
                    errors.len() == 1
                        && matches!(errors[0].kind(), ValidationErrorKind::Constant { .. })
                }) =>
        {
            // A documented enum: schemars writes one `const` alternative per variant.
            let choices: Vec<String> = context
                .iter()
                .filter_map(|errors| match errors[0].kind() {
                    ValidationErrorKind::Constant { expected_value } => {
                        expected_value.as_str().map(str::to_owned)
                    }
                    _ => None,
                })
                .collect();
            describe_enum(&path, &key, instance, &choices, out);
        }
        ValidationErrorKind::Pattern { .. } => {
            let got = instance.as_str().unwrap_or_default();
            let (message, help) = pattern_message(&path, &key, got, out.positions.quoted(&path));
            out.error(&path, &message, &help);
        }
        ValidationErrorKind::Minimum { .. } | ValidationErrorKind::Maximum { .. }
            if path == "/version" =>
        {
            out.error(
                &path,
                &format!("unsupported `version: {instance}`; this audience-sync reads version 1"),
                "set `version: 1`",
            );
        }
        ValidationErrorKind::Minimum { limit } if path.ends_with("/max_removals") => out.error(
            &path,
            &format!("{key} must be at least {limit}, not {instance}"),
            "write a number of members (`50`) or a percent from 0% to 100% (`10%`)",
        ),
        ValidationErrorKind::Minimum { limit } => out.error(
            &path,
            &format!("{key} must be at least {limit}, not {instance}"),
            &format!("write a number of {limit} or more"),
        ),
        ValidationErrorKind::Maximum { limit } => out.error(
            &path,
            &format!("{key} must be at most {limit}, not {instance}"),
            &format!("write a number of {limit} or less"),
        ),
        ValidationErrorKind::MinItems { .. } => out.error(
            &path,
            &format!("{key} must list at least one item"),
            &format!(
                "list at least one value, or leave `{}` out to use the default",
                key_name(&path)
            ),
        ),
        ValidationErrorKind::MinLength { .. } => out.error(
            &path,
            &format!("{key} must not be empty"),
            "write the value between the quotes, or remove the key",
        ),
        ValidationErrorKind::MaxLength { limit } => out.error(
            &path,
            &format!("{key} is longer than {limit} characters"),
            &format!("shorten it to at most {limit} characters"),
        ),
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            // Report the alternative whose type fits the value, if one does.
            let fitting = context.iter().find(|errors| {
                !errors.iter().any(|e| {
                    e.instance_path().as_str() == path
                        && matches!(e.kind(), ValidationErrorKind::Type { .. })
                })
            });
            match fitting {
                Some(errors) if !errors.is_empty() => {
                    for inner in errors {
                        describe(inner, schema, root, out);
                    }
                }
                _ => describe_forms(&path, &key, instance, out),
            }
        }
        _ => out.error(
            &path,
            &format!("{key} is not valid: {}", shorten(&error.to_string())),
            "`audience-sync schema` prints what each key accepts",
        ),
    }
}

/// A value that fits none of a setting's forms.
fn describe_forms(path: &str, key: &str, instance: &Value, out: &mut Findings<'_>) {
    let got = describe_value(out, path, instance);
    if path.ends_with("/max_removals") {
        out.error(
            path,
            &format!(
                "{key} must be a number of members (e.g. `50`) or a percent (e.g. `10%`), not {got}"
            ),
            "write a whole number of members (`50`) or a percent from 0% to 100% (`10%`)",
        );
    } else if path.contains("/fields/map/") {
        let message = if instance.is_null() {
            format!("{key} has no value")
        } else {
            format!(
                "{key} must be a column name, `{{ column: …, policy: … }}`, or `null`, not {got}"
            )
        };
        out.error(
            path,
            &message,
            "write the CRM column (`firstname`), `{ column: firstname, policy: fill_empty }`, or `null` to drop a default mapping",
        );
    } else {
        out.error(
            path,
            &format!("{key} must be one of the allowed forms, not {got}"),
            "`audience-sync schema` prints what each key accepts",
        );
    }
}

fn describe_type(
    path: &str,
    key: &str,
    instance: &Value,
    types: &[String],
    out: &mut Findings<'_>,
) {
    let expected = types
        .iter()
        .map(|t| type_words(t))
        .collect::<Vec<_>>()
        .join(" or ");
    let name = key_name(path);
    if instance.is_null() {
        out.error_key(
            path,
            &format!("{key} has no value; it must be {expected}"),
            &if name.parse::<usize>().is_ok() {
                "write the item after its `-`, or remove the line".to_owned()
            } else {
                format!("write a value after `{name}:`, or remove the line")
            },
        );
        return;
    }
    let raw = out.positions.raw(path).map(str::to_owned);
    if types == ["string"] && !instance.is_object() && !instance.is_array() {
        let written = raw.unwrap_or_else(|| instance.to_string());
        let canonical = instance.to_string();
        let message = if written != canonical && instance.is_number() {
            let lost =
                if written.trim_start_matches(['+', '-']).starts_with('0') && written.len() > 1 {
                    " (the leading zero is lost)"
                } else {
                    ""
                };
            format!(
                "{key} must be a text, but `{}` was read as the number {canonical}{lost}",
                shorten(&written)
            )
        } else {
            format!(
                "{key} must be a text, not {}",
                describe_value(out, path, instance)
            )
        };
        out.error(
            path,
            &message,
            &format!(
                "quote it to keep it as written: `{name}: \"{}\"`",
                shorten(&written)
            ),
        );
        return;
    }
    let help = match types.first().map(String::as_str) {
        Some("object") => {
            format!("write the settings of `{name}` as indented `key: value` lines below it")
        }
        Some("array") => {
            format!("write the items of `{name}` as `- item` lines below it, or as `[a, b]`")
        }
        Some("boolean") => "write `true` or `false`, without quotes".to_owned(),
        Some("integer" | "number") => "write a number, without quotes".to_owned(),
        _ => "`audience-sync schema` prints what each key accepts".to_owned(),
    };
    out.error(
        path,
        &format!(
            "{key} must be {expected}, not {}",
            describe_value(out, path, instance)
        ),
        &help,
    );
}

/// The choice that `got` spells in another case or with `-`/spaces for `_`.
fn same_word<'c>(got: &str, choices: &'c [String]) -> Option<&'c String> {
    let normal = got.trim().to_lowercase().replace(['-', ' '], "_");
    choices.iter().find(|c| **c == normal)
}

fn describe_enum(
    path: &str,
    key: &str,
    instance: &Value,
    choices: &[String],
    out: &mut Findings<'_>,
) {
    let got = instance.as_str().map_or_else(
        || describe_value(out, path, instance),
        |s| format!("`{}`", shorten(s)),
    );
    let name = key_name(path);
    let list = choices
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(word) = instance.as_str().and_then(|s| same_word(s, choices)) {
        out.error(
            path,
            &format!("{got} is not a valid {key}; did you mean `{word}`?"),
            &if name.parse::<usize>().is_ok() {
                format!("values are written in lower case with `_`: `{word}`")
            } else {
                format!("values are written in lower case with `_`: `{name}: {word}`")
            },
        );
    } else if path.ends_with("/marketing_list/member_type") {
        out.error(
            path,
            &format!("{got}: only static marketing lists that target contacts or leads can be synced"),
            "set `member_type: contact` or `member_type: lead`; account-type lists cannot hold Mailchimp members",
        );
    } else if path.ends_with("/marketing_list/type") {
        out.error(
            path,
            &format!("{got}: only static marketing lists that target contacts or leads can be synced"),
            "dynamic lists are computed from a query and cannot be written to; bind a static list (`type: static`, or leave `type` out)",
        );
    } else {
        let message = match instance.as_str().and_then(|s| closest(s, choices)) {
            Some(s) => format!("{got} is not a valid {key}; did you mean `{s}`? (one of: {list})"),
            None => format!("{got} is not a valid {key}; expected one of: {list}"),
        };
        out.error(path, &message, &format!("write one of: {list}"));
    }
}

fn required_help(name: &str) -> Option<&'static str> {
    Some(match name {
        "version" => "add `version: 1` at the top",
        "mailchimp" => "add a `mailchimp:` section with `api_key: ${MAILCHIMP_API_KEY}`",
        "dataverse" => {
            "add a `dataverse:` section with url, tenant_id, client_id and client_secret"
        }
        "bindings" => "add a `bindings:` list; `audience-sync init` writes one from your audiences",
        "api_key" => "write `api_key: ${MAILCHIMP_API_KEY}` and set the variable",
        "client_secret" => "write `client_secret: ${DATAVERSE_CLIENT_SECRET}` and set the variable",
        "member_type" => "add `member_type: contact` or `member_type: lead`",
        "audience" => {
            "add `audience: { id: <list id> }` (ids from `audience-sync audiences`) or `audience: { name: … }`"
        }
        "marketing_list" => "add `marketing_list: { name: …, member_type: contact }`",
        "column" => "add `column: <CRM column>`, like `column: firstname`",
        _ => return None,
    })
}

fn pattern_message(path: &str, key: &str, got: &str, quoted: bool) -> (String, String) {
    let shown = shorten(got);
    if path.ends_with("/audience/id") {
        (
            format!("`{shown}` is not a Mailchimp audience id (10 lowercase hexadecimal characters, like `a1b2c3d4e5`)"),
            "`audience-sync audiences` lists the ids; to pick an audience by its name, write `name:` instead of `id:`".to_owned(),
        )
    } else if path.ends_with("/marketing_list/id") {
        (
            format!("`{shown}` is not a GUID"),
            "a list id looks like `8f2c1d3e-0000-4000-8000-0123456789ab`; or use `name:`"
                .to_owned(),
        )
    } else if path.ends_with("/max_removals") && quoted && got.trim().parse::<f64>().is_ok() {
        (
            format!("`max_removals: \"{shown}\"` is quoted text, not a number"),
            format!(
                "write `max_removals: {}` without quotes for a number of members, or `{}%` for a percent of the list",
                got.trim(),
                got.trim()
            ),
        )
    } else if path.ends_with("/max_removals") {
        (
            format!("`{shown}` is not a percent like `10%`"),
            "write a number of members (`50`) or a percent (`10%`)".to_owned(),
        )
    } else if path.ends_with("/name") && path.starts_with("/bindings/") && got.is_empty() {
        (
            "the binding name is empty".to_owned(),
            "name the binding with letters, digits, `_`, `.` and `-`, like `newsletter`".to_owned(),
        )
    } else if path.ends_with("/name") && path.starts_with("/bindings/") {
        (
            format!(
                "binding name `{shown}` may hold only letters, digits, `_`, `.` and `-`, starting with a letter or digit"
            ),
            format!("for example `{}`", suggest_binding_name(got)),
        )
    } else if path == "/dataverse/api_version" {
        (
            format!("`{shown}` is not a Web API version like `v9.2`"),
            "write `api_version: v9.2`, or leave it out".to_owned(),
        )
    } else {
        (
            format!("{key} has an invalid value `{shown}`"),
            "`audience-sync schema` prints what each key accepts".to_owned(),
        )
    }
}

fn suggest_binding_name(got: &str) -> String {
    let mut name: String = got
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    name = name
        .trim_start_matches(['_', '.', '-'])
        .chars()
        .take(64)
        .collect();
    if name.is_empty() {
        "newsletter".to_owned()
    } else {
        name
    }
}

fn type_words(json_type: &str) -> String {
    match json_type {
        "object" => "a mapping (`key: value` lines)",
        "array" => "a list (`- item` lines or `[a, b]`)",
        "string" => "a text",
        "integer" => "a whole number",
        "number" => "a number",
        "boolean" => "true or false",
        "null" => "empty",
        other => other,
    }
    .to_owned()
}

/// A value as a message shows it, as written in the file when YAML changed it.
fn describe_value(out: &Findings<'_>, path: &str, value: &Value) -> String {
    match value {
        Value::Null => "empty".to_owned(),
        Value::Bool(b) => format!(
            "`{}`",
            out.positions
                .raw(path)
                .unwrap_or(if *b { "true" } else { "false" })
        ),
        Value::Number(n) => format!(
            "the number `{}`",
            shorten(out.positions.raw(path).unwrap_or(&n.to_string()))
        ),
        Value::String(s) => format!("the text `{}`", shorten(s)),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
    }
}

/// The property names the schema allows for the object at `pointer`.
fn properties_at(schema: &Value, pointer: &str) -> Vec<String> {
    let mut node = schema;
    for segment in pointer.split('/').skip(1) {
        node = with_properties(schema, node);
        let next = if segment.parse::<usize>().is_ok() && node.get("items").is_some() {
            node.get("items")
        } else {
            node.get("properties")
                .and_then(|p| p.get(unescape(segment)))
                .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))
        };
        match next {
            Some(n) => node = n,
            None => return Vec::new(),
        }
    }
    node = with_properties(schema, node);
    node.get("properties")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// `node` with references followed; of alternatives (`anyOf`), the one that is an object.
fn with_properties<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    let node = deref(root, node);
    if node.get("properties").is_some() || node.get("items").is_some() {
        return node;
    }
    node.get("anyOf")
        .or_else(|| node.get("oneOf"))
        .and_then(Value::as_array)
        .and_then(|alternatives| {
            alternatives
                .iter()
                .map(|a| deref(root, a))
                .find(|a| a.get("properties").is_some())
        })
        .unwrap_or(node)
}

fn deref<'a>(root: &'a Value, mut node: &'a Value) -> &'a Value {
    for _ in 0..8 {
        let target = node
            .get("$ref")
            .or_else(|| {
                node.get("allOf")
                    .and_then(|a| a.get(0))
                    .and_then(|first| first.get("$ref"))
            })
            .and_then(Value::as_str);
        let Some(reference) = target else { break };
        let Some(name) = reference.strip_prefix("#/definitions/") else {
            break;
        };
        match root.get("definitions").and_then(|d| d.get(name)) {
            Some(found) => node = found,
            None => break,
        }
    }
    node
}

/// The candidate closest to `word`, when it is close enough to be a likely typo.
#[must_use]
pub fn closest(word: &str, candidates: &[String]) -> Option<String> {
    if word.len() > 200 {
        return None;
    }
    candidates
        .iter()
        .map(|c| {
            (
                strsim::jaro_winkler(&word.to_lowercase(), &c.to_lowercase()),
                c,
            )
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.clone())
}
