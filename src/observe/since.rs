//! What a saved plan needs to know about Mailchimp now, without reading the audience: the
//! members changed since the plan's read (`since_last_changed` = the plan's
//! `mailchimp_read_at`, every status, so that members who unsubscribed, were cleaned or
//! archived are seen), plus — one `GET …/members/{key}` each — the members the plan's changes
//! name and those its records may match (by the record's stored Mailchimp id and e-mail, so a
//! CRM edit since the plan cannot hide a match). The CRM side is read in full, as a plan does.
//!
//! From these, [`observe_since`] builds a *partial* snapshot: every member a saved change
//! depends on is in it, with its state now, so the plan computed from it agrees with a full
//! plan on every saved change (which is all [`crate::apply::saved::check_binding`] compares).
//! What a partial snapshot cannot say — how many members the audience has, which list
//! members are unmanaged, the read's digest — is taken from the saved plan
//! ([`Since::settle`]).
//!
//! # Cost
//! Audience (1 request), tags (1 page when tags are synced), changes since the plan (one page
//! per status that changed, usually), and one request per member named ([`DIRECT_LIMIT`] at
//! most; beyond it, or for a plan without `mailchimp_read_at`, [`observe_since`] returns
//! `None` and the caller reads everything, as a plan does).
//!
//! # Limits
//! A member permanently deleted since the plan has no `last_changed` left: when the plan names
//! it, its `GET` answers 404 and it is absent (gone), as a full read would find it.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use uuid::Uuid;

use super::crm::{self, ListSide};
use super::mailchimp::{compact, member_fields, snapshot_tags, statuses_to_read};
use super::{Error, live};
use crate::clients::Clients;
use crate::config::{Binding, MemberStatus, Names};
use crate::mailchimp::{self, ALL_STATUSES, MemberOrder, MemberQuery, MemberRow as _};
use crate::plan::snapshot::{self, MailchimpSide, Snapshot};
use crate::plan::{Action, BindingPlan, GuardReason};

/// The most members read one by one; a saved plan naming more is checked with a full read.
pub const DIRECT_LIMIT: usize = 200;

/// A saved plan's binding as it can be checked now.
#[derive(Debug)]
pub struct Since {
    /// Both sides now: the CRM in full, Mailchimp as far as the saved changes depend on it.
    pub snapshot: Snapshot,
    /// The members (subscriber hashes) of saved changes whose version moved since the plan.
    pub stale: HashSet<String>,
    /// Subscribed members of the audience now (Mailchimp's `stats.member_count`).
    audience_members: u64,
}

impl Since {
    /// Complete `fresh` (planned from [`Self::snapshot`]) with what a partial read cannot know:
    /// the Mailchimp read summary, digest and unmanaged members of `saved` (what was reviewed),
    /// and an empty-audience guard only when the audience is empty now.
    pub fn settle(&self, fresh: &mut BindingPlan, saved: &BindingPlan) {
        fresh.read.members = saved.read.members;
        fresh.read.tags = saved.read.tags;
        fresh.digests.mailchimp.clone_from(&saved.digests.mailchimp);
        fresh.unmanaged.clone_from(&saved.unmanaged);
        let empty_guard = fresh
            .guard
            .as_ref()
            .is_some_and(|g| g.reason == GuardReason::EmptyAudience);
        if empty_guard && self.audience_members > 0 {
            fresh.guard = None;
        }
    }
}

/// The members changed since `since`, every status, in `last_changed` order.
///
/// # Errors
/// Mailchimp could not be read.
pub async fn changed_since(
    client: &mailchimp::Client,
    list_id: &str,
    since: chrono::DateTime<chrono::Utc>,
    fields: Vec<String>,
) -> Result<Vec<mailchimp::Member>, mailchimp::Error> {
    let query = MemberQuery {
        statuses: ALL_STATUSES.to_vec(),
        since_last_changed: Some(since),
        fields: Some(fields),
        order: MemberOrder::LastChanged,
    };
    let mut out = Vec::new();
    let mut pages = client.members(list_id, query);
    while let Some(page) = pages.next().await {
        out.extend(page?);
    }
    Ok(out)
}

