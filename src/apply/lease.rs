//! One applier at a time per binding: a short lease on the binding's Audience record (owner,
//! id, operation, expiry), taken, renewed and released with `If-Match` through
//! [`ToolTables::acquire_lease`] / [`ToolTables::release_lease`] and a heartbeat ([`Guard`]).
//!
//! - The Audience record is created first when missing (deterministic id), since the lease lives
//!   on it.
//! - The lease lasts [`Claim::term`] (default [`DEFAULT_TERM`], one minute) and the [`Guard`]'s
//!   heartbeat renews it every third of that. A holder that stops renewing (killed, paused,
//!   cut off) is taken over once the recorded expiry has passed, on any host and whatever its
//!   PID: the holder is named by a per-run identity ([`owner`]: a UUID v4, plus host and PID for
//!   people), never recognised by host and PID.
//! - A lease another holder has and that has not lapsed makes [`acquire`] wait, polling until
//!   just after its expiry, up to the lock timeout, then fail with [`Error::Held`] naming the
//!   holder; a version conflict (someone else wrote the record between read and write) is read
//!   again. Take-over and renewal are conditional writes (`If-Match`), so of two racing
//!   processes only one wins.
//! - A holder that could not renew before its lease ran out (by its own monotonic clock, with a
//!   margin for the recorded expiry's whole seconds), or finds the record holding another lease,
//!   has *lost* it: [`Signal::is_lost`] turns true, the run's write gate
//!   ([`crate::http::gate`]) refuses every further request of the writing task, and the run
//!   writes nothing more (no status, no release: the record is someone else's).
//! - [`release`] clears the lease only while it is still ours (after a `force-unlock` and a new
//!   holder, it leaves the record alone).
//!
//! Clocks: expiries are compared with the reader's wall clock, so hosts whose clocks disagree by
//! more than the renewal interval can take over early; run NTP (as every Kubernetes node does).

mod guard;

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use uuid::Uuid;

pub use guard::{Guard, Released, Signal};

use crate::dataverse;
use crate::dataverse::records::Created;
use crate::dataverse::records::Outcome;
use crate::dataverse::tables::{AudienceRecord, AudienceStatus, Lease, LeaseOutcome, ToolTables};

/// How long a lease lasts unless the claim says otherwise: long enough to ride out a few failed
/// renewals, short enough that a dead holder blocks nobody for long.
pub const DEFAULT_TERM: Duration = Duration::from_secs(60);

/// The shortest lease (the recorded expiry has whole seconds; renewal needs some room).
pub const MIN_TERM: Duration = Duration::from_secs(3);

/// What this process did with leases, for `/metrics` (process-wide, since a process run is one
/// holder identity).
#[derive(Debug)]
pub struct Stats {
    /// Leases held right now (a [`Guard`] alive).
    pub held: std::sync::atomic::AtomicU64,
    /// Successful renewals.
    pub renewals: std::sync::atomic::AtomicU64,
    /// Leases lost (not renewed before they ran out, or taken from us).
    pub lost: std::sync::atomic::AtomicU64,
    /// Lapsed leases of other holders taken over.
    pub taken_over: std::sync::atomic::AtomicU64,
}

static STATS: Stats = Stats {
    held: std::sync::atomic::AtomicU64::new(0),
    renewals: std::sync::atomic::AtomicU64::new(0),
    lost: std::sync::atomic::AtomicU64::new(0),
    taken_over: std::sync::atomic::AtomicU64::new(0),
};

/// This process's lease counters.
#[must_use]
pub fn stats() -> &'static Stats {
    &STATS
}

/// How often a waiting applier looks again at most.
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
    /// Who: [`owner`].
    pub owner: String,
    /// What (`apply`, `watch`).
    pub operation: String,
    /// How long to wait for another holder.
    pub wait: Duration,
    /// How long the lease lasts without renewal (at least [`MIN_TERM`]).
    pub term: Duration,
}

impl Claim {
    /// A claim by this process run for `operation`, waiting up to `wait`, for leases of `term`.
    #[must_use]
    pub fn new(operation: &str, wait: Duration, term: Duration) -> Self {
        Self {
            owner: owner(),
            operation: operation.to_owned(),
            wait,
            term,
        }
    }

    fn term(&self) -> Duration {
        self.term.max(MIN_TERM)
    }
}

/// Who this process run is, for the lease: `host:pid run <uuid v4>` (plus the CI run when there
/// is one). The UUID makes it unique per run: a restarted container that is PID 1 again, or a
/// host name reused, is a different holder. Host and PID are there for people only.
#[must_use]
pub fn owner() -> String {
    static OWNER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    OWNER
        .get_or_init(|| {
            let mut owner = format!(
                "{}:{} run {}",
                host_name(),
                std::process::id(),
                Uuid::new_v4()
            );
            if let Ok(run) = std::env::var("GITHUB_RUN_ID") {
                owner.push_str(&format!(" (GitHub run {run})"));
            }
            owner
        })
        .clone()
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

/// Whether a recorded lease is left over (lapsed: its holder stopped renewing it).
#[must_use]
pub fn left_over(lease: &Lease, now: DateTime<Utc>) -> bool {
    lease.expires <= now
}

/// The expiry to record for a lease of `term` starting now, in whole seconds as the column keeps
/// them: rounded up, so the holder's deadline (taken from it) is never shorter than the term.
fn expiry(term: Duration) -> DateTime<Utc> {
    let at = Utc::now() + chrono::Duration::from_std(term).unwrap_or(chrono::Duration::MAX);
    DateTime::from_timestamp(at.timestamp() + 1, 0).unwrap_or(at)
}

/// The local deadline of a lease recorded as expiring at `expires`, written at `sent`: a little
/// before the expiry, so that we stop before anyone may take over.
fn deadline(sent: Instant, expires: DateTime<Utc>, term: Duration) -> Instant {
    let left = (expires - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    sent + left.saturating_sub(term / 10)
}

/// A lease taken.
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
    /// The lapsed lease this call took over (its holder stopped renewing it).
    pub taken_over: Option<Lease>,
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
/// `create` (id, name) says when it is missing. The lease is not renewed: hold it with
/// [`Guard::hold`] (or [`hold`]) for a run.
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
    let started = Instant::now();
    let id = Uuid::new_v4().to_string();
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
        let lease = Lease {
            owner: claim.owner.clone(),
            id: id.clone(),
            operation: claim.operation.clone(),
            expires: expiry(claim.term()),
        };
        let now = Utc::now();
        let taken_over = record.lease.clone().filter(|l| left_over(l, now));
        match tables.acquire_lease(&record, &lease, now).await? {
            LeaseOutcome::Acquired { etag } => {
                if let Some(old) = &taken_over {
                    STATS
                        .taken_over
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(binding, owner = %old.owner, lease = %old.id, "took over a lease its holder stopped renewing");
                }
                return Ok(Held {
                    lease,
                    record,
                    etag,
                    created,
                    waited_for,
                    taken_over,
                });
            }
            LeaseOutcome::HeldBy(holder) => {
                let waited = started.elapsed();
                if waited >= claim.wait {
                    return Err(Error::Held {
                        binding: binding.to_owned(),
                        holder,
                    });
                }
                // Look again just after it runs out (its holder may renew it before).
                let until_expiry = (holder.expires - Utc::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    + Duration::from_millis(100);
                tracing::info!(binding, owner = %holder.owner, lease = %holder.id, "the lease is held; waiting");
                waited_for = Some(holder.owner);
                tokio::time::sleep(POLL.min(until_expiry).min(claim.wait - waited)).await;
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
