//! The executor: one binding's plan → batched writes to the CRM, in the plan's action order,
//! each change's outcome counted in a [`BindingReport`]. It does to the CRM what
//! [`crate::plan::simulate::apply_to_snapshot`] does to the snapshot.
//!
//! How each kind is written (fewest counted requests; every `$batch` holds up to 1,000
//! operations with `continue-on-error`, several in flight within the client's parallelism):
//! - Audience record: created before the lease (see [`super::lease`]); renamed here with
//!   `If-Match` on the version the plan saw (the lease write in between is our own).
//! - list: created with its deterministic id, or its Audience lookup set with `If-Match`.
//! - Tag records: `$batch` of `POST` (deterministic ids) and `PATCH` with `If-Match`.
//! - contacts / leads: creates with `CreateMultiple` chunks of 1,000 where the table supports it
//!   (else `$batch`); updates as `$batch` `PATCH` with `If-Match` on the plan's ETag (a 412 is
//!   *stale*: reported, never retried without the condition).
//! - consent (do-not-bulk-e-mail and the subscriber status): never in the same request as mapped
//!   columns, so a mapped value the CRM refuses can never block an unsubscribe; a `PATCH` of its
//!   own after the creates and updates, with `If-Match` on the plan's version, or `*` when this
//!   run wrote the record first (the flag only ever adds a restriction).
//! - list membership: `AddListMembersList` of up to 1,000 members; a chunk the service refuses
//!   is redone as `$batch` of `AddMemberList` so that each member gets its own outcome;
//!   removals as `$batch` of `DELETE listmembers(<listmemberid>)` (the documented route; the
//!   ids are read from the list at apply time, and only the real "already gone" answers count
//!   as done: see [`lists::already_gone`]).
//! - tag links: `$ref` associate / disassociate in `$batch` (see `dataverse::tag_links`).
//! - Tag record removals: `$batch` `DELETE` with `If-Match`.
//!
//! Invariants: a create with our id that meets a duplicate key is *done*; every change is
//! counted exactly once; a change of a record whose create failed, or of a list whose create
//! failed, is *skipped* rather than sent; a request that cannot be sent at all (after the
//! clients' retries) fails the changes it carried, and the next kinds still run.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::report::{BindingReport, Outcome};
use crate::clients::Clients;
use crate::dataverse::batch::{OpOutcome, Operation};
use crate::dataverse::lists::{self, AudienceBinding};
use crate::dataverse::records::{BulkAction, Created, Outcome as WriteOutcome, record_path};
use crate::dataverse::schema::{audience as audience_cols, tag as tag_cols};
use crate::dataverse::tag_links::TagLink;
use crate::dataverse::{self, Error};
use crate::domain::{MemberType, Names};
use crate::plan::{Action, BindingPlan, Change, Value as PlanValue, ValueRef};

/// The Audience record as the apply holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudienceHold {
    /// Its id.
    pub id: Uuid,
    /// The version read just before the lease was taken (what a plan made before saw).
    pub seen_etag: Option<String>,
    /// Its version now (after our lease write); updated by the rename.
    pub etag: Option<String>,
}

/// What the executor needs besides the plan.
#[derive(Debug)]
pub struct Target<'a> {
    /// The binding's plan.
    pub plan: &'a BindingPlan,
    /// CRM names (lookups, columns).
    pub names: &'a Names,
    /// The Audience record.
    pub audience: AudienceHold,
    /// Subscriber hashes of members whose `last_changed` moved since the plan (saved plans):
    /// their changes are stale.
    pub stale_members: &'a HashSet<String>,
}

/// Called after each kind of change with the action and how many changes it held.
pub type Progress<'a> = &'a (dyn Fn(Action, usize) + Sync);

