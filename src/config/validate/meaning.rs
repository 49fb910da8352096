//! Meaning checks: what the schema cannot say. They run on every part of the file that matches
//! the schema (the connections, `defaults`, each binding), in one pass over the bindings.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Deserialize;
use serde_json::Value;

use super::fields::{SOURCE_HELP, check_source, column_problem};
use super::{CheckOptions, Findings, connections};
use crate::config::binding::{
    Names, default_field_map, field_map, parse_max_removals, resolve_names,
};
use crate::config::model::{
    BindingConfig, DataverseConfig, Defaults, FieldPolicy, FieldTarget, FieldsConfig,
    MailchimpConfig, MaxRemovals, MemberStatus, MemberType, MembersConfig, TagsConfig,
    UnsubscribePolicy,
};
use crate::config::template::Template;
use crate::config::yaml::{self, shorten};

/// The parts of a file that match the schema, typed.
pub(super) struct Parts {
    mailchimp: Option<MailchimpConfig>,
    dataverse: Option<DataverseConfig>,
    /// `Some` when `defaults` is absent (empty) or parsed; `None` when it is broken.
    defaults: Option<Defaults>,
    bindings: Vec<(usize, BindingConfig)>,
    /// Whether `bindings` is an empty list.
    no_bindings: bool,
}

impl Parts {
    /// Type each part that has no schema error (`broken` holds the pointers of those found).
    pub(super) fn read(value: &Value, broken: &BTreeSet<String>, out: &mut Findings<'_>) -> Self {
        let mut parts = Self {
            mailchimp: part(value, "/mailchimp", broken, out),
            dataverse: part(value, "/dataverse", broken, out),
            defaults: if value.get("defaults").is_some() {
                part(value, "/defaults", broken, out)
            } else {
                Some(Defaults::default())
            },
            bindings: Vec::new(),
            no_bindings: value
                .get("bindings")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty),
        };
        let count = value
            .get("bindings")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        for index in 0..count {
            if let Some(binding) = part(value, &format!("/bindings/{index}"), broken, out) {
                parts.bindings.push((index, binding));
            }
        }
        parts
    }
}

/// The part at `pointer`, when it is there, has no schema error and can be typed.
fn part<'v, T: Deserialize<'v>>(
    value: &'v Value,
    pointer: &str,
    broken: &BTreeSet<String>,
    out: &mut Findings<'_>,
) -> Option<T> {
    let node = value.pointer(pointer)?;
    let inside = broken
        .range(pointer.to_owned()..)
        .take_while(|p| p.starts_with(pointer))
        .any(|p| p.len() == pointer.len() || p[pointer.len()..].starts_with('/'));
    if inside {
        return None;
    }
    match T::deserialize(node) {
        Ok(typed) => Some(typed),
        Err(_) => {
            out.error(
                pointer,
                &format!(
                    "`{}` cannot be read as written",
                    pointer.trim_start_matches('/').replace('/', ".")
                ),
                "`audience-sync schema` prints what each key accepts",
            );
            None
        }
    }
}

/// Run every meaning check on the parts.
pub(super) fn check(parts: &Parts, options: &CheckOptions<'_>, out: &mut Findings<'_>) {
    connections::check(
        parts.mailchimp.as_ref(),
        parts.dataverse.as_ref(),
        options,
        out,
    );
    let crm_names = parts.dataverse.as_ref().and_then(|d| d.names.as_ref());
    let names = resolve_names(crm_names);
    if let Some(crm_names) = crm_names {
        let value = serde_json::to_value(crm_names).unwrap_or_default();
        for (key, name) in value.as_object().into_iter().flatten() {
            let what = if key.ends_with("_table") {
                "table"
            } else if key.ends_with("_relationship") {
                "relationship"
            } else {
                "column"
            };
            if let Some((message, help)) = column_problem(name.as_str().unwrap_or_default(), what) {
                out.error(&format!("/dataverse/names/{key}"), &message, &help);
            }
        }
    }
    if parts.no_bindings {
        out.warning(
            "/bindings",
            "no bindings: nothing will be synced",
            Some("add a binding; `audience-sync init` writes commented ones from your audiences"),
        );
    }
    let defaults = parts.defaults.as_ref();
    let mut collisions = Collisions::new(&names);
    if let Some(d) = defaults {
        check_settings("/defaults", &Settings::of_defaults(d), out);
        collisions.check_defaults(d.fields.as_ref(), out);
    }
    let mut seen_names: HashMap<&str, usize> = HashMap::new();
    let mut seen_lists: HashMap<String, (usize, &str)> = HashMap::new();
    for (index, binding) in &parts.bindings {
        let base = format!("/bindings/{index}");
        if let Some(first) = seen_names.insert(&binding.name, *index) {
            let line = out.positions.value(&format!("/bindings/{first}/name")).line;
            out.error(
                &format!("{base}/name"),
                &format!(
                    "duplicate binding name `{}` (first used on line {line})",
                    shorten(&binding.name)
                ),
                "binding names must be unique; rename one of them",
            );
        }
        check_ends(&base, binding, out);
        let list = &binding.marketing_list;
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
                    &format!("{base}/marketing_list"),
                    &format!("this marketing list is already bound by binding `{}` (line {line}); a list can follow only one audience", shorten(first_name)),
                    "bind each marketing list at most once",
                );
            } else {
                seen_lists.insert(list_key, (*index, &binding.name));
            }
        }
        check_settings(&base, &Settings::of_binding(binding), out);
        if binding.marketing_list.member_type == MemberType::Contact
            && binding.lead_values.is_some()
        {
            out.warning(
                &format!("{base}/lead_values"),
                "`lead_values` is ignored: this binding's list holds contacts",
                None,
            );
        }
        if let Some(d) = defaults {
            collisions.check_binding(&base, binding.fields.as_ref(), d.fields.as_ref(), out);
        }
    }
}

