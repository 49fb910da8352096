//! Validation of a config file's text: YAML syntax, the JSON schema, and meaning.
//!
//! # Guarantees
//! - Every diagnostic carries the line and column of the node it concerns, what is wrong, and
//!   (where there is one) how to fix it.
//! - All problems of a file come in one run: a schema error does not hide the others; semantic
//!   checks run only on a file that matches the schema (their input must be typed), and syntax
//!   errors stop everything (nothing after them can be read).
//! - Never panics on any input.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde::Serialize;
use serde_json::Value;

use super::binding::{Names, default_field_map, parse_max_removals, resolve_names};
use super::env;
use super::model::{Config, FieldTarget, MemberStatus, MemberType, UnsubscribePolicy};
use super::schema;
use super::template::Template;
use super::yaml::{self, Pos, Positions};

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The file cannot be used.
    Error,
    /// The file works, but probably not as meant.
    Warning,
}

/// One finding, at one place of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
    /// JSON pointer of the node (`/bindings/0/name`).
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

/// What the checks need from outside.
pub struct CheckOptions<'a> {
    /// Report `${VAR}` references whose variable is not set.
    pub check_env: bool,
    /// How to look a variable up.
    pub lookup: &'a dyn Fn(&str) -> Option<String>,
}

/// The outcome of checking a file.
#[derive(Debug)]
pub struct Checked {
    /// The typed config, when the file matches the schema.
    pub config: Option<Config>,
    /// Where each node stands.
    pub positions: Positions,
    /// Errors and warnings, sorted by position.
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    /// Whether any diagnostic is an error.
    #[must_use]
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }
}

/// Check a config file's text.
#[must_use]
pub fn check(text: &str, options: &CheckOptions<'_>) -> Checked {
    let (value, positions) = match yaml::parse(text) {
        Ok(parsed) => parsed,
        Err(err) => {
            return Checked {
                config: None,
                positions: Positions::default(),
                diagnostics: vec![Diagnostic {
                    severity: Severity::Error,
                    line: err.pos.line,
                    column: err.pos.column,
                    path: String::new(),
                    message: err.message,
                    help: None,
                }],
            };
        }
    };
    let mut out = Findings {
        positions: &positions,
        list: Vec::new(),
    };
    if value.is_null() {
        out.error_at(
            Pos { line: 1, column: 1 },
            "",
            "the file is empty",
            Some("start from `audience-sync init` or examples/minimal.yaml"),
        );
    } else {
        schema_errors(&value, &mut out);
    }
    let mut config = None;
    if out.list.is_empty() {
        match serde_json::from_value::<Config>(value) {
            Ok(typed) => {
                semantic_errors(&typed, options, &mut out);
                config = Some(typed);
            }
            Err(err) => out.error_at(
                Pos { line: 1, column: 1 },
                "",
                &format!("the config does not fit the model: {err}"),
                None,
            ),
        }
    }
    let mut diagnostics = out.list;
    diagnostics.sort_by(|a, b| {
        (a.line, a.column, a.severity, &a.message).cmp(&(b.line, b.column, b.severity, &b.message))
    });
    diagnostics.dedup();
    Checked {
        config,
        positions,
        diagnostics,
    }
}

struct Findings<'a> {
    positions: &'a Positions,
    list: Vec<Diagnostic>,
}

impl Findings<'_> {
    fn push(
        &mut self,
        severity: Severity,
        pos: Pos,
        path: &str,
        message: &str,
        help: Option<&str>,
    ) {
        self.list.push(Diagnostic {
            severity,
            line: pos.line,
            column: pos.column,
            path: path.to_owned(),
            message: message.to_owned(),
            help: help.map(str::to_owned),
        });
    }
    fn error_at(&mut self, pos: Pos, path: &str, message: &str, help: Option<&str>) {
        self.push(Severity::Error, pos, path, message, help);
    }
    fn error(&mut self, path: &str, message: &str, help: Option<&str>) {
        let pos = self.positions.value(path);
        self.error_at(pos, path, message, help);
    }
    fn error_key(&mut self, path: &str, message: &str, help: Option<&str>) {
        let pos = self.positions.key(path);
        self.error_at(pos, path, message, help);
    }
    fn warning(&mut self, path: &str, message: &str, help: Option<&str>) {
        let pos = self.positions.value(path);
        self.push(Severity::Warning, pos, path, message, help);
    }
}