/// When the saved binding's Mailchimp read began (`None`: an older plan without the time).
#[must_use]
pub fn read_at(plan: &BindingPlan) -> Option<chrono::DateTime<chrono::Utc>> {
    plan.mailchimp_read_at
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// The member (subscriber hash) and version (`last_changed`) each saved change was planned
/// from.
pub(super) fn planned_versions(plan: &BindingPlan) -> HashMap<&str, &str> {
    plan.changes
        .iter()
        .filter_map(|c| {
            let m = c.member.as_ref()?;
            Some((m.id(), c.precondition.member_last_changed.as_deref()?))
        })
        .collect()
}

/// Of the members `planned` (hash → version), those whose version differs among `changed`
/// (members read since the plan: their status counts when it is no longer read).
pub(super) fn stale_of(
    planned: &HashMap<&str, &str>,
    statuses: &[MemberStatus],
    changed: &[mailchimp::Member],
) -> HashSet<String> {
    changed
        .iter()
        .filter(|m| {
            planned.get(m.id.as_str()).is_some_and(|before| {
                let now = statuses
                    .contains(&m.status)
                    .then(|| m.last_changed.map(|t| t.to_rfc3339()).unwrap_or_default());
                now.as_deref() != Some(*before)
            })
        })
        .map(|m| m.id.clone())
        .collect()
}

/// Both sides of `binding` as far as the saved binding `saved` depends on them (see the module
/// doc); `None` when the plan has no `mailchimp_read_at` or names more than [`DIRECT_LIMIT`]
/// members, so that a full read is cheaper or needed.
///
/// # Errors
/// A read failed.
pub async fn observe_since(
    binding: &Binding,
    names: &Names,
    clients: &Clients,
    saved: &BindingPlan,
) -> Result<Option<Since>, Error> {
    let Some(since) = read_at(saved) else {
        return Ok(None);
    };
    let client = &clients.mailchimp;
    let field_paths = snapshot::member_field_paths(binding);
    let fields = member_fields(&field_paths, binding.tags.sync);
    let statuses = statuses_to_read(binding);
    let audience_id = saved.audience.id.as_str();
    let (audience, now, list_side, changed) = futures::try_join!(
        async { Ok::<_, Error>(client.find_audience(&binding.audience).await?) },
        async { Ok::<_, Error>(client.server_time().await?) },
        crm::observe_list(binding, names, clients),
        async { Ok::<_, Error>(changed_since(client, audience_id, since, fields.clone()).await?) },
    )?;
    if audience.id != audience_id {
        return Ok(None);
    }
    let keys = direct_keys(binding, names, saved, &list_side, &changed);
    if keys.len() > DIRECT_LIMIT {
        return Ok(None);
    }
    let query = MemberQuery {
        statuses: Vec::new(),
        since_last_changed: None,
        fields: Some(fields),
        order: MemberOrder::Signup,
    };
    let (direct, tags) =
        futures::try_join!(client.members_by_key(audience_id, &keys, &query), async {
            if !binding.tags.sync {
                return Ok(Vec::new());
            }
            client.tags(audience_id).await
        })?;
    let stale = stale_of(&planned_versions(saved), &statuses, &changed);
    let mut merged = live::Merged::default();
    for m in changed.iter().chain(&direct) {
        let value = statuses
            .contains(&m.status)
            .then(|| compact(m, &field_paths));
        merged.observe(m.key(), m.version(), value);
    }
    let members = merged.into_members();
    let mailchimp = MailchimpSide {
        audience: snapshot::Audience {
            id: audience.id,
            name: audience.name,
        },
        tags: snapshot_tags(tags),
        field_paths,
        members,
        read_at: Some(live::read_start(now).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    };
    let crm = crm::complete(binding, names, clients, list_side, &mailchimp).await?;
    Ok(Some(Since {
        snapshot: Snapshot { mailchimp, crm },
        stale,
        audience_members: audience.member_count,
    }))
}

/// The keys to read one by one: the members saved changes name, and the stored Mailchimp id
/// and e-mail of every list record a saved change writes, unless already read as changed.
fn direct_keys(
    binding: &Binding,
    names: &Names,
    saved: &BindingPlan,
    list_side: &ListSide,
    changed: &[mailchimp::Member],
) -> Vec<String> {
    let mut known: HashSet<String> = HashSet::new();
    for m in changed {
        known.insert(m.id.clone());
        known.insert(m.email_address.to_lowercase());
        if let Some(c) = &m.contact_id {
            known.insert(c.clone());
        }
    }
    let records: HashSet<Uuid> = saved
        .changes
        .iter()
        .filter(|c| !matches!(c.action, Action::CreateRecord))
        .map(|c| c.record)
        .collect();
    let id_column = names.mailchimp_id_column(binding.list.member_type);
    let mut keys: Vec<String> = Vec::new();
    for m in saved.changes.iter().filter_map(|c| c.member.as_ref()) {
        if !known.contains(m.contact_id()) {
            keys.push(m.id().to_owned());
        }
    }
    // A planned member read by its hash is read with its contact id and address (unchanged
    // since the plan, or it would be among the changed ones): its record needs no other read.
    for m in saved.changes.iter().filter_map(|c| c.member.as_ref()) {
        known.insert(m.contact_id().to_owned());
        known.insert(m.email().to_lowercase());
    }
    for (stored_id, email) in list_side.keys_of(&records, id_column) {
        keys.extend(stored_id);
        keys.extend(email.map(|e| e.to_lowercase()));
    }
    keys.retain(|k| !k.is_empty() && known.insert(k.clone()));
    keys
}