/// The audience and the marketing list of a binding: one selector each, names not blank.
fn check_ends(base: &str, binding: &BindingConfig, out: &mut Findings<'_>) {
    match (&binding.audience.id, &binding.audience.name) {
        (Some(_), Some(_)) => out.error(
            &format!("{base}/audience"),
            "set either `id` or `name` of the audience, not both",
            "keep `id` (it survives a rename of the audience) and remove `name`",
        ),
        (None, None) => out.error(
            &format!("{base}/audience"),
            "the audience needs an `id` or a `name`",
            "`audience-sync audiences` lists ids and names",
        ),
        _ => {}
    }
    if binding
        .audience
        .name
        .as_ref()
        .is_some_and(|n| !n.is_empty() && n.trim().is_empty())
    {
        out.error(
            &format!("{base}/audience/name"),
            "the audience name is only spaces",
            "write the audience's exact name as Mailchimp shows it, or use `id:`",
        );
    }
    let list = &binding.marketing_list;
    let list_path = format!("{base}/marketing_list");
    match (&list.id, &list.name) {
        (Some(_), Some(_)) => out.error(
            &list_path,
            "set either `id` or `name` of the marketing list, not both",
            "keep one of them: `id` if the list exists, `name` to find or create it by name",
        ),
        (None, None) => out.error(
            &list_path,
            "the marketing list needs a `name` or an `id`",
            "add `name: <the list's name in the CRM>` (with `create: true` to create it)",
        ),
        _ => {}
    }
    if list
        .name
        .as_ref()
        .is_some_and(|n| !n.is_empty() && n.trim().is_empty())
    {
        out.error(
            &format!("{list_path}/name"),
            "the marketing list name is only spaces",
            "write the list's name as the CRM shows it",
        );
    }
    if list.create && list.name.is_none() {
        out.error(
            &format!("{list_path}/create"),
            "`create: true` needs the list's `name`",
            "add `name:` (the list to create when no list has it)",
        );
    }
}

/// The settings that `defaults` and a binding share.
struct Settings<'a> {
    members: Option<&'a MembersConfig>,
    fields: Option<&'a FieldsConfig>,
    tags: Option<&'a TagsConfig>,
    max_removals: Option<&'a MaxRemovals>,
    lead_values: Option<&'a BTreeMap<String, String>>,
}

impl<'a> Settings<'a> {
    fn of_defaults(d: &'a Defaults) -> Self {
        Self {
            members: d.members.as_ref(),
            fields: d.fields.as_ref(),
            tags: d.tags.as_ref(),
            max_removals: d.max_removals.as_ref(),
            lead_values: d.lead_values.as_ref(),
        }
    }
    fn of_binding(b: &'a BindingConfig) -> Self {
        Self {
            members: b.members.as_ref(),
            fields: b.fields.as_ref(),
            tags: b.tags.as_ref(),
            max_removals: b.max_removals.as_ref(),
            lead_values: b.lead_values.as_ref(),
        }
    }
}

