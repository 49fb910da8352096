//! What apply does to the CRM, as a pure function on the snapshot model: the specification apply
//! must meet, and the other half of the diff's invariant — apply a plan, diff again, the plan is
//! empty.
//!
//! Every change is applied as apply will: creates use the plan's ids; writes replace the listed
//! columns; list and tag membership changes add or remove exactly the listed links; deleting a Tag
//! record deletes its links (Dataverse removes N:N intersect rows with the record). New ETags are
//! made up (`W/"sim-N"`): only their change matters. The guard is not looked at: this is apply
//! with `--allow-removals`.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use super::convert;
use super::model::{Action, BindingPlan, Change, ValueRef};
use super::snapshot::{
    AudienceRecord, CrmRecord, CrmSide, DO_NOT_BULK_EMAIL_COLUMN, MarketingList, Snapshot,
    TagRecord,
};
use crate::dataverse::columns::ColumnType;
use crate::dataverse::lists as list_cols;
use crate::dataverse::schema::{audience as audience_cols, tag as tag_cols};

/// Apply every change of `plan` to the CRM side of `snapshot`.
pub fn apply_to_snapshot(plan: &BindingPlan, snapshot: &mut Snapshot) {
    let crm = &mut snapshot.crm;
    let mut etags = 0_u64;
    let mut next_etag = || {
        etags += 1;
        Box::<str>::from(format!("W/\"sim-{etags}\""))
    };
    let mut index: HashMap<Uuid, usize> = crm
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id, i))
        .collect();
    for change in &plan.changes {
        match change.action {
            Action::CreateAudience => {
                crm.audience = Some(AudienceRecord {
                    id: change.record,
                    etag: next_etag(),
                    name: after_text(change, audience_cols::NAME).unwrap_or_default(),
                    sync_status: None,
                });
            }
            Action::UpdateAudience => {
                if let Some(a) = crm.audience.as_mut().filter(|a| a.id == change.record) {
                    if let Some(name) = after_text(change, audience_cols::NAME) {
                        a.name = name;
                    }
                    a.etag = next_etag();
                }
            }
            Action::CreateList => {
                let code = u8::try_from(plan.list.member_type.list_code()).unwrap_or(0);
                crm.list = Some(MarketingList {
                    id: change.record,
                    name: after_text(change, list_cols::NAME_COLUMN).unwrap_or_default(),
                    dynamic: false,
                    member_type_code: code,
                    statecode: 0,
                    locked: false,
                    etag: next_etag(),
                    audience_record: lookup_after(change),
                });
            }
            Action::UpdateList => {
                if let Some(l) = crm.list.as_mut().filter(|l| l.id == change.record) {
                    l.audience_record = lookup_after(change);
                    l.etag = next_etag();
                }
            }
            Action::CreateTag => {
                let mailchimp_id = plan
                    .tags
                    .iter()
                    .find(|t| t.record == change.record)
                    .map_or(0, |t| t.mailchimp_id);
                crm.tags.push(TagRecord {
                    id: change.record,
                    mailchimp_id,
                    name: after_text(change, tag_cols::NAME).unwrap_or_default(),
                    etag: next_etag(),
                });
            }
            Action::RenameTag => {
                if let Some(t) = crm.tags.iter_mut().find(|t| t.id == change.record) {
                    if let Some(name) = after_text(change, tag_cols::NAME) {
                        t.name = name;
                    }
                    t.etag = next_etag();
                }
            }
            Action::RemoveTag => {
                crm.tags.retain(|t| t.id != change.record);
                for r in &mut crm.records {
                    if r.tag_links.contains(&change.record) {
                        r.tag_links = r
                            .tag_links
                            .iter()
                            .copied()
                            .filter(|t| *t != change.record)
                            .collect();
                    }
                }
            }
            Action::CreateRecord => {
                let etag = next_etag();
                let mut record = CrmRecord::new(
                    change.record,
                    &etag,
                    vec![None; crm.columns.len()],
                    false,
                    Vec::new(),
                    false,
                );
                write_fields(&crm.columns, &crm.column_types, &mut record, change);
                index.insert(record.id, crm.records.len());
                crm.records.push(record);
            }
            Action::UpdateRecord | Action::SetDoNotEmail => {
                if let Some(&i) = index.get(&change.record) {
                    let r = &mut crm.records[i];
                    write_fields(&crm.columns, &crm.column_types, r, change);
                    r.set_etag(&next_etag());
                }
            }
            Action::AddListMember | Action::RemoveListMember => {
                if let Some(r) = record_mut(crm, &index, change.record) {
                    r.on_list = change.action == Action::AddListMember;
                    r.list_member_id = None;
                }
            }
            Action::LinkTags | Action::UnlinkTags => {
                if let Some(r) = record_mut(crm, &index, change.record) {
                    let mut links: Vec<Uuid> = r.tag_links.to_vec();
                    if change.action == Action::LinkTags {
                        links.extend(&change.tags);
                    } else {
                        links.retain(|t| !change.tags.contains(t));
                    }
                    links.sort_unstable();
                    links.dedup();
                    r.tag_links = links.into();
                }
            }
        }
    }
}

fn record_mut<'a>(
    crm: &'a mut CrmSide,
    index: &HashMap<Uuid, usize>,
    id: Uuid,
) -> Option<&'a mut CrmRecord> {
    index.get(&id).map(|&i| &mut crm.records[i])
}

fn after_text(change: &Change, column: &str) -> Option<String> {
    change
        .fields
        .get(column)
        .and_then(|f| f.after?.as_text().map(str::to_owned))
}

fn lookup_after(change: &Change) -> Option<Uuid> {
    change
        .fields
        .iter()
        .find_map(|f| Uuid::parse_str(f.after?.as_text()?).ok())
}

/// Write a change's columns into `record` as the observer would read them back: typed values as
/// text, a lookup's `<navigation>@odata.bind` into its column.
fn write_fields(
    columns: &[String],
    types: &BTreeMap<String, ColumnType>,
    record: &mut CrmRecord,
    change: &Change,
) {
    for f in &change.fields {
        if f.column == DO_NOT_BULK_EMAIL_COLUMN {
            record.do_not_bulk_email = matches!(f.after, Some(ValueRef::Bool(true)));
            continue;
        }
        let column = f.column.strip_suffix("@odata.bind").map_or(f.column.as_str(), |nav| {
            types
                .iter()
                .find(|(_, t)| matches!(t, ColumnType::Lookup { navigation, .. } if navigation == nav))
                .map_or(nav, |(c, _)| c.as_str())
        });
        if let Some(i) = columns.iter().position(|c| c == column) {
            let value = f.after.map(|v| convert::as_text(&v.to_value()));
            record.set_value(i, value.as_deref());
        }
    }
}
