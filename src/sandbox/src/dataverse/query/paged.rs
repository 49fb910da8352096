//! Pages read as ranges of sorted indexes: a static list's `listmember` rows and the rows
//! linked to one row through a many-to-many relationship come from sorted sets in key order
//! (as the real service pages from an index), so a page costs the same whatever the table's
//! size; and the page (with its `$skiptoken`) built from rows collected in key order.

use uuid::Uuid;

use super::{Col, Page, Pred, make_skiptoken};
use crate::dataverse::filter::Op;
use crate::dataverse::meta::{EntityMeta, ManyToMany};
use crate::dataverse::store::{Row, Store, Table};
use crate::dataverse::value::Val;

/// A page in key order from rows collected up to one past the limit (that one says whether
/// there is a next page).
pub(super) fn unordered_page<'a>(
    meta: &EntityMeta,
    mut rows: Vec<(Uuid, &'a Row)>,
    limit: usize,
    top_only: bool,
    page_number: usize,
    count: Option<usize>,
) -> Page<'a> {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more && !top_only {
        match (rows.first(), rows.last()) {
            (Some((first, _)), Some((last, _))) => {
                Some(make_skiptoken(&meta.primary_id, *last, *first, page_number))
            }
            _ => None,
        }
    } else {
        None
    };
    Page { rows, next, count }
}

/// Ids linked in a sorted index.
type SortedIds<'a> = Box<dyn Iterator<Item = Uuid> + 'a>;

/// The ids a filter can only match among, ascending after `after`, when a sorted index holds
/// them: a static list's `listmember` rows (`_listid_value eq X`) or the rows linked to one row
/// (`nav/any(x: x/<pk> eq X)`); with the parts of the filter the index does not answer (every
/// one must hold; the index's own condition holds for every id it gives). `None`: no such
/// index, use [`candidates`].
pub(super) fn sorted_after<'a, 'p>(
    store: &'a Store,
    table: &Table,
    pred: &'p Pred,
    after: Option<Uuid>,
) -> Option<(SortedIds<'a>, Vec<&'p Pred>)> {
    match pred {
        Pred::And(a, b) => {
            if let Some((ids, mut rest)) = sorted_after(store, table, a, after) {
                rest.push(b);
                Some((ids, rest))
            } else {
                let (ids, mut rest) = sorted_after(store, table, b, after)?;
                rest.push(a);
                Some((ids, rest))
            }
        }
        Pred::Lambda { .. } => {
            let (rel, side, id) = linked_to_one(store, pred)?;
            // The lambda holds for a linked row when the one row it names exists.
            let one_table = if side { &rel.entity1 } else { &rel.entity2 };
            let ids: SortedIds<'a> = if store.get(one_table, id).is_some() {
                store.linked_after(rel, side, id, after)
            } else {
                Box::new(std::iter::empty())
            };
            Some((ids, Vec::new()))
        }
        Pred::Cmp(Col::Here(pos), Op::Eq, Val::Guid(list))
            if table.meta.logical_name == "listmember"
                && table.meta.position("listid") == Some(*pos) =>
        {
            store.many_to_many.iter().find(|r| r.list_backed)?;
            Some((Box::new(store.list_members_after(*list, after)), Vec::new()))
        }
        _ => None,
    }
}

/// `nav/any(x: x/<other pk> eq <id>)`: the relationship, the side the linked rows are read
/// from, and that one id.
pub(super) fn linked_to_one<'p>(
    store: &Store,
    pred: &'p Pred,
) -> Option<(&'p ManyToMany, bool, Uuid)> {
    let Pred::Lambda {
        rel,
        first_side,
        all: false,
        body: Some(body),
    } = pred
    else {
        return None;
    };
    let other = store.table(if *first_side {
        &rel.entity2
    } else {
        &rel.entity1
    })?;
    match body.as_ref() {
        Pred::Cmp(Col::Here(pos), Op::Eq, Val::Guid(other_id))
            if *pos == other.meta.primary_id_pos() =>
        {
            Some((rel, !*first_side, *other_id))
        }
        _ => None,
    }
}
