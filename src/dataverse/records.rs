//! Generic record operations on any table: streamed paged reads, create with a client-chosen id,
//! update with `If-Match`, upsert, delete, `$batch`, and the bulk actions (`CreateMultiple`,
//! `UpdateMultiple`, `UpsertMultiple`) with their support check.
//!
//! Invariants: reads never collect a whole table: [`Client::pages`] yields one page at a time
//! and follows `@odata.nextLink` verbatim; a 412 on `If-Match` is [`Outcome::Stale`], never an
//! error and never retried; bulk requests carry `@odata.type` on every target and at most
//! [`BULK_CHUNK`] targets.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::Stream;
use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::batch::{self, OpOutcome, Part};
use super::client::{Client, MAX_PAGE_SIZE, Req};
use super::error::Error;
use super::query::{Filter, Query};
use super::rows::{RowReader, Typed};
use crate::http::Idempotency;

/// Targets per bulk action request (the documented upper end of the recommended range).
pub const BULK_CHUNK: usize = 1000;

/// One record as the service returns it: its columns plus `@odata.etag`.
pub type Row = Map<String, Value>;

/// What became of a create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The record was created.
    Created,
    /// A record with that id already existed (a retried or repeated create): nothing changed.
    AlreadyExists,
}

/// What became of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written; the new ETag when the service sent one.
    Written {
        /// The record's new version.
        etag: Option<String>,
    },
    /// The record changed since the version given in `If-Match` (412): nothing was written.
    Stale,
}

/// A bulk action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BulkAction {
    /// `CreateMultiple`.
    Create,
    /// `UpdateMultiple`.
    Update,
    /// `UpsertMultiple`.
    Upsert,
}

impl BulkAction {
    /// The message name.
    #[must_use]
    pub fn message(self) -> &'static str {
        match self {
            Self::Create => "CreateMultiple",
            Self::Update => "UpdateMultiple",
            Self::Upsert => "UpsertMultiple",
        }
    }
}

/// Support of the bulk actions per table, learnt once per client.
#[derive(Debug, Default)]
pub(super) struct BulkSupport(Mutex<HashMap<(String, BulkAction), bool>>);

#[derive(Deserialize)]
struct CreateMultipleResponse {
    #[serde(rename = "Ids", default)]
    ids: Vec<Uuid>,
}

