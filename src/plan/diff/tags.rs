//! Tags. Every synced tag (`TagRules::selects`) has one Tag record (deterministic id on create),
//! renamed with Mailchimp; Tag records whose tag is gone or no longer selected are removed only
//! when the binding prunes tags. A member's record is linked to the Tag records of its synced
//! tags and unlinked from the others this audience manages. With `tags.sync: false` tags and
//! links are left alone.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use foldhash::fast::FixedState;
use uuid::Uuid;

use super::{Diff, text};
use crate::dataverse::schema::tag as tag_cols;
use crate::plan::ids;
use crate::plan::model::{
    Action, Change, Column, FieldChange, Problem, ProblemCode, Reason, TagRef,
};
use crate::plan::snapshot::{Member, TagRecord};

/// What the tag step decided, for the member step.
pub(super) struct TagPlan {
    /// Synced: Mailchimp tag id → Tag record id (existing or to be created); looked up for
    /// every tag of every member, so with a fast hash.
    synced: HashMap<u64, Uuid, FixedState>,
    /// Tag records whose links the tool manages (this audience's, not being removed).
    managed: BTreeSet<Uuid>,
}

impl<'a> Diff<'a> {
    /// Tag records: create, rename, remove; and what the member step links to.
    pub(super) fn tags(&mut self) -> TagPlan {
        let mut out = TagPlan {
            synced: HashMap::default(),
            managed: BTreeSet::new(),
        };
        let rules = &self.binding.tags;
        if !rules.sync {
            return out;
        }
        let mc_tags: BTreeMap<u64, &str> = self
            .snapshot
            .mailchimp
            .tags
            .iter()
            .map(|t| (t.id, t.name.as_str()))
            .collect();
        let canonical = self.canonical_tag_records();
        for (&tag_id, &name) in &mc_tags {
            if !rules.selects(name) {
                continue;
            }
            let record_id = match canonical.get(&tag_id) {
                None => {
                    let id = ids::tag_record(self.audience_id, tag_id);
                    self.push(
                        Change::new(Action::CreateTag, Reason::TagMissingInCrm, id)
                            .named(name)
                            .field(name_field(None, name))
                            .if_absent(),
                    );
                    id
                }
                Some(record) => {
                    if record.name != name {
                        self.push(
                            Change::new(
                                Action::RenameTag,
                                Reason::TagRenamedInMailchimp,
                                record.id,
                            )
                            .named(name)
                            .field(name_field(Some(&record.name), name))
                            .if_match(Some(record.etag.to_string())),
                        );
                    }
                    record.id
                }
            };
            out.synced.insert(tag_id, record_id);
            out.managed.insert(record_id);
            self.plan.tags.push(TagRef {
                record: record_id,
                mailchimp_id: tag_id,
                name: name.to_owned(),
            });
        }
        for (&tag_id, record) in &canonical {
            if out.synced.contains_key(&tag_id) {
                continue;
            }
            self.plan.tags.push(TagRef {
                record: record.id,
                mailchimp_id: tag_id,
                name: mc_tags
                    .get(&tag_id)
                    .map_or_else(|| record.name.clone(), |n| (*n).to_owned()),
            });
            if rules.prune {
                let reason = if mc_tags.contains_key(&tag_id) {
                    Reason::TagExcludedByConfig
                } else {
                    Reason::TagDeletedInMailchimp
                };
                self.push(
                    Change::new(Action::RemoveTag, reason, record.id)
                        .named(record.name.clone())
                        .if_match(Some(record.etag.to_string())),
                );
            } else {
                out.managed.insert(record.id);
            }
        }
        self.plan.tags.sort_by_key(|t| t.record);
        self.plan.tags.dedup_by_key(|t| t.record);
        out
    }

    /// The first Tag record (by id) of each Mailchimp tag; the others are warned about.
    fn canonical_tag_records(&mut self) -> BTreeMap<u64, &'a TagRecord> {
        let mut records: Vec<&'a TagRecord> = self.snapshot.crm.tags.iter().collect();
        records.sort_by_key(|t| t.id);
        let mut canonical: BTreeMap<u64, &'a TagRecord> = BTreeMap::new();
        for record in records {
            if let Some(first) = canonical.get(&record.mailchimp_id) {
                self.plan.warnings.push(Problem {
                    code: ProblemCode::DuplicateTagRecord,
                    message: format!(
                        "Tag records `{}` and `{}` both stand for Mailchimp tag `{}`; only the first is used",
                        first.id, record.id, record.mailchimp_id
                    ),
                    member: None,
                    records: vec![first.id, record.id],
                });
            } else {
                canonical.insert(record.mailchimp_id, record);
            }
        }
        canonical
    }

    /// Link `record` (whose links are `current`, sorted) to the Tag records of `m`'s synced
    /// tags; unlink it from the other managed ones.
    pub(super) fn tag_links(
        &mut self,
        m: &'a Member,
        record: Uuid,
        current: &[Uuid],
        tags: &TagPlan,
    ) {
        if !self.binding.tags.sync {
            return;
        }
        let mut desired: Vec<Uuid> = m
            .tags
            .iter()
            .filter_map(|t| tags.synced.get(t).copied())
            .collect();
        desired.sort_unstable();
        desired.dedup();
        let link: Vec<Uuid> = desired
            .iter()
            .copied()
            .filter(|t| current.binary_search(t).is_err())
            .collect();
        let unlink: Vec<Uuid> = current
            .iter()
            .copied()
            .filter(|t| tags.managed.contains(t) && desired.binary_search(t).is_err())
            .collect();
        for (action, reason, list) in [
            (Action::LinkTags, Reason::TagsAddedInMailchimp, link),
            (Action::UnlinkTags, Reason::TagsRemovedInMailchimp, unlink),
        ] {
            if !list.is_empty() {
                let change = self.member_change(action, reason, record, m).tags(list);
                self.push(change);
            }
        }
    }
}

fn name_field(before: Option<&str>, after: &str) -> FieldChange {
    FieldChange {
        column: Column::new(tag_cols::NAME),
        before: before.and_then(text),
        after: text(after),
    }
}
