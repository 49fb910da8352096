//! One applier at a time per binding: the lease on the binding's Audience record (owner, id,
//! operation, expiry), taken and released with `If-Match` through
//! [`ToolTables::acquire_lease`] / [`ToolTables::release_lease`].
//!
//! - The Audience record is created first when missing (deterministic id), since the lease lives
//!   on it.
//! - A lease another holder has and that has not lapsed makes [`acquire`] wait, polling, up to
//!   the lock timeout, then fail with [`Error::Held`] naming the holder; a lapsed lease is taken
//!   over; a version conflict (someone else wrote the record between read and write) is read
//!   again.
//! - A lease whose owner is a process of this host that no longer runs (a killed apply) is
//!   abandoned and taken over at once, so a rerun after a crash does not wait for the lapse.
//! - [`release`] clears the lease only while it is still ours (after a `force-unlock` and a new
//!   holder, it leaves the record alone).

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use crate::dataverse;
use crate::dataverse::records::Created;
use crate::dataverse::records::Outcome;
use crate::dataverse::tables::{AudienceRecord, AudienceStatus, Lease, LeaseOutcome, ToolTables};

/// How long a lease lasts: long enough for a first sync of a large audience; a crashed run's
/// lease lapses after it.
pub const LEASE_DURATION: chrono::Duration = chrono::Duration::minutes(60);

/// How often a waiting applier looks again.
const POLL: Duration = Duration::from_secs(2);

/// Version conflicts read again before giving up.
const MAX_CONFLICTS: u32 = 20;

/// Lease failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another applier holds the lease.
    #[error(
        "binding `{binding}` is being applied by `{}` ({} lease `{}`, until {}); wait for it, retry with `--lock-timeout`, or if that run is gone, `audience-sync force-unlock {binding} {}`",
        holder.owner, holder.operation, holder.id, holder.expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), holder.id
    )]
    Held {
        /// The binding.
        binding: String,
        /// Who holds it.
        holder: Lease,
    },
    /// The Audience record does not exist and the plan does not create it.
    #[error("the Audience record of Mailchimp audience `{0}` is gone since the plan was made")]
    NoRecord(String),
    /// The record kept changing under us.
    #[error("the Audience record of binding `{0}` kept changing; try again")]
    Contended(String),
    /// The CRM refused.
    #[error("the lease could not be taken")]
    Dataverse(#[from] dataverse::Error),
}

/// What an applier says about itself in the lease.
#[derive(Debug, Clone)]
pub struct Claim {
    /// Who (host and process).
    pub owner: String,
    /// What (`apply`).
    pub operation: String,
    /// How long to wait for another holder.
    pub wait: Duration,
}

/// Who this process is, for the lease: `host:pid` (plus the CI run when there is one).
#[must_use]
pub fn owner() -> String {
    // `abandoned` parses this back: keep `host:pid` first.
    let host = host_name();
    let mut owner = format!("{host}:{}", std::process::id());
    if let Ok(run) = std::env::var("GITHUB_RUN_ID") {
        owner.push_str(&format!(" (GitHub run {run})"));
    }
    owner
}

/// This host's name, as leases name it.
#[must_use]
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown-host".to_owned())
}

/// Whether `owner` (as [`owner`] writes it) is a process of this host that no longer runs: its
/// lease is abandoned (a killed run) and may be taken over before it lapses. Pure on its inputs.
#[must_use]
pub fn abandoned(owner: &str, host: &str, alive: impl Fn(u32) -> bool) -> bool {
    let who = owner.split(' ').next().unwrap_or_default();
    let Some((their_host, pid)) = who.rsplit_once(':') else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    their_host == host && pid != std::process::id() && !alive(pid)
}

/// Whether a recorded lease is left over: lapsed, or held by a process of this host that no
/// longer runs (a killed apply).
#[must_use]
pub fn left_over(lease: &Lease, now: chrono::DateTime<Utc>) -> bool {
    lease.expires <= now || abandoned(&lease.owner, &host_name(), process_alive)
}

fn process_alive(pid: u32) -> bool {
    // Where `/proc` is not available nothing is known: assume it runs.
    !Path::new("/proc/self").exists() || Path::new(&format!("/proc/{pid}")).exists()
}

/// A lease held.
#[derive(Debug, Clone)]
pub struct Held {
    /// The lease.
    pub lease: Lease,
    /// The Audience record as read just before the lease was taken.
    pub record: AudienceRecord,
    /// Its version after the lease write.
    pub etag: Option<String>,
    /// The Audience record was created by this call.
    pub created: bool,
    /// The owner of a live lease this call had to wait for: that applier may have changed the
    /// binding since the caller planned, so the caller's plan is stale.
    pub waited_for: Option<String>,
}

/// The Audience record of a Mailchimp audience (the lowest id when several, as `observe` picks).
///
/// # Errors
/// The CRM could not be read.
pub async fn find_record(
    tables: &ToolTables,
    mailchimp_id: &str,
) -> Result<Option<AudienceRecord>, dataverse::Error> {
    Ok(tables
        .audiences_by_mailchimp_id(mailchimp_id)
        .await?
        .into_iter()
        .min_by_key(|a| a.id))
}

