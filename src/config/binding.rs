//! A binding as the rest of the tool sees it: `defaults` merged in, built-in defaults applied,
//! references parsed. Produced by [`resolve`] from a config that passed validation.

use std::collections::{BTreeMap, BTreeSet};

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use super::model::{
    BindingConfig, Config, CrmNames, Defaults, FieldPolicy, FieldTarget, FieldsConfig, MaxRemovals,
    MemberStatus, MemberType, UnsubscribePolicy,
};
use super::template::Template;
pub use crate::domain::{AudienceSelector, Names};

/// Which CRM marketing list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListSelector {
    /// By `listid`.
    Id(uuid::Uuid),
    /// By `listname`.
    Name(String),
}

/// The marketing list side of a binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListTarget {
    /// Which list.
    pub selector: ListSelector,
    /// Contacts or leads.
    pub member_type: MemberType,
    /// Create it when missing.
    pub create: bool,
}

/// One member field written to one CRM column.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FieldMapping {
    /// The member field, as a path: `email_address`, `merge_fields.FNAME`, `merge_fields.ADDRESS.city`.
    pub source: String,
    /// The CRM column's logical name.
    pub column: String,
    /// Who wins.
    pub policy: FieldPolicy,
}

/// Which tags to sync.
#[derive(Debug, Clone)]
pub struct TagRules {
    /// Sync tags at all.
    pub sync: bool,
    /// Include patterns, as written.
    pub include: Vec<String>,
    /// Exclude patterns, as written.
    pub exclude: Vec<String>,
    /// Remove Tag records whose Mailchimp tag is gone.
    pub prune: bool,
    include_set: GlobSet,
    exclude_set: GlobSet,
}

impl PartialEq for TagRules {
    fn eq(&self, other: &Self) -> bool {
        (self.sync, &self.include, &self.exclude, self.prune)
            == (other.sync, &other.include, &other.exclude, other.prune)
    }
}

impl TagRules {
    /// Build from patterns. Invalid patterns were refused by validation; here they match nothing.
    #[must_use]
    pub fn new(sync: bool, include: Vec<String>, exclude: Vec<String>, prune: bool) -> Self {
        let include_set = glob_set(&include);
        let exclude_set = glob_set(&exclude);
        Self {
            sync,
            include,
            exclude,
            prune,
            include_set,
            exclude_set,
        }
    }

    /// Whether the tag named `name` is synced.
    #[must_use]
    pub fn selects(&self, name: &str) -> bool {
        self.sync && self.include_set.is_match(name) && !self.exclude_set.is_match(name)
    }
}

fn glob_set(patterns: &[String]) -> GlobSet {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        if let Ok(glob) = Glob::new(pattern) {
            builder.add(glob);
        }
    }
    builder.build().unwrap_or_else(|_| GlobSet::empty())
}

/// The guard against mass removal.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalLimit {
    /// At most this many.
    Count(u64),
    /// At most this percent of the list's members.
    Percent(f64),
}

impl RemovalLimit {
    /// The largest number of removals allowed from a list of `list_size` members.
    #[must_use]
    pub fn allowed(self, list_size: u64) -> u64 {
        match self {
            Self::Count(n) => n,
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )] // percent ≤ 100, sizes ≪ 2^52
            Self::Percent(p) => ((list_size as f64) * p / 100.0).floor() as u64,
        }
    }
}

impl std::fmt::Display for RemovalLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Count(n) => write!(f, "{n}"),
            Self::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// A binding, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// Unique name.
    pub name: String,
    /// The Mailchimp audience.
    pub audience: AudienceSelector,
    /// The CRM list.
    pub list: ListTarget,
    /// Statuses that make a member part of the list.
    pub statuses: BTreeSet<MemberStatus>,
    /// What unsubscribing or being cleaned means.
    pub on_unsubscribe: UnsubscribePolicy,
    /// Member fields → columns, sorted by column.
    pub fields: Vec<FieldMapping>,
    /// Tags.
    pub tags: TagRules,
    /// Remove members that left.
    pub prune_members: bool,
    /// Removal guard.
    pub max_removals: RemovalLimit,
    /// Lead column templates, by column.
    pub lead_values: BTreeMap<String, Template>,
    /// Leave this binding alone.
    pub suspend: bool,
}

