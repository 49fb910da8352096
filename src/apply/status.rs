//! The sync status of a binding as recorded in the CRM: its Audience record (status, times,
//! counts, last message, lease) and its latest Sync Run record. Read-only.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::dataverse::query::{Filter, Query};
use crate::dataverse::records::{Row, guid, text};
use crate::dataverse::schema::{sync_run, sync_status};
use crate::dataverse::tables::{AudienceRecord, LeaseState, ToolTables, lease_state};
use crate::dataverse::{self};

/// A sync status code as a person reads it.
#[must_use]
pub fn status_label(code: i64) -> &'static str {
    match code {
        sync_status::NEVER => "Never synced",
        sync_status::IN_PROGRESS => "In Progress",
        sync_status::SUCCEEDED => "Synced",
        sync_status::PARTIAL => "Synced with errors",
        sync_status::FAILED => "Error",
        _ => "Unknown",
    }
}

/// The lease as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseView {
    /// Its id (for `force-unlock`).
    pub id: String,
    /// Who holds it.
    pub owner: String,
    /// What the holder does.
    pub operation: String,
    /// When it lapses.
    pub expires: DateTime<Utc>,
    /// It has lapsed (a crashed run): the next apply takes it over.
    pub lapsed: bool,
}

/// A Sync Run record as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunView {
    /// Its id.
    pub id: Uuid,
    /// Start.
    pub started: Option<String>,
    /// End.
    pub ended: Option<String>,
    /// Outcome.
    pub status: String,
    /// Records created.
    pub created: Option<i64>,
    /// Records updated.
    pub updated: Option<i64>,
    /// Members removed.
    pub removed: Option<i64>,
    /// Failed changes.
    pub failed: Option<i64>,
    /// Summary and first failures.
    pub message: Option<String>,
}

/// The status of one binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindingStatus {
    /// The binding.
    pub binding: String,
    /// The Mailchimp audience id.
    pub audience: String,
    /// The Audience record, when there is one.
    pub record: Option<Uuid>,
    /// The sync status.
    pub status: String,
    /// Start of the last sync.
    pub last_sync_start: Option<DateTime<Utc>>,
    /// End of the last sync.
    pub last_sync_end: Option<DateTime<Utc>>,
    /// List members after the last sync.
    pub member_count: Option<i64>,
    /// The last message.
    pub last_message: Option<String>,
    /// The lease, when one is recorded.
    pub lease: Option<LeaseView>,
    /// The latest Sync Run record.
    pub last_run: Option<RunView>,
}

/// Read the status of `binding` (Mailchimp audience `audience`) from the CRM.
///
/// # Errors
/// The CRM could not be read.
pub async fn read(
    tables: &ToolTables,
    binding: &str,
    audience: &str,
) -> Result<BindingStatus, dataverse::Error> {
    let record: Option<AudienceRecord> = super::lease::find_record(tables, audience).await?;
    let Some(record) = record else {
        return Ok(BindingStatus {
            binding: binding.to_owned(),
            audience: audience.to_owned(),
            record: None,
            status: status_label(sync_status::NEVER).to_owned(),
            last_sync_start: None,
            last_sync_end: None,
            member_count: None,
            last_message: None,
            lease: None,
            last_run: None,
        });
    };
    let lease = match lease_state(&record, Utc::now()) {
        LeaseState::Free => None,
        LeaseState::Held(l) | LeaseState::Lapsed(l) => Some(LeaseView {
            lapsed: l.expires <= Utc::now(),
            id: l.id,
            owner: l.owner,
            operation: l.operation,
            expires: l.expires,
        }),
    };
    let last_run = latest_run(tables, record.id).await?;
    Ok(BindingStatus {
        binding: binding.to_owned(),
        audience: audience.to_owned(),
        record: Some(record.id),
        status: status_label(record.status.sync_status).to_owned(),
        last_sync_start: record.status.last_sync_start,
        last_sync_end: record.status.last_sync_end,
        member_count: record.status.member_count,
        last_message: record.status.last_message,
        lease,
        last_run,
    })
}

async fn latest_run(
    tables: &ToolTables,
    audience: Uuid,
) -> Result<Option<RunView>, dataverse::Error> {
    let table = tables.schema.sync_run();
    let lookup = format!("_{}_value", sync_run::AUDIENCE);
    let query = Query::new(table.entity_set.clone())
        .select([
            table.primary_id.clone(),
            sync_run::STARTED.to_owned(),
            sync_run::ENDED.to_owned(),
            sync_run::STATUS.to_owned(),
            sync_run::CREATED.to_owned(),
            sync_run::UPDATED.to_owned(),
            sync_run::REMOVED.to_owned(),
            sync_run::FAILED.to_owned(),
            sync_run::MESSAGE.to_owned(),
        ])
        .filter(Filter::eq(&lookup, audience))
        .orderby(format!("{} desc", sync_run::STARTED))
        .top(1);
    let rows: Vec<Row> = tables.client.collect(&query).await?;
    let int = |row: &Row, c: &str| row.get(c).and_then(Value::as_i64);
    Ok(rows.first().and_then(|row| {
        Some(RunView {
            id: guid(row, &table.primary_id)?,
            started: text(row, sync_run::STARTED),
            ended: text(row, sync_run::ENDED),
            status: status_label(int(row, sync_run::STATUS).unwrap_or(-1)).to_owned(),
            created: int(row, sync_run::CREATED),
            updated: int(row, sync_run::UPDATED),
            removed: int(row, sync_run::REMOVED),
            failed: int(row, sync_run::FAILED),
            message: text(row, sync_run::MESSAGE),
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_code_has_a_label() {
        assert_eq!(status_label(sync_status::SUCCEEDED), "Synced");
        assert_eq!(status_label(sync_status::PARTIAL), "Synced with errors");
        assert_eq!(status_label(sync_status::IN_PROGRESS), "In Progress");
        assert_eq!(status_label(42), "Unknown");
    }
}
