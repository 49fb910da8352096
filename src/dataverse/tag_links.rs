//! Tag ↔ Contact and Tag ↔ Lead links: the many-to-many relationships `mcsync_tag_contact` and
//! `mcsync_tag_lead` (names from the [`super::schema::Schema`]), written as `$ref`
//! associate/disassociate operations packed 1000 to a `$batch`, read per tag as a filtered,
//! paged query.
//!
//! # Decision: many-to-many relationship + `$batch`, not a Tag Membership table
//!
//! The largest write volume is tag links: a 1,000,000-member audience with three tags each is
//! 3,000,000 links. Microsoft's "Service protection API limits" page (powerapps-docs
//! `developer/data-platform/api-limits.md`) counts, per user and per web server, 6,000
//! requests per 300-second sliding window, 1,200 s of execution time per window, and 52
//! concurrent requests; it says of batching: "A batch can contain up to 1000 operations and will
//! avoid the number of requests limit. However, you will need to be prepared for the execution
//! time limit." The "Use bulk operation messages" page says each `CreateMultiple` request counts
//! as one request for service protection (every target still counts for the daily entitlement,
//! as does every operation inside a `$batch`). The sandbox counts the same way (one `$batch` =
//! one counted request, one bulk action = one counted request, entitlement per operation), and
//! the integration test `tag_links_cost_one_counted_request_per_thousand` measures it.
//!
//! | 3,000,000 links written as …                         | counted requests | windows of 6,000 (one server) | entitlement ops |
//! |------------------------------------------------------|-----------------:|------------------------------:|----------------:|
//! | one `POST …/$ref` each (N:N)                         | 3,000,000        | 500 windows ≈ 41.7 hours      | 3,000,000       |
//! | `$ref` inside `$batch`, 1,000 per batch (N:N)        | 3,000            | < 1 window                    | 3,000,000       |
//! | Tag Membership table, `CreateMultiple` of 1,000      | 3,000            | < 1 window                    | 3,000,000       |
//!
//! Batched, the many-to-many relationship costs exactly as many counted requests as a Tag
//! Membership table written with `CreateMultiple` (3,000 each, a thousandth of one-by-one), and
//! both are then bounded by execution time, not by the request count. What decides is
//! everything else, and all of it favours the relationship:
//! - *Per-link outcomes.* `$batch` with `continue-on-error` runs every operation and reports
//!   each; a link that already exists is a duplicate answer that we count as done. On a standard
//!   table `CreateMultiple` is one transaction: one existing membership row fails and rolls back
//!   its whole chunk of 1,000, which must then be redone one by one.
//! - *Removals.* `DeleteMultiple` exists only for elastic tables, so removing membership rows
//!   is one `DELETE` per row inside `$batch` — the same cost as disassociating.
//! - *Uniqueness.* The intersect table allows a pair once; a membership table would need an
//!   alternate key (built asynchronously, failing on existing duplicates) to be as safe.
//! - *The CRM user's view.* Both forms show the relationship natively: a contact's form lists
//!   its tags and a tag's form lists its contacts (the N:N "related" subgrids), with no extra
//!   table, columns or views to maintain.
//!
//! So links are the N:N relationship, associated and disassociated with `$ref` in batches of
//! 1,000 (`continue-on-error`, outside change sets), several batches in flight within the
//! client's parallelism.

use futures::Stream;
use serde_json::json;
use uuid::Uuid;

use super::batch::{OpOutcome, Operation};
use super::error::Error;
use super::query::{Filter, Query};
use super::records::record_path;
use super::rows::IdReader;
use super::tables::ToolTables;
use crate::domain::MemberType;

/// A link between a Tag record and a contact or lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagLink {
    /// The Tag record.
    pub tag: Uuid,
    /// The contact or lead.
    pub person: Uuid,
}

impl ToolTables {
    /// The relationship (and navigation property) between tags and `kind`.
    #[must_use]
    pub fn tag_relationship(&self, kind: MemberType) -> &str {
        self.schema.names.tag_relationship(kind)
    }

    /// Link tags to contacts or leads. Returns each link's failure (`None` when linked or
    /// already linked), in the order given.
    ///
    /// # Errors
    /// A batch could not be sent or read.
    pub async fn link_tags(
        &self,
        kind: MemberType,
        links: &[TagLink],
    ) -> Result<Vec<Option<String>>, Error> {
        let tag_set = self.schema.tag().entity_set.clone();
        let nav = self.tag_relationship(kind).to_owned();
        let root = self.client.url("");
        // Made as each batch is filled, never all at once (a first sync links millions). The
        // closure takes each link by value and owns what it captures: one over `&TagLink` would
        // make the future not provably `Send` (rustc #102211).
        let ops = links.iter().copied().map(move |link| {
            let target = format!("{root}{}", record_path(kind.entity_set(), link.person));
            Operation::post(
                format!("{}/{nav}/$ref", record_path(&tag_set, link.tag)),
                json!({ "@odata.id": target }),
                true,
            )
        });
        self.client
            .run_batched(ops, |o| if o.is_duplicate() { None } else { o.failure() })
            .await
    }

    /// Unlink tags from contacts or leads. Returns each link's failure (`None` when unlinked or
    /// not linked), in the order given.
    ///
    /// # Errors
    /// A batch could not be sent or read.
    pub async fn unlink_tags(
        &self,
        kind: MemberType,
        links: &[TagLink],
    ) -> Result<Vec<Option<String>>, Error> {
        let tag_set = &self.schema.tag().entity_set;
        let nav = self.tag_relationship(kind);
        let ops = links.iter().map(|link| {
            Operation::delete(format!(
                "{}/{nav}({})/$ref",
                record_path(tag_set, link.tag),
                link.person
            ))
        });
        let ops: Vec<Operation> = ops.collect();
        self.client
            .run_batched(ops, |o| match o {
                OpOutcome::Failed(r) if r.status == 404 => None,
                other => other.failure(),
            })
            .await
    }

    /// The contacts or leads linked to a tag, page by page (ids only).
    pub fn tag_members(
        &self,
        kind: MemberType,
        tag_id: Uuid,
    ) -> impl Stream<Item = Result<Vec<Uuid>, Error>> + Send + 'static + use<> {
        let query = Query::new(kind.entity_set())
            .select([kind.id_column()])
            .filter(Filter::Any {
                nav: self.tag_relationship(kind).to_owned(),
                var: "t".to_owned(),
                inner: Box::new(Filter::eq(
                    &format!("t/{}", self.schema.tag().primary_id),
                    tag_id,
                )),
            });
        self.client.pages_of(&query, IdReader(kind.id_column()))
    }
}
