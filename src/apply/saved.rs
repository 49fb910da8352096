//! The checks a saved plan (`plan -out FILE`, then `apply FILE`) must pass before it is applied:
//! what was reviewed is the most that is applied, and only what the config demands now.
//!
//! - As a whole ([`check_plan`]): it was made from this very config (same digest), by a plan
//!   format this build reads, and it was not applied already: its Sync Run record, whose id
//!   derives from the plan's *content* ([`content_id`]: a digest of a canonical form of its
//!   changes, so a re-serialised or re-dated copy is the same plan), does not exist.
//! - Per change ([`check_binding`]), against a fresh plan of the binding made now and the
//!   binding's config: the bound list and audience and no other; no removals where the binding
//!   does not prune; only columns the binding maps (or the tool itself writes for that action);
//!   the preconditions (ETag) the fresh plan has; and the change itself must be one the fresh
//!   plan makes (same record, action, member, columns and values, tags). A change that fails is
//!   not applied and named with its reason ([`Verdict::Rejected`]). A change whose member moved
//!   in Mailchimp (`last_changed`, [`crate::observe::stale_members`]) or whose record's ETag
//!   moved in the CRM is stale ([`Verdict::Stale`]): never overwritten, never an error.
//! - The removal guard is recomputed from the changes that are applied, never read from the file.

use std::collections::{BTreeSet, HashMap, HashSet};

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::Outcome;
use crate::config::Binding;
use crate::dataverse;
use crate::dataverse::tables::ToolTables;
use crate::plan::model::ALLOW_REMOVALS_FLAG;
use crate::plan::{Action, BindingPlan, Change, FORMAT_VERSION, Guard, GuardReason, Plan};

/// Why a saved plan as a whole cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    /// The config changed since the plan was made.
    #[error(
        "saved plan is stale: the config changed since the plan was made (plan `{plan}`, config `{config}`); run `plan` again"
    )]
    ConfigChanged {
        /// The plan's config digest.
        plan: String,
        /// The config's.
        config: String,
    },
    /// The plan was applied already.
    #[error(
        "saved plan is stale: it was already applied to binding `{binding}` (Sync Run `{run}`); run `plan` again"
    )]
    AlreadyApplied {
        /// The binding.
        binding: String,
        /// Its Sync Run record.
        run: uuid::Uuid,
    },
    /// A plan format this build does not read.
    #[error(
        "saved plan is stale: it is format `{0}`, this build applies format `{FORMAT_VERSION}` (same major version, minor no newer); run `plan` again"
    )]
    Format(String),
    /// The plan names a binding the config does not have.
    #[error("saved plan is stale: the config has no binding `{0}`; run `plan` again")]
    UnknownBinding(String),
    /// The plan names a binding twice.
    #[error("saved plan is damaged: it names binding `{0}` twice")]
    DuplicateBinding(String),
    /// The binding is suspended in the config.
    #[error("saved plan is stale: binding `{0}` is suspended in the config")]
    Suspended(String),
}

/// The identity of a saved plan: `sha256:<hex>` of a canonical form of what it would write
/// (the config digest, and per binding its name, audience, list and changes), so that the same
/// plan re-serialised, re-indented or re-dated has the same identity.
///
/// # Errors
/// The plan cannot be written as JSON.
pub fn content_id(plan: &Plan) -> serde_json::Result<String> {
    /// The canonical form, serialized compactly (serde_json's `to_writer` bytes) straight into the
    /// digest (field order is the identity).
    #[derive(serde::Serialize)]
    struct Canonical<'a> {
        config_digest: &'a str,
        bindings: Vec<CanonicalBinding<'a>>,
    }
    #[derive(serde::Serialize)]
    struct CanonicalBinding<'a> {
        name: &'a str,
        audience: &'a str,
        list: &'a crate::plan::model::ListRef,
        changes: &'a [Change],
    }
    let canonical = Canonical {
        config_digest: &plan.config_digest,
        bindings: plan
            .bindings
            .iter()
            .map(|b| CanonicalBinding {
                name: &b.name,
                audience: &b.audience.id,
                list: &b.list,
                changes: &b.changes,
            })
            .collect(),
    };
    let digest = crate::plan::render::to_writer_compact(DigestWriter(Sha256::new()), &canonical)?;
    Ok(digest.id())
}