/// The config's `dataverse.names` with every default applied (names are compared lower-case,
/// and an empty one stands for its default).
#[must_use]
pub fn resolve_names(names: Option<&CrmNames>) -> Names {
    let n = names.cloned().unwrap_or_default();
    let d = Names::default();
    let pick = |v: Option<String>, default: String| {
        v.map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .unwrap_or(default)
    };
    Names {
        audience_table: pick(n.audience_table, d.audience_table),
        tag_table: pick(n.tag_table, d.tag_table),
        sync_run_table: pick(n.sync_run_table, d.sync_run_table),
        tag_contact_relationship: pick(n.tag_contact_relationship, d.tag_contact_relationship),
        tag_lead_relationship: pick(n.tag_lead_relationship, d.tag_lead_relationship),
        list_audience_lookup: pick(n.list_audience_lookup, d.list_audience_lookup),
        contact_mailchimp_id_column: pick(
            n.contact_mailchimp_id_column,
            d.contact_mailchimp_id_column,
        ),
        lead_mailchimp_id_column: pick(n.lead_mailchimp_id_column, d.lead_mailchimp_id_column),
        subscriber_status_column: pick(n.subscriber_status_column, d.subscriber_status_column),
    }
}

/// The built-in field mappings CRM admins expect, before `fields.map` changes them.
#[must_use]
pub fn default_field_map(names: &Names) -> BTreeMap<String, String> {
    [
        ("email_address", "emailaddress1"),
        ("merge_fields.FNAME", "firstname"),
        ("merge_fields.LNAME", "lastname"),
        ("merge_fields.PHONE", "telephone1"),
        ("merge_fields.ADDRESS.addr1", "address1_line1"),
        ("merge_fields.ADDRESS.addr2", "address1_line2"),
        ("merge_fields.ADDRESS.city", "address1_city"),
        ("merge_fields.ADDRESS.state", "address1_stateorprovince"),
        ("merge_fields.ADDRESS.zip", "address1_postalcode"),
        ("merge_fields.ADDRESS.country", "address1_country"),
        ("status", names.subscriber_status_column.as_str()),
    ]
    .into_iter()
    .map(|(s, c)| (s.to_owned(), c.to_owned()))
    .collect()
}

/// Merge `defaults` into every binding and apply built-in defaults.
///
/// Expects a config that passed validation: values validation refuses (a bad percent, an
/// unparsable template) fall back to their defaults here rather than failing.
#[must_use]
pub fn resolve(config: &Config) -> Vec<Binding> {
    let names = resolve_names(config.dataverse.names.as_ref());
    let defaults = config.defaults.clone().unwrap_or_default();
    config
        .bindings
        .iter()
        .map(|b| resolve_one(b, &defaults, &names))
        .collect()
}

