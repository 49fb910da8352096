//! The table store: rows by primary key per table (ordered, so pages resume from a key),
//! many-to-many link sets indexed both ways, marketing-list membership kept as `listmember`
//! rows, and metadata. Every mutation goes through here and may be journaled, so a change set
//! or a bulk action on a standard table can be rolled back as a whole.
//!
//! Invariants: `versionnumber` is unique and increasing across the environment; a row's fields
//! are sorted by column position; a list's `membercount` equals its `listmember` rows; the
//! `listmember` link set and the `listmember` table hold the same pairs.

mod journal;
mod links;
pub(crate) mod lists;
mod persist;
mod ranges;
mod text_index;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

use super::errors::DvError;
use super::meta;
use super::meta::{AttrType, EntityMeta, ManyToMany, OneToMany};
use super::tool_schema::ToolSchema;
use super::value::Val;
use journal::Undo;
pub use text_index::{TextIndex, fold};

/// Every access right, as `RetrievePrincipalAccess` lists them.
pub const FULL_ACCESS: &str = "ReadAccess, WriteAccess, AppendAccess, AppendToAccess, CreateAccess, DeleteAccess, ShareAccess, AssignAccess";

/// The link set name of marketing-list membership (list id, member id).
pub const LIST_LINKS: &str = "listmember";

/// One row: values by column position, sorted.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    /// (position, value), sorted by position, no duplicates.
    pub fields: Vec<(u16, Val)>,
}

impl Row {
    /// A column's value (`Null` when absent).
    #[must_use]
    pub fn get(&self, pos: u16) -> &Val {
        match self.fields.binary_search_by_key(&pos, |(p, _)| *p) {
            Ok(i) => &self.fields[i].1,
            Err(_) => &Val::Null,
        }
    }

    /// Set a column.
    pub fn set(&mut self, pos: u16, value: Val) {
        match self.fields.binary_search_by_key(&pos, |(p, _)| *p) {
            Ok(i) => self.fields[i].1 = value,
            Err(i) => self.fields.insert(i, (pos, value)),
        }
    }
}

/// A table: metadata and rows.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Table {
    /// Metadata.
    pub meta: EntityMeta,
    /// Rows by primary key.
    pub rows: BTreeMap<Uuid, Row>,
}

/// Pairs linked by one relationship, indexed both ways.
#[derive(Debug, Clone, Default)]
pub struct LinkSet {
    /// (entity1 id, entity2 id).
    pub forward: BTreeSet<(Uuid, Uuid)>,
    /// (entity2 id, entity1 id).
    pub backward: BTreeSet<(Uuid, Uuid)>,
}

impl LinkSet {
    /// Ids linked to `id` from the entity1 side.
    pub fn from_first(&self, id: Uuid) -> impl Iterator<Item = Uuid> + '_ {
        self.forward
            .range((id, Uuid::nil())..=(id, Uuid::max()))
            .map(|(_, b)| *b)
    }

    /// Ids linked to `id` from the entity2 side.
    pub fn from_second(&self, id: Uuid) -> impl Iterator<Item = Uuid> + '_ {
        self.backward
            .range((id, Uuid::nil())..=(id, Uuid::max()))
            .map(|(_, a)| *a)
    }
}