/// The `@odata.etag` of a row.
#[must_use]
pub fn etag(row: &Row) -> Option<String> {
    row.get("@odata.etag")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The GUID in a column of a row.
#[must_use]
pub fn guid(row: &Row, column: &str) -> Option<Uuid> {
    row.get(column)
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
}

/// A string column of a row.
#[must_use]
pub fn text(row: &Row, column: &str) -> Option<String> {
    row.get(column).and_then(Value::as_str).map(str::to_owned)
}

/// `entityset(<id>)`.
#[must_use]
pub fn record_path(entity_set: &str, id: Uuid) -> String {
    format!("{entity_set}({id})")
}

impl Client {
    /// Stream the pages of a query, `Prefer: odata.maxpagesize=5000`, following
    /// `@odata.nextLink` verbatim. Each item is one page of records.
    pub fn pages<T>(
        &self,
        query: &Query,
    ) -> impl Stream<Item = Result<Vec<T>, Error>> + Send + 'static + use<T>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.pages_sized(query, MAX_PAGE_SIZE)
    }

    /// [`Self::pages`] with another page size (at most 5000).
    pub fn pages_sized<T>(
        &self,
        query: &Query,
        page_size: u32,
    ) -> impl Stream<Item = Result<Vec<T>, Error>> + Send + 'static + use<T>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let first = query.to_relative_url().map(|rel| self.url(&rel));
        self.pages_from(first, page_size)
    }

    /// The pages starting at an absolute URL (e.g. an `@odata.nextLink`), followed verbatim.
    pub(super) fn pages_from<T>(
        &self,
        first: Result<String, Error>,
        page_size: u32,
    ) -> impl Stream<Item = Result<Vec<T>, Error>> + Send + 'static + use<T>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.pages_read(first, page_size, Typed::<T>::default())
    }

    /// The pages of a query (5000 rows each), each row read by `reader` straight from the body.
    pub(super) fn pages_of<R: RowReader>(
        &self,
        query: &Query,
        reader: R,
    ) -> impl Stream<Item = Result<Vec<R::Row>, Error>> + Send + 'static + use<R> {
        let first = query.to_relative_url().map(|rel| self.url(&rel));
        self.pages_read(first, MAX_PAGE_SIZE, reader)
    }

    /// The pages starting at an absolute URL, each row read by `reader` straight from the
    /// body (see [`super::rows`]).
    pub(super) fn pages_read<R: RowReader>(
        &self,
        first: Result<String, Error>,
        page_size: u32,
        reader: R,
    ) -> impl Stream<Item = Result<Vec<R::Row>, Error>> + Send + 'static + use<R> {
        let client = self.clone();
        let prefer = format!("odata.maxpagesize={}", page_size.clamp(1, MAX_PAGE_SIZE));
        async_stream::try_stream! {
            let mut next = Some(first?);
            while let Some(url) = next.take() {
                let req = Req::new(Method::GET, url, Idempotency::Idempotent)
                    .header("Prefer", prefer.clone());
                let response = client.send_ok(&req).await?;
                let page = client.read_page(&req, response, &reader).await?;
                next = page.next_link;
                yield page.value;
            }
        }
    }

    /// Read all rows of a query into memory. Only for small results (metadata, a few records).
    ///
    /// # Errors
    /// Any request failure.
    pub async fn collect<T>(&self, query: &Query) -> Result<Vec<T>, Error>
    where
        T: DeserializeOwned + Send + 'static,
    {
        use futures::TryStreamExt;
        let pages: Vec<Vec<T>> = self.pages(query).try_collect().await?;
        Ok(pages.into_iter().flatten().collect())
    }

    /// Read one record by id; `None` when it does not exist.
    ///
    /// # Errors
    /// Any other failure.
    pub async fn retrieve(
        &self,
        entity_set: &str,
        id: Uuid,
        select: &[&str],
    ) -> Result<Option<Row>, Error> {
        let query = Query::new(record_path(entity_set, id)).select(select.iter().copied());
        match self.get_json::<Row>(&query.to_relative_url()?).await {
            Ok(row) => Ok(Some(row)),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Create a record whose id (primary key column) is in `body`; a repeated create is
    /// [`Created::AlreadyExists`], never a second record.
    ///
    /// # Errors
    /// Any refusal other than "already exists".
    pub async fn create(&self, entity_set: &str, body: &Value) -> Result<Created, Error> {
        let req = Req::new(Method::POST, self.url(entity_set), Idempotency::Idempotent).json(body);
        match self.send_ok(&req).await {
            Ok(_) => Ok(Created::Created),
            Err(err) if err.is_duplicate() => Ok(Created::AlreadyExists),
            Err(err) => Err(err),
        }
    }

    /// Update columns of an existing record. With `if_match` (an ETag) the write happens only if
    /// the record is still at that version, else [`Outcome::Stale`]; without, `If-Match: *`
    /// makes sure no record is created.
    ///
    /// # Errors
    /// The record does not exist, or any other refusal.
    pub async fn update(
        &self,
        entity_set: &str,
        id: Uuid,
        body: &Value,
        if_match: Option<&str>,
    ) -> Result<Outcome, Error> {
        let req = Req::new(
            Method::PATCH,
            self.url(&record_path(entity_set, id)),
            Idempotency::Idempotent,
        )
        .json(body)
        .header("If-Match", if_match.unwrap_or("*"));
        let response = self.send(&req).await?;
        if response.status().as_u16() == 412 && if_match.is_some() {
            return Ok(Outcome::Stale);
        }
        if !response.status().is_success() {
            return Err(self.api_error(&req.method, &req.url, response).await);
        }
        Ok(Outcome::Written {
            etag: response
                .headers()
                .get("ETag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        })
    }

    /// Create or update a record by id (`PATCH` without `If-Match`).
    ///
    /// # Errors
    /// Any refusal.
    pub async fn upsert(&self, entity_set: &str, id: Uuid, body: &Value) -> Result<(), Error> {
        let req = Req::new(
            Method::PATCH,
            self.url(&record_path(entity_set, id)),
            Idempotency::Idempotent,
        )
        .json(body);
        self.send_ok(&req).await.map(|_| ())
    }

    /// Delete a record; `false` when it was already gone.
    ///
    /// # Errors
    /// Any refusal other than "does not exist".
    pub async fn delete(&self, entity_set: &str, id: Uuid) -> Result<bool, Error> {
        let req = Req::new(
            Method::DELETE,
            self.url(&record_path(entity_set, id)),
            Idempotency::Idempotent,
        );
        match self.send_ok(&req).await {
            Ok(_) => Ok(true),
            Err(err) if err.is_not_found() => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// POST a JSON body to a path (an action) and return the JSON answer (`Null` for 204).
    pub(super) async fn post_action(
        &self,
        relative: &str,
        body: &Value,
        idempotency: Idempotency,
    ) -> Result<Value, Error> {
        let req = Req::new(Method::POST, self.url(relative), idempotency).json(body);
        let response = self.send_ok(&req).await?;
        if response.status().as_u16() == 204 {
            return Ok(Value::Null);
        }
        let bytes = response.bytes().await.map_err(|source| Error::Transport {
            url: self.relative(&req.url),
            source: source.without_url(),
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|err| Error::Response {
            method: "POST".to_owned(),
            path: relative.to_owned(),
            message: format!("the body is not JSON: {err}"),
        })
    }

    /// Send one `$batch` of at most 1000 operations and return every operation's outcome in
    /// the order given. With `continue_on_error` the service runs every part even when one
    /// fails; without, it stops at the first failure (the rest are [`OpOutcome::NotExecuted`]).
    /// Change sets are atomic either way.
    ///
    /// # Errors
    /// The batch could not be sent or its response not read; per-operation failures are
    /// outcomes, not errors.
    pub async fn execute_batch(
        &self,
        parts: &[Part],
        continue_on_error: bool,
    ) -> Result<Vec<OpOutcome>, Error> {
        if parts.is_empty() {
            return Ok(Vec::new());
        }
        let boundary = format!("batch_{}", Uuid::new_v4());
        let body = batch::write(parts, self.api_path(), &boundary, &|_| {
            format!("changeset_{}", Uuid::new_v4())
        })?;
        let idempotency = if batch::all_idempotent(parts) {
            Idempotency::Idempotent
        } else {
            Idempotency::NotIdempotent
        };
        let mut req = Req::new(Method::POST, self.url("$batch"), idempotency);
        req.body = Some(bytes::Bytes::from(body));
        req.content_type = Some(format!("multipart/mixed; boundary={boundary}"));
        if continue_on_error {
            req = req.header("Prefer", "odata.continue-on-error");
        }
        let started = std::time::Instant::now();
        let throttled_before = self.stats().throttled();
        let response = self.send(&req).await;
        self.batch_done(batch::operation_count(parts), started, throttled_before);
        let response = response?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("Content-Type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if !content_type.to_ascii_lowercase().starts_with("multipart/") {
            // The whole batch was refused (bad request, throttled beyond the policy, auth).
            let body = response.text().await.unwrap_or_default();
            let parsed = super::error::parse_api_error(&body);
            return Err(Error::Api {
                status,
                code: parsed.code,
                message: parsed.message,
                method: "POST".to_owned(),
                path: "$batch".to_owned(),
            });
        }
        let text = response.text().await.map_err(|source| Error::Transport {
            url: self.relative(&req.url),
            source: source.without_url(),
        })?;
        let parsed = batch::parse(&content_type, &text).map_err(|message| Error::Response {
            method: "POST".to_owned(),
            path: "$batch".to_owned(),
            message,
        })?;
        Ok(batch::match_outcomes(parts, parsed))
    }

    /// Run many operations as `$batch` requests of at most 1000 operations each (outside change
    /// sets, `continue-on-error`), several batches in flight at once within the client's
    /// parallelism, and map every outcome with `summarise` as its batch comes back. The
    /// operations are built lazily, a batch at a time, so memory stays bounded by the batches
    /// in flight plus one summary per operation. Returns the summaries in the order given.
    ///
    /// # Errors
    /// A batch could not be sent or read (the operations of earlier batches may have run).
    pub async fn run_batched<I, R, F>(&self, operations: I, summarise: F) -> Result<Vec<R>, Error>
    where
        I: IntoIterator<Item = batch::Operation>,
        F: Fn(&OpOutcome) -> R,
    {
        use futures::StreamExt;
        let mut operations = operations.into_iter().peekable();
        let max = self.spread(operations.size_hint().0);
        let chunks = std::iter::from_fn(move || {
            operations.peek()?;
            Some(
                operations
                    .by_ref()
                    .take(self.batch_size().min(max))
                    .map(Part::Single)
                    .collect::<Vec<Part>>(),
            )
        });
        let parallel = self.parallelism().max(1);
        let mut batches = std::pin::pin!(
            futures::stream::iter(chunks)
                .map(|parts| async move { self.execute_batch(&parts, true).await })
                .buffered(parallel)
        );
        let mut summaries = Vec::new();
        while let Some(outcomes) = batches.next().await {
            summaries.extend(outcomes?.iter().map(&summarise));
        }
        Ok(summaries)
    }

    /// The largest request that still spreads `total` operations over every request the
    /// client may have in flight: a few long requests would leave the others idle while the
    /// last ones run ("prefer parallel requests over large batches", PD `api-limits.md`).
    fn spread(&self, total: usize) -> usize {
        total.div_ceil(self.parallelism().max(1)).max(1)
    }

    /// Send `items` in chunks of the size the sizer gives (at most `max`), up to the client's
    /// parallelism in flight at once, and return `send`'s results in the order given. The
    /// first error stops the call (chunks in flight finish; later ones are not sent).
    ///
    /// # Errors
    /// The first chunk `send` failed.
    pub(super) async fn in_chunks<T, R, F, Fut>(
        &self,
        items: Vec<T>,
        max: usize,
        send: F,
    ) -> Result<Vec<R>, Error>
    where
        F: Fn(Vec<T>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<R>, Error>>,
    {
        use futures::StreamExt;
        let parallel = self.parallelism().max(1);
        let max = max.min(self.spread(items.len()));
        let mut results = Vec::with_capacity(items.len());
        let mut items = items.into_iter().peekable();
        let chunks = std::iter::from_fn(move || {
            items.peek()?;
            let size = self.batch_size().min(max).max(1);
            Some(items.by_ref().take(size).collect::<Vec<T>>())
        });
        let mut sent = std::pin::pin!(futures::stream::iter(chunks).map(send).buffered(parallel));
        while let Some(chunk) = sent.next().await {
            results.extend(chunk?);
        }
        Ok(results)
    }

    /// Split `0..total` into ranges of the size the sizer gives (at most `max`, spread over
    /// the requests in flight as [`Self::in_chunks`] does), call `send` on each, up to the
    /// client's parallelism at once, and return every answer in order: unlike `in_chunks`, an
    /// error does not stop the others.
    pub(super) async fn in_ranges<R, F, Fut>(&self, total: usize, max: usize, send: F) -> Vec<R>
    where
        F: Fn(std::ops::Range<usize>) -> Fut,
        Fut: std::future::Future<Output = R>,
    {
        use futures::StreamExt;
        let parallel = self.parallelism().max(1);
        let max = max.min(self.spread(total));
        let mut start = 0;
        let ranges = std::iter::from_fn(move || {
            (start < total).then(|| {
                let size = self.batch_size().min(max).max(1);
                let range = start..(start + size).min(total);
                start = range.end;
                range
            })
        });
        futures::stream::iter(ranges)
            .map(send)
            .buffered(parallel)
            .collect()
            .await
    }

    /// Write many records of one table the cheapest way the table allows: the bulk action in
    /// chunks of [`BULK_CHUNK`] when `sdkmessagefilters` says the table supports it (one counted
    /// request per chunk), else `$batch` requests of single operations. A bulk chunk the
    /// service refuses is redone as a `$batch` so that every record gets its own outcome.
    /// Every target must hold its primary key `id_column`. Returns each target's failure
    /// (`None` when written), in the order given; a create of an id that exists counts as
    /// written.
    ///
    /// # Errors
    /// A request could not be sent or read.
    pub async fn write_many<T>(
        &self,
        action: BulkAction,
        entity_set: &str,
        logical_name: &str,
        id_column: &str,
        targets: Vec<T>,
        body: impl Fn(T) -> Map<String, Value>,
    ) -> Result<Vec<Option<String>>, Error> {
        let use_bulk = self.supports_bulk(logical_name, action).await?;
        // Several chunks in flight: the execution-time window is filled by parallel requests,
        // not by one long one (the sizer keeps each request well inside the timeout). Bodies
        // are made per chunk, as it is sent: a million records are never a million JSON
        // objects at once.
        self.in_chunks(targets, usize::MAX, |chunk| {
            let chunk = chunk.into_iter().map(&body).collect();
            self.write_chunk(action, entity_set, logical_name, id_column, use_bulk, chunk)
        })
        .await
    }

    /// One chunk of [`Client::write_many`]: the bulk action, or a `$batch` of single operations
    /// when the table has none or the service refused the bulk request.
    async fn write_chunk(
        &self,
        action: BulkAction,
        entity_set: &str,
        logical_name: &str,
        id_column: &str,
        use_bulk: bool,
        chunk: Vec<Map<String, Value>>,
    ) -> Result<Vec<Option<String>>, Error> {
        if use_bulk {
            match self
                .bulk(action, entity_set, logical_name, chunk.clone())
                .await
            {
                Ok(_) => return Ok(chunk.iter().map(|_| None).collect()),
                Err(err @ Error::Api { .. }) => {
                    tracing::debug!(error = %err, "bulk chunk refused, redoing it as a batch");
                }
                Err(err) => return Err(err),
            }
        }
        let mut ops = Vec::with_capacity(chunk.len());
        let mut missing_id = Vec::new();
        for (i, mut target) in chunk.into_iter().enumerate() {
            let Some(id) = target
                .get(id_column)
                .and_then(Value::as_str)
                .and_then(|s| Uuid::parse_str(s).ok())
            else {
                missing_id.push(i);
                continue;
            };
            let op = match action {
                BulkAction::Create => {
                    batch::Operation::post(entity_set, Value::Object(target), true)
                }
                BulkAction::Update => {
                    target.remove(id_column);
                    batch::Operation::patch(record_path(entity_set, id), Value::Object(target))
                        .header("If-Match", "*")
                }
                BulkAction::Upsert => {
                    target.remove(id_column);
                    batch::Operation::patch(record_path(entity_set, id), Value::Object(target))
                }
            };
            ops.push((i, op));
        }
        let positions: Vec<usize> = ops.iter().map(|(i, _)| *i).collect();
        let outcomes = self
            .run_batched(ops.into_iter().map(|(_, op)| op), |o| match action {
                BulkAction::Create if o.is_duplicate() => None,
                _ => o.failure(),
            })
            .await?;
        let mut chunk_results: Vec<Option<String>> = vec![None; positions.len() + missing_id.len()];
        for i in missing_id {
            chunk_results[i] = Some(format!("the record has no `{id_column}`"));
        }
        for (position, outcome) in positions.into_iter().zip(outcomes) {
            chunk_results[position] = outcome;
        }
        Ok(chunk_results)
    }

    /// Whether `action` is available on table `logical_name` (asked once through
    /// `sdkmessagefilters`, then remembered).
    ///
    /// # Errors
    /// The question could not be asked.
    pub async fn supports_bulk(
        &self,
        logical_name: &str,
        action: BulkAction,
    ) -> Result<bool, Error> {
        let key = (logical_name.to_owned(), action);
        if let Ok(cache) = self.inner.bulk.0.lock() {
            if let Some(known) = cache.get(&key) {
                return Ok(*known);
            }
        }
        let query = Query::new("sdkmessagefilters")
            .select(["sdkmessagefilterid"])
            .filter(Filter::And(vec![
                Filter::eq("sdkmessageid/name", action.message()),
                Filter::eq("primaryobjecttypecode", logical_name),
            ]));
        let rows: Vec<Row> = self.collect(&query).await?;
        let supported = !rows.is_empty();
        if let Ok(mut cache) = self.inner.bulk.0.lock() {
            cache.insert(key, supported);
        }
        Ok(supported)
    }

    /// Run a bulk action on `entity_set` (table `logical_name`) in requests of at most
    /// [`BULK_CHUNK`] targets; `@odata.type` is added to every target. Returns the created ids
    /// for [`BulkAction::Create`] (empty for the others). On a standard table each request is
    /// one transaction: a failing target fails (and rolls back) its whole chunk, and the first
    /// such failure stops the call.
    ///
    /// # Errors
    /// The first chunk the service refused.
    pub async fn bulk(
        &self,
        action: BulkAction,
        entity_set: &str,
        logical_name: &str,
        targets: Vec<Map<String, Value>>,
    ) -> Result<Vec<Uuid>, Error> {
        let odata_type = Value::String(format!("Microsoft.Dynamics.CRM.{logical_name}"));
        let mut ids = Vec::new();
        let mut targets = targets.into_iter().peekable();
        while targets.peek().is_some() {
            let chunk: Vec<Value> = targets
                .by_ref()
                .take(BULK_CHUNK)
                .map(|mut target| {
                    target.insert("@odata.type".to_owned(), odata_type.clone());
                    Value::Object(target)
                })
                .collect();
            let path = format!("{entity_set}/Microsoft.Dynamics.CRM.{}", action.message());
            let idempotency = match action {
                // Ids are chosen by the caller, so a repeated create fails rather than duplicates.
                BulkAction::Create | BulkAction::Update | BulkAction::Upsert => {
                    Idempotency::Idempotent
                }
            };
            let (ops, started, throttled_before) = (
                chunk.len(),
                std::time::Instant::now(),
                self.stats().throttled(),
            );
            let answer = self
                .post_action(&path, &serde_json::json!({ "Targets": chunk }), idempotency)
                .await;
            self.batch_done(ops, started, throttled_before);
            let answer = answer?;
            if action == BulkAction::Create {
                let parsed: CreateMultipleResponse =
                    serde_json::from_value(answer).map_err(|err| Error::Response {
                        method: "POST".to_owned(),
                        path: path.clone(),
                        message: format!("no `Ids` in the answer: {err}"),
                    })?;
                ids.extend(parsed.ids);
            }
        }
        Ok(ids)
    }
}
