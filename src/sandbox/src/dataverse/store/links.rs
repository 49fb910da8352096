//! Relationships between rows: navigation properties by name, many-to-many link sets (read both
//! ways), and associate / disassociate with the service's checks.

use uuid::Uuid;

use super::journal::Undo;
use super::{LIST_LINKS, LinkSet, Store};
use crate::dataverse::errors::DvError;
use crate::dataverse::meta::{ManyToMany, OneToMany};

impl Store {
    /// A link set by relationship schema name (list relationships share [`LIST_LINKS`]).
    #[must_use]
    pub fn links(&self, rel: &ManyToMany) -> Option<&LinkSet> {
        if rel.list_backed {
            self.links.get(LIST_LINKS)
        } else {
            self.links.get(&rel.schema_name)
        }
    }

    /// A many-to-many relationship by navigation property from `entity`; returns it and
    /// whether `entity` is its entity1 side.
    #[must_use]
    pub fn many_to_many_nav(&self, entity: &str, nav: &str) -> Option<(&ManyToMany, bool)> {
        self.many_to_many.iter().find_map(|rel| {
            if rel.entity1 == entity && rel.entity1_nav == nav {
                Some((rel, true))
            } else if rel.entity2 == entity && rel.entity2_nav == nav {
                Some((rel, false))
            } else {
                None
            }
        })
    }

    /// The lookup relationship whose single-valued navigation property on `entity` is `nav`.
    #[must_use]
    pub fn lookup_nav(&self, entity: &str, nav: &str) -> Option<&OneToMany> {
        self.one_to_many
            .iter()
            .find(|rel| rel.referencing_entity == entity && rel.referencing_nav == nav)
    }

    /// The lookup relationship whose collection navigation property on `entity` is `nav`.
    #[must_use]
    pub fn collection_nav(&self, entity: &str, nav: &str) -> Option<&OneToMany> {
        self.one_to_many
            .iter()
            .find(|rel| rel.referenced_entity == entity && rel.referenced_nav == nav)
    }

    /// Ids linked to `id` of `entity` through `rel`, restricted to rows of the other table.
    #[must_use]
    pub fn linked(&self, rel: &ManyToMany, first_side: bool, id: Uuid) -> Vec<Uuid> {
        let Some(links) = self.links(rel) else {
            return Vec::new();
        };
        let (ids, other): (Vec<Uuid>, &str) = if first_side {
            (links.from_first(id).collect(), &rel.entity2)
        } else {
            (links.from_second(id).collect(), &rel.entity1)
        };
        match self.tables.get(other) {
            Some(table) => ids
                .into_iter()
                .filter(|i| table.rows.contains_key(i))
                .collect(),
            None => Vec::new(),
        }
    }

    /// Whether a pair is linked.
    #[must_use]
    pub fn is_linked(&self, rel: &ManyToMany, first: Uuid, second: Uuid) -> bool {
        self.links(rel)
            .is_some_and(|l| l.forward.contains(&(first, second)))
    }

    pub(super) fn link(&mut self, set: &str, a: Uuid, b: Uuid) -> bool {
        let links = self.links.entry(set.to_owned()).or_default();
        let added = links.forward.insert((a, b));
        if added {
            links.backward.insert((b, a));
            if let Some(journal) = self.journal.as_mut() {
                journal.push(Undo::Link {
                    set: set.to_owned(),
                    a,
                    b,
                    added: true,
                });
            }
        }
        added
    }

    pub(super) fn unlink(&mut self, set: &str, a: Uuid, b: Uuid) -> bool {
        let Some(links) = self.links.get_mut(set) else {
            return false;
        };
        let removed = links.forward.remove(&(a, b));
        if removed {
            links.backward.remove(&(b, a));
            if let Some(journal) = self.journal.as_mut() {
                journal.push(Undo::Link {
                    set: set.to_owned(),
                    a,
                    b,
                    added: false,
                });
            }
        }
        removed
    }

    /// Associate two rows through a many-to-many relationship (idempotent, like the service).
    ///
    /// # Errors
    /// A row does not exist, or the list refuses the member.
    pub fn associate(
        &mut self,
        rel: &ManyToMany,
        first: Uuid,
        second: Uuid,
    ) -> Result<(), DvError> {
        if rel.list_backed {
            self.add_list_member(first, &rel.entity2, second)
                .map(|_| ())
        } else {
            self.require(&rel.entity1, first)?;
            self.require(&rel.entity2, second)?;
            self.link(&rel.schema_name, first, second);
            Ok(())
        }
    }

    /// Disassociate two rows.
    ///
    /// # Errors
    /// A row does not exist.
    pub fn disassociate(
        &mut self,
        rel: &ManyToMany,
        first: Uuid,
        second: Uuid,
    ) -> Result<(), DvError> {
        self.require(&rel.entity1, first)?;
        self.require(&rel.entity2, second)?;
        if rel.list_backed {
            if let Some(member) = self.member_ids.get(&(first, second)).copied() {
                self.remove_list_member(member)?;
            }
        } else {
            self.unlink(&rel.schema_name, first, second);
        }
        Ok(())
    }
}