/// The whole environment's data and metadata.
#[derive(Debug)]
pub struct Store {
    tables: BTreeMap<String, Table>,
    by_set: HashMap<String, String>,
    /// Lookup relationships.
    pub one_to_many: Vec<OneToMany>,
    /// Many-to-many relationships.
    pub many_to_many: Vec<ManyToMany>,
    links: HashMap<String, LinkSet>,
    member_ids: HashMap<(Uuid, Uuid), Uuid>,
    /// (list id, listmember id), sorted: a list's members in key order (a page is a range).
    members_by_list: BTreeSet<(Uuid, Uuid)>,
    version: u64,
    journal: Option<Vec<Undo>>,
    indexes: std::sync::Mutex<HashMap<(String, u16), TextIndex>>,
    /// What `RetrievePrincipalAccess` answers for the application user on any row.
    pub access_rights: String,
    /// The environment was created without Dynamics 365 apps, so `RemoveMemberList` is no Web
    /// API action: it answers 404 "Resource not found for the segment …" (learn.microsoft.com
    /// `dotnet/api/microsoft.crm.sdk.messages.removememberlistrequest`).
    pub without_remove_member_list: bool,
    /// Stand-ins for plug-ins that refuse some writes.
    pub plugin_refusals: Vec<crate::dataverse::columns::PluginRefusal>,
    clock: fn() -> String,
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The standard bulk messages a table can support.
pub const BULK_MESSAGES: [&str; 3] = ["CreateMultiple", "UpdateMultiple", "UpsertMultiple"];
const ROW_MESSAGES: [&str; 4] = ["Create", "Update", "Delete", "Retrieve"];

impl Store {
    /// Candidate ids of rows whose text column `pos` equals one of `values`
    /// (case-insensitively), from the column's index (built on first use).
    #[must_use]
    pub fn lookup_text(&self, table: &str, pos: u16, values: &[&str]) -> Vec<Uuid> {
        let mut indexes = self
            .indexes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let build = || {
            let mut index = TextIndex::default();
            index
                .first
                .reserve(self.tables.get(table).map_or(0, |t| t.rows.len()));
            if let Some(t) = self.tables.get(table) {
                for (id, row) in &t.rows {
                    if let Val::Str(text) = row.get(pos) {
                        index.add(text, *id);
                    }
                }
            }
            index
        };
        // An index built inside a journal could miss values a rollback restores: build one
        // only outside (reads never run inside a change set anyway).
        let mut scratch;
        let index = if self.journal.is_some() && !indexes.contains_key(&(table.to_owned(), pos)) {
            scratch = build();
            &mut scratch
        } else {
            indexes.entry((table.to_owned(), pos)).or_insert_with(build)
        };
        let mut out = Vec::new();
        for value in values {
            index.get(value, &mut out);
        }
        out
    }

    /// A fresh environment with the standard tables (and a client's custom schema, when given:
    /// the `bootstrapped` seed mode).
    #[must_use]
    pub fn new(schema: Option<&ToolSchema>) -> Self {
        let mut store = Self {
            tables: BTreeMap::new(),
            by_set: HashMap::new(),
            one_to_many: meta::standard_one_to_many()
                .into_iter()
                .chain(super::solutions::one_to_many())
                .collect(),
            many_to_many: meta::standard_many_to_many(),
            links: HashMap::new(),
            member_ids: HashMap::new(),
            members_by_list: BTreeSet::new(),
            version: 1_000_000,
            journal: None,
            indexes: std::sync::Mutex::new(HashMap::new()),
            access_rights: FULL_ACCESS.to_owned(),
            without_remove_member_list: false,
            plugin_refusals: Vec::new(),
            clock: now,
        };
        store
            .links
            .insert(LIST_LINKS.to_owned(), LinkSet::default());
        for entity in meta::standard_entities()
            .into_iter()
            .chain(super::solutions::entities())
        {
            store.add_table(entity);
        }
        super::solutions::seed_defaults(&mut store);
        let messages: Vec<&str> = ROW_MESSAGES
            .iter()
            .chain(BULK_MESSAGES.iter())
            .copied()
            .collect();
        for name in messages {
            let id = meta::name_uuid("sdkmessage", name);
            let _ = store.insert_raw("sdkmessage", id, &[("name", Val::Str(name.into()))]);
        }
        let logicals: Vec<String> = store.tables.keys().cloned().collect();
        for logical in logicals {
            store.register_messages(&logical);
        }
        let user = super::auth::SANDBOX_USER_ID;
        let _ = store.insert_raw(
            "systemuser",
            user,
            &[("fullname", Val::Str("# audience-sync sandbox".into()))],
        );
        if let Some(schema) = schema {
            store.install(schema);
        }
        store
    }

