//! The tool's own tables: the Audience record (sync status, counts, last message, and the apply
//! lease), Tag records, and Sync Run records, named by the [`Schema`].
//!
//! Invariants: the lease is only ever taken or released with `If-Match` on the version read, so
//! two appliers can never both believe they hold it; the lease decision itself
//! ([`lease_state`]) is pure.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::client::Client;
use super::error::Error;
use super::query::{Filter, Query};
use super::records::{Created, Outcome, Row, etag, guid, text};
use super::schema::{Schema, audience, sync_run, tag};

/// Access to the tool's tables under one schema.
#[derive(Debug, Clone)]
pub struct ToolTables {
    /// The client.
    pub client: Client,
    /// The schema (names).
    pub schema: Schema,
}

/// The apply lease on an Audience record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Who holds it (host, process, pipeline).
    pub owner: String,
    /// Its id (printed, and given to `force-unlock`).
    pub id: String,
    /// What the holder does, e.g. `apply`.
    pub operation: String,
    /// When it lapses.
    pub expires: DateTime<Utc>,
}

/// An Audience record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudienceRecord {
    /// Its id.
    pub id: Uuid,
    /// Its version.
    pub etag: Option<String>,
    /// Name.
    pub name: String,
    /// The Mailchimp audience id.
    pub mailchimp_id: String,
    /// The sync status.
    pub status: AudienceStatus,
    /// The lease, when one is recorded (held or lapsed).
    pub lease: Option<Lease>,
}

/// The status columns of an Audience record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AudienceStatus {
    /// See [`super::schema::sync_status`].
    pub sync_status: i64,
    /// Start of the last sync.
    pub last_sync_start: Option<DateTime<Utc>>,
    /// End of the last sync.
    pub last_sync_end: Option<DateTime<Utc>>,
    /// List members after the last sync.
    pub member_count: Option<i64>,
    /// Records created.
    pub created: Option<i64>,
    /// Records updated.
    pub updated: Option<i64>,
    /// Members removed.
    pub removed: Option<i64>,
    /// Failed operations.
    pub failed: Option<i64>,
    /// The last message.
    pub last_message: Option<String>,
}

/// A Tag record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRecord {
    /// Its id.
    pub id: Uuid,
    /// Its version.
    pub etag: Option<String>,
    /// The tag's name.
    pub name: String,
    /// The Mailchimp tag id.
    pub mailchimp_id: String,
    /// Its Audience record.
    pub audience: Option<Uuid>,
}

/// A Sync Run record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRun {
    /// Its id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Its Audience record.
    pub audience: Uuid,
    /// Start.
    pub started: DateTime<Utc>,
    /// End.
    pub ended: Option<DateTime<Utc>>,
    /// See [`super::schema::sync_status`].
    pub status: i64,
    /// Records created.
    pub created: i64,
    /// Records updated.
    pub updated: i64,
    /// Members removed.
    pub removed: i64,
    /// Failed operations.
    pub failed: i64,
    /// Summary or error.
    pub message: Option<String>,
}

/// Who may take the lease now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseState {
    /// Nobody holds it.
    Free,
    /// Someone holds it and it has not lapsed.
    Held(Lease),
    /// It was held but lapsed (a crashed run): it may be taken.
    Lapsed(Lease),
}

/// Decide the lease state of a record at `now` (pure).
#[must_use]
pub fn lease_state(record: &AudienceRecord, now: DateTime<Utc>) -> LeaseState {
    match &record.lease {
        None => LeaseState::Free,
        Some(lease) if lease.expires > now => LeaseState::Held(lease.clone()),
        Some(lease) => LeaseState::Lapsed(lease.clone()),
    }
}

/// The result of trying to take the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// Taken; the record's new version when known.
    Acquired {
        /// The new ETag.
        etag: Option<String>,
    },
    /// Another holder has it.
    HeldBy(Lease),
    /// The record changed between read and write (someone else was quicker): read again.
    Stale,
}