/// Apply every change of `target.plan`, counting outcomes into `report`. Returns the Audience
/// record's version after the run (the rename may change it).
pub async fn execute(
    clients: &Clients,
    target: Target<'_>,
    report: &mut BindingReport,
    progress: Progress<'_>,
) -> Option<String> {
    let mut run = Run {
        clients,
        plan: target.plan,
        names: target.names,
        kind: target.plan.list.member_type,
        audience: target.audience,
        failed_records: HashSet::new(),
        list_failed: None,
        report,
    };
    let mut by_action: BTreeMap<Action, Vec<&Change>> = BTreeMap::new();
    for change in &target.plan.changes {
        let stale = change
            .member
            .as_ref()
            .is_some_and(|m| target.stale_members.contains(m.id()));
        if stale {
            run.report.record(
                change,
                Outcome::Stale("the Mailchimp member changed since the plan was made".to_owned()),
            );
        } else {
            by_action.entry(change.action).or_default().push(change);
        }
    }
    let mut take_all = by_action;

    for change in take(Action::CreateAudience, &mut take_all) {
        // Created (or found) by the lease step before anything else.
        run.report.record(change, Outcome::Done);
    }
    for change in take(Action::UpdateAudience, &mut take_all) {
        run.update_audience(change).await;
    }
    progress(Action::UpdateAudience, 1);
    for change in take(Action::CreateList, &mut take_all) {
        run.create_list(change).await;
    }
    for change in take(Action::UpdateList, &mut take_all) {
        run.update_list(change).await;
    }
    let mut tags = take(Action::CreateTag, &mut take_all);
    tags.extend(take(Action::RenameTag, &mut take_all));
    let n = tags.len();
    run.tags(tags).await;
    progress(Action::CreateTag, n);

    let creates = take(Action::CreateRecord, &mut take_all);
    let updates = take(Action::UpdateRecord, &mut take_all);
    let flags = take(Action::SetDoNotEmail, &mut take_all);
    let n = creates.len() + updates.len() + flags.len();
    run.records(creates, updates, flags).await;
    progress(Action::CreateRecord, n);

    let adds = take(Action::AddListMember, &mut take_all);
    let n = adds.len();
    run.add_list_members(adds).await;
    progress(Action::AddListMember, n);

    for action in [Action::LinkTags, Action::UnlinkTags] {
        let changes = take(action, &mut take_all);
        let n = changes.len();
        run.tag_links(action, changes).await;
        progress(action, n);
    }
    let removals = take(Action::RemoveListMember, &mut take_all);
    let n = removals.len();
    run.remove_list_members(removals).await;
    progress(Action::RemoveListMember, n);
    let removals = take(Action::RemoveTag, &mut take_all);
    let n = removals.len();
    run.remove_tags(removals).await;
    progress(Action::RemoveTag, n);

    for (_, rest) in take_all {
        for change in rest {
            run.report.record(
                change,
                Outcome::Skipped("this build cannot apply this kind of change".to_owned()),
            );
        }
    }
    run.audience.etag
}

fn take<'c>(a: Action, m: &mut BTreeMap<Action, Vec<&'c Change>>) -> Vec<&'c Change> {
    m.remove(&a).unwrap_or_default()
}

struct Run<'a, 'r> {
    clients: &'a Clients,
    plan: &'a BindingPlan,
    names: &'a Names,
    kind: MemberType,
    audience: AudienceHold,
    failed_records: HashSet<Uuid>,
    list_failed: Option<String>,
    report: &'r mut BindingReport,
}

const STALE: &str = "the record changed since the plan was made (412 on If-Match)";

fn created(o: &OpOutcome) -> Outcome {
    if o.is_ok() || o.is_duplicate() {
        Outcome::Done
    } else {
        Outcome::Failed(o.failure().unwrap_or_default())
    }
}

fn updated(o: &OpOutcome) -> Outcome {
    if o.is_ok() {
        Outcome::Done
    } else if o.is_stale() {
        Outcome::Stale(STALE.to_owned())
    } else {
        Outcome::Failed(o.failure().unwrap_or_default())
    }
}

fn removed(o: &OpOutcome) -> Outcome {
    match o {
        OpOutcome::Ok(_) => Outcome::Done,
        gone if lists::already_gone(gone) => Outcome::Done,
        other if other.is_stale() => Outcome::Stale(STALE.to_owned()),
        other => Outcome::Failed(other.failure().unwrap_or_default()),
    }
}

