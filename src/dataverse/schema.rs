//! The ONE definition of the tool's own CRM schema: its tables (Audience, Tag, Sync Run), their
//! columns with types and lengths, the lookups to the Audience table (on Tag, Sync Run and the
//! marketing list), the Mailchimp columns on contact and lead, and the Tag ↔ Contact / Tag ↔ Lead
//! many-to-many relationships. Names are the resolved [`Names`] (each has a default).
//!
//! `crm bootstrap` and `crm check` are driven by it, the sandbox seeds its metadata from it, and
//! the table modules read their column names from it. Pure data: no I/O.
//!
//! Entity set names are the logical name plus `s` (bootstrap sets `EntitySetName` explicitly so
//! that this holds); primary keys are the logical name plus `id`.

pub use crate::domain::Names;

/// Picklist-free status of a binding's sync, stored as a whole number on the Audience record.
pub mod sync_status {
    /// Never synced.
    pub const NEVER: i64 = 0;
    /// An apply holds the lease and is running.
    pub const IN_PROGRESS: i64 = 1;
    /// The last apply succeeded.
    pub const SUCCEEDED: i64 = 2;
    /// The last apply failed in part.
    pub const PARTIAL: i64 = 3;
    /// The last apply failed.
    pub const FAILED: i64 = 4;
}

/// A column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// Single line of text.
    String {
        /// Maximum length in characters.
        max_len: u32,
    },
    /// Multiple lines of text.
    Memo {
        /// Maximum length in characters.
        max_len: u32,
    },
    /// Whole number.
    Integer,
    /// Date and time (UTC).
    DateTime,
}

/// One column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Logical name (lower case).
    pub logical_name: String,
    /// Display name.
    pub display: &'static str,
    /// Type.
    pub kind: ColumnKind,
    /// Description.
    pub description: &'static str,
}

/// One of the tool's own tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Logical name.
    pub logical_name: String,
    /// Entity set name (URL segment).
    pub entity_set: String,
    /// Primary key column.
    pub primary_id: String,
    /// Primary name column (a String column, created with the table).
    pub primary_name: Column,
    /// Display name.
    pub display: &'static str,
    /// Plural display name.
    pub display_plural: &'static str,
    /// Description.
    pub description: &'static str,
    /// Further columns (lookups are in [`Schema::lookups`]).
    pub columns: Vec<Column>,
}

/// A column the tool adds to a table it does not own (contact, lead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraColumn {
    /// The table's logical name.
    pub table: String,
    /// The column.
    pub column: Column,
}

/// A lookup column (a many-to-one relationship).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// Relationship schema name.
    pub relationship: String,
    /// The table holding the lookup.
    pub referencing_table: String,
    /// The lookup column's logical name (also its navigation property name).
    pub column: String,
    /// The table it points at.
    pub referenced_table: String,
    /// Display name of the column.
    pub display: &'static str,
}

/// A many-to-many relationship.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManyToMany {
    /// Schema name = intersect table name = navigation property name on both sides.
    pub schema_name: String,
    /// The first table (the tool's Tag table).
    pub entity1: String,
    /// The second table (contact or lead).
    pub entity2: String,
}

/// Column names of the Audience table.
pub mod audience {
    /// Name (primary name).
    pub const NAME: &str = "mcsync_name";
    /// Mailchimp audience (list) id.
    pub const MAILCHIMP_ID: &str = "mcsync_mailchimpaudienceid";
    /// Sync status, see [`super::sync_status`].
    pub const SYNC_STATUS: &str = "mcsync_syncstatus";
    /// Start of the last sync.
    pub const LAST_SYNC_START: &str = "mcsync_lastsyncstart";
    /// End of the last sync.
    pub const LAST_SYNC_END: &str = "mcsync_lastsyncend";
    /// Members in the list after the last sync.
    pub const MEMBER_COUNT: &str = "mcsync_membercount";
    /// Records created by the last sync.
    pub const CREATED: &str = "mcsync_createdcount";
    /// Records updated by the last sync.
    pub const UPDATED: &str = "mcsync_updatedcount";
    /// List members removed by the last sync.
    pub const REMOVED: &str = "mcsync_removedcount";
    /// Operations that failed in the last sync.
    pub const FAILED: &str = "mcsync_failedcount";
    /// The last sync's message.
    pub const LAST_MESSAGE: &str = "mcsync_lastmessage";
    /// Who holds the apply lease.
    pub const LEASE_OWNER: &str = "mcsync_leaseowner";
    /// The lease's id.
    pub const LEASE_ID: &str = "mcsync_leaseid";
    /// What the lease holder does (apply, force-unlock…).
    pub const LEASE_OPERATION: &str = "mcsync_leaseoperation";
    /// When the lease expires.
    pub const LEASE_EXPIRES: &str = "mcsync_leaseexpires";
}

/// Column names of the Tag table.
pub mod tag {
    /// Tag name (primary name).
    pub const NAME: &str = "mcsync_name";
    /// Mailchimp tag id.
    pub const MAILCHIMP_ID: &str = "mcsync_mailchimptagid";
    /// Lookup to the Audience record.
    pub const AUDIENCE: &str = "mcsync_audienceid";
}

