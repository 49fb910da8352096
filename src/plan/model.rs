//! The plan: what must change in the CRM, per binding, with the reason for every change and the
//! version of every record it touches. The versioned JSON format of `plan -out FILE` is this model
//! serialized; `schemas/plan.schema.json` is generated from it.
//!
//! Invariants:
//! - `format_version` is [`FORMAT_VERSION`]; minor versions only add optional fields;
//! - changes within a binding are sorted by [`Action`] (the order apply executes them in), then
//!   by their sort key (e-mail or name, then record id): equal inputs give byte-identical JSON;
//! - no secret is ever part of a plan (it holds ids, names, e-mail addresses and column values);
//! - `created_at` is the only wall-clock value: compare plans without it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use super::fields::{Column, FieldRef, Fields, FieldsBuilder, ValueRef};
use super::row::{MemberEntry, Row};
use crate::config::{MemberStatus, MemberType};

/// The version of the plan format this build writes. 2.0: changes name real CRM columns only
/// (`mcsync_name` of the Audience and Tag records, `createdfromcode` as a number), where 1.x
/// showed `name` and `"2"`/`"4"`. 2.1: `mailchimp_read_at`, typed column values (decimal
/// numbers), the problems `value_not_convertible` and `value_trimmed`.
pub const FORMAT_VERSION: &str = "2.1";

/// The flag that overrides a removal guard.
pub const ALLOW_REMOVALS_FLAG: &str = "--allow-removals";

/// A plan for every binding of a config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "audience-sync plan")]
pub struct Plan {
    /// Version of this format, `MAJOR.MINOR`; minor versions only add.
    pub format_version: String,
    /// Version of audience-sync that made the plan.
    pub tool_version: String,
    /// `sha256:<hex>` of the config the plan was made from.
    pub config_digest: String,
    /// When the plan was made (RFC 3339).
    pub created_at: String,
    /// One entry per binding planned, in config order.
    pub bindings: Vec<BindingPlan>,
    /// Totals over all bindings.
    pub summary: Summary,
}

/// Errors reading a saved plan.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file is not a plan (invalid JSON, or not of this format).
    #[error("not a valid audience-sync plan")]
    Parse(#[source] serde_json::Error),
    /// A plan of a format version this build cannot read.
    #[error(
        "plan format version `{found}` is not supported (this build reads `2.x` up to `{FORMAT_VERSION}`)"
    )]
    UnsupportedVersion {
        /// The plan's `format_version`.
        found: String,
    },
}

/// Whether this build reads plan format `version`: exactly `MAJOR.MINOR` (digits, no leading
/// zero, as the schema's pattern says), the major version this build's, the minor no newer.
#[must_use]
pub fn is_supported_version(version: &str) -> bool {
    let parse = |v: &str| -> Option<(u32, u32)> {
        let (major, minor) = v.split_once('.')?;
        let number = |s: &str| {
            let canonical = s == "0" || !s.starts_with('0');
            (!s.is_empty() && canonical && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        Some((number(major)?, number(minor)?))
    };
    matches!(
        (parse(version), parse(FORMAT_VERSION)),
        (Some((major, minor)), Some((our_major, our_minor)))
            if major == our_major && minor <= our_minor
    )
}

/// What the caller knows about the run, for [`Plan::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanMeta {
    /// `env!("CARGO_PKG_VERSION")` of the caller.
    pub tool_version: String,
    /// `sha256:<hex>` of the config.
    pub config_digest: String,
    /// RFC 3339 time.
    pub created_at: String,
}

impl Plan {
    /// Assemble a plan and its summary.
    #[must_use]
    pub fn new(meta: PlanMeta, bindings: Vec<BindingPlan>) -> Self {
        let summary = Summary::of(&bindings);
        Self {
            format_version: FORMAT_VERSION.to_owned(),
            tool_version: meta.tool_version,
            config_digest: meta.config_digest,
            created_at: meta.created_at,
            bindings,
            summary,
        }
    }

    /// Read a saved plan (`plan -out FILE`), checking its format version first, so that a plan
    /// of an unknown version is refused with that reason rather than a field error.
    ///
    /// # Errors
    /// [`Error::UnsupportedVersion`] for another major version, or a minor version newer than this
    /// build's; [`Error::Parse`] when the text is not a plan.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        #[derive(Deserialize)]
        struct Version {
            format_version: String,
        }
        let version: Version = serde_json::from_str(text).map_err(Error::Parse)?;
        if !is_supported_version(&version.format_version) {
            return Err(Error::UnsupportedVersion {
                found: version.format_version,
            });
        }
        serde_json::from_str(text).map_err(Error::Parse)
    }

    /// Some binding has a change to make.
    #[must_use]
    pub fn has_changes(&self) -> bool {
        self.summary.changes > 0
    }

    /// Some binding or member has an error.
    #[must_use]
    pub fn has_errors(&self) -> bool {
        self.summary.errors > 0
    }

    /// Some binding's guard refuses to apply it.
    #[must_use]
    pub fn refused(&self) -> bool {
        !self.summary.refused_bindings.is_empty()
    }

    /// The errors that stop a whole binding (its list cannot be written), with the binding's
    /// name: a plan with any is an error, not "no changes".
    pub fn binding_errors(&self) -> impl Iterator<Item = (&str, &Problem)> {
        self.bindings.iter().flat_map(|b| {
            b.errors
                .iter()
                .filter(|e| e.code.stops_binding())
                .map(move |e| (b.name.as_str(), e))
        })
    }
}

