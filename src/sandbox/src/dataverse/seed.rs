//! What the Dataverse half starts with: the schema mode, credentials, limits and faults, and
//! rows (accounts, contacts, leads, marketing lists with members, the tool's own records and
//! their many-to-many links), plus the lists the `--generate` spec asks for.
//!
//! Rows are written through the same Web API handlers as requests, so a seed is validated like
//! a client's writes (unknown columns, wrong types and bad references are errors).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::columns::{PluginRefusal, SeedColumn};
use super::limits::{Faults, Limits};
use super::meta;
use super::routes::{self, Ctx};
use super::store::Store;
use crate::GenerateSpec;

/// Whether the tool's schema exists at start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaMode {
    /// The tool's tables, columns and relationships exist (what `crm bootstrap` creates).
    #[default]
    Bootstrapped,
    /// Only the standard tables (for bootstrap tests).
    Bare,
}

/// A list's member type (`createdfromcode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberType {
    /// Accounts (1).
    Account,
    /// Contacts (2).
    #[default]
    Contact,
    /// Leads (4).
    Lead,
}

impl MemberType {
    fn code(self) -> i64 {
        match self {
            MemberType::Account => 1,
            MemberType::Contact => 2,
            MemberType::Lead => 4,
        }
    }

    fn table(self) -> &'static str {
        match self {
            MemberType::Account => "account",
            MemberType::Contact => "contact",
            MemberType::Lead => "lead",
        }
    }
}

/// A marketing list in a seed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedList {
    /// `listid` (a new one when absent).
    #[serde(default)]
    pub id: Option<Uuid>,
    /// `listname`.
    pub name: String,
    /// Member type.
    #[serde(default)]
    pub member_type: MemberType,
    /// A dynamic list (`type` true).
    #[serde(default)]
    pub dynamic: bool,
    /// `lockstatus` true.
    #[serde(default)]
    pub locked: bool,
    /// `statecode` 1 (read-only).
    #[serde(default)]
    pub inactive: bool,
    /// Member ids (rows of the member type's table).
    #[serde(default)]
    pub members: Vec<Uuid>,
}

/// A many-to-many link in a seed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedLink {
    /// Relationship schema name (`mcsync_tag_contact`).
    pub relationship: String,
    /// The entity1 row (the tag).
    pub from: Uuid,
    /// The entity2 row (the contact or lead).
    pub to: Uuid,
}

/// Seed data for the Dataverse half. Rows are Web API JSON objects (logical column names,
/// `<pk>` for a chosen id, `x@odata.bind` for lookups).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// `bootstrapped` (default) or `bare`.
    #[serde(default)]
    pub schema: SchemaMode,
    /// Tenant id (default [`super::auth::DEFAULT_TENANT`]).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Client id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Client secret.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Token lifetime in seconds (default 3599).
    #[serde(default)]
    pub token_lifetime_secs: Option<u64>,
    /// Service-protection settings.
    #[serde(default)]
    pub limits: Option<Limits>,
    /// Faults.
    #[serde(default)]
    pub faults: Option<Faults>,
    /// Custom columns of any type added to existing tables before the rows are written.
    #[serde(default)]
    pub columns: Vec<SeedColumn>,
    /// Writes refused as a plug-in would refuse them (400 `0x80040265`).
    #[serde(default)]
    pub plugin_refusals: Vec<PluginRefusal>,
    /// Accounts.
    #[serde(default)]
    pub accounts: Vec<Map<String, Value>>,
    /// Contacts.
    #[serde(default)]
    pub contacts: Vec<Map<String, Value>>,
    /// Leads.
    #[serde(default)]
    pub leads: Vec<Map<String, Value>>,
    /// Marketing lists.
    #[serde(default)]
    pub lists: Vec<SeedList>,
    /// Other rows by entity set (the tool's `mcsync_audiences`, `mcsync_tags`, ...).
    #[serde(default)]
    pub records: BTreeMap<String, Vec<Map<String, Value>>>,
    /// Many-to-many links.
    #[serde(default)]
    pub links: Vec<SeedLink>,
    /// What `RetrievePrincipalAccess` answers (default: every right), e.g.
    /// `"ReadAccess, WriteAccess"` to test `crm check` against a user without some rights.
    #[serde(default)]
    pub access_rights: Option<String>,
    /// The environment lacks the `RemoveMemberList` Web API action (no Dynamics 365 apps).
    #[serde(default)]
    pub without_remove_member_list: bool,
}

