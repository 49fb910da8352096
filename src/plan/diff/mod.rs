//! The diff: one binding and what was read for it → the binding's plan. Pure and deterministic
//! (no I/O, no clock, no randomness; everything sorted), so the same inputs give byte-identical JSON.
//!
//! It implements DESIGN.md's "What one binding means", one module per heading:
//! - **Binding checks** ([`checks`]). A list that is missing (and not created), of the wrong member type, of
//!   accounts, dynamic or inactive is a binding error: the binding gets no changes at all.
//! - **Audience record** ([`audience`]) created when missing, renamed when the audience was; the list's Audience
//!   lookup pointed at it.
//! - **Tags** ([`tags`]). Every synced tag (`TagRules::selects`) has one Tag record (deterministic id on
//!   create), renamed with Mailchimp; Tag records whose tag is gone or no longer selected are removed
//!   only when the binding prunes tags. With `tags.sync: false` tags and links are left alone.
//! - **Matching** ([`matching`], a [`matching::Matches`] value). A member matches the record storing its Mailchimp contact id; failing that, the
//!   one record (not claimed by another member's id) with its e-mail, compared trimmed and
//!   case-insensitively. Two candidates are a per-member conflict: that member is skipped, and the
//!   records it touches are never removed.
//! - **Selected members** ([`members`], as are consent and leaving; status in `statuses`): created when unmatched (deterministic id, mapped
//!   fields, the stored id, lead templates for lead lists); otherwise updated in mapped columns only
//!   (`overwrite`: Mailchimp's non-empty value wins; `fill_empty`: only empty columns are filled;
//!   an empty Mailchimp value never clears a CRM column) and linked by stored id when matched by
//!   e-mail; added to the list; linked to the Tag records of their synced tags and unlinked from the
//!   others of this audience.
//! - **Consent.** An unsubscribed or cleaned member's record gets do-not-bulk-e-mail and the
//!   subscriber status, when `on_unsubscribe: mark_do_not_email`. A flagged record is never
//!   unflagged: a subscribed member on a flagged record is a warning.
//! - **Leaving.** A managed list member (its record stores a Mailchimp id) whose member is not
//!   selected (or gone) is removed from the list when the binding prunes members, or when it
//!   unsubscribed or was cleaned and `on_unsubscribe: remove`. Records are never deleted.
//!   Unmanaged list members (no stored id) are listed as kept and never removed.
//! - **Guards** ([`guard`]). More removals than `max_removals` of the list's size, or an audience with no
//!   selected member while the list holds managed members, refuse the binding (still fully planned).

//!
//! Changes are made with the [`Change`] builder ([`change`]), members visited and changes sorted
//! in the plan's order ([`order`]).

mod audience;
mod change;
mod checks;
pub mod guard;
pub mod matching;
mod members;
mod order;
mod tags;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

pub use self::guard::{GuardInput, removal_guard};
pub use self::matching::{is_valid_email, normalize_email};
pub use self::order::in_visit_order;
use super::ids;
use super::model::{
    Action, AudienceRef, BindingPlan, Change, Column, ListRef, MemberRef, MemberVersion, Problem,
    Reason, Shared, SideDigests, Value,
};
use super::snapshot::{Member, Snapshot};
use crate::config::{Binding, ListSelector};
use crate::domain::Names;

/// Plan one binding.
#[must_use]
pub fn compute(binding: &Binding, names: &Names, snapshot: &Snapshot) -> BindingPlan {
    let digests = snapshot.digests();
    let read = snapshot.read_counts();
    let audience_id = snapshot.mailchimp.audience.id.as_str();
    let mut plan = BindingPlan {
        name: binding.name.clone(),
        audience: AudienceRef {
            id: audience_id.to_owned(),
            name: snapshot.mailchimp.audience.name.clone(),
        },
        list: list_ref(binding, snapshot),
        read,
        digests: SideDigests {
            mailchimp: digests.mailchimp,
            crm: digests.crm,
        },
        mailchimp_read_at: snapshot.mailchimp.read_at.clone(),
        tags: Vec::new(),
        changes: Vec::new(),
        counts: BTreeMap::new(),
        unmanaged: Vec::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
        guard: None,
    };
    if let Some(problem) = checks::check_shape(binding, names, snapshot)
        .or_else(|| checks::check_list(binding, snapshot))
    {
        plan.errors.push(problem);
        return plan;
    }
    let mut diff = Diff {
        binding,
        names,
        snapshot,
        audience_id,
        plan,
        current: RefCell::new(None),
        order: order::MadeInOrder::default(),
    };
    diff.audience_and_list();
    let tags = diff.tags();
    diff.members(&tags);
    diff.finish()
}