fn validator() -> Option<&'static Validator> {
    static VALIDATOR: OnceLock<Option<Validator>> = OnceLock::new();
    VALIDATOR
        .get_or_init(|| jsonschema::draft7::new(&schema::generate()).ok())
        .as_ref()
}

fn schema_errors(value: &Value, out: &mut Findings<'_>) {
    let Some(validator) = validator() else {
        out.error(
            "",
            "internal error: the config schema does not compile",
            None,
        );
        return;
    };
    let schema = schema::generate();
    for error in validator.iter_errors(value) {
        describe(&error, &schema, value, out);
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
                .and_then(Value::as_str);
            match (name, index.parse::<usize>()) {
                (Some(name), _) => format!("binding `{name}`"),
                (None, Ok(i)) => format!("binding #{}", i + 1),
                (None, Err(_)) => format!("`{index}`"),
            }
        }
        [.., parent, last] if last.parse::<usize>().is_ok() => {
            format!("`{}[{last}]`", parent.replace("~1", "/").replace("~0", "~"))
        }
        _ => format!("`{}`", key_name(path)),
    }
}

/// The last segment of a JSON pointer, unescaped: the key a user sees.
fn key_name(path: &str) -> String {
    path.rsplit('/')
        .next()
        .unwrap_or("")
        .replace("~1", "/")
        .replace("~0", "~")
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
                let suggestion = closest(name, &allowed);
                let message = match &suggestion {
                    Some(s) => format!("unknown key `{name}`; did you mean `{s}`?"),
                    None => format!("unknown key `{name}`"),
                };
                let help = (!allowed.is_empty())
                    .then(|| format!("keys allowed here: {}", allowed.join(", ")));
                out.error_key(&child, &message, help.as_deref());
            }
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            let where_ = key.clone();
            let help = required_help(name);
            out.error(
                &path,
                &format!("missing required key `{name}` in {where_}"),
                help,
            );
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => type_words(&t.to_string()),
                TypeKind::Multiple(set) => set
                    .iter()
                    .map(|t| type_words(&t.to_string()))
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            let what = key.clone();
            out.error(
                &path,
                &format!(
                    "{what} must be {expected}, not {}",
                    describe_value(instance)
                ),
                None,
            );
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
            let (message, help) = pattern_message(&path, &key, got);
            out.error(&path, &message, help.as_deref());
        }
        ValidationErrorKind::Minimum { .. } | ValidationErrorKind::Maximum { .. }
            if path == "/version" =>
        {
            out.error(
                &path,
                &format!("unsupported `version: {instance}`; this audience-sync reads version 1"),
                Some("set `version: 1`"),
            );
        }
        ValidationErrorKind::Minimum { limit } => out.error(
            &path,
            &format!("{key} must be at least {limit}, not {instance}"),
            None,
        ),
        ValidationErrorKind::Maximum { limit } => out.error(
            &path,
            &format!("{key} must be at most {limit}, not {instance}"),
            None,
        ),
        ValidationErrorKind::MinItems { limit: 1 } => {
            out.error(&path, &format!("{key} must list at least one item"), None)
        }
        ValidationErrorKind::MinItems { limit } => out.error(
            &path,
            &format!("{key} must list at least {limit} items"),
            None,
        ),
        ValidationErrorKind::MinLength { .. } => {
            out.error(&path, &format!("{key} must not be empty"), None)
        }
        ValidationErrorKind::MaxLength { limit } => out.error(
            &path,
            &format!("{key} is longer than {limit} characters"),
            None,
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
                _ => {
                    let expected = if path.ends_with("/max_removals") {
                        "a number of members (e.g. `50`) or a percent (e.g. `10%`)"
                    } else if path.contains("/fields/map/") {
                        "a column name, `{ column: …, policy: … }`, or `null` to drop a default mapping"
                    } else {
                        "one of the allowed forms"
                    };
                    out.error(
                        &path,
                        &format!("{key} must be {expected}, not {}", describe_value(instance)),
                        None,
                    );
                }
            }
        }
        _ => out.error(&path, &format!("{key}: {error}"), None),
    }
}