/// `sha256:<hex>` of a plan's JSON text ([`crate::plan::render::json`]), streamed through the
/// digest (in 1 MiB pieces) instead of written out first.
///
/// # Errors
/// The plan cannot be written as JSON.
pub fn plan_id_of(plan: &Plan) -> serde_json::Result<String> {
    let mut digest = DigestWriter(Sha256::new());
    crate::plan::render::write_json(plan, &mut digest)?;
    Ok(digest.id())
}

/// A writer into a SHA-256.
struct DigestWriter(Sha256);

impl DigestWriter {
    fn id(self) -> String {
        format!("sha256:{}", hex::encode(self.0.finalize()))
    }
}

impl std::io::Write for DigestWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `sha256:<hex>` of a plan's text.
#[must_use]
pub fn plan_id(plan_json: &str) -> String {
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(plan_json.as_bytes()))
    )
}

/// Check the plan against the config it claims to come from (pure).
///
/// # Errors
/// The plan's format or config digest differs, or it names a binding twice.
pub fn check_plan(plan: &Plan, config_digest: &str) -> Result<(), Stale> {
    if !crate::plan::model::is_supported_version(&plan.format_version) {
        return Err(Stale::Format(plan.format_version.clone()));
    }
    let config = format!("sha256:{config_digest}");
    if plan.config_digest != config {
        return Err(Stale::ConfigChanged {
            plan: plan.config_digest.clone(),
            config,
        });
    }
    let mut seen = HashSet::new();
    if let Some(b) = plan.bindings.iter().find(|b| !seen.insert(&b.name)) {
        return Err(Stale::DuplicateBinding(b.name.clone()));
    }
    Ok(())
}

/// Whether the plan `plan_id` was applied to `binding` already (its Sync Run record exists).
///
/// # Errors
/// The CRM could not be read.
pub async fn already_applied(
    tables: &ToolTables,
    plan_id: &str,
    binding: &str,
) -> Result<Option<uuid::Uuid>, dataverse::Error> {
    let id = super::run_id(plan_id, binding);
    let table = tables.schema.sync_run();
    let row = tables
        .client
        .retrieve(&table.entity_set, id, &[table.primary_id.as_str()])
        .await?;
    Ok(row.map(|_| id))
}

/// What becomes of one saved change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It is a change the config demands now, exactly as reviewed: apply it.
    Apply,
    /// Its member or record moved since the plan: not applied, not an error.
    Stale(String),
    /// It fails a check (see the module doc): not applied, and the apply is incomplete.
    Rejected(String),
}

/// A saved binding's plan, checked.
#[derive(Debug, Clone)]
pub struct Checked {
    /// What to apply: the fresh plan's binding (list, audience, tags, read counts) with the
    /// saved changes that passed, and the guard recomputed from them.
    pub plan: BindingPlan,
    /// The changes not applied, each with its outcome (stale, or skipped with the reason).
    pub not_applied: Vec<(Change, Outcome)>,
    /// How many of those were rejected (not merely stale).
    pub rejected: usize,
}

/// Check every change of `saved` against `fresh` (the binding planned now) and `binding`'s
/// config; `stale_members` are the members (subscriber hashes) whose Mailchimp version moved.
#[must_use]
pub fn check_binding(
    binding: &Binding,
    saved: &BindingPlan,
    fresh: &BindingPlan,
    stale_members: &HashSet<String>,
) -> Checked {
    let checker = Checker::new(binding, saved, fresh, stale_members);
    let mut seen = HashSet::new();
    let verdicts: Vec<Verdict> = saved
        .changes
        .iter()
        .map(|change| {
            if seen.insert((change.record, change.action)) {
                checker.verdict(change)
            } else {
                Verdict::Rejected("the plan holds this change twice".to_owned())
            }
        })
        .collect();
    // A record with a rejected change gets none of its other changes either (an addition to
    // the list of a record whose creation was refused, say).
    let refused: HashSet<Uuid> = saved
        .changes
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| matches!(v, Verdict::Rejected(_)))
        .map(|(c, _)| c.record)
        .collect();
    let mut changes = Vec::new();
    let mut not_applied = Vec::new();
    let mut rejected = 0;
    for (change, verdict) in saved.changes.iter().zip(verdicts) {
        let verdict = match verdict {
            Verdict::Apply if refused.contains(&change.record) => {
                Verdict::Rejected("another change of the same record is not applied".to_owned())
            }
            v => v,
        };
        match verdict {
            Verdict::Apply => changes.push(change.clone()),
            Verdict::Stale(why) => not_applied.push((change.clone(), Outcome::Stale(why))),
            Verdict::Rejected(why) => {
                rejected += 1;
                let why = format!("not applied: {why}");
                not_applied.push((change.clone(), Outcome::Skipped(why)));
            }
        }
    }
    let mut plan = fresh.clone();
    plan.guard = guard(binding, fresh, &changes);
    plan.counts.clear();
    for c in &changes {
        *plan.counts.entry(c.action).or_default() += 1;
    }
    plan.changes = changes;
    Checked {
        plan,
        not_applied,
        rejected,
    }
}