/// Totals over all bindings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// Bindings planned.
    pub bindings: u64,
    /// Changes in all bindings.
    pub changes: u64,
    /// Changes by action.
    pub by_action: BTreeMap<Action, u64>,
    /// Errors (per binding and per member).
    pub errors: u64,
    /// Warnings.
    pub warnings: u64,
    /// List members kept because the tool does not manage them.
    pub unmanaged_kept: u64,
    /// Bindings whose guard refuses to apply, by name.
    pub refused_bindings: Vec<String>,
}

impl Summary {
    /// Sum the bindings up.
    #[must_use]
    pub fn of(bindings: &[BindingPlan]) -> Self {
        let mut s = Self {
            bindings: bindings.len() as u64,
            ..Self::default()
        };
        for b in bindings {
            s.changes += b.changes.len() as u64;
            for (action, n) in &b.counts {
                *s.by_action.entry(*action).or_default() += n;
            }
            s.errors += b.errors.len() as u64;
            s.warnings += b.warnings.len() as u64;
            s.unmanaged_kept += b.unmanaged.len() as u64;
            if b.guard.is_some() {
                s.refused_bindings.push(b.name.clone());
            }
        }
        s
    }
}

/// The plan of one binding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BindingPlan {
    /// The binding's name.
    pub name: String,
    /// The Mailchimp audience.
    pub audience: AudienceRef,
    /// The CRM marketing list.
    pub list: ListRef,
    /// How much was read.
    pub read: ReadSummary,
    /// Digests of what was read: equal digests, equal input.
    pub digests: SideDigests,
    /// Mailchimp's time (RFC 3339) at or before which the audience's read began: a saved plan's
    /// staleness check reads only the members changed since. (Added in 2.1.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailchimp_read_at: Option<String>,
    /// The Tag records the changes refer to (existing and to be created), by record id.
    pub tags: Vec<TagRef>,
    /// The changes, sorted (see the module doc).
    pub changes: Vec<Change>,
    /// Counts of `changes` by action.
    pub counts: BTreeMap<Action, u64>,
    /// List members the tool does not manage (no stored Mailchimp id): shown, never removed.
    pub unmanaged: Vec<UnmanagedMember>,
    /// Errors: the binding's (then `changes` is empty) or a member's (only it is skipped).
    pub errors: Vec<Problem>,
    /// Warnings.
    pub warnings: Vec<Problem>,
    /// Set when a guard refuses to apply this binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<Guard>,
}

impl BindingPlan {
    /// Changes with `action`.
    #[must_use]
    pub fn count(&self, action: Action) -> u64 {
        self.counts.get(&action).copied().unwrap_or(0)
    }

    /// The name of a Tag record the plan refers to.
    #[must_use]
    pub fn tag_name(&self, record: Uuid) -> Option<&str> {
        self.tags
            .binary_search_by_key(&record, |t| t.record)
            .ok()
            .map(|i| self.tags[i].name.as_str())
    }
}

/// The Mailchimp audience of a binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AudienceRef {
    /// List id.
    pub id: String,
    /// Name.
    pub name: String,
}

/// The CRM marketing list of a binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRef {
    /// `listid` (of the list to create, when it does not exist yet), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub id: Option<Uuid>,
    /// `listname`, or the selector as configured.
    pub name: String,
    /// Contacts or leads.
    pub member_type: MemberType,
    /// It exists in the CRM.
    pub exists: bool,
}