/// Take the lease of `binding` on the Audience record of `mailchimp_id`, creating the record as
/// `create` (id, name) says when it is missing.
///
/// # Errors
/// See [`Error`].
pub async fn acquire(
    tables: &ToolTables,
    binding: &str,
    mailchimp_id: &str,
    create: Option<(Uuid, &str)>,
    claim: &Claim,
) -> Result<Held, Error> {
    let started = tokio::time::Instant::now();
    let lease = Lease {
        owner: claim.owner.clone(),
        id: Uuid::new_v4().to_string(),
        operation: claim.operation.clone(),
        expires: Utc::now() + LEASE_DURATION,
    };
    let mut created = false;
    let mut conflicts = 0;
    let mut waited_for = None;
    loop {
        let Some(record) = find_record(tables, mailchimp_id).await? else {
            let Some((id, name)) = create.filter(|_| !created) else {
                return Err(Error::NoRecord(mailchimp_id.to_owned()));
            };
            // A create that meets our own id (a concurrent applier) is as good as ours.
            let (Created::Created | Created::AlreadyExists) =
                tables.create_audience(id, name, mailchimp_id).await?;
            created = true;
            continue;
        };
        let mut lease = lease.clone();
        lease.expires = Utc::now() + LEASE_DURATION;
        match tables.acquire_lease(&record, &lease, Utc::now()).await? {
            LeaseOutcome::Acquired { etag } => {
                return Ok(Held {
                    lease,
                    record,
                    etag,
                    created,
                    waited_for,
                });
            }
            LeaseOutcome::HeldBy(holder)
                if abandoned(&holder.owner, &host_name(), process_alive) =>
            {
                // Its process is gone: take the lease over as if it had lapsed (still with
                // If-Match, so only one taker wins).
                tracing::info!(owner = %holder.owner, lease = %holder.id, "taking over an abandoned lease");
                let after = holder.expires + chrono::Duration::seconds(1);
                match tables.acquire_lease(&record, &lease, after).await? {
                    LeaseOutcome::Acquired { etag } => {
                        return Ok(Held {
                            lease,
                            record,
                            etag,
                            created,
                            waited_for,
                        });
                    }
                    _ => conflicts += 1,
                }
                if conflicts > MAX_CONFLICTS {
                    return Err(Error::Contended(binding.to_owned()));
                }
            }
            LeaseOutcome::HeldBy(holder) => {
                let waited = started.elapsed();
                if waited >= claim.wait {
                    return Err(Error::Held {
                        binding: binding.to_owned(),
                        holder,
                    });
                }
                waited_for = Some(holder.owner);
                tokio::time::sleep(POLL.min(claim.wait - waited)).await;
            }
            LeaseOutcome::Stale => {
                conflicts += 1;
                if conflicts > MAX_CONFLICTS {
                    return Err(Error::Contended(binding.to_owned()));
                }
            }
        }
    }
}

/// Write the status columns while holding the lease; returns the new version.
///
/// # Errors
/// The CRM refused (a version conflict is not an error: the version is then unknown).
pub async fn set_status(
    tables: &ToolTables,
    id: Uuid,
    status: &AudienceStatus,
    etag: Option<&str>,
) -> Result<Option<String>, dataverse::Error> {
    match tables.set_audience_status(id, status, etag).await? {
        Outcome::Written { etag } => Ok(etag),
        Outcome::Stale => Ok(None),
    }
}

/// Release our lease `lease_id` on record `id`, writing the final status. Returns `false` when
/// the lease is no longer ours (released by `force-unlock`), and then writes nothing.
///
/// # Errors
/// The CRM refused.
pub async fn release(
    tables: &ToolTables,
    id: Uuid,
    lease_id: &str,
    status: &AudienceStatus,
    etag: Option<&str>,
) -> Result<bool, dataverse::Error> {
    if let Some(etag) = etag {
        if let Outcome::Written { .. } = tables.release_lease(id, status, Some(etag)).await? {
            return Ok(true);
        }
    }
    for _ in 0..MAX_CONFLICTS {
        let Some(record) = tables.audience(id).await? else {
            return Ok(false);
        };
        if record.lease.as_ref().is_none_or(|l| l.id != lease_id) {
            return Ok(false);
        }
        if let Outcome::Written { .. } = tables
            .release_lease(id, status, record.etag.as_deref())
            .await?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Release lease `lease_id` of a record whatever its holder does (`force-unlock`). Returns the
/// lease released, or `None` when the record holds no such lease.
///
/// # Errors
/// The CRM refused.
pub async fn force_release(
    tables: &ToolTables,
    record: &AudienceRecord,
    lease_id: &str,
) -> Result<Option<Lease>, dataverse::Error> {
    let Some(lease) = record.lease.clone().filter(|l| l.id == lease_id) else {
        return Ok(None);
    };
    let mut status = record.status.clone();
    if status.sync_status == dataverse::schema::sync_status::IN_PROGRESS {
        status.sync_status = dataverse::schema::sync_status::FAILED;
        status.last_message = Some(format!(
            "lease `{}` of `{}` released by force-unlock; the run did not finish",
            lease.id, lease.owner
        ));
    }
    match tables
        .release_lease(record.id, &status, record.etag.as_deref())
        .await?
    {
        Outcome::Written { .. } => Ok(Some(lease)),
        Outcome::Stale => Err(dataverse::Error::Request {
            message: "the Audience record changed while force-unlock ran; run it again".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dead_processes_of_this_host_abandon_their_lease() {
        let dead = |_: u32| false;
        let alive = |_: u32| true;
        assert!(abandoned("box:42", "box", dead));
        assert!(abandoned("box:42 (GitHub run 7)", "box", dead));
        assert!(!abandoned("box:42", "box", alive));
        assert!(!abandoned("other:42", "box", dead));
        assert!(!abandoned("other-pipeline", "box", dead));
        assert!(!abandoned(
            &format!("box:{}", std::process::id()),
            "box",
            dead
        ));
    }
}