/// What the checks of one binding compare with.
struct Checker<'a> {
    binding: &'a Binding,
    /// Why every change is rejected (the plan targets another list), if so.
    wrong_target: Option<String>,
    fresh: HashMap<(Uuid, Action), &'a Change>,
    /// The ETag of each record as read now.
    etags: HashMap<Uuid, &'a str>,
    /// Columns each action may write: the mapped ones, and those the fresh plan writes.
    columns: HashMap<Action, BTreeSet<&'a str>>,
    stale_members: &'a HashSet<String>,
}

impl<'a> Checker<'a> {
    fn new(
        binding: &'a Binding,
        saved: &BindingPlan,
        fresh: &'a BindingPlan,
        stale_members: &'a HashSet<String>,
    ) -> Self {
        let wrong_target = (saved.list.id != fresh.list.id
            || saved.list.member_type != fresh.list.member_type
            || saved.audience.id != fresh.audience.id)
            .then(|| {
                let id = |id: Option<Uuid>| id.map_or_else(|| "none".to_owned(), |i| i.to_string());
                format!(
                    "the plan targets list `{}` ({}) of audience `{}`, but binding `{}` is bound to list `{}` ({}) of audience `{}`",
                    saved.list.name,
                    id(saved.list.id),
                    saved.audience.id,
                    binding.name,
                    fresh.list.name,
                    id(fresh.list.id),
                    fresh.audience.id
                )
            });
        let mapped: BTreeSet<&str> = binding.fields.iter().map(|f| f.column.as_str()).collect();
        let mut columns: HashMap<Action, BTreeSet<&str>> =
            Action::ALL.iter().map(|a| (*a, mapped.clone())).collect();
        let mut etags = HashMap::new();
        let mut by_key = HashMap::new();
        for c in &fresh.changes {
            by_key.insert((c.record, c.action), c);
            if let Some(etag) = &c.precondition.etag {
                etags.insert(c.record, &**etag);
            }
            let allowed = columns.entry(c.action).or_default();
            allowed.extend(c.fields.iter().map(|f| f.column.as_str()));
        }
        Self {
            binding,
            wrong_target,
            fresh: by_key,
            etags,
            columns,
            stale_members,
        }
    }

    fn verdict(&self, change: &Change) -> Verdict {
        if let Some(why) = &self.wrong_target {
            return Verdict::Rejected(why.clone());
        }
        let name = &self.binding.name;
        match change.action {
            Action::RemoveListMember if !self.binding.prune_members => {
                return Verdict::Rejected(format!(
                    "it removes a list member, but binding `{name}` does not prune members"
                ));
            }
            Action::RemoveTag if !self.binding.tags.prune => {
                return Verdict::Rejected(format!(
                    "it removes a Tag record, but binding `{name}` does not prune tags"
                ));
            }
            _ => {}
        }
        let allowed = self.columns.get(&change.action);
        if let Some(f) = change
            .fields
            .iter()
            .find(|f| !allowed.is_some_and(|a| a.contains(&*f.column)))
        {
            return Verdict::Rejected(format!(
                "it writes column `{}`, which binding `{name}` does not map for `{}`",
                f.column,
                change.action.code()
            ));
        }
        let fresh = self.fresh.get(&(change.record, change.action));
        if fresh.is_some_and(|f| f.precondition.etag.is_some())
            && change.precondition.etag.is_none()
        {
            return Verdict::Rejected(
                "its ETag precondition is missing (the plan format requires it for this change)"
                    .to_owned(),
            );
        }
        if change
            .member
            .as_ref()
            .is_some_and(|m| self.stale_members.contains(m.id()))
        {
            return Verdict::Stale("the member changed in Mailchimp since the plan".to_owned());
        }
        if let (Some(saved), Some(now)) =
            (&change.precondition.etag, self.etags.get(&change.record))
        {
            if **saved != **now {
                return Verdict::Stale("the record changed in the CRM since the plan".to_owned());
            }
        }
        let Some(fresh) = fresh else {
            return Verdict::Rejected(format!(
                "binding `{name}` does not need this change now (no `{}` of record {} in a fresh plan)",
                change.action.code(),
                change.record
            ));
        };
        if **fresh == *change {
            return Verdict::Apply;
        }
        let what = if fresh.member != change.member {
            "its member (e-mail, id or status)"
        } else if fresh.fields != change.fields {
            "its columns or values"
        } else if fresh.tags != change.tags {
            "its tags"
        } else if fresh.precondition != change.precondition {
            "its precondition"
        } else {
            "its reason or name"
        };
        Verdict::Rejected(format!(
            "{what} differ from what binding `{name}` demands now"
        ))
    }
}