/// How much was read for a binding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadSummary {
    /// Mailchimp members.
    pub members: u64,
    /// Mailchimp tags.
    pub tags: u64,
    /// CRM contacts or leads.
    pub records: u64,
    /// Members of the marketing list.
    pub list_members: u64,
    /// CRM Tag records.
    pub tag_records: u64,
}

/// Digests of both sides as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SideDigests {
    /// `sha256:<hex>` of the Mailchimp side.
    pub mailchimp: String,
    /// `sha256:<hex>` of the CRM side.
    pub crm: String,
}

/// A Tag record a change refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TagRef {
    /// The Tag record's id.
    #[schemars(with = "String")]
    pub record: Uuid,
    /// The Mailchimp tag id.
    pub mailchimp_id: u64,
    /// The tag's name (Mailchimp's when the tag still exists).
    pub name: String,
}

/// What a change does. The order is the order apply executes changes in.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Create the Audience record.
    CreateAudience,
    /// Update the Audience record.
    UpdateAudience,
    /// Create the static marketing list.
    CreateList,
    /// Point the list's Audience lookup at the Audience record.
    UpdateList,
    /// Create a Tag record.
    CreateTag,
    /// Rename a Tag record.
    RenameTag,
    /// Create a contact or lead.
    CreateRecord,
    /// Update mapped columns of a contact or lead.
    UpdateRecord,
    /// Set do-not-bulk-e-mail and the subscriber status (consent).
    SetDoNotEmail,
    /// Add a record to the list.
    AddListMember,
    /// Link a record to Tag records.
    LinkTags,
    /// Unlink a record from Tag records.
    UnlinkTags,
    /// Remove a record from the list (the record is kept).
    RemoveListMember,
    /// Delete a Tag record (only when pruning tags).
    RemoveTag,
}

impl Action {
    /// Every action, in order.
    pub const ALL: [Self; 14] = [
        Self::CreateAudience,
        Self::UpdateAudience,
        Self::CreateList,
        Self::UpdateList,
        Self::CreateTag,
        Self::RenameTag,
        Self::CreateRecord,
        Self::UpdateRecord,
        Self::SetDoNotEmail,
        Self::AddListMember,
        Self::LinkTags,
        Self::UnlinkTags,
        Self::RemoveListMember,
        Self::RemoveTag,
    ];

    /// The snake_case code, as in JSON.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::CreateAudience => "create_audience",
            Self::UpdateAudience => "update_audience",
            Self::CreateList => "create_list",
            Self::UpdateList => "update_list",
            Self::CreateTag => "create_tag",
            Self::RenameTag => "rename_tag",
            Self::CreateRecord => "create_record",
            Self::UpdateRecord => "update_record",
            Self::SetDoNotEmail => "set_do_not_email",
            Self::AddListMember => "add_list_member",
            Self::LinkTags => "link_tags",
            Self::UnlinkTags => "unlink_tags",
            Self::RemoveListMember => "remove_list_member",
            Self::RemoveTag => "remove_tag",
        }
    }

    /// A short human label, as a group heading.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::CreateAudience => "create Audience record",
            Self::UpdateAudience => "update Audience record",
            Self::CreateList => "create list",
            Self::UpdateList => "update list",
            Self::CreateTag => "create tag",
            Self::RenameTag => "rename tag",
            Self::CreateRecord => "create record",
            Self::UpdateRecord => "update record",
            Self::SetDoNotEmail => "set do-not-e-mail",
            Self::AddListMember => "add to list",
            Self::LinkTags => "link tags",
            Self::UnlinkTags => "unlink tags",
            Self::RemoveListMember => "remove from list",
            Self::RemoveTag => "remove tag",
        }
    }

    /// Terraform-style symbol: `+` adds, `~` changes, `-` removes.
    #[must_use]
    pub fn symbol(self) -> char {
        match self {
            Self::CreateAudience
            | Self::CreateList
            | Self::CreateTag
            | Self::CreateRecord
            | Self::AddListMember
            | Self::LinkTags => '+',
            Self::UpdateAudience
            | Self::UpdateList
            | Self::RenameTag
            | Self::UpdateRecord
            | Self::SetDoNotEmail => '~',
            Self::UnlinkTags | Self::RemoveListMember | Self::RemoveTag => '-',
        }
    }

    /// Removals and consent changes: never cut from a review, guarded, shown first.
    #[must_use]
    pub fn is_risky(self) -> bool {
        matches!(
            self,
            Self::RemoveListMember | Self::RemoveTag | Self::SetDoNotEmail
        )
    }
}