fn check_settings(base: &str, settings: &Settings<'_>, out: &mut Findings<'_>) {
    if let Some(limit) = settings.max_removals
        && let Err(message) = parse_max_removals(limit)
    {
        out.error(
            &format!("{base}/max_removals"),
            &message,
            "write a number of members (`50`) or a percent from 0% to 100% (`10%`)",
        );
    }
    if let Some(members) = settings.members
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
    for (source, target) in settings
        .fields
        .and_then(|f| f.map.as_ref())
        .into_iter()
        .flatten()
    {
        let path = format!("{base}/fields/map/{}", yaml::escape(source));
        if let Err(message) = check_source(source) {
            out.error_key(&path, &message, SOURCE_HELP);
        }
        let column = match target {
            FieldTarget::Column(c) => Some((c.as_str(), path.clone())),
            FieldTarget::Detailed(d) => Some((d.column.as_str(), format!("{path}/column"))),
            FieldTarget::Unmapped => None,
        };
        if let Some((column, column_path)) = &column
            && let Some((message, help)) = column_problem(column, "column")
        {
            out.error(column_path, &message, &help);
        }
        if let Some((column, column_path)) = &column
            && let Some((message, help)) = crate::config::column_kinds::mismatch(source, column)
        {
            out.error(column_path, &message, &help);
        }
        if source == "email_address" && matches!(target, FieldTarget::Unmapped) {
            out.warning(&path, "without an `email_address` mapping, records the tool creates have no e-mail address", None);
        }
    }
    if let Some(tags) = settings.tags {
        for (kind, patterns) in [("include", &tags.include), ("exclude", &tags.exclude)] {
            for (i, pattern) in patterns.iter().flatten().enumerate() {
                if let Err(err) = globset::Glob::new(pattern) {
                    out.error(
                        &format!("{base}/tags/{kind}/{i}"),
                        &format!("`{}` is not a valid pattern: {}", shorten(pattern), err.kind()),
                        "`*` matches any run of characters and `?` one character; close every `[` and `{`, or quote a literal one as `[[]`",
                    );
                }
            }
        }
    }
    for (column, text) in settings.lead_values.into_iter().flatten() {
        let path = format!("{base}/lead_values/{}", yaml::escape(column));
        if let Some((message, help)) = column_problem(column, "column") {
            out.error_key(&path, &message, &help);
        }
        let shown = shorten(column);
        match Template::parse(text) {
            Err((_, message)) => out.error(
                &path,
                &format!("template for `{shown}`: {message}"),
                "write member fields as `{{ merge_fields.FNAME }}`; `{{{{` writes a literal `{{`",
            ),
            Ok(template) => {
                for field in template.fields() {
                    if let Err(message) = check_source(field) {
                        out.error(
                            &path,
                            &format!("template for `{shown}`: {message}"),
                            SOURCE_HELP,
                        );
                    }
                }
            }
        }
    }
}

/// Columns written from more than one member field, each reported once at the entry that
/// makes it: in `defaults` once for all bindings, in a binding at its own entry.
struct Collisions<'n> {
    names: &'n Names,
    defaults: BTreeSet<(String, Vec<String>)>,
}

type FieldMap = BTreeMap<String, (String, FieldPolicy)>;

impl<'n> Collisions<'n> {
    fn new(names: &'n Names) -> Self {
        Self {
            names,
            defaults: BTreeSet::new(),
        }
    }

    fn check_defaults(&mut self, fields: Option<&FieldsConfig>, out: &mut Findings<'_>) {
        let map = field_map(None, fields, self.names);
        for (column, sources) in colliding(&map) {
            report(out, "/defaults", fields, &column, &sources, self.names);
            self.defaults.insert((column, sources));
        }
    }

    fn check_binding(
        &self,
        base: &str,
        fields: Option<&FieldsConfig>,
        defaults: Option<&FieldsConfig>,
        out: &mut Findings<'_>,
    ) {
        let map = field_map(fields, defaults, self.names);
        for (column, sources) in colliding(&map) {
            if !self.defaults.contains(&(column.clone(), sources.clone())) {
                report(out, base, fields, &column, &sources, self.names);
            }
        }
    }
}

/// Columns with more than one (valid) source, sources sorted.
fn colliding(map: &FieldMap) -> Vec<(String, Vec<String>)> {
    let mut by_column: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (source, (column, _)) in map {
        if check_source(source).is_ok() {
            by_column.entry(column).or_default().push(source.clone());
        }
    }
    by_column
        .into_iter()
        .filter(|(_, sources)| sources.len() > 1)
        .map(|(column, sources)| (column.to_owned(), sources))
        .collect()
}

fn report(
    out: &mut Findings<'_>,
    base: &str,
    fields: Option<&FieldsConfig>,
    column: &str,
    sources: &[String],
    names: &Names,
) {
    let own = fields.and_then(|f| f.map.as_ref());
    let entry = sources
        .iter()
        .filter(|s| {
            own.is_some_and(|m| {
                m.get(*s)
                    .is_some_and(|t| !matches!(t, FieldTarget::Unmapped))
            })
        })
        .map(|s| format!("{base}/fields/map/{}", yaml::escape(s)))
        .max_by_key(|path| out.positions.key(path));
    let path = entry.unwrap_or_else(|| format!("{base}/fields"));
    let defaults = default_field_map(names);
    let help = sources
        .iter()
        .find(|s| defaults.contains_key(*s))
        .map_or_else(
            || "map each column from one member field; remove one of these mappings".to_owned(),
            |s| {
                format!(
                    "map each column from one member field; to replace the default, map `{s}: null`"
                )
            },
        );
    out.error_key(
        &path,
        &format!(
            "column `{}` is written from more than one member field ({})",
            shorten(column),
            sources.join(", ")
        ),
        &help,
    );
}
