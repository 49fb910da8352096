//! Contacts and leads: read by marketing list, by id, by Mailchimp contact id and by e-mail,
//! selecting only the columns asked for.
//!
//! Invariants: lookups by value use `Microsoft.Dynamics.CRM.In` in chunks that keep every URL
//! under [`MAX_FILTER_CHARS`] encoded characters and [`MAX_IN_VALUES`] values, sent
//! [`READS_PER_BATCH`] to a `$batch`; results stream page by page (5000 rows), batch after
//! batch, never collected; rows are read straight from the body ([`super::rows`]).

use std::sync::Arc;

use futures::Stream;
use serde::de::MapAccess;
use serde_json::Value;
use uuid::Uuid;

use super::batch::{OpOutcome, Operation, Part};
use super::client::{Client, MAX_PAGE_SIZE};
use super::error::Error;
use super::query::{Filter, Literal, Query, in_chunk_sizes};
use super::rows::{KeyIn, RowReader, parse_page, skip_value};
use crate::domain::MemberType;

/// Upper bound of the encoded `$filter` of one lookup request (URLs stay far below the
/// service's limit, with room for `$select`).
pub const MAX_FILTER_CHARS: usize = 6000;
/// Values per `In` filter.
pub const MAX_IN_VALUES: usize = 200;
/// Lookup queries per `$batch` (each answer is a page of up to 5000 rows, so this bounds the
/// memory one batch answer takes).
pub const READS_PER_BATCH: usize = 100;

/// A contact or lead with the columns that were selected.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    /// Its id.
    pub id: Uuid,
    /// Its version (for `If-Match`).
    pub etag: Option<String>,
    /// The selected columns (shared by every person of one read).
    columns: Arc<[String]>,
    /// Their values as returned, in the order of `columns` (`Null` when absent).
    values: Vec<Value>,
}

impl Person {
    /// A selected column's value as returned (`None` when absent or not selected).
    #[must_use]
    pub fn get(&self, column: &str) -> Option<&Value> {
        let i = self.columns.iter().position(|c| c == column)?;
        self.values.get(i).filter(|v| !v.is_null())
    }

    /// A string column.
    #[must_use]
    pub fn text(&self, column: &str) -> Option<&str> {
        self.get(column).and_then(Value::as_str)
    }
}

/// Reads a contact or lead row straight from the body: `@odata.etag`, the id, the selected
/// columns (rows without an id are dropped).
#[derive(Clone)]
struct PersonReader {
    /// `@odata.etag`, then the selected columns (the id first, see [`with_id`]).
    names: Arc<[String]>,
    columns: Arc<[String]>,
}

impl PersonReader {
    fn new(kind: MemberType, columns: &[&str]) -> Self {
        let columns: Arc<[String]> = with_id(kind, columns).into();
        let names = std::iter::once(ETAG.to_owned())
            .chain(columns.iter().cloned())
            .collect();
        Self { names, columns }
    }
}

const ETAG: &str = "@odata.etag";

impl RowReader for PersonReader {
    type Row = Person;

    fn row<'de, A: MapAccess<'de>>(&self, mut map: A) -> Result<Option<Person>, A::Error> {
        let mut etag = None;
        let mut values = vec![Value::Null; self.columns.len()];
        while let Some(key) = map.next_key_seed(KeyIn(&self.names))? {
            match key {
                Some(0) => etag = map.next_value::<Option<Value>>()?,
                Some(i) => values[i - 1] = map.next_value()?,
                None => skip_value(&mut map)?,
            }
        }
        let id = values
            .first()
            .and_then(Value::as_str)
            .and_then(|text| Uuid::parse_str(text).ok());
        Ok(id.map(|id| Person {
            id,
            etag: etag.as_ref().and_then(Value::as_str).map(str::to_owned),
            columns: Arc::clone(&self.columns),
            values,
        }))
    }
}

