//! The undo journal: [`Store::atomically`] runs a change and, when it fails, undoes every row
//! and link it touched (nested calls undo only their own part), as a change set or a bulk action
//! on a standard table rolls back in the service.

use uuid::Uuid;

use super::{Row, Store};
use crate::dataverse::errors::DvError;
use crate::dataverse::value::Val;

#[derive(Debug)]
pub(super) enum Undo {
    Row {
        table: String,
        id: Uuid,
        old: Option<Row>,
    },
    Link {
        set: String,
        a: Uuid,
        b: Uuid,
        added: bool,
    },
}

impl Store {
    /// Run `f` atomically: when it fails, everything it changed is undone (nested calls undo
    /// only their own part).
    ///
    /// # Errors
    /// Whatever `f` returns.
    pub fn atomically<T>(
        &mut self,
        f: impl FnOnce(&mut Store) -> Result<T, DvError>,
    ) -> Result<T, DvError> {
        let outer = self.journal.is_none();
        let mark = self.journal.get_or_insert_with(Vec::new).len();
        let result = f(self);
        if result.is_err() {
            self.undo_to(mark);
        }
        if outer {
            self.journal = None;
        }
        result
    }

    fn undo_to(&mut self, mark: usize) {
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        let undone: Vec<Undo> = journal.drain(mark..).collect();
        for undo in undone.into_iter().rev() {
            match undo {
                Undo::Row { table, id, old } => {
                    if let Some(t) = self.tables.get_mut(&table) {
                        match old {
                            Some(row) => {
                                t.rows.insert(id, row);
                            }
                            None => {
                                t.rows.remove(&id);
                            }
                        }
                    }
                }
                Undo::Link { set, a, b, added } => {
                    if let Some(links) = self.links.get_mut(&set) {
                        if added {
                            links.forward.remove(&(a, b));
                            links.backward.remove(&(b, a));
                        } else {
                            links.forward.insert((a, b));
                            links.backward.insert((b, a));
                        }
                    }
                }
            }
        }
        self.rebuild_member_ids();
    }

    pub(super) fn rebuild_member_ids(&mut self) {
        let Some(table) = self.tables.get("listmember") else {
            return;
        };
        let (Some(list_pos), Some(entity_pos)) = (
            table.meta.position("listid"),
            table.meta.position("entityid"),
        ) else {
            return;
        };
        self.member_ids = table
            .rows
            .iter()
            .filter_map(|(id, row)| match (row.get(list_pos), row.get(entity_pos)) {
                (Val::Guid(l), Val::Guid(e)) => Some(((*l, *e), *id)),
                _ => None,
            })
            .collect();
        self.members_by_list = self.member_ids.iter().map(|((l, _), m)| (*l, *m)).collect();
    }

    pub(super) fn journal_row(&mut self, table: &str, id: Uuid, old: Option<Row>) {
        if let Some(journal) = self.journal.as_mut() {
            journal.push(Undo::Row {
                table: table.to_owned(),
                id,
                old,
            });
        }
    }
}