/// The removal guard of the changes that are applied, recomputed with the binding's
/// `max_removals` and the list's size as read now (an empty-audience guard of the fresh plan
/// stays).
fn guard(binding: &Binding, fresh: &BindingPlan, changes: &[Change]) -> Option<Guard> {
    let removals = changes
        .iter()
        .filter(|c| c.action == Action::RemoveListMember)
        .count() as u64;
    if let Some(g) = fresh
        .guard
        .as_ref()
        .filter(|g| g.reason == GuardReason::EmptyAudience)
    {
        return Some(Guard {
            removals,
            ..g.clone()
        });
    }
    let list_size = fresh.read.list_members;
    let allowed = binding.max_removals.allowed(list_size);
    (removals > allowed).then(|| Guard {
        reason: GuardReason::TooManyRemovals,
        message: format!(
            "{removals} removals exceed max_removals `{}` (at most {allowed} of the list's {list_size} members); check the plan, then apply with `{ALLOW_REMOVALS_FLAG}` to override",
            binding.max_removals
        ),
        removals,
        allowed,
        list_size,
        override_flag: ALLOW_REMOVALS_FLAG.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PlanMeta;

    fn plan(digest: &str) -> Plan {
        Plan::new(
            PlanMeta {
                tool_version: "0".into(),
                config_digest: format!("sha256:{digest}"),
                created_at: "2026-01-01T00:00:00Z".into(),
            },
            Vec::new(),
        )
    }

    #[test]
    fn a_plan_of_another_config_or_format_is_stale() {
        assert_eq!(check_plan(&plan("abc"), "abc"), Ok(()));
        let err = check_plan(&plan("abc"), "def").unwrap_err();
        assert!(err.to_string().starts_with("saved plan is stale"), "{err}");
        let mut other = plan("abc");
        other.format_version = "1.0".into();
        assert_eq!(check_plan(&other, "abc"), Err(Stale::Format("1.0".into())));
    }

    #[test]
    fn format_versions_are_read_exactly_as_the_schema_says() {
        let mut p = plan("abc");
        for bad in ["2.99", "2.0.0", "+2.0", "2", "1.0", "3.0", "2.x", ""] {
            p.format_version = bad.into();
            assert_eq!(
                check_plan(&p, "abc"),
                Err(Stale::Format(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_identity_of_a_plan_is_its_content_not_its_bytes() {
        let a = crate::plan::fixture::scenario_plan();
        let mut b = a.clone();
        b.created_at = "2030-01-01T00:00:00Z".into();
        b.tool_version = "9.9.9".into();
        assert_eq!(content_id(&a).unwrap(), content_id(&b).unwrap());
        let mut c = a.clone();
        let change = c.bindings[0]
            .changes
            .iter_mut()
            .find(|c| c.member.is_some());
        change.expect("a member change").record = Uuid::nil();
        assert_ne!(content_id(&a).unwrap(), content_id(&c).unwrap());
    }

    /// The scenario's bindings and their plans: (binding, saved = fresh plan).
    fn scenario() -> Vec<(Binding, BindingPlan)> {
        let (bindings, _, _) = crate::plan::fixture::scenario();
        let plan = crate::plan::fixture::scenario_plan();
        bindings.into_iter().zip(plan.bindings).collect()
    }

    fn reasons(checked: &Checked) -> Vec<String> {
        checked
            .not_applied
            .iter()
            .map(|(_, o)| format!("{o:?}"))
            .collect()
    }

    #[test]
    fn an_untampered_plan_is_applied_whole() {
        for (binding, fresh) in scenario() {
            let checked = check_binding(&binding, &fresh, &fresh, &HashSet::new());
            assert_eq!(checked.plan.changes, fresh.changes, "{}", binding.name);
            assert_eq!(checked.rejected, 0);
            assert_eq!(
                checked.plan.guard, fresh.guard,
                "the guard recomputed is the same"
            );
        }
    }

    #[test]
    fn tampered_changes_are_rejected_with_their_reason_and_their_record_gets_nothing() {
        let (binding, fresh) = scenario().remove(0);
        let index = |action: Action| {
            fresh
                .changes
                .iter()
                .position(|c| c.action == action && c.member.is_some())
                .expect("the scenario has this action")
        };
        type Tamper<'a> = Box<dyn Fn(&mut BindingPlan) + 'a>;
        let cases: Vec<(&str, Tamper)> = vec![
            (
                "member (e-mail",
                Box::new(|p: &mut BindingPlan| {
                    let c = &mut p.changes[index(Action::CreateRecord)];
                    let m = c.member.clone().expect("member");
                    let m = crate::plan::MemberRef::new(
                        m.id(),
                        m.contact_id(),
                        "attacker@evil.example",
                        m.status,
                    );
                    c.member = Some(crate::plan::Shared(std::sync::Arc::new(m)));
                }),
            ),
            (
                "does not map",
                Box::new(|p: &mut BindingPlan| {
                    let c = &mut p.changes[index(Action::UpdateRecord)];
                    c.fields = std::mem::take(&mut c.fields).with(&crate::plan::FieldChange {
                        column: "jobtitle".into(),
                        before: None,
                        after: Some(crate::plan::Value::Text("CEO".into())),
                    });
                }),
            ),
            (
                "ETag precondition is missing",
                Box::new(|p: &mut BindingPlan| {
                    p.changes[index(Action::UpdateRecord)].precondition.etag = None;
                }),
            ),
            (
                "does not need this change",
                Box::new(|p: &mut BindingPlan| {
                    p.changes[index(Action::AddListMember)].record = Uuid::from_u128(77);
                }),
            ),
            (
                "bound to list",
                Box::new(|p: &mut BindingPlan| {
                    p.list.id = Some(Uuid::from_u128(99));
                }),
            ),
        ];
        for (reason, tamper) in cases {
            let mut saved = fresh.clone();
            tamper(&mut saved);
            let checked = check_binding(&binding, &saved, &fresh, &HashSet::new());
            assert!(checked.rejected > 0, "{reason}");
            let all = reasons(&checked);
            assert!(all.iter().any(|r| r.contains(reason)), "{reason}: {all:?}");
            for (c, _) in &checked.not_applied {
                assert!(
                    checked.plan.changes.iter().all(|a| a.record != c.record),
                    "{reason}: record {} still gets a change",
                    c.record
                );
            }
        }
    }

    #[test]
    fn removals_are_rejected_where_the_binding_does_not_prune_and_the_guard_is_recomputed() {
        let (mut binding, fresh) = scenario().remove(0);
        let removal = fresh
            .changes
            .iter()
            .find(|c| c.action == Action::RemoveListMember)
            .cloned()
            .expect("a removal");
        binding.prune_members = false;
        let checked = check_binding(&binding, &fresh, &fresh, &HashSet::new());
        assert!(
            reasons(&checked)
                .iter()
                .any(|r| r.contains("does not prune"))
        );
        binding.prune_members = true;
        binding.max_removals = crate::config::RemovalLimit::Count(0);
        let mut saved = fresh.clone();
        saved.guard = None;
        let checked = check_binding(&binding, &saved, &fresh, &HashSet::new());
        assert!(checked.plan.changes.contains(&removal));
        let guard = checked
            .plan
            .guard
            .expect("the guard is recomputed, not read");
        assert_eq!(guard.reason, GuardReason::TooManyRemovals);
    }

    #[test]
    fn streamed_ids_are_the_digests_of_the_written_documents() {
        let plan = crate::plan::fixture::scenario_plan();
        let json = crate::plan::render::json(&plan).expect("serializes");
        assert_eq!(plan_id_of(&plan).expect("streams"), plan_id(&json));
        let canonical = serde_json::json!({
            "config_digest": plan.config_digest,
            "bindings": plan.bindings.iter().map(|b| serde_json::json!({
                "name": b.name,
                "audience": b.audience.id,
                "list": b.list,
                "changes": b.changes,
            })).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string(&canonical).expect("serializes");
        assert_eq!(content_id(&plan).expect("streams"), plan_id(&text));
    }

    #[test]
    fn plan_ids_are_stable_digests() {
        assert_eq!(plan_id("x"), plan_id("x"));
        assert_ne!(plan_id("x"), plan_id("y"));
        assert!(plan_id("x").starts_with("sha256:"));
    }
}
