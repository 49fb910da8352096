//! Sorted range reads for paging: a static list's `listmember` ids and the rows linked to one
//! row through a many-to-many relationship, in key order from just after a given key. A page of
//! these reads is a range of a sorted index (as the real service pages from an index), so its
//! cost does not grow with the table or the list.

use std::ops::Bound;

use uuid::Uuid;

use super::Store;
use crate::dataverse::meta::ManyToMany;

/// The first key strictly after `after` (or the smallest key).
fn lower(owner: Uuid, after: Option<Uuid>) -> Bound<(Uuid, Uuid)> {
    match after {
        Some(a) => Bound::Excluded((owner, a)),
        None => Bound::Included((owner, Uuid::nil())),
    }
}

impl Store {
    /// The `listmemberid`s of `list` after `after`, ascending.
    pub fn list_members_after(
        &self,
        list: Uuid,
        after: Option<Uuid>,
    ) -> impl Iterator<Item = Uuid> + '_ {
        self.members_by_list
            .range((lower(list, after), Bound::Included((list, Uuid::max()))))
            .map(|(_, m)| *m)
    }

    /// Ids linked to `id` through `rel` (from the entity1 side when `first_side`) after
    /// `after`, ascending; rows of the other table that no longer exist are skipped by the
    /// caller's row lookup.
    pub fn linked_after<'a>(
        &'a self,
        rel: &ManyToMany,
        first_side: bool,
        id: Uuid,
        after: Option<Uuid>,
    ) -> Box<dyn Iterator<Item = Uuid> + 'a> {
        let Some(links) = self.links(rel) else {
            return Box::new(std::iter::empty());
        };
        let set = if first_side {
            &links.forward
        } else {
            &links.backward
        };
        Box::new(
            set.range((lower(id, after), Bound::Included((id, Uuid::max()))))
                .map(|(_, other)| *other),
        )
    }
}