/// Why a change is needed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The audience has no Audience record yet.
    AudienceMissingInCrm,
    /// The audience was renamed in Mailchimp.
    AudienceRenamedInMailchimp,
    /// The list does not exist and the binding creates it.
    ListMissingInCrm,
    /// The list's Audience lookup does not point at the Audience record.
    ListNotLinkedToAudience,
    /// A synced tag has no Tag record yet.
    TagMissingInCrm,
    /// The tag was renamed in Mailchimp.
    TagRenamedInMailchimp,
    /// The tag was deleted in Mailchimp.
    TagDeletedInMailchimp,
    /// The tag is no longer selected by the binding's tag rules.
    TagExcludedByConfig,
    /// A selected member has no CRM record.
    MemberMissingInCrm,
    /// A mapped field differs (overwrite).
    FieldChangedInMailchimp,
    /// A mapped column is empty in the CRM (fill_empty, or overwrite of an empty column).
    FieldEmptyInCrm,
    /// The record was matched by e-mail and gets the member's Mailchimp id.
    MatchedByEmail,
    /// A selected member's record is not on the list.
    MemberNotOnList,
    /// The member gained tags.
    TagsAddedInMailchimp,
    /// The member lost tags.
    TagsRemovedInMailchimp,
    /// The member unsubscribed.
    UnsubscribedInMailchimp,
    /// The member was cleaned (bounced, spam report).
    CleanedInMailchimp,
    /// The member was archived.
    ArchivedInMailchimp,
    /// The member's status is not one the binding selects.
    StatusNotSelected,
    /// The record's Mailchimp member is gone from the audience (deleted).
    LeftAudience,
}

impl Reason {
    /// The snake_case code, as in JSON.
    #[must_use]
    pub fn code(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// A value shared by the changes of one member, to keep millions of changes small; serialized,
/// deserialized and described by its schema exactly as the value itself.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shared<T: ?Sized>(pub Arc<T>);

impl<T: ?Sized> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T: ?Sized> std::ops::Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: ?Sized + Serialize> Serialize for Shared<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (*self.0).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Shared<MemberRef> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        MemberRef::deserialize(deserializer).map(|m| Self(Arc::new(m)))
    }
}

impl<T: ?Sized + JsonSchema> JsonSchema for Shared<T> {
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
    fn inline_schema() -> bool {
        T::inline_schema()
    }
}

impl<T: ?Sized + std::fmt::Display> std::fmt::Display for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// One change to one CRM record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// What to do.
    pub action: Action,
    /// Why.
    pub reason: Reason,
    /// The record written: Audience record, list, Tag record, contact or lead (for creates, the
    /// deterministic id from `plan::ids`).
    #[schemars(with = "String")]
    pub record: Uuid,
    /// The Mailchimp member the change comes from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<Shared<MemberRef>>,
    /// The display name of an Audience record, list or Tag record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub name: Option<Box<str>>,
    /// Columns written, with the value before and after (`before` absent on creates).
    #[serde(default, skip_serializing_if = "Fields::is_empty")]
    pub fields: Fields,
    /// Tag records linked or unlinked (see `BindingPlan::tags` for their names).
    #[serde(default, skip_serializing_if = "<[Uuid]>::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub tags: Box<[Uuid]>,
    /// What must still hold when the change is applied.
    pub precondition: Precondition,
}

impl Change {
    /// The key changes are sorted by within an action: e-mail or name, lower-cased, then id.
    #[must_use]
    pub fn sort_key(&self) -> (String, Uuid) {
        let label = self
            .member
            .as_ref()
            .map(|m| m.email())
            .or(self.name.as_deref())
            .unwrap_or("");
        (label.to_lowercase(), self.record)
    }
}

/// A Mailchimp member, as a change refers to it: its subscriber hash, contact id and e-mail
/// address are the first three entries of `row`, which a plan made here shares with the
/// snapshot's member (no copy per member).
#[derive(Clone)]
pub struct MemberRef {
    row: Row,
    /// The member's status.
    pub status: MemberStatus,
}

