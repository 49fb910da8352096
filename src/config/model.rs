//! The config file's model: serde + schemars types, the single source of truth for the JSON
//! schema in `schemas/`. Raw, as written: `${VAR}` references are kept as text, settings a binding
//! leaves out are `None` until [`super::resolve`] merges them with `defaults` and built-in values.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::default_names;
pub use crate::domain::{MemberStatus, MemberType};

/// An audience-sync config: which Mailchimp audiences keep which Dynamics 365 marketing lists in step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "audience-sync config")]
pub struct Config {
    /// Format version of this file. Always `1`.
    #[schemars(range(min = 1, max = 1), extend("examples" = [1]))]
    pub version: u32,
    /// How to reach Mailchimp.
    pub mailchimp: MailchimpConfig,
    /// How to reach Dynamics 365 / Dataverse.
    pub dataverse: DataverseConfig,
    /// Settings applied to every binding; a binding may override each of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<Defaults>,
    /// Each binding keeps one CRM marketing list in step with one Mailchimp audience.
    pub bindings: Vec<BindingConfig>,
}

/// The Mailchimp connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MailchimpConfig {
    /// The Mailchimp API key, as an environment reference. The data centre comes from the key's
    /// `-usNN` suffix. Never write the key itself here.
    #[schemars(extend("examples" = ["${MAILCHIMP_API_KEY}"]))]
    pub api_key: String,
    /// Override of the API root, e.g. the sandbox's `http://127.0.0.1:PORT/3.0`. Default:
    /// `https://<dc>.api.mailchimp.com/3.0` from the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("examples" = ["${MAILCHIMP_BASE_URL}"]))]
    pub base_url: Option<String>,
    /// Simultaneous Mailchimp requests this process makes at most, shared by every binding of
    /// a run (reads page ahead up to it). Mailchimp allows 10 simultaneous connections per user,
    /// shared with every other integration on that login (forms, other syncs); leave room for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10), extend("default" = 8))]
    pub max_connections: Option<u8>,
}

/// The Dataverse connection (OAuth 2.0 client credentials of an application user).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataverseConfig {
    /// The environment URL.
    #[schemars(extend("examples" = ["https://contoso.crm.dynamics.com"]))]
    pub url: String,
    /// The Microsoft Entra ID tenant (directory) id.
    #[schemars(extend("examples" = ["${DATAVERSE_TENANT_ID}"]))]
    pub tenant_id: String,
    /// The application (client) id of the app registration.
    #[schemars(extend("examples" = ["${DATAVERSE_CLIENT_ID}"]))]
    pub client_id: String,
    /// The client secret, as an environment reference. Never write the secret itself here.
    #[schemars(extend("examples" = ["${DATAVERSE_CLIENT_SECRET}"]))]
    pub client_secret: String,
    /// Override of the token endpoint. Default:
    /// `https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// Web API version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "v9.2"), regex(pattern = r"^v9\.[0-9]+$"))]
    pub api_version: Option<String>,
    /// Names of the tool's own tables, relationships and columns in the CRM, where they differ
    /// from the defaults that `audience-sync crm bootstrap` creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<CrmNames>,
}

// As written; the defaults are `domain::default_names`, applied by `binding::resolve_names`.
/// Logical names of the tool's own CRM schema. Every one has a default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CrmNames {
    /// The Audience table (one record per bound Mailchimp audience, with its sync status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = default_names::AUDIENCE_TABLE))]
    pub audience_table: Option<String>,
    /// The Tag table (one record per Mailchimp tag of a bound audience).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = default_names::TAG_TABLE))]
    pub tag_table: Option<String>,
    /// The Sync Run table (one record per apply and binding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = default_names::SYNC_RUN_TABLE))]
    pub sync_run_table: Option<String>,
    /// The Tag ↔ Contact relationship.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = default_names::TAG_CONTACT_RELATIONSHIP))]
    pub tag_contact_relationship: Option<String>,
    /// The Tag ↔ Lead relationship.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = default_names::TAG_LEAD_RELATIONSHIP))]
    pub tag_lead_relationship: Option<String>,
    /// The marketing list's lookup column to its Audience record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = default_names::LIST_AUDIENCE_LOOKUP))]
    pub list_audience_lookup: Option<String>,
    /// The column on contact holding the Mailchimp contact id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = default_names::CONTACT_MAILCHIMP_ID_COLUMN))]
    pub contact_mailchimp_id_column: Option<String>,
    /// The column on lead holding the Mailchimp contact id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = default_names::LEAD_MAILCHIMP_ID_COLUMN))]
    pub lead_mailchimp_id_column: Option<String>,
    /// The column on contact and lead holding the Mailchimp subscriber status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = default_names::SUBSCRIBER_STATUS_COLUMN))]
    pub subscriber_status_column: Option<String>,
}

/// Settings every binding inherits unless it sets its own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Which members to sync and what to do when they leave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<MembersConfig>,
    /// Member fields → CRM columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<FieldsConfig>,
    /// Tag sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<TagsConfig>,
    /// Remove from the list the members the tool manages that are no longer selected members of
    /// the audience. Off unless asked for (as Argo CD prunes only when asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub prune_members: Option<bool>,
    /// The guard against mass removal: more removals than this refuse the plan unless
    /// `--allow-removals`. A number of members, or a percent of the list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "10%"))]
    pub max_removals: Option<MaxRemovals>,
    /// For lead lists: values of the lead's columns that Mailchimp has no field for (e.g. the
    /// required `subject`), as templates over member fields: `"Newsletter: {{ merge_fields.FNAME }}"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("examples" = [{"subject": "Mailchimp sign-up: {{ email_address }}"}]))]
    pub lead_values: Option<BTreeMap<String, String>>,
}