impl Client {
    /// The members of a marketing list as contacts or leads, page by page.
    pub fn people_in_list(
        &self,
        kind: MemberType,
        list_id: Uuid,
        columns: &[&str],
    ) -> impl Stream<Item = Result<Vec<Person>, Error>> + Send + 'static + use<> {
        let query = Query::new(kind.entity_set())
            .select(with_id(kind, columns))
            .filter(Filter::Any {
                nav: kind.list_relationship().to_owned(),
                var: "l".to_owned(),
                inner: Box::new(Filter::eq("l/listid", list_id)),
            });
        self.pages_of(&query, PersonReader::new(kind, columns))
    }

    /// The contacts or leads whose `column` is one of `values` (e.g. the Mailchimp contact id
    /// column, or `emailaddress1`, which Dataverse compares case-insensitively), page by page.
    ///
    /// The values go in `In` filters of at most [`MAX_IN_VALUES`]; when there is more than one
    /// such query, up to [`READS_PER_BATCH`] of them travel in one `$batch` (GETs outside change
    /// sets), so a lookup of a million addresses costs tens of counted requests, not thousands.
    pub fn people_where_in(
        &self,
        kind: MemberType,
        column: &str,
        values: Vec<Literal>,
        columns: &[&str],
    ) -> impl Stream<Item = Result<Vec<Person>, Error>> + Send + 'static + use<> {
        let client = self.clone();
        let select = with_id(kind, columns);
        let reader = PersonReader::new(kind, columns);
        let sizes = in_chunk_sizes(column, &values, MAX_FILTER_CHARS, MAX_IN_VALUES);
        let mut values = values.into_iter();
        let chunks: Vec<Vec<Literal>> = sizes
            .into_iter()
            .map(|n| values.by_ref().take(n).collect())
            .collect();
        let column = column.to_owned();
        async_stream::try_stream! {
            let single = chunks.len() == 1;
            let mut chunks = chunks.into_iter().peekable();
            while chunks.peek().is_some() {
                let mut parts = Vec::new();
                for chunk in chunks.by_ref().take(READS_PER_BATCH) {
                    let query = Query::new(kind.entity_set())
                        .select(select.clone())
                        .filter(Filter::is_in(&column, chunk));
                    parts.push(query.to_relative_url()?);
                }
                if let (true, [url]) = (single, parts.as_slice()) {
                    let first = Ok(client.url(url));
                    let mut pages = std::pin::pin!(client.pages_read(first, MAX_PAGE_SIZE, reader.clone()));
                    while let Some(page) = futures::StreamExt::next(&mut pages).await {
                        yield page?;
                    }
                    continue;
                }
                let parts: Vec<Part> = parts
                    .into_iter()
                    .map(|url| {
                        Part::Single(
                            Operation::get(url)
                                .header("Prefer", &format!("odata.maxpagesize={MAX_PAGE_SIZE}")),
                        )
                    })
                    .collect();
                let outcomes = client.execute_batch(&parts, true).await?;
                for outcome in outcomes {
                    let page = match &outcome {
                        OpOutcome::Ok(response) => parse_page(&reader, response.body.as_bytes()).map_err(|err| {
                            Error::Response {
                                method: "GET".to_owned(),
                                path: kind.entity_set().to_owned(),
                                message: format!("a page inside the batch is not JSON: {err}"),
                            }
                        })?,
                        OpOutcome::Failed(response) | OpOutcome::RolledBack(response) => {
                            let error = response.error();
                            Err(Error::Api {
                                status: response.status,
                                code: error.code,
                                message: error.message,
                                method: "GET".to_owned(),
                                path: kind.entity_set().to_owned(),
                            })?
                        }
                        OpOutcome::NotExecuted => Err(Error::Response {
                            method: "POST".to_owned(),
                            path: "$batch".to_owned(),
                            message: "a lookup inside the batch was not executed".to_owned(),
                        })?,
                    };
                    yield page.value;
                    if let Some(next) = page.next_link {
                        let mut pages = std::pin::pin!(client.pages_read(Ok(next), MAX_PAGE_SIZE, reader.clone()));
                        while let Some(page) = futures::StreamExt::next(&mut pages).await {
                            yield page?;
                        }
                    }
                }
            }
        }
    }

    /// The contacts or leads with these ids, page by page.
    pub fn people_by_ids(
        &self,
        kind: MemberType,
        ids: &[Uuid],
        columns: &[&str],
    ) -> impl Stream<Item = Result<Vec<Person>, Error>> + Send + 'static + use<> {
        let values = ids.iter().map(|id| Literal::Guid(*id)).collect();
        self.people_where_in(kind, kind.id_column(), values, columns)
    }

    /// The contacts or leads with these e-mail addresses (`emailaddress1`), page by page.
    pub fn people_by_emails(
        &self,
        kind: MemberType,
        emails: Vec<String>,
        columns: &[&str],
    ) -> impl Stream<Item = Result<Vec<Person>, Error>> + Send + 'static + use<> {
        let values = emails.into_iter().map(Literal::Str).collect();
        self.people_where_in(kind, "emailaddress1", values, columns)
    }

    /// Every active contact or lead, page by page.
    pub fn all_people(
        &self,
        kind: MemberType,
        columns: &[&str],
    ) -> impl Stream<Item = Result<Vec<Person>, Error>> + Send + 'static + use<> {
        let query = Query::new(kind.entity_set())
            .select(with_id(kind, columns))
            .filter(Filter::eq("statecode", 0));
        self.pages_of(&query, PersonReader::new(kind, columns))
    }
}

fn with_id(kind: MemberType, columns: &[&str]) -> Vec<String> {
    let mut out = vec![kind.id_column().to_owned()];
    out.extend(
        columns
            .iter()
            .filter(|c| **c != kind.id_column())
            .map(|c| (*c).to_owned()),
    );
    out
}