fn post(store: &mut Store, path: &str, body: &Value) -> Result<(), String> {
    let ctx = Ctx {
        base: "http://seed".to_owned(),
    };
    let req = routes::request(
        "POST",
        path,
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    );
    let resp = routes::handle(&ctx, store, &req);
    if resp.is_success() {
        Ok(())
    } else {
        let text = resp
            .body
            .map(|(_, b)| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        Err(format!("seeding `{path}` failed ({}): {text}", resp.status))
    }
}

/// Write a seed's rows into a store.
///
/// # Errors
/// A row the Web API would refuse (the message says which).
pub fn apply(store: &mut Store, seed: &Seed) -> Result<(), String> {
    if let Some(rights) = &seed.access_rights {
        rights.clone_into(&mut store.access_rights);
    }
    store.without_remove_member_list |= seed.without_remove_member_list;
    for column in &seed.columns {
        let table = store
            .table_mut(&column.table)
            .ok_or_else(|| format!("seed column `{}`: no table `{}`", column.name, column.table))?;
        column.install(&mut table.meta);
    }
    store
        .plugin_refusals
        .extend(seed.plugin_refusals.iter().cloned());
    for (set, rows) in [
        ("accounts", &seed.accounts),
        ("contacts", &seed.contacts),
        ("leads", &seed.leads),
    ] {
        for row in rows {
            post(store, set, &Value::Object(row.clone()))?;
        }
    }
    for (set, rows) in &seed.records {
        for row in rows {
            post(store, set, &Value::Object(row.clone()))?;
        }
    }
    for list in &seed.lists {
        let id = list
            .id
            .unwrap_or_else(|| meta::name_uuid("seed-list", &list.name));
        post(
            store,
            "lists",
            &json!({"listid": id.to_string(), "listname": list.name, "createdfromcode": list.member_type.code(), "type": false}),
        )?;
        for member in &list.members {
            store
                .add_list_member(id, list.member_type.table(), *member)
                .map_err(|e| format!("seeding list `{}`: {}", list.name, e.message))?;
        }
        let mut changes = super::store::Row::default();
        let meta_list = &store.table("list").ok_or("no list table")?.meta;
        for (name, value) in [
            ("type", super::value::Val::Bool(list.dynamic)),
            ("lockstatus", super::value::Val::Bool(list.locked)),
            (
                "statecode",
                super::value::Val::Int(i64::from(list.inactive)),
            ),
            (
                "statuscode",
                super::value::Val::Int(i64::from(list.inactive)),
            ),
        ] {
            if let Some(pos) = meta_list.position(name) {
                changes.set(pos, value);
            }
        }
        store.update("list", id, changes).map_err(|e| e.message)?;
    }
    for link in &seed.links {
        let rel = store
            .many_to_many
            .iter()
            .find(|r| r.schema_name == link.relationship)
            .cloned()
            .ok_or_else(|| format!("seed link: no relationship `{}`", link.relationship))?;
        store
            .associate(&rel, link.from, link.to)
            .map_err(|e| format!("seed link `{}`: {}", link.relationship, e.message))?;
    }
    Ok(())
}

/// The lists `--generate` adds: one static contact list per generated Mailchimp audience,
/// named like it (`Generated Audience N`), with a deterministic id.
pub fn generate(store: &mut Store, spec: GenerateSpec) -> Result<(), String> {
    for a in 1..=spec.audiences {
        let name = format!("Generated Audience {a}");
        let id = meta::name_uuid("generated-list", &format!("{}:{a}", spec.seed));
        if store.get("list", id).is_none() {
            post(
                store,
                "lists",
                &json!({"listid": id.to_string(), "listname": name, "createdfromcode": 2, "type": false}),
            )?;
        }
    }
    Ok(())
}