fn describe_enum(
    path: &str,
    key: &str,
    instance: &Value,
    choices: &[String],
    out: &mut Findings<'_>,
) {
    let got = instance
        .as_str()
        .map_or_else(|| describe_value(instance), |s| format!("`{s}`"));
    if path.ends_with("/marketing_list/member_type") {
        out.error(
            path,
            &format!("{got}: only static marketing lists that target contacts or leads can be synced"),
            Some("set `member_type: contact` or `member_type: lead`; account-type lists cannot hold Mailchimp members"),
        );
    } else if path.ends_with("/marketing_list/type") {
        out.error(
            path,
            &format!("{got}: only static marketing lists that target contacts or leads can be synced"),
            Some("dynamic lists are computed from a query and cannot be written to; bind a static list (`type: static`, or leave `type` out)"),
        );
    } else {
        let list = choices
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let message = match instance.as_str().and_then(|s| closest(s, choices)) {
            Some(s) => format!("{got} is not a valid {key}; did you mean `{s}`? (one of: {list})"),
            None => format!("{got} is not a valid {key}; expected one of: {list}"),
        };
        out.error(path, &message, None);
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
        _ => return None,
    })
}

fn pattern_message(path: &str, key: &str, got: &str) -> (String, Option<String>) {
    if path.ends_with("/audience/id") {
        (
            format!("`{got}` is not a Mailchimp audience id (10 lowercase hexadecimal characters, like `a1b2c3d4e5`)"),
            Some("`audience-sync audiences` lists the ids; to pick an audience by its name, write `name:` instead of `id:`".to_owned()),
        )
    } else if path.ends_with("/marketing_list/id") {
        (
            format!("`{got}` is not a GUID"),
            Some(
                "a list id looks like `8f2c1d3e-0000-4000-8000-0123456789ab`; or use `name:`"
                    .to_owned(),
            ),
        )
    } else if path.ends_with("/max_removals") {
        (
            format!("`{got}` is not a percent like `10%`"),
            Some("write a number of members (`50`) or a percent (`10%`)".to_owned()),
        )
    } else if path.ends_with("/name") && path.starts_with("/bindings/") {
        (
            format!(
                "binding name `{got}` may hold only letters, digits, `_`, `.` and `-`, starting with a letter or digit"
            ),
            None,
        )
    } else if path == "/dataverse/api_version" {
        (
            format!("`{got}` is not a Web API version like `v9.2`"),
            None,
        )
    } else {
        (format!("{key} has an invalid value `{got}`"), None)
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

fn describe_value(value: &Value) -> String {
    match value {
        Value::Null => "empty".to_owned(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("the number `{n}`"),
        Value::String(s) => format!("the text `{s}`"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
    }
}

/// The property names the schema allows for the object at `pointer`.
fn properties_at(schema: &Value, pointer: &str) -> Vec<String> {
    let mut node = schema;
    for segment in pointer.split('/').skip(1) {
        node = deref(schema, node);
        let next = if segment.parse::<usize>().is_ok() && node.get("items").is_some() {
            node.get("items")
        } else {
            node.get("properties")
                .and_then(|p| p.get(segment.replace("~1", "/").replace("~0", "~")))
                .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))
        };
        match next {
            Some(n) => node = n,
            None => return Vec::new(),
        }
    }
    node = deref(schema, node);
    node.get("properties")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
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

/// Member fields that can be mapped, besides `merge_fields.<TAG>` (and `.addr1`… of an address).
pub const KNOWN_SOURCES: &[&str] = &[
    "email_address",
    "status",
    "full_name",
    "email_type",
    "language",
    "vip",
    "member_rating",
    "timestamp_signup",
    "timestamp_opt",
    "last_changed",
    "ip_signup",
    "ip_opt",
    "source",
    "unique_email_id",
    "contact_id",
    "web_id",
    "unsubscribe_reason",
    "location.country_code",
    "location.timezone",
    "location.region",
    "location.latitude",
    "location.longitude",
    "tags",
];

const ADDRESS_PARTS: &[&str] = &["addr1", "addr2", "city", "state", "zip", "country"];

/// Whether `source` names a member field; `Err` carries a suggestion when there is one.
///
/// # Errors
/// An explanation of why it is not one.
pub fn check_source(source: &str) -> Result<(), String> {
    if KNOWN_SOURCES.contains(&source) {
        return Ok(());
    }
    if let Some(rest) = source.strip_prefix("merge_fields.") {
        let mut parts = rest.splitn(2, '.');
        let tag = parts.next().unwrap_or_default();
        let valid_tag = !tag.is_empty()
            && tag.len() <= 10
            && tag
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !valid_tag {
            return Err(format!(
                "`{tag}` is not a merge tag (upper-case letters, digits and `_`, at most 10, like `FNAME`)"
            ));
        }
        return match parts.next() {
            None => Ok(()),
            Some(part) if ADDRESS_PARTS.contains(&part) => Ok(()),
            Some(part) => Err(format!(
                "`{part}` is not a part of an address merge field (one of: {})",
                ADDRESS_PARTS.join(", ")
            )),
        };
    }
    let candidates: Vec<String> = KNOWN_SOURCES.iter().map(|s| (*s).to_owned()).collect();
    Err(match closest(source, &candidates) {
        Some(s) => format!("`{source}` is not a member field; did you mean `{s}`?"),
        None => format!(
            "`{source}` is not a member field (e.g. `email_address`, `merge_fields.FNAME`, `status`, `language`)"
        ),
    })
}

fn is_logical_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 100
}

fn semantic_errors(config: &Config, options: &CheckOptions<'_>, out: &mut Findings<'_>) {
    check_connections(config, options, out);
    let names = resolve_names(config.dataverse.names.as_ref());
    if let Some(crm_names) = &config.dataverse.names {
        let value = serde_json::to_value(crm_names).unwrap_or_default();
        if let Some(map) = value.as_object() {
            for (key, name) in map {
                let name = name.as_str().unwrap_or_default();
                if !is_logical_name(name) {
                    out.error(
                        &format!("/dataverse/names/{key}"),
                        &format!("`{name}` is not a Dataverse logical name (lower-case letters, digits and `_`)"),
                        None,
                    );
                }
            }
        }
    }

    if config.bindings.is_empty() {
        out.warning(
            "/bindings",
            "no bindings: nothing will be synced",
            Some("add a binding; `audience-sync init` writes commented ones from your audiences"),
        );
    }
    let mut seen_names: HashMap<&str, usize> = HashMap::new();
    let mut seen_lists: HashMap<String, (usize, &str)> = HashMap::new();
    for (index, binding) in config.bindings.iter().enumerate() {
        let base = format!("/bindings/{index}");
        if let Some(first) = seen_names.insert(&binding.name, index) {
            let line = out.positions.value(&format!("/bindings/{first}/name")).line;
            out.error(
                &format!("{base}/name"),
                &format!(
                    "duplicate binding name `{}` (first used on line {line})",
                    binding.name
                ),
                Some("binding names must be unique; rename one of them"),
            );
        }
        match (&binding.audience.id, &binding.audience.name) {
            (Some(_), Some(_)) => out.error(
                &format!("{base}/audience"),
                "set either `id` or `name` of the audience, not both",
                None,
            ),
            (None, None) => out.error(
                &format!("{base}/audience"),
                "the audience needs an `id` or a `name`",
                Some("`audience-sync audiences` lists ids and names"),
            ),
            _ => {}
        }
        let list = &binding.marketing_list;
        let list_path = format!("{base}/marketing_list");
        match (&list.id, &list.name) {
            (Some(_), Some(_)) => out.error(
                &list_path,
                "set either `id` or `name` of the marketing list, not both",
                None,
            ),
            (None, None) => out.error(
                &list_path,
                "the marketing list needs a `name` or an `id`",
                None,
            ),
            _ => {}
        }
        if list.create && list.name.is_none() {
            out.error(
                &format!("{list_path}/create"),
                "`create: true` needs the list's `name`",
                Some("add `name:` (the list to create when no list has it)"),
            );
        }
        let list_key = list
            .id
            .as_ref()
            .map(|id| format!("id:{}", id.to_lowercase()))
            .or_else(|| {
                list.name
                    .as_ref()
                    .map(|n| format!("name:{}", n.trim().to_lowercase()))
            });
        if let Some(list_key) = list_key {
            if let Some((first, first_name)) = seen_lists.get(&list_key) {
                let line = out
                    .positions
                    .value(&format!("/bindings/{first}/marketing_list"))
                    .line;
                out.error(
                    &list_path,
                    &format!("this marketing list is already bound by binding `{first_name}` (line {line}); a list can follow only one audience"),
                    Some("bind each marketing list at most once"),
                );
            } else {
                seen_lists.insert(list_key, (index, &binding.name));
            }
        }
        check_settings(
            &base,
            binding.members.as_ref(),
            binding.fields.as_ref(),
            binding.tags.as_ref(),
            binding.max_removals.as_ref(),
            binding.lead_values.as_ref(),
            &names,
            out,
        );
        if binding.marketing_list.member_type == MemberType::Contact
            && binding.lead_values.is_some()
        {
            out.warning(
                &format!("{base}/lead_values"),
                "`lead_values` is ignored: this binding's list holds contacts",
                None,
            );
        }
        check_field_collisions(config, index, &names, out);
    }
    if let Some(defaults) = &config.defaults {
        check_settings(
            "/defaults",
            defaults.members.as_ref(),
            defaults.fields.as_ref(),
            defaults.tags.as_ref(),
            defaults.max_removals.as_ref(),
            defaults.lead_values.as_ref(),
            &names,
            out,
        );
    }
}

#[allow(clippy::too_many_arguments)] // one parameter per setting that defaults and bindings share
fn check_settings(
    base: &str,
    members: Option<&super::model::MembersConfig>,
    fields: Option<&super::model::FieldsConfig>,
    tags: Option<&super::model::TagsConfig>,
    max_removals: Option<&super::model::MaxRemovals>,
    lead_values: Option<&BTreeMap<String, String>>,
    _names: &Names,
    out: &mut Findings<'_>,
) {
    if let Some(limit) = max_removals
        && let Err(message) = parse_max_removals(limit)
    {
        out.error(
            &format!("{base}/max_removals"),
            &message,
            Some("write a number of members (`50`) or a percent from 0% to 100% (`10%`)"),
        );
    }
    if let Some(members) = members
        && let (Some(statuses), Some(policy)) = (&members.statuses, members.on_unsubscribe)
        && policy == UnsubscribePolicy::Remove
        && statuses
            .iter()
            .any(|s| matches!(s, MemberStatus::Unsubscribed | MemberStatus::Cleaned))
    {
        out.warning(
            &format!("{base}/members/on_unsubscribe"),
            "`on_unsubscribe: remove` has no effect on statuses listed in `statuses` (those members are selected)",
            None,
        );
    }
    if let Some(map) = fields.and_then(|f| f.map.as_ref()) {
        for (source, target) in map {
            let path = format!("{base}/fields/map/{}", yaml::escape(source));
            if let Err(message) = check_source(source) {
                out.error_key(&path, &message, None);
            }
            let column = match target {
                FieldTarget::Column(c) => Some((c.as_str(), path.clone())),
                FieldTarget::Detailed(d) => Some((d.column.as_str(), format!("{path}/column"))),
                FieldTarget::Unmapped => None,
            };
            if let Some((column, column_path)) = &column
                && !is_logical_name(column)
            {
                out.error(
                    &column_path,
                    &format!("`{column}` is not a Dataverse column logical name (lower-case letters, digits and `_`, like `emailaddress1`)"),
                    None,
                );
            }
            if let Some((column, column_path)) = column
                && let Some((message, help)) = super::column_kinds::mismatch(source, column)
            {
                out.error(&column_path, &message, Some(&help));
            }
            if source == "email_address" && matches!(target, FieldTarget::Unmapped) {
                out.warning(&path, "without an `email_address` mapping, records the tool creates have no e-mail address", None);
            }
        }
    }
    if let Some(tags) = tags {
        for (kind, patterns) in [("include", &tags.include), ("exclude", &tags.exclude)] {
            for (i, pattern) in patterns.iter().flatten().enumerate() {
                if let Err(err) = globset::Glob::new(pattern) {
                    out.error(
                        &format!("{base}/tags/{kind}/{i}"),
                        &format!("`{pattern}` is not a valid pattern: {}", err.kind()),
                        None,
                    );
                }
            }
        }
    }
    if let Some(values) = lead_values {
        for (column, text) in values {
            let path = format!("{base}/lead_values/{}", yaml::escape(column));
            if !is_logical_name(column) {
                out.error_key(
                    &path,
                    &format!("`{column}` is not a Dataverse column logical name"),
                    None,
                );
            }
            match Template::parse(text) {
                Err((_, message)) => {
                    out.error(&path, &format!("template for `{column}`: {message}"), None)
                }
                Ok(template) => {
                    for field in template.fields() {
                        if let Err(message) = check_source(field) {
                            out.error(&path, &format!("template for `{column}`: {message}"), None);
                        }
                    }
                }
            }
        }
    }
}

fn check_field_collisions(config: &Config, index: usize, names: &Names, out: &mut Findings<'_>) {
    let bindings = super::binding::resolve(config);
    let Some(binding) = bindings.get(index) else {
        return;
    };
    let mut by_column: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for mapping in binding
        .fields
        .iter()
        .filter(|m| check_source(&m.source).is_ok())
    {
        by_column
            .entry(mapping.column.as_str())
            .or_default()
            .push(mapping.source.as_str());
    }
    let defaults = default_field_map(names);
    for (column, sources) in by_column {
        if sources.len() > 1 {
            let path = format!("/bindings/{index}/fields");
            let hint = sources
                .iter()
                .find(|s| defaults.contains_key(**s))
                .map(|s| format!("to replace the default, map `{s}: null`"));
            out.error(
                &path,
                &format!(
                    "column `{column}` is written from more than one member field ({})",
                    sources.join(", ")
                ),
                hint.as_deref(),
            );
        }
    }
}

fn check_connections(config: &Config, options: &CheckOptions<'_>, out: &mut Findings<'_>) {
    let mc = &config.mailchimp;
    let dv = &config.dataverse;
    let settings: Vec<(&str, Option<&String>)> = vec![
        ("/mailchimp/api_key", Some(&mc.api_key)),
        ("/mailchimp/base_url", mc.base_url.as_ref()),
        ("/dataverse/url", Some(&dv.url)),
        ("/dataverse/tenant_id", Some(&dv.tenant_id)),
        ("/dataverse/client_id", Some(&dv.client_id)),
        ("/dataverse/client_secret", Some(&dv.client_secret)),
        ("/dataverse/token_url", dv.token_url.as_ref()),
    ];
    let mut resolved: HashMap<&str, Option<String>> = HashMap::new();
    for (path, value) in settings {
        let Some(value) = value else { continue };
        match env::references(value) {
            Err(err) => {
                out.error(path, &err.message, Some("write a reference as `${NAME}`"));
                resolved.insert(path, None);
            }
            Ok(refs) => {
                let mut missing = false;
                if options.check_env {
                    for reference in &refs {
                        if (options.lookup)(&reference.name).is_none() {
                            missing = true;
                            out.error(
                                path,
                                &format!("environment variable `{}` is not set", reference.name),
                                Some(&format!("set it (`export {}=…`), or leave out `--check-env` where secrets are not available", reference.name)),
                            );
                        }
                    }
                }
                let value = if missing || (!options.check_env && !refs.is_empty()) {
                    None
                } else {
                    env::expand(value, options.lookup).ok()
                };
                resolved.insert(path, value);
            }
        }
    }
    for (path, example) in [
        ("/mailchimp/api_key", "${MAILCHIMP_API_KEY}"),
        ("/dataverse/client_secret", "${DATAVERSE_CLIENT_SECRET}"),
    ] {
        let literal = if path == "/mailchimp/api_key" {
            &mc.api_key
        } else {
            &dv.client_secret
        };
        if !literal.contains("${") {
            out.warning(
                path,
                &format!(
                    "`{}` looks like a literal secret; secrets belong in the environment",
                    key_name(path)
                ),
                Some(&format!("write `{example}` and set that variable")),
            );
        }
    }
    if let Some(Some(key)) = resolved.get("/mailchimp/api_key")
        && mc.base_url.is_none()
        && !has_data_centre(key)
    {
        out.error(
            "/mailchimp/api_key",
            "the Mailchimp API key is malformed: it must end in its data centre, like `-us21`",
            Some("copy the whole key from Mailchimp (Profile → Extras → API keys), or set `base_url`"),
        );
    }
    for path in [
        "/dataverse/url",
        "/mailchimp/base_url",
        "/dataverse/token_url",
    ] {
        if let Some(Some(text)) = resolved.get(path) {
            match url::Url::parse(text) {
                Ok(parsed)
                    if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => {}
                _ => out.error(
                    path,
                    &format!("`{text}` is not an http(s) URL"),
                    (path == "/dataverse/url").then_some(
                        "the environment URL looks like `https://contoso.crm.dynamics.com`",
                    ),
                ),
            }
        }
    }
}

/// Whether a Mailchimp key ends in `-<dc>` (letters then digits, e.g. `us21`).
#[must_use]
pub fn has_data_centre(key: &str) -> bool {
    key.rsplit_once('-').is_some_and(|(head, dc)| {
        !head.is_empty()
            && dc.len() >= 3
            && dc.chars().take_while(char::is_ascii_lowercase).count() >= 2
            && dc
                .chars()
                .skip_while(char::is_ascii_lowercase)
                .all(|c| c.is_ascii_digit())
            && dc.chars().last().is_some_and(|c| c.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn run(text: &str) -> Checked {
        check(
            text,
            &CheckOptions {
                check_env: false,
                lookup: &no_env,
            },
        )
    }

    const VALID: &str = "version: 1
mailchimp:
  api_key: ${MAILCHIMP_API_KEY}
dataverse:
  url: https://contoso.crm.dynamics.com
  tenant_id: ${DATAVERSE_TENANT_ID}
  client_id: ${DATAVERSE_CLIENT_ID}
  client_secret: ${DATAVERSE_CLIENT_SECRET}
bindings:
  - name: newsletter
    audience: { id: a1b2c3d4e5 }
    marketing_list: { name: Newsletter, member_type: contact, create: true }
";

    #[test]
    fn a_valid_config_has_no_diagnostics() {
        let checked = run(VALID);
        assert_eq!(checked.diagnostics, vec![]);
        assert!(checked.config.is_some());
    }

    #[test]
    fn unknown_keys_get_a_suggestion_and_their_position() {
        let text = VALID.replace("    audience:", "    prune_member: true\n    audience:");
        let checked = run(&text);
        let d = &checked.diagnostics[0];
        assert_eq!((d.line, d.column), (11, 5));
        assert_eq!(
            d.message,
            "unknown key `prune_member`; did you mean `prune_members`?"
        );
    }

    #[test]
    fn all_schema_errors_come_at_once() {
        let text = VALID
            .replace("version: 1", "version: 2")
            .replace("member_type: contact", "member_type: account");
        let checked = run(&text);
        assert_eq!(checked.diagnostics.len(), 2, "{:#?}", checked.diagnostics);
    }

    #[test]
    fn data_centre_suffix() {
        assert!(has_data_centre("0123456789abcdef0123456789abcdef-us21"));
        assert!(!has_data_centre("0123456789abcdef0123456789abcdef"));
        assert!(!has_data_centre("abc-21"));
    }

    #[test]
    fn sources_are_checked_with_suggestions() {
        assert!(check_source("merge_fields.FNAME").is_ok());
        assert!(check_source("merge_fields.ADDRESS.city").is_ok());
        assert!(check_source("location.country_code").is_ok());
        assert_eq!(
            check_source("emial_address").unwrap_err(),
            "`emial_address` is not a member field; did you mean `email_address`?"
        );
        assert!(check_source("merge_fields.fname").is_err());
    }
}