    /// Create a custom schema (what a client's bootstrap would do), skipping what exists.
    pub fn install(&mut self, schema: &ToolSchema) {
        let schema = schema.install();
        // A bootstrapped environment has a publisher of the schema's prefix.
        let prefixes: BTreeSet<String> = schema
            .entities
            .iter()
            .filter_map(|e| e.logical_name.split_once('_').map(|(p, _)| p.to_owned()))
            .collect();
        for prefix in prefixes {
            super::solutions::add_publisher(self, &prefix, &prefix, &prefix, 10_001);
        }
        for entity in schema.entities {
            if !self.tables.contains_key(&entity.logical_name) {
                let logical = entity.logical_name.clone();
                self.add_table(entity);
                self.register_messages(&logical);
            }
        }
        for (table, column, kind) in schema.columns {
            if let Some(t) = self.tables.get_mut(&table) {
                let pos = t.meta.add(&column, kind);
                if let Some(attr) = t.meta.attributes.get_mut(usize::from(pos)) {
                    attr.is_custom = true;
                }
            }
        }
        for rel in schema.one_to_many {
            if !self.has_relationship(&rel.schema_name) {
                self.one_to_many.push(rel);
            }
        }
        for rel in schema.many_to_many {
            if !self.has_relationship(&rel.schema_name) {
                self.add_many_to_many(rel);
            }
        }
    }

    /// Whether a relationship of this schema name exists.
    #[must_use]
    pub fn has_relationship(&self, schema: &str) -> bool {
        self.one_to_many
            .iter()
            .any(|r| r.schema_name.eq_ignore_ascii_case(schema))
            || self
                .many_to_many
                .iter()
                .any(|r| r.schema_name.eq_ignore_ascii_case(schema))
    }

    /// Add a many-to-many relationship with its (empty) link set.
    pub fn add_many_to_many(&mut self, rel: ManyToMany) {
        self.links.entry(rel.schema_name.clone()).or_default();
        self.many_to_many.push(rel);
    }

    /// Add a table (metadata API or start-up).
    pub fn add_table(&mut self, entity: EntityMeta) {
        self.by_set
            .insert(entity.entity_set.clone(), entity.logical_name.clone());
        self.tables.insert(
            entity.logical_name.clone(),
            Table {
                meta: entity,
                rows: BTreeMap::new(),
            },
        );
    }

    /// Add the sdkmessagefilter rows for a table's messages.
    pub fn register_messages(&mut self, logical: &str) {
        let bulk = self.tables.get(logical).is_some_and(|t| t.meta.bulk);
        let names: Vec<&str> = if bulk {
            ROW_MESSAGES
                .iter()
                .chain(BULK_MESSAGES.iter())
                .copied()
                .collect()
        } else {
            ROW_MESSAGES.to_vec()
        };
        for name in names {
            let id = meta::name_uuid("sdkmessagefilter", &format!("{name}:{logical}"));
            let _ = self.insert_raw(
                "sdkmessagefilter",
                id,
                &[
                    ("primaryobjecttypecode", Val::Str(logical.into())),
                    (
                        "sdkmessageid",
                        Val::Guid(meta::name_uuid("sdkmessage", name)),
                    ),
                    ("isvisible", Val::Bool(true)),
                ],
            );
        }
    }

    /// A table by logical name.
    #[must_use]
    pub fn table(&self, logical: &str) -> Option<&Table> {
        self.tables.get(logical)
    }

    /// A table by logical name, mutable (metadata changes).
    pub fn table_mut(&mut self, logical: &str) -> Option<&mut Table> {
        self.tables.get_mut(logical)
    }

    /// A table by entity set name.
    #[must_use]
    pub fn table_by_set(&self, set: &str) -> Option<&Table> {
        self.by_set.get(set).and_then(|l| self.tables.get(l))
    }

    /// All tables.
    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.tables.values()
    }