// How a `MemberRef` is written in a plan (its doc is the schema's description).
/// A Mailchimp member, as a change refers to it.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "MemberRef")]
struct MemberRefFields<'a> {
    /// The subscriber hash.
    #[serde(borrow)]
    id: Cow<'a, str>,
    /// Mailchimp's contact id.
    #[serde(borrow)]
    contact_id: Cow<'a, str>,
    /// The e-mail address.
    #[serde(borrow)]
    email: Cow<'a, str>,
    /// The member's status.
    status: MemberStatus,
}

impl MemberRef {
    /// A member reference of these values.
    #[must_use]
    pub fn new(id: &str, contact_id: &str, email: &str, status: MemberStatus) -> Self {
        Self {
            row: Row::new([Some(id), Some(contact_id), Some(email)]),
            status,
        }
    }

    /// The member whose row starts `[id, contact_id, email, …]`, sharing it.
    #[must_use]
    pub fn sharing(row: &Row, status: MemberStatus) -> Self {
        Self {
            row: row.clone(),
            status,
        }
    }

    /// The subscriber hash.
    #[must_use]
    pub fn id(&self) -> &str {
        self.row.member(MemberEntry::Id)
    }

    /// Mailchimp's contact id.
    #[must_use]
    pub fn contact_id(&self) -> &str {
        self.row.member(MemberEntry::ContactId)
    }

    /// The e-mail address.
    #[must_use]
    pub fn email(&self) -> &str {
        self.row.member(MemberEntry::Email)
    }

    fn fields(&self) -> MemberRefFields<'_> {
        MemberRefFields {
            id: Cow::Borrowed(self.id()),
            contact_id: Cow::Borrowed(self.contact_id()),
            email: Cow::Borrowed(self.email()),
            status: self.status,
        }
    }
}

impl PartialEq for MemberRef {
    fn eq(&self, other: &Self) -> bool {
        (self.id(), self.contact_id(), self.email(), self.status)
            == (other.id(), other.contact_id(), other.email(), other.status)
    }
}

impl Eq for MemberRef {}

impl std::fmt::Debug for MemberRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberRef")
            .field("id", &self.id())
            .field("contact_id", &self.contact_id())
            .field("email", &self.email())
            .field("status", &self.status)
            .finish()
    }
}

impl Serialize for MemberRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.fields().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for MemberRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let f = MemberRefFields::deserialize(deserializer)?;
        Ok(Self::new(&f.id, &f.contact_id, &f.email, f.status))
    }
}

impl JsonSchema for MemberRef {
    fn schema_name() -> Cow<'static, str> {
        MemberRefFields::schema_name()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        MemberRefFields::json_schema(generator)
    }
}

/// One column's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldChange {
    /// The column's logical name.
    pub column: Column,
    /// The value before (absent: empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// The value after (absent: empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

/// A column value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Value {
    /// A two-option column.
    Bool(bool),
    /// Text.
    Text(String),
    /// A whole number (e.g. a choice column's code).
    Number(i64),
    /// A decimal number (decimal, floating point and currency columns).
    #[schemars(with = "f64")]
    Decimal(serde_json::Number),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "{b}"),
            Self::Text(t) => write!(f, "{t:?}"),
            Self::Number(n) => write!(f, "{n}"),
            Self::Decimal(n) => write!(f, "{n}"),
        }
    }
}

/// What must still hold when a change is applied; otherwise apply reports it stale.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Precondition {
    /// The record's ETag (sent as `If-Match`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub etag: Option<Box<str>>,
    /// The Mailchimp member's `last_changed` at plan time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_last_changed: Option<MemberVersion>,
    /// The record must not exist yet (creates).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub absent: bool,
}

/// A Mailchimp member's `last_changed` at plan time. A plan made here reads it from the
/// member's row in the snapshot (its fourth entry), so a million changes hold no copy of it;
/// serialized, deserialized and described by its schema as the string itself.
#[derive(Clone)]
pub struct MemberVersion(Row);

impl MemberVersion {
    /// The version in the member row `[id, contact_id, email, last_changed, …]`, sharing it.
    #[must_use]
    pub fn of_row(row: &Row) -> Self {
        Self(row.clone())
    }

    /// The `last_changed` text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.0.member(MemberEntry::LastChanged)
    }
}

impl From<&str> for MemberVersion {
    fn from(text: &str) -> Self {
        let entries = (0..MemberEntry::COUNT)
            .map(|i| (i == MemberEntry::LastChanged as usize).then_some(text));
        Self(Row::new(entries))
    }
}