/// Column names of the Sync Run table.
pub mod sync_run {
    /// Name (primary name).
    pub const NAME: &str = "mcsync_name";
    /// Lookup to the Audience record.
    pub const AUDIENCE: &str = "mcsync_audienceid";
    /// Start.
    pub const STARTED: &str = "mcsync_started";
    /// End.
    pub const ENDED: &str = "mcsync_ended";
    /// Status, see [`super::sync_status`].
    pub const STATUS: &str = "mcsync_status";
    /// Records created.
    pub const CREATED: &str = "mcsync_created";
    /// Records updated.
    pub const UPDATED: &str = "mcsync_updated";
    /// Members removed.
    pub const REMOVED: &str = "mcsync_removed";
    /// Failed operations.
    pub const FAILED: &str = "mcsync_failed";
    /// Message.
    pub const MESSAGE: &str = "mcsync_message";
}

/// The whole schema the tool needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    /// The names used.
    pub names: Names,
    /// The tool's tables.
    pub tables: Vec<Table>,
    /// Columns on contact and lead.
    pub extra_columns: Vec<ExtraColumn>,
    /// Lookups to the Audience table.
    pub lookups: Vec<Lookup>,
    /// Tag ↔ Contact, Tag ↔ Lead.
    pub many_to_many: Vec<ManyToMany>,
}

impl Default for Schema {
    fn default() -> Self {
        Self::new(&Names::default())
    }
}

fn col(name: &str, display: &'static str, kind: ColumnKind, description: &'static str) -> Column {
    Column {
        logical_name: name.to_owned(),
        display,
        kind,
        description,
    }
}

fn table(
    logical: &str,
    display: &'static str,
    display_plural: &'static str,
    description: &'static str,
    primary_name: Column,
    columns: Vec<Column>,
) -> Table {
    Table {
        logical_name: logical.to_owned(),
        entity_set: format!("{logical}s"),
        primary_id: format!("{logical}id"),
        primary_name,
        display,
        display_plural,
        description,
        columns,
    }
}