    /// The next `versionnumber`.
    fn next_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    fn put_row(&mut self, table: &str, id: Uuid, mut row: Row) {
        row.fields.shrink_to_fit();
        {
            let mut indexes = self
                .indexes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for ((t, pos), index) in indexes.iter_mut() {
                if t == table
                    && let Val::Str(text) = row.get(*pos)
                {
                    index.add(text, id);
                }
            }
        }
        let old = self
            .tables
            .get_mut(table)
            .and_then(|t| t.rows.insert(id, row));
        if self.journal.is_some() {
            self.journal_row(table, id, old);
        }
    }

    fn take_row(&mut self, table: &str, id: Uuid) -> Option<Row> {
        let old = self.tables.get_mut(table).and_then(|t| t.rows.remove(&id));
        if old.is_some() && self.journal.is_some() {
            self.journal_row(table, id, old.clone());
        }
        old
    }

    fn stamp(&mut self, table: &str, row: &mut Row, created: bool) {
        let version = self.next_version();
        let at = (self.clock)();
        let Some(t) = self.tables.get(table) else {
            return;
        };
        let meta = &t.meta;
        if let Some(pos) = meta.position("versionnumber") {
            row.set(pos, Val::Int(i64::try_from(version).unwrap_or(i64::MAX)));
        }
        if let Some(pos) = meta.position("modifiedon") {
            row.set(pos, Val::Str(at.clone().into_boxed_str()));
        }
        if created && let Some(pos) = meta.position("createdon") {
            row.set(pos, Val::Str(at.into_boxed_str()));
        }
        if meta.primary_name.as_deref() == Some("fullname")
            && let (Some(first), Some(last), Some(full)) = (
                meta.position("firstname"),
                meta.position("lastname"),
                meta.position("fullname"),
            )
        {
            let parts: Vec<String> = [row.get(first), row.get(last)]
                .iter()
                .filter_map(|v| match v {
                    Val::Str(s) if !s.is_empty() => Some(s.to_string()),
                    _ => None,
                })
                .collect();
            row.set(full, Val::Str(parts.join(" ").into_boxed_str()));
        }
    }

    fn defaults(&self, table: &str, row: &mut Row) {
        let Some(t) = self.tables.get(table) else {
            return;
        };
        let meta = &t.meta;
        let defaults: &[(&str, Val)] = match table {
            "list" => &[
                ("type", Val::Bool(false)),
                ("lockstatus", Val::Bool(false)),
                ("membercount", Val::Int(0)),
                ("statecode", Val::Int(0)),
                ("statuscode", Val::Int(0)),
            ],
            "lead" => &[("statecode", Val::Int(0)), ("statuscode", Val::Int(1))],
            _ => &[("statecode", Val::Int(0)), ("statuscode", Val::Int(1))],
        };
        for (name, value) in defaults {
            if let Some(pos) = meta.position(name)
                && row.get(pos).is_null()
            {
                row.set(pos, value.clone());
            }
        }
    }

    /// Insert a row from named values, bypassing API checks (seeding).
    ///
    /// # Errors
    /// Unknown table or column, or the id exists.
    pub fn insert_raw(
        &mut self,
        table: &str,
        id: Uuid,
        values: &[(&str, Val)],
    ) -> Result<(), DvError> {
        let t = self
            .tables
            .get(table)
            .ok_or_else(|| DvError::no_resource(table))?;
        let mut row = Row::default();
        for (name, value) in values {
            let pos = t
                .meta
                .position(name)
                .ok_or_else(|| DvError::unknown_property(table, name))?;
            row.set(pos, value.clone());
        }
        self.create(table, Some(id), row).map(|_| ())
    }

    /// Create a row (id chosen by the client or new). The caller has checked the columns.
    ///
    /// # Errors
    /// 412 duplicate key when the id exists; 404 for an unknown table.
    pub fn create(&mut self, table: &str, id: Option<Uuid>, mut row: Row) -> Result<Uuid, DvError> {
        let t = self
            .tables
            .get(table)
            .ok_or_else(|| DvError::no_resource(table))?;
        let pk = t.meta.primary_id_pos();
        let id = id
            .or(match row.get(pk) {
                Val::Guid(g) => Some(*g),
                _ => None,
            })
            .unwrap_or_else(Uuid::new_v4);
        if t.rows.contains_key(&id) {
            return Err(DvError::duplicate());
        }
        row.set(pk, Val::Guid(id));
        self.defaults(table, &mut row);
        self.stamp(table, &mut row, true);
        self.put_row(table, id, row);
        Ok(id)
    }