impl std::ops::Deref for MemberVersion {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for MemberVersion {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for MemberVersion {}

impl std::fmt::Debug for MemberVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl Serialize for MemberVersion {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MemberVersion {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Self::from(&*text))
    }
}

impl JsonSchema for MemberVersion {
    fn schema_name() -> Cow<'static, str> {
        String::schema_name()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
    fn inline_schema() -> bool {
        true
    }
}

/// A list member kept because the tool does not manage it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnmanagedMember {
    /// The contact or lead.
    #[schemars(with = "String")]
    pub record: Uuid,
    /// Its e-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// An error or warning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Problem {
    /// What kind.
    pub code: ProblemCode,
    /// What happened and what to do, for a person.
    pub message: String,
    /// The member concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<MemberRef>,
    /// The CRM records concerned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub records: Vec<Uuid>,
}

/// Kinds of errors and warnings.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    /// Per binding: the list does not exist and the binding does not create it.
    ListNotFound,
    /// Per binding: the list's member type is not the binding's.
    WrongMemberType,
    /// Per binding: an account-type list.
    AccountList,
    /// Per binding: a dynamic list.
    DynamicList,
    /// Per binding: an inactive (read-only) list.
    InactiveList,
    /// Per binding: a locked list (`lockstatus`), which refuses adds and removals.
    LockedList,
    /// Per binding: the snapshot was not read for this binding (internal error).
    SnapshotMismatch,
    /// Per member: two or more CRM records for one e-mail address.
    DuplicateEmail,
    /// Per member: two or more CRM records carry the member's Mailchimp id.
    DuplicateMailchimpId,
    /// Per member: the e-mail address is not valid.
    InvalidEmail,
    /// Per member: its only matching CRM record is inactive (never reactivated, listed or
    /// duplicated).
    InactiveRecord,
    /// Warning: the record is flagged do-not-bulk-e-mail and a subscribed member does not unflag it.
    DoNotEmailKept,
    /// Warning: two Tag records stand for one Mailchimp tag; only the first is used.
    DuplicateTagRecord,
    /// Per member: a mapped value cannot go into its column's type (that column is not written).
    ValueNotConvertible,
    /// Warning: a mapped text value is longer than its column and is written cut to its length.
    ValueTrimmed,
}

impl ProblemCode {
    /// A problem of the whole binding (the list cannot be written), not of one member.
    #[must_use]
    pub fn stops_binding(self) -> bool {
        matches!(
            self,
            Self::ListNotFound
                | Self::WrongMemberType
                | Self::AccountList
                | Self::DynamicList
                | Self::InactiveList
                | Self::LockedList
                | Self::SnapshotMismatch
        )
    }
}

/// Why a binding is refused, and how to override.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Guard {
    /// Which guard.
    pub reason: GuardReason,
    /// For a person: why, and how to override.
    pub message: String,
    /// Removals the plan holds.
    pub removals: u64,
    /// Removals `max_removals` allows for this list.
    pub allowed: u64,
    /// The list's size.
    pub list_size: u64,
    /// The flag that overrides the guard.
    #[serde(rename = "override")]
    pub override_flag: String,
}

/// Which guard refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuardReason {
    /// More removals than `max_removals`.
    TooManyRemovals,
    /// The audience reads as empty while the list holds managed members.
    EmptyAudience,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_plans_of_unknown_versions_are_refused() {
        let plan = Plan::new(
            PlanMeta {
                tool_version: "0.1.0".to_owned(),
                config_digest: "sha256:x".to_owned(),
                created_at: "2026-03-01T12:00:00Z".to_owned(),
            },
            Vec::new(),
        );
        let json = serde_json::to_string(&plan).expect("serializes");
        assert_eq!(Plan::from_json(&json).expect("reads"), plan);
        for version in ["1.0", "3.0", "2.99", "one", "2.0.0", "+2.0", "2.-0", ""] {
            let other = json.replace(&format!("\"{FORMAT_VERSION}\""), &format!("\"{version}\""));
            let err = Plan::from_json(&other).expect_err("refused");
            assert!(
                matches!(err, Error::UnsupportedVersion { .. }),
                "{version}: {err}"
            );
        }
        assert!(matches!(Plan::from_json("{"), Err(Error::Parse(_))));
    }
}
