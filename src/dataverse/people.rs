//! Contacts and leads: read by marketing list, by id, by Mailchimp contact id and by e-mail,
//! selecting only the columns asked for.
//!
//! Invariants: lookups by value use `Microsoft.Dynamics.CRM.In` in chunks that keep every URL
//! under [`MAX_FILTER_CHARS`] encoded characters and [`MAX_IN_VALUES`] values, sent
//! [`READS_PER_BATCH`] to a `$batch`; results stream page by page (5000 rows), batch after
//! batch, never collected.

use futures::Stream;
use uuid::Uuid;

use super::batch::{OpOutcome, Operation, Part};
use super::client::{Client, MAX_PAGE_SIZE};
use super::error::Error;
use super::query::{Filter, Literal, Query, in_chunks};
use super::records::{Collection, Row, etag, guid};
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
    /// The selected columns as returned.
    pub row: Row,
}

impl Person {
    /// A string column.
    #[must_use]
    pub fn text(&self, column: &str) -> Option<&str> {
        self.row.get(column).and_then(serde_json::Value::as_str)
    }
}

fn to_people(kind: MemberType, rows: Vec<Row>) -> Vec<Person> {
    rows.into_iter()
        .filter_map(|row| {
            Some(Person {
                id: guid(&row, kind.id_column())?,
                etag: etag(&row),
                row,
            })
        })
        .collect()
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
        let pages = self.pages::<Row>(&query);
        futures::StreamExt::map(pages, move |page| page.map(|rows| to_people(kind, rows)))
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
        let chunks = in_chunks(column, &values, MAX_FILTER_CHARS, MAX_IN_VALUES);
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
                    let mut pages = std::pin::pin!(client.pages_from::<Row>(first, MAX_PAGE_SIZE));
                    while let Some(page) = futures::StreamExt::next(&mut pages).await {
                        yield to_people(kind, page?);
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
                    let page: Collection<Row> = match &outcome {
                        OpOutcome::Ok(response) => serde_json::from_str(&response.body).map_err(|err| {
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
                    yield to_people(kind, page.value);
                    if let Some(next) = page.next_link {
                        let mut pages = std::pin::pin!(client.pages_from::<Row>(Ok(next), MAX_PAGE_SIZE));
                        while let Some(page) = futures::StreamExt::next(&mut pages).await {
                            yield to_people(kind, page?);
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
        emails: &[String],
        columns: &[&str],
    ) -> impl Stream<Item = Result<Vec<Person>, Error>> + Send + 'static + use<> {
        let values = emails.iter().map(|e| Literal::Str(e.clone())).collect();
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
        let pages = self.pages::<Row>(&query);
        futures::StreamExt::map(pages, move |page| page.map(|rows| to_people(kind, rows)))
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