    /// Update a row's columns. The caller has checked the columns.
    ///
    /// # Errors
    /// 404 when the row does not exist.
    pub fn update(&mut self, table: &str, id: Uuid, changes: Row) -> Result<(), DvError> {
        let t = self
            .tables
            .get(table)
            .ok_or_else(|| DvError::no_resource(table))?;
        let pk = t.meta.primary_id_pos();
        let mut row = t
            .rows
            .get(&id)
            .cloned()
            .ok_or_else(|| DvError::not_found(table, &id))?;
        for (pos, value) in changes.fields {
            if pos != pk {
                row.set(pos, value);
            }
        }
        self.stamp(table, &mut row, false);
        self.put_row(table, id, row);
        Ok(())
    }

    /// Delete a row and every link and list membership it has.
    ///
    /// # Errors
    /// 404 when the row does not exist.
    pub fn delete(&mut self, table: &str, id: Uuid) -> Result<(), DvError> {
        if table == "listmember" {
            return self.remove_list_member(id);
        }
        if self.take_row(table, id).is_none() {
            return Err(DvError::not_found(table, &id));
        }
        let rels: Vec<ManyToMany> = self
            .many_to_many
            .iter()
            .filter(|r| !r.list_backed && (r.entity1 == table || r.entity2 == table))
            .cloned()
            .collect();
        for rel in rels {
            let pairs: Vec<(Uuid, Uuid)> = if rel.entity1 == table {
                self.linked(&rel, true, id)
                    .into_iter()
                    .map(|b| (id, b))
                    .collect()
            } else {
                self.linked(&rel, false, id)
                    .into_iter()
                    .map(|a| (a, id))
                    .collect()
            };
            for (a, b) in pairs {
                self.unlink(&rel.schema_name, a, b);
            }
        }
        if matches!(table, "list" | "contact" | "lead" | "account") {
            let members: Vec<Uuid> = self
                .member_ids
                .iter()
                .filter(|((l, e), _)| *l == id || *e == id)
                .map(|(_, m)| *m)
                .collect();
            for member in members {
                self.remove_list_member(member)?;
            }
        }
        Ok(())
    }

    fn require(&self, table: &str, id: Uuid) -> Result<&Row, DvError> {
        self.tables
            .get(table)
            .and_then(|t| t.rows.get(&id))
            .ok_or_else(|| DvError::not_found(table, &id))
    }

    /// Read a row.
    #[must_use]
    pub fn get(&self, table: &str, id: Uuid) -> Option<&Row> {
        self.tables.get(table).and_then(|t| t.rows.get(&id))
    }

    /// The `versionnumber` of a row.
    #[must_use]
    pub fn version_of(&self, table: &str, row: &Row) -> Option<i64> {
        let pos = self.tables.get(table)?.meta.position("versionnumber")?;
        match row.get(pos) {
            Val::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// Check a column for writes: known, writable, and of the right type.
    ///
    /// # Errors
    /// Unknown or read-only column, or a value of the wrong type.
    pub fn column_for_write(&self, table: &str, name: &str) -> Result<(u16, AttrType), DvError> {
        let t = self
            .tables
            .get(table)
            .ok_or_else(|| DvError::no_resource(table))?;
        let pos = t
            .meta
            .position(name)
            .ok_or_else(|| DvError::unknown_property(table, name))?;
        let attr = t
            .meta
            .attribute_at(pos)
            .ok_or_else(|| DvError::unknown_property(table, name))?;
        Ok((pos, attr.kind.clone()))
    }
}

#[cfg(test)]
mod tests;
