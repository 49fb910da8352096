//! The Mailchimp side of a binding: its audience, tags and members (only the statuses and
//! fields the binding needs, read convergently while the audience changes: [`super::live`]),
//! and two cheap reads — the audience's source version (is there new data?) and which members
//! a saved plan touches changed since its read (only what changed since is read).

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use futures::StreamExt;

use super::{Error, live, scalar_text, since};
use crate::config::{AudienceSelector, Binding, MemberStatus, UnsubscribePolicy};
use crate::mailchimp::{self, MemberOrder, MemberQuery};
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

/// The text of a member field, by path (`merge_fields.ADDRESS.city`, `location.country_code`):
/// every field `validate` accepts. Numbers are decimal text, booleans `true`/`false`, times
/// RFC 3339; the CRM side converts them to each column's type. Text the member holds is
/// borrowed, not copied.
#[must_use]
pub fn member_value<'m>(member: &'m mailchimp::Member, path: &str) -> Option<Cow<'m, str>> {
    let text = |v: Option<&'m String>| v.map(|s| Cow::Borrowed(s.as_str()));
    let time = |t: Option<chrono::DateTime<chrono::FixedOffset>>| t.map(|t| t.to_rfc3339().into());
    match path {
        "email_address" => Some(Cow::Borrowed(member.email_address.as_str())),
        "status" => Some(Cow::Borrowed(member.status.as_str())),
        "contact_id" => text(member.contact_id.as_ref()),
        "unique_email_id" => text(member.unique_email_id.as_ref()),
        "full_name" => text(member.full_name.as_ref()),
        "email_type" => text(member.email_type.as_ref()),
        "language" => text(member.language.as_ref()),
        "vip" => Some(member.vip.to_string().into()),
        "member_rating" => member.member_rating.map(|r| r.to_string().into()),
        "web_id" => member.web_id.map(|w| w.to_string().into()),
        "unsubscribe_reason" => text(member.unsubscribe_reason.as_ref()),
        "ip_signup" => text(member.ip_signup.as_ref()),
        "ip_opt" => text(member.ip_opt.as_ref()),
        "source" => text(member.source.as_ref()),
        "timestamp_signup" => time(member.timestamp_signup),
        "timestamp_opt" => time(member.timestamp_opt),
        "last_changed" => time(member.last_changed),
        "tags" => Some(
            member
                .tags
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
                .into(),
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
                return value
                    .get(part)
                    .and_then(scalar_text)
                    .map(|t| Cow::Owned(t.into_owned()));
            }
            None
        }
    }
}

pub(super) async fn observe(
    binding: &Binding,
    client: &mailchimp::Client,
) -> Result<MailchimpSide, Error> {
    let (audience, now) = futures::try_join!(
        client.find_audience(&binding.audience),
        client.server_time()
    )?;
    let field_paths = snapshot::member_field_paths(binding);
    let fields = member_fields(&field_paths, binding.tags.sync);
    let statuses = statuses_to_read(binding);
    let tags = async {
        if !binding.tags.sync {
            return Ok(Vec::new());
        }
        Ok::<_, mailchimp::Error>(snapshot_tags(client.tags(&audience.id).await?))
    };
    let start = live::read_start(now);
    let projection = Arc::new(mailchimp::Projection::new(&field_paths));
    let expected = audience.total_contacts.unwrap_or(audience.member_count);
    let spec = live::Spec {
        list_id: &audience.id,
        statuses: &statuses,
        fields,
        start,
        expected: usize::try_from(expected).unwrap_or(usize::MAX),
    };
    let members = live::read(client, spec, Arc::clone(&projection), |member| {
        compact_projected(member, &projection)
    });
    let (tags, members) = futures::try_join!(tags, members)?;
    let members = crate::plan::diff::in_visit_order(members);
    Ok(MailchimpSide {
        audience: snapshot::Audience {
            id: audience.id,
            name: audience.name,
        },
        tags,
        field_paths,
        members,
        read_at: Some(start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    })
}

/// Mailchimp's tags as the snapshot keeps them.
pub(super) fn snapshot_tags(tags: Vec<mailchimp::Tag>) -> Vec<snapshot::Tag> {
    tags.into_iter()
        .map(|t| snapshot::Tag {
            id: t.id,
            name: t.name,
            member_count: t.member_count,
        })
        .collect()
}

/// A member as the snapshot keeps it.
pub(super) fn compact(member: &mailchimp::Member, field_paths: &[String]) -> snapshot::Member {
    let values: Vec<Option<Cow<'_, str>>> = field_paths
        .iter()
        .map(|p| member_value(member, p))
        .collect();
    let last_changed = member
        .last_changed
        .map(|t| t.to_rfc3339())
        .unwrap_or_default();
    snapshot::Member::new(
        &member.id,
        member.contact_id.as_deref().unwrap_or_default(),
        &member.email_address,
        member.status,
        &last_changed,
        values.iter().map(Option::as_deref),
        member.tags.iter().map(|t| t.id).collect(),
    )
}

/// A member read through a [`mailchimp::Projection`] of the snapshot's field paths, as the
/// snapshot keeps it (the same as [`compact`] of the whole member).
fn compact_projected(
    member: &mailchimp::Projected,
    projection: &mailchimp::Projection,
) -> snapshot::Member {
    let joined = member.joined_tags(projection);
    snapshot::Member::new(
        member.id(),
        member.contact_id(),
        member.email(),
        member.status(),
        member.last_changed(),
        (0..projection.len()).map(|i| projection.value(member, i, joined.as_deref())),
        member.tag_ids().to_vec(),
    )
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
/// was made, or who are no longer read for the binding, by subscriber hash.
///
/// Cheap when the plan says when its read began (`mailchimp_read_at`): only the members
/// changed since then are read ([`super::since::changed_since`]), usually one page per status.
/// A member permanently deleted since the plan has no `last_changed` left to read: the check
/// cannot see it, and the next plan removes it. Plans without the time fall back to one paged
/// read of the binding's statuses.
///
/// # Errors
/// Mailchimp could not be read.
pub async fn stale_members(
    client: &mailchimp::Client,
    binding: &Binding,
    plan: &BindingPlan,
) -> Result<HashSet<String>, Error> {
    let planned = since::planned_versions(plan);
    if planned.is_empty() {
        return Ok(HashSet::new());
    }
    let statuses = statuses_to_read(binding);
    let fields = vec!["last_changed".to_owned()];
    if let Some(at) = since::read_at(plan) {
        let changed = since::changed_since(client, &plan.audience.id, at, fields).await?;
        return Ok(since::stale_of(&planned, &statuses, &changed));
    }
    let query = MemberQuery {
        statuses: statuses.clone(),
        since_last_changed: None,
        fields: Some(fields),
        order: MemberOrder::LastChanged,
    };
    let mut read: HashSet<String> = HashSet::new();
    let mut stale = HashSet::new();
    let mut pages = client.members(&plan.audience.id, query);
    while let Some(page) = pages.next().await {
        let page = page?;
        read.extend(page.iter().map(|m| m.id.clone()));
        stale.extend(since::stale_of(&planned, &statuses, &page));
    }
    // A member the full read no longer finds left the statuses read: stale too.
    stale.extend(
        planned
            .keys()
            .filter(|id| !read.contains(**id))
            .map(|id| (*id).to_owned()),
    );
    Ok(stale)
}