fn list_ref(binding: &Binding, snapshot: &Snapshot) -> ListRef {
    match &snapshot.crm.list {
        Some(list) => ListRef {
            id: Some(list.id),
            name: list.name.clone(),
            member_type: binding.list.member_type,
            exists: true,
        },
        None => {
            let (id, name) = match &binding.list.selector {
                ListSelector::Id(id) => (Some(*id), id.to_string()),
                ListSelector::Name(name) => (
                    binding
                        .list
                        .create
                        .then(|| ids::list(&snapshot.mailchimp.audience.id, name)),
                    name.clone(),
                ),
            };
            ListRef {
                id,
                name,
                member_type: binding.list.member_type,
                exists: false,
            }
        }
    }
}

/// A member and the values its changes share.
type Current<'a> = (&'a Member, Shared<MemberRef>, MemberVersion);

struct Diff<'a> {
    binding: &'a Binding,
    names: &'a Names,
    snapshot: &'a Snapshot,
    audience_id: &'a str,
    plan: BindingPlan,
    /// Which actions' changes were made in plan order so far.
    order: order::MadeInOrder,
    /// The member whose changes are being made, with the values its changes share.
    current: RefCell<Option<Current<'a>>>,
}

fn text(value: &str) -> Option<Value> {
    Some(Value::Text(value.to_owned()))
}

fn opt_text(value: Option<&str>) -> Option<Value> {
    value.map(|v| Value::Text(v.to_owned()))
}

fn member_ref(m: &Member) -> MemberRef {
    MemberRef::sharing(m.row(), m.status)
}

impl<'a> Diff<'a> {
    fn shared(&self, m: &'a Member) -> (Shared<MemberRef>, MemberVersion) {
        let mut current = self.current.borrow_mut();
        if let Some((cached, member, last_changed)) = current.as_ref() {
            if std::ptr::eq(*cached, m) {
                return (member.clone(), last_changed.clone());
            }
        }
        let member = Shared(Arc::new(member_ref(m)));
        let last_changed = MemberVersion::of_row(m.row());
        *current = Some((m, member.clone(), last_changed.clone()));
        (member, last_changed)
    }

    /// A column name, interned.
    fn col(&self, name: &str) -> Column {
        Column::new(name)
    }

    /// A change of `record` made for member `m` (stale once `m` moved on).
    fn member_change(&self, action: Action, reason: Reason, record: Uuid, m: &'a Member) -> Change {
        let (member, last_changed) = self.shared(m);
        Change::new(action, reason, record).for_member(member, last_changed)
    }

    fn push(&mut self, change: Change) {
        self.order.push(&self.plan.changes, &change);
        self.plan.changes.push(change);
    }

    fn finish(mut self) -> BindingPlan {
        let plan = &mut self.plan;
        self.order.sort(&mut plan.changes);
        plan.counts.clear();
        for c in &plan.changes {
            *plan.counts.entry(c.action).or_default() += 1;
        }
        let problem_key = |p: &Problem| {
            (
                p.code,
                p.member.as_ref().map(|m| m.email().to_lowercase()),
                p.records.clone(),
            )
        };
        plan.errors.sort_by_cached_key(problem_key);
        plan.warnings.sort_by_cached_key(problem_key);
        plan.unmanaged
            .sort_by_cached_key(|u| (u.email.as_ref().map(|e| e.to_lowercase()), u.record));
        self.plan
    }
}