impl Schema {
    /// The schema under these names.
    #[must_use]
    pub fn new(names: &Names) -> Self {
        use ColumnKind::{DateTime, Integer, Memo, String as Text};
        let names = names.clone();
        let audience = table(
            &names.audience_table,
            "Mailchimp Audience",
            "Mailchimp Audiences",
            "A Mailchimp audience kept in step with a marketing list by audience-sync.",
            col(
                audience::NAME,
                "Name",
                Text { max_len: 200 },
                "The audience's name.",
            ),
            vec![
                col(
                    audience::MAILCHIMP_ID,
                    "Mailchimp Audience Id",
                    Text { max_len: 100 },
                    "The Mailchimp list id.",
                ),
                col(
                    audience::SYNC_STATUS,
                    "Sync Status",
                    Integer,
                    "0 never, 1 in progress, 2 succeeded, 3 partly failed, 4 failed.",
                ),
                col(
                    audience::LAST_SYNC_START,
                    "Last Sync Start",
                    DateTime,
                    "When the last sync started.",
                ),
                col(
                    audience::LAST_SYNC_END,
                    "Last Sync End",
                    DateTime,
                    "When the last sync ended.",
                ),
                col(
                    audience::MEMBER_COUNT,
                    "Members",
                    Integer,
                    "List members after the last sync.",
                ),
                col(
                    audience::CREATED,
                    "Created",
                    Integer,
                    "Records created by the last sync.",
                ),
                col(
                    audience::UPDATED,
                    "Updated",
                    Integer,
                    "Records updated by the last sync.",
                ),
                col(
                    audience::REMOVED,
                    "Removed",
                    Integer,
                    "List members removed by the last sync.",
                ),
                col(
                    audience::FAILED,
                    "Failed",
                    Integer,
                    "Operations that failed in the last sync.",
                ),
                col(
                    audience::LAST_MESSAGE,
                    "Last Message",
                    Memo { max_len: 4000 },
                    "The last sync's summary or error.",
                ),
                col(
                    audience::LEASE_OWNER,
                    "Lease Owner",
                    Text { max_len: 200 },
                    "Who holds the apply lease.",
                ),
                col(
                    audience::LEASE_ID,
                    "Lease Id",
                    Text { max_len: 100 },
                    "The apply lease's id.",
                ),
                col(
                    audience::LEASE_OPERATION,
                    "Lease Operation",
                    Text { max_len: 100 },
                    "What the lease holder does.",
                ),
                col(
                    audience::LEASE_EXPIRES,
                    "Lease Expires",
                    DateTime,
                    "When the apply lease expires.",
                ),
            ],
        );
        let tag_table = table(
            &names.tag_table,
            "Mailchimp Tag",
            "Mailchimp Tags",
            "A Mailchimp tag of a synced audience.",
            col(tag::NAME, "Name", Text { max_len: 200 }, "The tag's name."),
            vec![col(
                tag::MAILCHIMP_ID,
                "Mailchimp Tag Id",
                Text { max_len: 100 },
                "The Mailchimp tag (segment) id.",
            )],
        );
        let sync_run = table(
            &names.sync_run_table,
            "Mailchimp Sync Run",
            "Mailchimp Sync Runs",
            "One apply of one binding by audience-sync.",
            col(
                sync_run::NAME,
                "Name",
                Text { max_len: 200 },
                "The run's name.",
            ),
            vec![
                col(sync_run::STARTED, "Started", DateTime, "Start."),
                col(sync_run::ENDED, "Ended", DateTime, "End."),
                col(
                    sync_run::STATUS,
                    "Status",
                    Integer,
                    "1 in progress, 2 succeeded, 3 partly failed, 4 failed.",
                ),
                col(sync_run::CREATED, "Created", Integer, "Records created."),
                col(sync_run::UPDATED, "Updated", Integer, "Records updated."),
                col(
                    sync_run::REMOVED,
                    "Removed",
                    Integer,
                    "List members removed.",
                ),
                col(sync_run::FAILED, "Failed", Integer, "Failed operations."),
                col(
                    sync_run::MESSAGE,
                    "Message",
                    Memo { max_len: 4000 },
                    "Summary or error.",
                ),
            ],
        );
        let person_columns = |table: &str, id_column: &str| {
            vec![
                ExtraColumn {
                    table: table.to_owned(),
                    column: col(
                        id_column,
                        "Mailchimp Contact Id",
                        Text { max_len: 100 },
                        "The Mailchimp contact id (set by audience-sync).",
                    ),
                },
                ExtraColumn {
                    table: table.to_owned(),
                    column: col(
                        &names.subscriber_status_column,
                        "Mailchimp Status",
                        Text { max_len: 20 },
                        "The Mailchimp subscriber status (set by audience-sync).",
                    ),
                },
            ]
        };
        let mut extra_columns = person_columns("contact", &names.contact_mailchimp_id_column);
        extra_columns.extend(person_columns("lead", &names.lead_mailchimp_id_column));
        let lookup = |referencing: &str, column: &str| Lookup {
            relationship: format!("{}_{referencing}", names.audience_table),
            referencing_table: referencing.to_owned(),
            column: column.to_owned(),
            referenced_table: names.audience_table.clone(),
            display: "Mailchimp Audience",
        };
        let lookups = vec![
            lookup(&names.tag_table, tag::AUDIENCE),
            lookup(&names.sync_run_table, sync_run::AUDIENCE),
            lookup("list", &names.list_audience_lookup),
        ];
        let many_to_many = vec![
            ManyToMany {
                schema_name: names.tag_contact_relationship.clone(),
                entity1: names.tag_table.clone(),
                entity2: "contact".to_owned(),
            },
            ManyToMany {
                schema_name: names.tag_lead_relationship.clone(),
                entity1: names.tag_table.clone(),
                entity2: "lead".to_owned(),
            },
        ];
        Self {
            tables: vec![audience, tag_table, sync_run],
            extra_columns,
            lookups,
            many_to_many,
            names,
        }
    }

    /// A table of the tool by logical name.
    #[must_use]
    pub fn table(&self, logical_name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.logical_name == logical_name)
    }

    /// The Audience table. ([`Schema::new`] always makes the three tables, Audience, Tag and
    /// Sync Run, in that order; these accessors rely on it.)
    #[must_use]
    pub fn audience(&self) -> &Table {
        &self.tables[0]
    }

    /// The Tag table.
    #[must_use]
    pub fn tag(&self) -> &Table {
        &self.tables[1]
    }

    /// The Sync Run table.
    #[must_use]
    pub fn sync_run(&self) -> &Table {
        &self.tables[2]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_config_defaults() {
        let schema = Schema::default();
        assert_eq!(schema.audience().entity_set, "mcsync_audiences");
        assert_eq!(schema.tag().primary_id, "mcsync_tagid");
        assert_eq!(schema.sync_run().logical_name, "mcsync_syncrun");
        assert_eq!(schema.names.list_audience_lookup, "mcsync_audienceid");
        assert_eq!(schema.many_to_many[0].schema_name, "mcsync_tag_contact");
        assert_eq!(schema.many_to_many[1].entity2, "lead");
        assert_eq!(schema.extra_columns.len(), 4);
        assert_eq!(schema.lookups[2].referencing_table, "list");
    }

    #[test]
    fn configured_names_are_used_everywhere() {
        let names = Names {
            audience_table: "new_audience".into(),
            tag_contact_relationship: "new_tagcontact".into(),
            ..Names::default()
        };
        let schema = Schema::new(&names);
        assert_eq!(schema.audience().logical_name, "new_audience");
        assert!(
            schema
                .lookups
                .iter()
                .all(|l| l.referenced_table == "new_audience")
        );
        assert_eq!(schema.many_to_many[0].schema_name, "new_tagcontact");
        assert!(schema.table("new_audience").is_some());
    }
}