/// A plan value as JSON.
fn json_value(value: Option<ValueRef<'_>>) -> Value {
    match value {
        Some(ValueRef::Text(t)) => Value::String(t.to_owned()),
        Some(ValueRef::Bool(b)) => Value::Bool(b),
        Some(ValueRef::Number(n)) => Value::from(n),
        Some(decimal @ ValueRef::Decimal(_)) => match decimal.to_value() {
            PlanValue::Decimal(n) => Value::Number(n),
            other => Value::String(other.to_string()),
        },
        None => Value::Null,
    }
}

fn after_text<'c>(change: &'c Change, column: &str) -> Option<&'c str> {
    change
        .fields
        .get(column)
        .and_then(|f| f.after)
        .and_then(|v| match v {
            ValueRef::Text(t) => Some(t),
            _ => None,
        })
}

/// The columns a change writes, as a JSON object.
fn columns_of<'c>(changes: impl IntoIterator<Item = &'c Change>) -> Map<String, Value> {
    let mut body = Map::new();
    for change in changes {
        for f in &change.fields {
            body.insert(f.column.to_string(), json_value(f.after));
        }
    }
    body
}

impl Run<'_, '_> {
    fn dv(&self) -> &dataverse::Client {
        &self.clients.dataverse
    }

    fn audience_binding(&self, id: Uuid) -> AudienceBinding<'_> {
        AudienceBinding {
            lookup: &self.names.list_audience_lookup,
            entity_set: &self.clients.tables.schema.audience().entity_set,
            id,
        }
    }

    /// Record a request that could not be sent as the failure of every change it carried.
    fn fail_all(&mut self, changes: &[&Change], err: &Error) {
        let reason = format!(
            "the request could not be completed: {}",
            crate::output::error_chain(err)
        );
        for change in changes {
            self.report.record(change, Outcome::Failed(reason.clone()));
        }
    }

    /// Send `ops` (one per change) in `$batch` requests and count each outcome.
    async fn run_ops(
        &mut self,
        items: Vec<(&Change, Operation)>,
        classify: fn(&OpOutcome) -> Outcome,
    ) -> Vec<bool> {
        let (changes, ops): (Vec<&Change>, Vec<Operation>) = items.into_iter().unzip();
        match self.dv().run_batched(ops, classify).await {
            Ok(outcomes) => changes
                .iter()
                .zip(outcomes)
                .map(|(change, outcome)| {
                    let ok = outcome == Outcome::Done;
                    self.report.record(change, outcome);
                    ok
                })
                .collect(),
            Err(err) => {
                self.fail_all(&changes, &err);
                vec![false; changes.len()]
            }
        }
    }

    async fn update_audience(&mut self, change: &Change) {
        if change.precondition.etag.is_some()
            && change.precondition.etag.as_deref() != self.audience.seen_etag.as_deref()
        {
            self.report.record(
                change,
                Outcome::Stale("the Audience record changed since the plan was made".to_owned()),
            );
            return;
        }
        let Some(name) = after_text(change, audience_cols::NAME) else {
            self.report.record(change, Outcome::Done);
            return;
        };
        let set = self.clients.tables.schema.audience().entity_set.clone();
        let body = json!({ audience_cols::NAME: name });
        let outcome = self
            .dv()
            .update(&set, self.audience.id, &body, self.audience.etag.as_deref())
            .await;
        match outcome {
            Ok(WriteOutcome::Written { etag }) => {
                self.audience.etag = etag;
                self.report.record(change, Outcome::Done);
            }
            Ok(WriteOutcome::Stale) => self.report.record(change, Outcome::Stale(STALE.to_owned())),
            Err(err) => self
                .report
                .record(change, Outcome::Failed(crate::output::error_chain(&err))),
        }
    }

    async fn create_list(&mut self, change: &Change) {
        let audience = after_text(change, &self.names.list_audience_lookup)
            .and_then(|t| Uuid::parse_str(t).ok())
            .unwrap_or(self.audience.id);
        let name = after_text(change, lists::NAME_COLUMN)
            .map_or_else(|| self.plan.list.name.clone(), str::to_owned);
        let member_type = self.plan.list.member_type;
        let result = self
            .dv()
            .create_static_list(
                change.record,
                &name,
                member_type,
                Some(self.audience_binding(audience)),
            )
            .await;
        match result {
            Ok(Created::Created | Created::AlreadyExists) => {
                self.report.record(change, Outcome::Done);
            }
            Err(err) => {
                let reason = crate::output::error_chain(&err);
                self.list_failed = Some(format!("the list could not be created: {reason}"));
                self.report.record(change, Outcome::Failed(reason));
            }
        }
    }

    async fn update_list(&mut self, change: &Change) {
        let audience = after_text(change, &self.names.list_audience_lookup)
            .and_then(|t| Uuid::parse_str(t).ok())
            .unwrap_or(self.audience.id);
        let binding = self.audience_binding(audience);
        let mut body = Map::new();
        body.insert(
            format!("{}@odata.bind", binding.lookup),
            Value::String(format!("/{}", record_path(binding.entity_set, binding.id))),
        );
        let result = self
            .dv()
            .update(
                "lists",
                change.record,
                &Value::Object(body),
                change.precondition.etag.as_deref(),
            )
            .await;
        let outcome = match result {
            Ok(WriteOutcome::Written { .. }) => Outcome::Done,
            Ok(WriteOutcome::Stale) => Outcome::Stale(STALE.to_owned()),
            Err(err) => Outcome::Failed(crate::output::error_chain(&err)),
        };
        self.report.record(change, outcome);
    }

    async fn tags(&mut self, changes: Vec<&Change>) {
        let table = self.clients.tables.schema.tag();
        let audience_set = &self.clients.tables.schema.audience().entity_set;
        let mut creates = Vec::new();
        let mut renames = Vec::new();
        for change in changes {
            let name: String = after_text(change, tag_cols::NAME)
                .or(change.name.as_deref())
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect();
            if change.action == Action::CreateTag {
                let mailchimp_id = self
                    .plan
                    .tags
                    .iter()
                    .find(|t| t.record == change.record)
                    .map(|t| t.mailchimp_id.to_string())
                    .unwrap_or_default();
                let body = json!({
                    table.primary_id.clone(): change.record,
                    tag_cols::NAME: name,
                    tag_cols::MAILCHIMP_ID: mailchimp_id,
                    format!("{}@odata.bind", tag_cols::AUDIENCE):
                        format!("/{}", record_path(audience_set, self.audience.id)),
                });
                creates.push((change, Operation::post(&table.entity_set, body, true)));
            } else {
                let op = Operation::patch(
                    record_path(&table.entity_set, change.record),
                    json!({ tag_cols::NAME: name }),
                )
                .header(
                    "If-Match",
                    change.precondition.etag.as_deref().unwrap_or("*"),
                );
                renames.push((change, op));
            }
        }
        if !creates.is_empty() {
            self.run_ops(creates, created).await;
        }
        if !renames.is_empty() {
            self.run_ops(renames, updated).await;
        }
    }

    async fn records(&mut self, creates: Vec<&Change>, updates: Vec<&Change>, flags: Vec<&Change>) {
        let kind = self.kind;
        // Records written in this run before their consent: the consent write must not trip
        // over the version our own write made.
        let mut written: HashSet<Uuid> = creates.iter().map(|c| c.record).collect();
        written.extend(updates.iter().map(|c| c.record));

        if !creates.is_empty() {
            let body = |change: &Change| {
                let mut body = columns_of([change]);
                body.insert(
                    kind.id_column().to_owned(),
                    Value::String(change.record.to_string()),
                );
                body
            };
            let results = self
                .dv()
                .write_many(
                    BulkAction::Create,
                    kind.entity_set(),
                    kind.logical_name(),
                    kind.id_column(),
                    creates.clone(),
                    body,
                )
                .await;
            match results {
                Ok(results) => {
                    for (change, failure) in creates.iter().zip(results) {
                        let outcome = match failure {
                            None => Outcome::Done,
                            Some(reason) => {
                                self.failed_records.insert(change.record);
                                Outcome::Failed(reason)
                            }
                        };
                        self.report.record(change, outcome);
                    }
                }
                Err(err) => {
                    self.failed_records.extend(creates.iter().map(|c| c.record));
                    self.fail_all(&creates, &err);
                }
            }
        }

        let updates = updates
            .into_iter()
            .map(|change| {
                let etag = change.precondition.etag.as_deref().map(str::to_owned);
                (change, etag)
            })
            .collect();
        self.patch_each(updates).await;

        // Consent on its own, after the mapped columns: a refused mapped value never blocks it.
        // Setting do-not-bulk-e-mail only ever adds a restriction, so after our own write it goes
        // with `If-Match: *` (the record must exist); otherwise with the plan's version.
        let mut consent = Vec::with_capacity(flags.len());
        for change in flags {
            if self.failed_records.contains(&change.record) {
                self.report.record(
                    change,
                    Outcome::Skipped("its record could not be created".to_owned()),
                );
                continue;
            }
            let etag = if written.contains(&change.record) {
                None
            } else {
                change.precondition.etag.as_deref().map(str::to_owned)
            };
            consent.push((change, etag));
        }
        self.patch_each(consent).await;
    }

    /// One `PATCH` per change, with `If-Match` on its version (`*`: the record must exist).
    async fn patch_each(&mut self, changes: Vec<(&Change, Option<String>)>) {
        if changes.is_empty() {
            return;
        }
        let kind = self.kind;
        let (changes, ops): (Vec<&Change>, Vec<Operation>) = changes
            .into_iter()
            .map(|(change, etag)| {
                let op = Operation::patch(
                    record_path(kind.entity_set(), change.record),
                    Value::Object(columns_of([change])),
                )
                .header("If-Match", etag.as_deref().unwrap_or("*"));
                (change, op)
            })
            .unzip();
        match self.dv().run_batched(ops, updated).await {
            Ok(outcomes) => {
                for (change, outcome) in changes.iter().zip(outcomes) {
                    self.report.record(change, outcome);
                }
            }
            Err(err) => self.fail_all(&changes, &err),
        }
    }

    /// Changes that cannot be sent because their record or list failed earlier: skipped.
    fn runnable<'c>(&mut self, changes: Vec<&'c Change>, needs_list: bool) -> Vec<&'c Change> {
        let mut out = Vec::with_capacity(changes.len());
        for change in changes {
            if needs_list {
                if let Some(reason) = &self.list_failed {
                    let reason = reason.clone();
                    self.report.record(change, Outcome::Skipped(reason));
                    continue;
                }
            }
            if self.failed_records.contains(&change.record) {
                self.report.record(
                    change,
                    Outcome::Skipped("the record's create failed".to_owned()),
                );
                continue;
            }
            out.push(change);
        }
        out
    }

    fn list_id(&mut self, changes: &[&Change]) -> Option<Uuid> {
        let id = self.plan.list.id;
        if id.is_none() {
            for change in changes {
                self.report.record(
                    change,
                    Outcome::Failed("the plan names no marketing list id".to_owned()),
                );
            }
        }
        id
    }

    async fn add_list_members(&mut self, changes: Vec<&Change>) {
        let changes = self.runnable(changes, true);
        if changes.is_empty() {
            return;
        }
        let Some(list) = self.list_id(&changes) else {
            return;
        };
        let member_type = self.plan.list.member_type;
        let dv = self.dv().clone();
        // All members in one call: the client sizes the requests and keeps its parallelism
        // busy; each request's answer comes back with the members it carried.
        let ids: Vec<Uuid> = changes.iter().map(|c| c.record).collect();
        let answers = dv.add_list_members_each(list, member_type, &ids).await;
        drop(ids);
        let mut redo: Vec<(&Change, Operation)> = Vec::new();
        for (range, result) in answers {
            let Some(chunk) = changes.get(range) else {
                continue;
            };
            match result {
                Ok(()) => {
                    for change in chunk {
                        self.report.record(change, Outcome::Done);
                    }
                }
                Err(err @ Error::Api { .. }) => {
                    tracing::debug!(error = %err, "AddListMembersList refused, redoing member by member");
                    let path = format!(
                        "{}/Microsoft.Dynamics.CRM.AddMemberList",
                        record_path("lists", list)
                    );
                    for change in chunk {
                        let op = Operation::post(
                            path.clone(),
                            json!({ "EntityId": change.record }),
                            true,
                        );
                        redo.push((change, op));
                    }
                }
                Err(err) => self.fail_all(chunk, &err),
            }
        }
        if !redo.is_empty() {
            self.run_ops(redo, created).await;
        }
    }

    async fn tag_links(&mut self, action: Action, changes: Vec<&Change>) {
        let changes = self.runnable(changes, false);
        if changes.is_empty() {
            return;
        }
        let mut links = Vec::new();
        let mut owner = Vec::new();
        for (i, change) in changes.iter().enumerate() {
            for tag in &change.tags {
                links.push(TagLink {
                    tag: *tag,
                    person: change.record,
                });
                owner.push(i);
            }
        }
        let tables = &self.clients.tables;
        let result = if action == Action::LinkTags {
            tables.link_tags(self.kind, &links).await
        } else {
            tables.unlink_tags(self.kind, &links).await
        };
        match result {
            Ok(failures) => {
                let mut first_failure: Vec<Option<String>> = vec![None; changes.len()];
                for (i, failure) in owner.into_iter().zip(failures) {
                    if let Some(reason) = failure {
                        first_failure[i].get_or_insert(reason);
                    }
                }
                for (change, failure) in changes.iter().zip(first_failure) {
                    let outcome = failure.map_or(Outcome::Done, Outcome::Failed);
                    self.report.record(change, outcome);
                }
            }
            Err(err) => self.fail_all(&changes, &err),
        }
    }

    /// Removals as `DELETE listmembers(<listmemberid>)`, the ids read from the list now (a
    /// record no longer on the list is already gone: done).
    async fn remove_list_members(&mut self, changes: Vec<&Change>) {
        let changes = self.runnable(changes, true);
        if changes.is_empty() {
            return;
        }
        let Some(list) = self.list_id(&changes) else {
            return;
        };
        let wanted: HashSet<Uuid> = changes.iter().map(|c| c.record).collect();
        let rows = match self.dv().list_member_ids(list, &wanted).await {
            Ok(rows) => rows,
            Err(err) => return self.fail_all(&changes, &err),
        };
        let mut items = Vec::with_capacity(rows.len());
        for change in changes {
            match rows.get(&change.record) {
                Some(row) => {
                    items.push((change, Operation::delete(record_path("listmembers", *row))))
                }
                None => self.report.record(change, Outcome::Done),
            }
        }
        self.run_ops(items, removed).await;
    }

    async fn remove_tags(&mut self, changes: Vec<&Change>) {
        if changes.is_empty() {
            return;
        }
        let set = self.clients.tables.schema.tag().entity_set.clone();
        let items = changes
            .into_iter()
            .map(|change| {
                let op = Operation::delete(record_path(&set, change.record)).header(
                    "If-Match",
                    change.precondition.etag.as_deref().unwrap_or("*"),
                );
                (change, op)
            })
            .collect();
        self.run_ops(items, removed).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::snapshot::DO_NOT_BULK_EMAIL_COLUMN;
    use crate::plan::{FieldChange, Precondition, Reason};

    #[test]
    fn columns_are_written_with_their_types() {
        let change = Change {
            action: Action::SetDoNotEmail,
            reason: Reason::UnsubscribedInMailchimp,
            record: Uuid::nil(),
            member: None,
            name: None,
            fields: vec![
                FieldChange {
                    column: DO_NOT_BULK_EMAIL_COLUMN.into(),
                    before: Some(PlanValue::Bool(false)),
                    after: Some(PlanValue::Bool(true)),
                },
                FieldChange {
                    column: "mcsync_mailchimpstatus".into(),
                    before: None,
                    after: Some(PlanValue::Text("unsubscribed".into())),
                },
            ]
            .into(),
            tags: Box::default(),
            precondition: Precondition::default(),
        };
        let body = columns_of([&change]);
        assert_eq!(body[DO_NOT_BULK_EMAIL_COLUMN], Value::Bool(true));
        assert_eq!(body["mcsync_mailchimpstatus"], json!("unsubscribed"));
    }
}