fn date(row: &Row, column: &str) -> Option<DateTime<Utc>> {
    row.get(column)
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

fn int(row: &Row, column: &str) -> Option<i64> {
    row.get(column).and_then(Value::as_i64)
}

fn fmt_date(d: DateTime<Utc>) -> String {
    d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn opt_date(d: Option<DateTime<Utc>>) -> Value {
    d.map_or(Value::Null, |d| Value::String(fmt_date(d)))
}

impl ToolTables {
    /// Tool tables through `client`, named by `schema`.
    #[must_use]
    pub fn new(client: Client, schema: Schema) -> Self {
        Self { client, schema }
    }

    fn audience_columns(&self) -> Vec<String> {
        let mut c = vec![self.schema.audience().primary_id.clone()];
        c.extend(
            [
                audience::NAME,
                audience::MAILCHIMP_ID,
                audience::SYNC_STATUS,
                audience::LAST_SYNC_START,
                audience::LAST_SYNC_END,
                audience::MEMBER_COUNT,
                audience::CREATED,
                audience::UPDATED,
                audience::REMOVED,
                audience::FAILED,
                audience::LAST_MESSAGE,
                audience::LEASE_OWNER,
                audience::LEASE_ID,
                audience::LEASE_OPERATION,
                audience::LEASE_EXPIRES,
            ]
            .map(str::to_owned),
        );
        c
    }

    fn parse_audience(&self, row: &Row) -> Option<AudienceRecord> {
        let lease = match (
            text(row, audience::LEASE_ID).filter(|s| !s.is_empty()),
            date(row, audience::LEASE_EXPIRES),
        ) {
            (Some(id), Some(expires)) => Some(Lease {
                owner: text(row, audience::LEASE_OWNER).unwrap_or_default(),
                id,
                operation: text(row, audience::LEASE_OPERATION).unwrap_or_default(),
                expires,
            }),
            _ => None,
        };
        Some(AudienceRecord {
            id: guid(row, &self.schema.audience().primary_id)?,
            etag: etag(row),
            name: text(row, audience::NAME).unwrap_or_default(),
            mailchimp_id: text(row, audience::MAILCHIMP_ID).unwrap_or_default(),
            status: AudienceStatus {
                sync_status: int(row, audience::SYNC_STATUS).unwrap_or(0),
                last_sync_start: date(row, audience::LAST_SYNC_START),
                last_sync_end: date(row, audience::LAST_SYNC_END),
                member_count: int(row, audience::MEMBER_COUNT),
                created: int(row, audience::CREATED),
                updated: int(row, audience::UPDATED),
                removed: int(row, audience::REMOVED),
                failed: int(row, audience::FAILED),
                last_message: text(row, audience::LAST_MESSAGE),
            },
            lease,
        })
    }

    /// Every Audience record.
    ///
    /// # Errors
    /// Any failure.
    pub async fn audiences(&self) -> Result<Vec<AudienceRecord>, Error> {
        let query =
            Query::new(self.schema.audience().entity_set.clone()).select(self.audience_columns());
        let rows: Vec<Row> = self.client.collect(&query).await?;
        Ok(rows.iter().filter_map(|r| self.parse_audience(r)).collect())
    }

    /// The Audience record by id.
    ///
    /// # Errors
    /// Any failure but "not found".
    pub async fn audience(&self, id: Uuid) -> Result<Option<AudienceRecord>, Error> {
        let columns = self.audience_columns();
        let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
        let row = self
            .client
            .retrieve(&self.schema.audience().entity_set, id, &columns)
            .await?;
        Ok(row.and_then(|r| self.parse_audience(&r)))
    }

    /// The Audience records of a Mailchimp audience id (normally one).
    ///
    /// # Errors
    /// Any failure.
    pub async fn audiences_by_mailchimp_id(
        &self,
        mailchimp_id: &str,
    ) -> Result<Vec<AudienceRecord>, Error> {
        let query = Query::new(self.schema.audience().entity_set.clone())
            .select(self.audience_columns())
            .filter(Filter::eq(audience::MAILCHIMP_ID, mailchimp_id));
        let rows: Vec<Row> = self.client.collect(&query).await?;
        Ok(rows.iter().filter_map(|r| self.parse_audience(r)).collect())
    }

    /// Create an Audience record with a client-chosen id.
    ///
    /// # Errors
    /// Any refusal but "already exists".
    pub async fn create_audience(
        &self,
        id: Uuid,
        name: &str,
        mailchimp_id: &str,
    ) -> Result<Created, Error> {
        let table = self.schema.audience();
        let mut body = Map::new();
        body.insert(table.primary_id.clone(), json!(id));
        body.insert(audience::NAME.to_owned(), json!(name));
        body.insert(audience::MAILCHIMP_ID.to_owned(), json!(mailchimp_id));
        body.insert(
            audience::SYNC_STATUS.to_owned(),
            json!(super::schema::sync_status::NEVER),
        );
        self.client
            .create(&table.entity_set, &Value::Object(body))
            .await
    }

    /// Write the status columns (the lease columns are left alone).
    ///
    /// # Errors
    /// The record does not exist, or any other refusal.
    pub async fn set_audience_status(
        &self,
        id: Uuid,
        status: &AudienceStatus,
        if_match: Option<&str>,
    ) -> Result<Outcome, Error> {
        let body = json!({
            audience::SYNC_STATUS: status.sync_status,
            audience::LAST_SYNC_START: opt_date(status.last_sync_start),
            audience::LAST_SYNC_END: opt_date(status.last_sync_end),
            audience::MEMBER_COUNT: status.member_count,
            audience::CREATED: status.created,
            audience::UPDATED: status.updated,
            audience::REMOVED: status.removed,
            audience::FAILED: status.failed,
            audience::LAST_MESSAGE: status.last_message.as_deref().map(|m| truncate(m, 4000)),
        });
        self.client
            .update(&self.schema.audience().entity_set, id, &body, if_match)
            .await
    }

    /// Take the lease on `record` (as read) unless another holder has it and it has not lapsed;
    /// written with `If-Match` on the version read, and the status set to in progress.
    ///
    /// # Errors
    /// Any refusal other than a version conflict.
    pub async fn acquire_lease(
        &self,
        record: &AudienceRecord,
        lease: &Lease,
        now: DateTime<Utc>,
    ) -> Result<LeaseOutcome, Error> {
        if let LeaseState::Held(held) = lease_state(record, now) {
            if held.id != lease.id {
                return Ok(LeaseOutcome::HeldBy(held));
            }
        }
        let Some(version) = record.etag.as_deref() else {
            return Err(Error::Request {
                message: "the Audience record was read without its version".to_owned(),
            });
        };
        let body = json!({
            audience::LEASE_OWNER: truncate(&lease.owner, 200),
            audience::LEASE_ID: lease.id,
            audience::LEASE_OPERATION: lease.operation,
            audience::LEASE_EXPIRES: fmt_date(lease.expires),
            audience::SYNC_STATUS: super::schema::sync_status::IN_PROGRESS,
        });
        match self
            .client
            .update(
                &self.schema.audience().entity_set,
                record.id,
                &body,
                Some(version),
            )
            .await?
        {
            Outcome::Written { etag } => Ok(LeaseOutcome::Acquired { etag }),
            Outcome::Stale => Ok(LeaseOutcome::Stale),
        }
    }

    /// Clear the lease (and set the final status) on a record whose version is `if_match`.
    ///
    /// # Errors
    /// Any refusal other than a version conflict.
    pub async fn release_lease(
        &self,
        id: Uuid,
        status: &AudienceStatus,
        if_match: Option<&str>,
    ) -> Result<Outcome, Error> {
        let mut body = json!({
            audience::LEASE_OWNER: null,
            audience::LEASE_ID: null,
            audience::LEASE_OPERATION: null,
            audience::LEASE_EXPIRES: null,
        });
        if let (Some(map), Value::Object(status_body)) = (
            body.as_object_mut(),
            json!({
                audience::SYNC_STATUS: status.sync_status,
                audience::LAST_SYNC_START: opt_date(status.last_sync_start),
                audience::LAST_SYNC_END: opt_date(status.last_sync_end),
                audience::MEMBER_COUNT: status.member_count,
                audience::CREATED: status.created,
                audience::UPDATED: status.updated,
                audience::REMOVED: status.removed,
                audience::FAILED: status.failed,
                audience::LAST_MESSAGE: status.last_message.as_deref().map(|m| truncate(m, 4000)),
            }),
        ) {
            map.extend(status_body);
        }
        self.client
            .update(&self.schema.audience().entity_set, id, &body, if_match)
            .await
    }

    /// The Tag records of an Audience record.
    ///
    /// # Errors
    /// Any failure.
    pub async fn tags(&self, audience_id: Uuid) -> Result<Vec<TagRecord>, Error> {
        let table = self.schema.tag();
        let lookup_value = format!("_{}_value", tag::AUDIENCE);
        let query = Query::new(table.entity_set.clone())
            .select([
                table.primary_id.clone(),
                tag::NAME.to_owned(),
                tag::MAILCHIMP_ID.to_owned(),
                lookup_value.clone(),
            ])
            .filter(Filter::eq(&lookup_value, audience_id));
        let rows: Vec<Row> = self.client.collect(&query).await?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                Some(TagRecord {
                    id: guid(row, &table.primary_id)?,
                    etag: etag(row),
                    name: text(row, tag::NAME).unwrap_or_default(),
                    mailchimp_id: text(row, tag::MAILCHIMP_ID).unwrap_or_default(),
                    audience: guid(row, &lookup_value),
                })
            })
            .collect())
    }

    /// Create a Tag record with a client-chosen id, linked to its Audience record.
    ///
    /// # Errors
    /// Any refusal but "already exists".
    pub async fn create_tag(
        &self,
        id: Uuid,
        name: &str,
        mailchimp_id: &str,
        audience_id: Uuid,
    ) -> Result<Created, Error> {
        let table = self.schema.tag();
        let mut body = Map::new();
        body.insert(table.primary_id.clone(), json!(id));
        body.insert(tag::NAME.to_owned(), json!(truncate(name, 200)));
        body.insert(tag::MAILCHIMP_ID.to_owned(), json!(mailchimp_id));
        body.insert(
            format!("{}@odata.bind", tag::AUDIENCE),
            json!(format!(
                "/{}({audience_id})",
                self.schema.audience().entity_set
            )),
        );
        self.client
            .create(&table.entity_set, &Value::Object(body))
            .await
    }

    /// Rename a Tag record.
    ///
    /// # Errors
    /// The record does not exist, or any other refusal.
    pub async fn rename_tag(
        &self,
        id: Uuid,
        name: &str,
        if_match: Option<&str>,
    ) -> Result<Outcome, Error> {
        self.client
            .update(
                &self.schema.tag().entity_set,
                id,
                &json!({ tag::NAME: truncate(name, 200) }),
                if_match,
            )
            .await
    }

    /// Delete a Tag record (its links go with it); `false` when already gone.
    ///
    /// # Errors
    /// Any other refusal.
    pub async fn delete_tag(&self, id: Uuid) -> Result<bool, Error> {
        self.client.delete(&self.schema.tag().entity_set, id).await
    }

    /// Create or overwrite a Sync Run record (upsert by its id).
    ///
    /// # Errors
    /// Any refusal.
    pub async fn save_sync_run(&self, run: &SyncRun) -> Result<(), Error> {
        let table = self.schema.sync_run();
        let body = json!({
            sync_run::NAME: truncate(&run.name, 200),
            format!("{}@odata.bind", sync_run::AUDIENCE): format!("/{}({})", self.schema.audience().entity_set, run.audience),
            sync_run::STARTED: fmt_date(run.started),
            sync_run::ENDED: opt_date(run.ended),
            sync_run::STATUS: run.status,
            sync_run::CREATED: run.created,
            sync_run::UPDATED: run.updated,
            sync_run::REMOVED: run.removed,
            sync_run::FAILED: run.failed,
            sync_run::MESSAGE: run.message.as_deref().map(|m| truncate(m, 4000)),
        });
        self.client.upsert(&table.entity_set, run.id, &body).await
    }
}

