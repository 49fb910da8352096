//! The state directory's snapshot of a store: everything but the indexes and the journal,
//! written as JSON and read back (indexes are rebuilt on first use).

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::{LIST_LINKS, LinkSet, Store, Table};
use crate::dataverse::meta::{ManyToMany, OneToMany};

/// What a state directory keeps: everything but indexes and the journal.
#[derive(serde::Serialize)]
struct SnapshotRef<'a> {
    version: u64,
    tables: Vec<&'a Table>,
    one_to_many: &'a [OneToMany],
    many_to_many: &'a [ManyToMany],
    links: BTreeMap<&'a str, &'a BTreeSet<(Uuid, Uuid)>>,
}

#[derive(serde::Deserialize)]
struct Snapshot {
    version: u64,
    tables: Vec<Table>,
    one_to_many: Vec<OneToMany>,
    many_to_many: Vec<ManyToMany>,
    links: BTreeMap<String, BTreeSet<(Uuid, Uuid)>>,
}

impl Store {
    /// Write the store as JSON (the state directory's snapshot).
    ///
    /// # Errors
    /// The writer fails.
    pub fn write_snapshot(&self, out: impl std::io::Write) -> Result<(), serde_json::Error> {
        let snapshot = SnapshotRef {
            version: self.version,
            tables: self.tables.values().collect(),
            one_to_many: &self.one_to_many,
            many_to_many: &self.many_to_many,
            links: self
                .links
                .iter()
                .map(|(k, v)| (k.as_str(), &v.forward))
                .collect(),
        };
        serde_json::to_writer(out, &snapshot)
    }

    /// Read a store written by [`Store::write_snapshot`].
    ///
    /// # Errors
    /// The text is not such a snapshot.
    pub fn read_snapshot(input: impl std::io::Read) -> Result<Self, serde_json::Error> {
        let snapshot: Snapshot = serde_json::from_reader(input)?;
        let mut store = Self::new(None);
        store.tables.clear();
        store.by_set.clear();
        for mut table in snapshot.tables {
            table.meta.reindex();
            store.by_set.insert(
                table.meta.entity_set.clone(),
                table.meta.logical_name.clone(),
            );
            store.tables.insert(table.meta.logical_name.clone(), table);
        }
        store.one_to_many = snapshot.one_to_many;
        store.many_to_many = snapshot.many_to_many;
        store.links = snapshot
            .links
            .into_iter()
            .map(|(name, forward)| {
                let backward = forward.iter().map(|(a, b)| (*b, *a)).collect();
                (name, LinkSet { forward, backward })
            })
            .collect();
        store.links.entry(LIST_LINKS.to_owned()).or_default();
        store.version = snapshot.version;
        store.rebuild_member_ids();
        Ok(store)
    }
}
