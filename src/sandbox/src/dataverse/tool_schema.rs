//! The custom schema a client installs (tables, columns, lookups, many-to-many relationships),
//! as a value: what the `bootstrapped` seed mode creates at start, so that tests need not run a
//! bootstrap first. The emulator does not know the tool's schema; whoever starts it passes one
//! (the product builds it from its own schema definition, this package's tests use
//! `tests/fixtures/tool_schema.json`).
//!
//! Custom tables get what a table created through `POST EntityDefinitions` has: the primary
//! name column, `statecode` (0, 1) and `statuscode` (1, 2), and the bulk messages
//! (`CreateMultiple`, `UpdateMultiple`, `UpsertMultiple`), which Dataverse enables for custom
//! tables (MicrosoftDocs/powerapps-docs, `developer/data-platform/bulk-operations.md`).

use serde::{Deserialize, Serialize};

use super::meta::{AttrType, EntityMeta, ManyToMany as ManyToManyMeta, OneToMany, lookup_rel};

/// A column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ColumnKind {
    /// Single line of text (`StringAttributeMetadata`).
    String {
        /// `MaxLength`.
        max_len: u32,
    },
    /// Multiple lines of text (`MemoAttributeMetadata`).
    Memo {
        /// `MaxLength`.
        max_len: u32,
    },
    /// Whole number (`IntegerAttributeMetadata`).
    Integer,
    /// Date and time (`DateTimeAttributeMetadata`).
    DateTime,
}

impl ColumnKind {
    fn attr_type(self) -> AttrType {
        match self {
            ColumnKind::String { max_len } => AttrType::String(max_len),
            ColumnKind::Memo { max_len } => AttrType::Memo(max_len),
            ColumnKind::Integer => AttrType::Integer,
            ColumnKind::DateTime => AttrType::DateTime,
        }
    }
}

/// One column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    /// Logical name.
    pub logical_name: String,
    /// Type.
    pub kind: ColumnKind,
}

/// One custom table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// Logical name (also its schema name).
    pub logical_name: String,
    /// Entity set name.
    pub entity_set: String,
    /// The primary name column.
    pub primary_name: Column,
    /// Display name.
    pub display: String,
    /// Plural display name.
    pub display_plural: String,
    /// Further columns.
    #[serde(default)]
    pub columns: Vec<Column>,
}

/// A custom column on another (standard) table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraColumn {
    /// The table's logical name.
    pub table: String,
    /// The column.
    pub column: Column,
}

/// A lookup column with its one-to-many relationship.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    /// Relationship schema name.
    pub relationship: String,
    /// The table holding the lookup column.
    pub referencing_table: String,
    /// The table it points at.
    pub referenced_table: String,
    /// The lookup column (also its navigation property).
    pub column: String,
}

/// A many-to-many relationship.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManyToMany {
    /// Schema name (also the intersect table and both navigation properties).
    pub schema_name: String,
    /// First table.
    pub entity1: String,
    /// Second table.
    pub entity2: String,
}

/// A custom schema: what `bootstrapped` installs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSchema {
    /// New tables.
    #[serde(default)]
    pub tables: Vec<Table>,
    /// New columns on existing tables.
    #[serde(default)]
    pub extra_columns: Vec<ExtraColumn>,
    /// New lookups.
    #[serde(default)]
    pub lookups: Vec<Lookup>,
    /// New many-to-many relationships.
    #[serde(default)]
    pub many_to_many: Vec<ManyToMany>,
}

/// The schema as table and relationship metadata.
pub(super) struct Installed {
    /// New tables.
    pub entities: Vec<EntityMeta>,
    /// New columns on standard tables: (table, column, type).
    pub columns: Vec<(String, String, AttrType)>,
    /// New lookup relationships.
    pub one_to_many: Vec<OneToMany>,
    /// New many-to-many relationships.
    pub many_to_many: Vec<ManyToManyMeta>,
}

impl ToolSchema {
    /// The metadata this schema creates.
    pub(super) fn install(&self) -> Installed {
        let mut entities = Vec::new();
        for (n, table) in self.tables.iter().enumerate() {
            let code = 10_000 + i64::try_from(n).unwrap_or(0);
            let mut meta = EntityMeta::new(
                &table.logical_name,
                &table.logical_name,
                &table.entity_set,
                code,
            );
            meta.add(
                &table.primary_name.logical_name,
                table.primary_name.kind.attr_type(),
            );
            meta.primary_name = Some(table.primary_name.logical_name.clone());
            meta.add("statecode", AttrType::State(vec![0, 1]));
            meta.add("statuscode", AttrType::Status(vec![1, 2]));
            for column in &table.columns {
                meta.add(&column.logical_name, column.kind.attr_type());
            }
            meta.display_name.clone_from(&table.display);
            meta.display_collection_name
                .clone_from(&table.display_plural);
            meta.is_custom = true;
            meta.bulk = true;
            entities.push(meta);
        }
        let mut columns: Vec<(String, String, AttrType)> = self
            .extra_columns
            .iter()
            .map(|extra| {
                (
                    extra.table.clone(),
                    extra.column.logical_name.clone(),
                    extra.column.kind.attr_type(),
                )
            })
            .collect();
        let mut one_to_many = Vec::new();
        for lookup in &self.lookups {
            let kind = AttrType::Lookup(vec![lookup.referenced_table.clone()]);
            match entities
                .iter_mut()
                .find(|e| e.logical_name == lookup.referencing_table)
            {
                Some(entity) => {
                    entity.add(&lookup.column, kind);
                }
                None => columns.push((
                    lookup.referencing_table.clone(),
                    lookup.column.clone(),
                    kind,
                )),
            }
            one_to_many.push(lookup_rel(
                &lookup.relationship,
                &lookup.referenced_table,
                &lookup.referencing_table,
                &lookup.column,
                &lookup.column,
            ));
        }
        let many_to_many = self
            .many_to_many
            .iter()
            .map(|rel| {
                super::meta::many_to_many(
                    &rel.schema_name,
                    &rel.entity1,
                    &rel.entity2,
                    &rel.schema_name,
                )
            })
            .collect();
        Installed {
            entities,
            columns,
            one_to_many,
            many_to_many,
        }
    }
}

/// The test fixture: a schema shaped like audience-sync's, with its default names.
#[cfg(test)]
pub(crate) fn fixture() -> ToolSchema {
    serde_json::from_str(include_str!("../../tests/fixtures/tool_schema.json"))
        .expect("the fixture is a tool schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_installs_its_tables_and_relationships() {
        let installed = fixture().install();
        let names: Vec<_> = installed
            .entities
            .iter()
            .map(|e| e.entity_set.as_str())
            .collect();
        assert_eq!(
            names,
            ["mcsync_audiences", "mcsync_tags", "mcsync_syncruns"]
        );
        assert_eq!(installed.many_to_many[0].entity1_nav, "mcsync_tag_contact");
        let tag = &installed.entities[1];
        assert!(tag.attribute("mcsync_audienceid").is_some());
        assert!(tag.bulk && tag.is_custom);
    }
}
