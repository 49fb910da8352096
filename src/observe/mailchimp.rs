//! The Mailchimp side of a binding: its audience, tags and members (only the statuses and
//! fields the binding needs), and two cheap reads — the audience's source version (is there
//! new data?) and the current version of the members a saved plan touches.

use std::collections::{BTreeSet, HashMap, HashSet};

use futures::StreamExt;

use super::{Error, scalar_text};
use crate::config::{AudienceSelector, Binding, MemberStatus, UnsubscribePolicy};
use crate::mailchimp::{self, MemberQuery};
use crate::plan::BindingPlan;
use crate::plan::snapshot::{self, MailchimpSide};

/// The statuses read from Mailchimp for a binding: the selected ones, and those that carry a
/// consent change the binding acts on.
#[must_use]
pub fn statuses_to_read(binding: &Binding) -> Vec<MemberStatus> {
    let mut statuses: BTreeSet<MemberStatus> = binding.statuses.clone();
    if binding.on_unsubscribe != UnsubscribePolicy::Keep {
        statuses.insert(MemberStatus::Unsubscribed);
        statuses.insert(MemberStatus::Cleaned);
    }
    if binding.prune_members {
        // Archived members would read as simply gone; reading them names the reason.
        statuses.insert(MemberStatus::Archived);
    }
    statuses.into_iter().collect()
}

/// The `fields=` member fields needed for these paths (top-level names).
#[must_use]
pub fn member_fields(paths: &[String], with_tags: bool) -> Vec<String> {
    let mut fields: BTreeSet<String> = paths
        .iter()
        .map(|p| p.split('.').next().unwrap_or(p).to_owned())
        .filter(|f| !matches!(f.as_str(), "id" | "email_address" | "status" | "contact_id"))
        .collect();
    fields.insert("last_changed".to_owned());
    if with_tags {
        fields.insert("tags".to_owned());
    }
    fields.into_iter().collect()
}