fn resolve_one(b: &BindingConfig, d: &Defaults, names: &Names) -> Binding {
    let members_b = b.members.clone().unwrap_or_default();
    let members_d = d.members.clone().unwrap_or_default();
    let statuses = members_b
        .statuses
        .or(members_d.statuses)
        .unwrap_or_else(|| vec![MemberStatus::Subscribed])
        .into_iter()
        .collect();
    let on_unsubscribe = members_b
        .on_unsubscribe
        .or(members_d.on_unsubscribe)
        .unwrap_or(UnsubscribePolicy::MarkDoNotEmail);

    let map = field_map(b.fields.as_ref(), d.fields.as_ref(), names);
    let mut fields: Vec<FieldMapping> = map
        .into_iter()
        .map(|(source, (column, policy))| FieldMapping {
            source,
            column,
            policy,
        })
        .collect();
    fields.sort_by(|a, b| {
        a.column
            .cmp(&b.column)
            .then_with(|| a.source.cmp(&b.source))
    });

    let tags_b = b.tags.clone().unwrap_or_default();
    let tags_d = d.tags.clone().unwrap_or_default();
    let tags = TagRules::new(
        tags_b.sync.or(tags_d.sync).unwrap_or(true),
        tags_b
            .include
            .or(tags_d.include)
            .unwrap_or_else(|| vec!["*".to_owned()]),
        tags_b.exclude.or(tags_d.exclude).unwrap_or_default(),
        tags_b.prune.or(tags_d.prune).unwrap_or(false),
    );

    let max_removals = b
        .max_removals
        .clone()
        .or_else(|| d.max_removals.clone())
        .and_then(|m| parse_max_removals(&m).ok())
        .unwrap_or(RemovalLimit::Percent(10.0));

    let lead_values = b
        .lead_values
        .clone()
        .or_else(|| d.lead_values.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(column, text)| Template::parse(&text).ok().map(|t| (column, t)))
        .collect();

    let audience = match (&b.audience.id, &b.audience.name) {
        (Some(id), _) => AudienceSelector::Id(id.clone()),
        (None, Some(name)) => AudienceSelector::Name(name.clone()),
        (None, None) => AudienceSelector::Name(String::new()),
    };
    let selector = match (&b.marketing_list.id, &b.marketing_list.name) {
        (Some(id), _) => uuid::Uuid::parse_str(id)
            .map_or_else(|_| ListSelector::Name(id.clone()), ListSelector::Id),
        (None, Some(name)) => ListSelector::Name(name.clone()),
        (None, None) => ListSelector::Name(String::new()),
    };

    Binding {
        name: b.name.clone(),
        audience,
        list: ListTarget {
            selector,
            member_type: b.marketing_list.member_type,
            create: b.marketing_list.create,
        },
        statuses,
        on_unsubscribe,
        fields,
        tags,
        prune_members: b.prune_members.or(d.prune_members).unwrap_or(false),
        max_removals,
        lead_values,
        suspend: b.suspend,
    }
}

/// Member field → (column, policy): the built-in mappings (unless `replace_defaults`), then
/// `defaults.fields.map`, then the binding's own `fields.map` (`null` drops a mapping).
#[must_use]
pub fn field_map(
    binding: Option<&FieldsConfig>,
    defaults: Option<&FieldsConfig>,
    names: &Names,
) -> BTreeMap<String, (String, FieldPolicy)> {
    let policy = binding
        .and_then(|f| f.policy)
        .or(defaults.and_then(|f| f.policy))
        .unwrap_or(FieldPolicy::Overwrite);
    let replace = binding
        .and_then(|f| f.replace_defaults)
        .or(defaults.and_then(|f| f.replace_defaults))
        .unwrap_or(false);
    let mut map: BTreeMap<String, (String, FieldPolicy)> = if replace {
        BTreeMap::new()
    } else {
        default_field_map(names)
            .into_iter()
            .map(|(s, c)| (s, (c, policy)))
            .collect()
    };
    for layer in [defaults, binding].into_iter().flatten() {
        for (source, target) in layer.map.iter().flatten() {
            match target {
                FieldTarget::Unmapped => {
                    map.remove(source);
                }
                FieldTarget::Column(column) => {
                    map.insert(source.clone(), (column.clone(), policy));
                }
                FieldTarget::Detailed(detail) => {
                    map.insert(
                        source.clone(),
                        (detail.column.clone(), detail.policy.unwrap_or(policy)),
                    );
                }
            }
        }
    }
    map
}