/// At most `max` characters.
fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(lease: Option<Lease>) -> AudienceRecord {
        AudienceRecord {
            id: Uuid::nil(),
            etag: Some("W/\"1\"".into()),
            name: "a".into(),
            mailchimp_id: "x".into(),
            status: AudienceStatus::default(),
            lease,
        }
    }

    #[test]
    fn a_lease_is_free_held_or_lapsed() {
        let now = Utc::now();
        let lease = Lease {
            owner: "ci".into(),
            id: "l1".into(),
            operation: "apply".into(),
            expires: now + chrono::Duration::minutes(5),
        };
        assert_eq!(lease_state(&record(None), now), LeaseState::Free);
        assert_eq!(
            lease_state(&record(Some(lease.clone())), now),
            LeaseState::Held(lease.clone())
        );
        let later = now + chrono::Duration::minutes(6);
        assert_eq!(
            lease_state(&record(Some(lease.clone())), later),
            LeaseState::Lapsed(lease)
        );
    }

    #[test]
    fn audience_rows_are_read_with_their_lease() {
        let tables = ToolTables::new(
            Client::builder()
                .url("http://x")
                .tenant_id("t")
                .client_id("c")
                .client_secret("s".to_owned().into())
                .build()
                .unwrap(),
            Schema::default(),
        );
        let row: Row = serde_json::from_value(json!({
            "mcsync_audienceid": "00000000-0000-0000-0000-000000000001",
            "@odata.etag": "W/\"9\"",
            "mcsync_name": "News",
            "mcsync_mailchimpaudienceid": "abc",
            "mcsync_syncstatus": 1,
            "mcsync_leaseid": "l1",
            "mcsync_leaseowner": "host",
            "mcsync_leaseexpires": "2030-01-01T00:00:00Z",
            "mcsync_membercount": 5
        }))
        .unwrap();
        let parsed = tables.parse_audience(&row).unwrap();
        assert_eq!(parsed.status.member_count, Some(5));
        assert_eq!(parsed.lease.unwrap().owner, "host");
        assert_eq!(truncate("héllo", 2), "hé");
    }
}