/// The text of a member field, by path (`merge_fields.ADDRESS.city`, `location.country_code`).
#[must_use]
pub fn member_value(member: &mailchimp::Member, path: &str) -> Option<String> {
    let text = |v: Option<&String>| v.cloned();
    match path {
        "email_address" => Some(member.email_address.clone()),
        "status" => Some(member.status.as_str().to_owned()),
        "contact_id" => text(member.contact_id.as_ref()),
        "unique_email_id" => text(member.unique_email_id.as_ref()),
        "language" => text(member.language.as_ref()),
        "vip" => Some(member.vip.to_string()),
        "timestamp_signup" => member.timestamp_signup.map(|t| t.to_rfc3339()),
        "last_changed" => member.last_changed.map(|t| t.to_rfc3339()),
        "tags" => Some(
            member
                .tags
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        _ => {
            if let Some(rest) = path.strip_prefix("merge_fields.") {
                let mut parts = rest.splitn(2, '.');
                let tag = parts.next()?;
                let value = member.merge_fields.get(tag)?;
                return match parts.next() {
                    None => scalar_text(value),
                    Some(part) => value.get(part).and_then(scalar_text),
                };
            }
            if let Some(part) = path.strip_prefix("location.") {
                let location = member.location.as_ref()?;
                let value = serde_json::to_value(location).ok()?;
                return value.get(part).and_then(scalar_text);
            }
            None
        }
    }
}

pub(super) async fn observe(
    binding: &Binding,
    client: &mailchimp::Client,
) -> Result<MailchimpSide, Error> {
    let audience = client.find_audience(&binding.audience).await?;
    let tags = if binding.tags.sync {
        client
            .tags(&audience.id)
            .await?
            .into_iter()
            .map(|t| snapshot::Tag {
                id: t.id,
                name: t.name,
                member_count: t.member_count,
            })
            .collect()
    } else {
        Vec::new()
    };
    let field_paths = snapshot::member_field_paths(binding);
    let query = MemberQuery {
        statuses: statuses_to_read(binding),
        since_last_changed: None,
        fields: Some(member_fields(&field_paths, binding.tags.sync)),
    };
    let mut members = Vec::new();
    let mut pages = client.members(&audience.id, query);
    while let Some(page) = pages.next().await {
        for member in page? {
            let values: Vec<Option<String>> = field_paths
                .iter()
                .map(|p| member_value(&member, p))
                .collect();
            let last_changed = member
                .last_changed
                .map(|t| t.to_rfc3339())
                .unwrap_or_default();
            let contact_id = member.contact_id.clone().unwrap_or_default();
            members.push(snapshot::Member::new(
                &member.id,
                &contact_id,
                &member.email_address,
                member.status,
                &last_changed,
                values.iter().map(Option::as_deref),
                member.tags.iter().map(|t| t.id).collect(),
            ));
        }
    }
    Ok(MailchimpSide {
        audience: snapshot::Audience {
            id: audience.id,
            name: audience.name,
        },
        tags,
        field_paths,
        members,
    })
}

/// The Mailchimp audience id of a binding (looked up when the config names it by name).
///
/// # Errors
/// Mailchimp could not be read, or has no such audience.
pub async fn audience_id(
    client: &mailchimp::Client,
    binding: &Binding,
) -> Result<String, mailchimp::Error> {
    match &binding.audience {
        AudienceSelector::Id(id) => Ok(id.clone()),
        AudienceSelector::Name(name) => Ok(client
            .find_audience(&mailchimp::AudienceSelector::Name(name.clone()))
            .await?
            .id),
    }
}

/// A cheap version of a binding's Mailchimp side (three small requests: the audience, its most
/// recently changed member with the member count, its tags). `watch` reports it as a run's
/// source digest and asks for it while a failing binding backs off, so that new data is tried
/// at once while the same failing input is not retried in a hot loop.
///
/// # Errors
/// Mailchimp could not be read.
pub async fn source_version(
    client: &mailchimp::Client,
    binding: &Binding,
) -> Result<String, mailchimp::Error> {
    use sha2::{Digest as _, Sha256};
    let audience = client.find_audience(&binding.audience).await?;
    let (members, latest) = client.latest_change(&audience.id).await?;
    let mut tags: Vec<(u64, String)> = client
        .tags(&audience.id)
        .await?
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect();
    tags.sort();
    let mut hash = Sha256::new();
    hash.update(format!(
        "{}\n{members}\n{}\n",
        audience.id,
        latest.unwrap_or_default()
    ));
    for (id, name) in tags {
        hash.update(format!("{id}\t{name}\n"));
    }
    Ok(format!("sha256:{}", hex::encode(hash.finalize())))
}

/// The members of a saved `plan` whose Mailchimp version (`last_changed`) moved since the plan
/// was made, or who are no longer read for the binding, by subscriber hash: one paged read of
/// the binding's statuses with a `fields=` projection of `last_changed` only.
///
/// # Errors
/// Mailchimp could not be read.
pub async fn stale_members(
    client: &mailchimp::Client,
    binding: &Binding,
    plan: &BindingPlan,
) -> Result<HashSet<String>, Error> {
    let seen: HashMap<&str, &str> = plan
        .changes
        .iter()
        .filter_map(|c| {
            let m = c.member.as_ref()?;
            Some((
                m.id.as_str(),
                c.precondition.member_last_changed.as_deref()?,
            ))
        })
        .collect();
    if seen.is_empty() {
        return Ok(HashSet::new());
    }
    let query = MemberQuery {
        statuses: statuses_to_read(binding),
        since_last_changed: None,
        fields: Some(vec!["last_changed".to_owned()]),
    };
    let mut now: HashMap<String, String> = HashMap::new();
    let mut pages = client.members(&plan.audience.id, query);
    while let Some(page) = pages.next().await {
        for member in page? {
            if seen.contains_key(member.id.as_str()) {
                let changed = member
                    .last_changed
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default();
                now.insert(member.id, changed);
            }
        }
    }
    Ok(seen
        .into_iter()
        .filter(|(id, before)| now.get(*id).map(String::as_str) != Some(*before))
        .map(|(id, _)| id.to_owned())
        .collect())
}