/// Parse `max_removals`: a count, or a percent within 0–100.
///
/// # Errors
/// A message saying what is wrong with the value.
pub fn parse_max_removals(value: &MaxRemovals) -> Result<RemovalLimit, String> {
    match value {
        MaxRemovals::Count(n) => Ok(RemovalLimit::Count(*n)),
        MaxRemovals::Percent(text) => {
            let number = text.trim().trim_end_matches('%').trim();
            let p: f64 = number
                .parse()
                .map_err(|_| format!("`{text}` is not a percent like `10%`"))?;
            if (0.0..=100.0).contains(&p) {
                Ok(RemovalLimit::Percent(p))
            } else {
                Err(format!("`{text}` is outside 0–100%"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::parse_value;

    fn config(extra: &str) -> Config {
        let text = format!(
            "version: 1\nmailchimp: {{ api_key: x }}\ndataverse: {{ url: https://o.crm.dynamics.com, tenant_id: t, client_id: c, client_secret: s }}\n{extra}"
        );
        serde_json::from_value(parse_value(&text).unwrap()).unwrap()
    }

    #[test]
    fn builtin_defaults_apply_when_nothing_is_said() {
        let c = config(
            "bindings:\n  - { name: a, audience: { id: a1b2c3d4e5 }, marketing_list: { name: L, member_type: contact } }\n",
        );
        let b = &resolve(&c)[0];
        assert_eq!(b.statuses, BTreeSet::from([MemberStatus::Subscribed]));
        assert_eq!(b.on_unsubscribe, UnsubscribePolicy::MarkDoNotEmail);
        assert!(!b.prune_members);
        assert_eq!(b.max_removals, RemovalLimit::Percent(10.0));
        assert!(b.tags.selects("anything") && !b.tags.prune);
        let email = b
            .fields
            .iter()
            .find(|f| f.source == "email_address")
            .unwrap();
        assert_eq!(
            (email.column.as_str(), email.policy),
            ("emailaddress1", FieldPolicy::Overwrite)
        );
        assert!(
            b.fields
                .iter()
                .any(|f| f.source == "status" && f.column == "mcsync_mailchimpstatus")
        );
        assert_eq!(b.audience, AudienceSelector::Id("a1b2c3d4e5".into()));
        assert_eq!(b.list.selector, ListSelector::Name("L".into()));
    }

    #[test]
    fn bindings_override_defaults_which_override_builtins() {
        let c = config(
            "defaults:
  prune_members: true
  max_removals: 5
  members: { statuses: [subscribed, pending] }
  fields: { policy: fill_empty, map: { merge_fields.COMPANY: company } }
  tags: { exclude: ['internal-*'] }
bindings:
  - name: a
    audience: { name: News }
    marketing_list: { name: L, member_type: lead }
    members: { on_unsubscribe: remove }
    max_removals: 20%
    fields: { map: { merge_fields.PHONE: null, merge_fields.COMPANY: { column: companyname, policy: overwrite } } }
    lead_values: { subject: 'Hi {{ merge_fields.FNAME }}' }
",
        );
        let b = &resolve(&c)[0];
        assert!(b.prune_members);
        assert_eq!(b.max_removals, RemovalLimit::Percent(20.0));
        assert_eq!(
            b.statuses,
            BTreeSet::from([MemberStatus::Subscribed, MemberStatus::Pending])
        );
        assert_eq!(b.on_unsubscribe, UnsubscribePolicy::Remove);
        assert!(
            !b.fields.iter().any(|f| f.source == "merge_fields.PHONE"),
            "null removes a default"
        );
        let company = b
            .fields
            .iter()
            .find(|f| f.source == "merge_fields.COMPANY")
            .unwrap();
        assert_eq!(
            (company.column.as_str(), company.policy),
            ("companyname", FieldPolicy::Overwrite)
        );
        let first = b
            .fields
            .iter()
            .find(|f| f.source == "merge_fields.FNAME")
            .unwrap();
        assert_eq!(
            first.policy,
            FieldPolicy::FillEmpty,
            "the defaults' policy applies to built-in mappings"
        );
        assert!(!b.tags.selects("internal-ops") && b.tags.selects("vip"));
        assert_eq!(
            b.lead_values["subject"].render(|_| Some("Ann".into())),
            "Hi Ann"
        );
        assert_eq!(b.list.member_type, MemberType::Lead);
    }

    #[test]
    fn crm_names_resolve_lower_case_with_defaults_for_the_rest() {
        let raw = CrmNames {
            audience_table: Some("new_Audience".into()),
            tag_contact_relationship: Some("  ".into()),
            ..CrmNames::default()
        };
        let names = resolve_names(Some(&raw));
        assert_eq!(names.audience_table, "new_audience");
        assert_eq!(names.tag_contact_relationship, "mcsync_tag_contact");
        assert_eq!(names.tag_table, "mcsync_tag");
        assert_eq!(resolve_names(None), Names::default());
    }

    #[test]
    fn removal_limits_compute_allowed_removals() {
        assert_eq!(RemovalLimit::Percent(10.0).allowed(1234), 123);
        assert_eq!(RemovalLimit::Count(5).allowed(1), 5);
        assert_eq!(
            parse_max_removals(&MaxRemovals::Percent("101%".into())).unwrap_err(),
            "`101%` is outside 0–100%"
        );
        assert_eq!(
            parse_max_removals(&MaxRemovals::Percent("2.5%".into())).unwrap(),
            RemovalLimit::Percent(2.5)
        );
    }
}
