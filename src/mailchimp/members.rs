//! Reading an audience's members: one pass per status, each over a stable order
//! (`sort_field=timestamp_signup`, or `last_changed` for a catch-up read), paged by
//! [`Pager`](super::paging::Pager) so that a set changing while it is read loses no member that
//! stayed in it and repeats none. The passes run at the same time; each reads ahead as far as
//! the client's connection budget allows (the budget itself is the client's semaphore).
//!
//! A page is decoded as soon as its body has arrived, by the read's [`PageDecoder`] (the whole
//! [`Member`], or a [`super::Projection`] of the fields one read needs), and the body dropped.

use std::sync::Arc;
use std::time::Instant;

use futures::stream::{self, BoxStream, FuturesOrdered, StreamExt, TryStreamExt};

use super::paging::{OVERLAP, Pager, Step};
use super::row::{FullMembers, MemberRow, Page, PageDecoder};
use super::{
    Client, Error, Member, MemberQuery, MemberStatus, MemberTag, NotFound, PAGE_SIZE, encode,
};

impl Client {
    /// The audience's members, as a stream of pages (up to 1000 members each). With several
    /// statuses, one pass per status runs at the same time and their pages interleave. See the
    /// module's guarantees: bounded memory, complete tags, a consistent pass over a changing set
    /// (each member of a pass at most once; [`Error::Churn`] when it changes too fast).
    pub fn members(
        &self,
        list_id: &str,
        query: MemberQuery,
    ) -> BoxStream<'static, Result<Vec<Member>, Error>> {
        self.members_as(list_id, query, Arc::new(FullMembers))
    }

    /// [`Client::members`], each page decoded by `decoder` (e.g. a [`super::Projection`]:
    /// only the fields a read needs). `query.fields` must request what the decoder reads.
    pub fn members_as<D: PageDecoder>(
        &self,
        list_id: &str,
        query: MemberQuery,
        decoder: Arc<D>,
    ) -> BoxStream<'static, Result<Vec<D::Row>, Error>> {
        let mut statuses: Vec<Option<MemberStatus>> = Vec::new();
        for status in &query.statuses {
            if !statuses.contains(&Some(*status)) {
                statuses.push(Some(*status));
            }
        }
        if statuses.is_empty() {
            statuses.push(None);
        }
        let passes = statuses
            .into_iter()
            .map(|status| self.pass(list_id.to_owned(), query.clone(), status, decoder.clone()));
        Box::pin(stream::select_all(passes))
    }

    /// One pass over the members of one status.
    fn pass<D: PageDecoder>(
        &self,
        list_id: String,
        query: MemberQuery,
        status: Option<MemberStatus>,
        decoder: Arc<D>,
    ) -> BoxStream<'static, Result<Vec<D::Row>, Error>> {
        let client = self.clone();
        let ahead = self.inner.budget;
        let stream = async_stream::try_stream! {
            let started = Instant::now();
            let mut pager = Pager::new(PAGE_SIZE, OVERLAP);
            let mut in_flight = FuturesOrdered::new();
            loop {
                while in_flight.len() < ahead {
                    let Some(offset) = pager.issue(in_flight.len()) else { break };
                    let client = client.clone();
                    let (list_id, query) = (list_id.clone(), query.clone());
                    let generation = pager.generation();
                    let decoder = Arc::clone(&decoder);
                    in_flight.push_back(async move {
                        let page = client.member_page(&list_id, &query, status, offset, &*decoder).await;
                        (generation, offset, page)
                    });
                }
                let Some((generation, offset, page)) = in_flight.next().await else { break };
                if generation != pager.generation() {
                    continue;
                }
                let page: Page<D::Row> = page?;
                let ids: Vec<&str> = page.items.iter().map(MemberRow::id).collect();
                let step = pager.accept(offset, &ids, page.total_items).map_err(|gave_up| Error::Churn {
                    list_id: list_id.clone(),
                    status: status.map_or("all", |s| s.as_str()).to_owned(),
                    shifts: gave_up.shifts,
                    restarts: gave_up.restarts,
                    seconds: started.elapsed().as_secs(),
                })?;
                let (keep, last) = match step {
                    Step::Keep(keep) => (keep, false),
                    Step::Last(keep) => (keep, true),
                    Step::Again => {
                        tracing::debug!(list_id, offset, "a members page shifted, reading it again");
                        in_flight = FuturesOrdered::new();
                        continue;
                    }
                };
                let members = kept(page.items, &keep);
                if !members.is_empty() {
                    yield client.complete_tags(&list_id, &query, members).await?;
                }
                if last {
                    break;
                }
            }
        };
        Box::pin(stream)
    }

    async fn member_page<D: PageDecoder>(
        &self,
        list_id: &str,
        query: &MemberQuery,
        status: Option<MemberStatus>,
        offset: usize,
        decoder: &D,
    ) -> Result<Page<D::Row>, Error> {
        let time =
            |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string();
        let mut q: Vec<(&str, String)> = vec![
            ("count", PAGE_SIZE.to_string()),
            ("offset", offset.to_string()),
            ("fields", query.fields_param()),
            ("sort_field", query.order.sort_field().to_owned()),
            ("sort_dir", "ASC".to_owned()),
        ];
        if let Some(status) = status {
            q.push(("status", status.as_str().to_owned()));
        }
        if let Some(since) = query.since_last_changed {
            q.push(("since_last_changed", time(since)));
        }
        let path = format!("/lists/{}/members", encode(list_id));
        let (body, _) = self.get_raw(&path, &q, NotFound::Audience(list_id)).await?;
        decoder.decode(&body).map_err(|source| Error::Decode {
            method: "GET".into(),
            path,
            source,
        })
    }

    /// Some members by key (subscriber hash, e-mail address or contact id: the path accepts
    /// all three), one `GET /lists/{list_id}/members/{key}` each, as many at a time as the
    /// connection budget allows; a key that names no member (404) is left out. For a handful of
    /// members, e.g. those a saved plan changes: cheaper than paging through the audience.
    ///
    /// # Errors
    /// Any transport or API error other than 404.
    pub async fn members_by_key(
        &self,
        list_id: &str,
        keys: &[String],
        query: &MemberQuery,
    ) -> Result<Vec<Member>, Error> {
        let fields = query.member_fields_param();
        let found: Vec<Option<Member>> = stream::iter(keys)
            .map(|key| {
                let path = format!("/lists/{}/members/{}", encode(list_id), encode(key));
                let q = [("fields", fields.clone())];
                async move {
                    match self.get::<Member>(&path, &q, NotFound::Other).await {
                        Ok(member) => Ok(Some(member)),
                        Err(Error::Api { status: 404, .. }) => Ok(None),
                        Err(err) => Err(err),
                    }
                }
            })
            .buffer_unordered(self.inner.budget)
            .try_collect()
            .await?;
        self.complete_tags(list_id, query, found.into_iter().flatten().collect())
            .await
    }

    /// Read the full tag list of every member whose object stopped at 50 tags.
    async fn complete_tags<R: MemberRow>(
        &self,
        list_id: &str,
        query: &MemberQuery,
        mut members: Vec<R>,
    ) -> Result<Vec<R>, Error> {
        if !query.wants_tags() {
            return Ok(members);
        }
        let incomplete: Vec<usize> = members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.tags_incomplete())
            .map(|(i, _)| i)
            .collect();
        let fetched: Vec<(usize, Vec<MemberTag>)> = stream::iter(incomplete)
            .map(|i| {
                let hash = members[i].id().to_owned();
                async move { Ok::<_, Error>((i, self.member_tags(list_id, &hash).await?)) }
            })
            .buffer_unordered(self.inner.budget)
            .try_collect()
            .await?;
        for (i, tags) in fetched {
            members[i].set_tags(tags);
        }
        Ok(members)
    }
}

/// The items at the indices `keep` (ascending, each once), in that order.
fn kept<T>(items: Vec<T>, keep: &[usize]) -> Vec<T> {
    if keep.len() == items.len() {
        return items;
    }
    let mut keep = keep.iter().peekable();
    items
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.next_if_eq(&i).is_some())
        .map(|(_, item)| item)
        .collect()
}