/// One Mailchimp audience → one CRM static marketing list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BindingConfig {
    /// A unique name for this binding (used by `--binding`, in plans, status and metrics).
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"), length(max = 64), extend("examples" = ["newsletter"]))]
    pub name: String,
    /// The Mailchimp audience: by id, or by exact name.
    pub audience: AudienceRef,
    /// The CRM marketing list.
    pub marketing_list: MarketingListConfig,
    /// Skip this binding (watch and apply leave it alone) without deleting it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// Which members to sync and what to do when they leave (overrides `defaults.members`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<MembersConfig>,
    /// Member fields → CRM columns (overrides `defaults.fields`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<FieldsConfig>,
    /// Tag sync (overrides `defaults.tags`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<TagsConfig>,
    /// Remove members that left the audience from the list (overrides `defaults.prune_members`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_members: Option<bool>,
    /// The guard against mass removal (overrides `defaults.max_removals`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_removals: Option<MaxRemovals>,
    /// Lead column templates (overrides `defaults.lead_values`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_values: Option<BTreeMap<String, String>>,
}

/// A Mailchimp audience, by id or by exact name (set one of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AudienceRef {
    /// The audience (list) id, 10 lowercase hexadecimal characters, as `audience-sync audiences` shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-f]{10}$"), extend("examples" = ["a1b2c3d4e5"]))]
    pub id: Option<String>,
    /// The audience's exact name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub name: Option<String>,
}

/// The CRM marketing list: by name or id (set one of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MarketingListConfig {
    /// The list's name (`listname`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub name: Option<String>,
    /// The list's id (`listid`, a GUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ))]
    pub id: Option<String>,
    /// Who the list's members are. Only contact and lead lists can be synced.
    pub member_type: MemberType,
    /// The list's type. Only static lists can be synced (dynamic lists are computed from a query).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "static"))]
    pub list_type: Option<ListType>,
    /// Create the list (static, of `member_type`) when no list has this name. Needs `name`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create: bool,
}

/// Marketing list type (`type`: false static, true dynamic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListType {
    /// Members are added and removed explicitly: the only kind audience-sync can keep in step.
    Static,
}

/// Which members to sync, and what leaving means.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MembersConfig {
    /// The Mailchimp statuses that make a member part of the list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = ["subscribed"]), length(min = 1))]
    pub statuses: Option<Vec<MemberStatus>>,
    /// What to do with a member who unsubscribed or was cleaned: `mark_do_not_email` sets the
    /// record's do-not-bulk-e-mail flag and subscriber status (it never re-subscribes anyone),
    /// `remove` takes it off the list, `keep` does nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "mark_do_not_email"))]
    pub on_unsubscribe: Option<UnsubscribePolicy>,
}

/// What to do when a member unsubscribes or is cleaned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnsubscribePolicy {
    /// Set the record's do-not-bulk-e-mail flag and subscriber status; keep it on the list.
    MarkDoNotEmail,
    /// Take the record off the list (the record itself is never deleted).
    Remove,
    /// Leave the record and the list as they are.
    Keep,
}

/// Member fields → CRM columns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldsConfig {
    /// `overwrite`: Mailchimp's value wins; `fill_empty`: write only into empty CRM columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "overwrite"))]
    pub policy: Option<FieldPolicy>,
    /// Use only the mappings in `map`, not the built-in defaults (e-mail, names, phone, address,
    /// subscriber status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub replace_defaults: Option<bool>,
    /// Member field (`email_address`, `merge_fields.FNAME`, `merge_fields.ADDRESS.city`, `status`,
    /// `language`, `vip`, `location.country_code`, `timestamp_signup`, …) → CRM column; `null`
    /// removes a default mapping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("examples" = [{"merge_fields.COMPANY": "company", "merge_fields.PHONE": null, "language": {"column": "mcsync_language", "policy": "fill_empty"}}]))]
    pub map: Option<BTreeMap<String, FieldTarget>>,
}

/// Where a member field goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum FieldTarget {
    /// The CRM column's logical name.
    Column(String),
    /// The column, with a policy of its own.
    Detailed(FieldTargetDetailed),
    /// `null`: do not write this field (removes a default mapping).
    Unmapped,
}

/// A column with its own policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldTargetDetailed {
    /// The CRM column's logical name.
    pub column: String,
    /// The policy for this column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<FieldPolicy>,
}

/// Who wins when both sides have a value.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FieldPolicy {
    /// Mailchimp's value replaces the CRM's.
    Overwrite,
    /// Mailchimp's value is written only where the CRM column is empty.
    FillEmpty,
}

/// Tag sync.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TagsConfig {
    /// Sync tags at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub sync: Option<bool>,
    /// Glob patterns of tag names to sync (`*` any run of characters, `?` one character).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = ["*"]))]
    pub include: Option<Vec<String>>,
    /// Glob patterns of tag names never to sync (wins over `include`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = []))]
    pub exclude: Option<Vec<String>>,
    /// Remove CRM Tag records whose Mailchimp tag is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub prune: Option<bool>,
}

/// A number of members, or a percent of the list (`"10%"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum MaxRemovals {
    /// At most this many removals.
    Count(u64),
    /// At most this percent of the list's current members, e.g. `"10%"`.
    Percent(#[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?%$"))] String),
}
