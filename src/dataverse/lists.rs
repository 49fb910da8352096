//! Marketing lists (`lists`) and their membership (`listmembers`, `AddListMembersList`,
//! `AddMemberList`).
//!
//! Invariants: membership is read as `listmembers` rows filtered by `_listid_value`, selecting
//! only `_entityid_value` and `listmemberid`, streamed 5000 per page; members are added in
//! unbound `AddListMembersList` calls of at most [`ADD_CHUNK`] (sized by the client's
//! [`super::batch::Sizer`]) and removed with
//! `DELETE listmembers(id)` inside `$batch` requests.

use std::collections::{HashMap, HashSet};

use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use uuid::Uuid;

use super::batch::{OpOutcome, Operation};
use super::client::Client;
use super::error::{Error, NOT_A_LIST_MEMBER, NOT_FOUND};
use super::query::{Filter, Query};
use super::records::{Created, Row, etag, guid, record_path, text};
use super::rows::{KeyIn, RowReader, guid_value, skip_value};
use crate::domain::MemberType;
use crate::http::Idempotency;
use serde::de::MapAccess;

/// The list's name column.
pub const NAME_COLUMN: &str = "listname";
/// The list's member type column (see [`MemberType::list_code`]).
pub const MEMBER_TYPE_COLUMN: &str = "createdfromcode";

/// Members per `AddListMembersList` call.
pub const ADD_CHUNK: usize = 1000;

/// A marketing list as the tool needs to see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketingList {
    /// `listid`.
    pub id: Uuid,
    /// `listname`.
    pub name: String,
    /// `type`: true = dynamic (members come from a query; the tool cannot write them).
    pub dynamic: bool,
    /// `createdfromcode` (see [`MemberType::list_code`]; 1 is accounts).
    pub member_type_code: i64,
    /// `statecode` 0 (inactive lists are read-only).
    pub active: bool,
    /// `lockstatus` (locked lists accept no new members).
    pub locked: bool,
    /// The list's Audience lookup.
    pub audience: Option<Uuid>,
    /// The list's version.
    pub etag: Option<String>,
}

impl MarketingList {
    /// Contacts or leads; `None` for a list of accounts or of an unknown type.
    #[must_use]
    pub fn member_type(&self) -> Option<MemberType> {
        MemberType::from_list_code(self.member_type_code)
    }
}

/// One row of `listmembers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListMember {
    /// `listmemberid` (used to remove it).
    pub id: Uuid,
    /// The contact, lead or account.
    pub entity_id: Uuid,
}

/// Reads a `listmembers` row straight from the body (rows without both ids are dropped).
struct ListMemberReader;

impl RowReader for ListMemberReader {
    type Row = ListMember;

    fn row<'de, A: MapAccess<'de>>(&self, mut map: A) -> Result<Option<ListMember>, A::Error> {
        let (mut id, mut entity_id) = (None, None);
        while let Some(key) = map.next_key_seed(KeyIn(&["listmemberid", "_entityid_value"]))? {
            match key {
                Some(0) => id = guid_value(&mut map)?,
                Some(_) => entity_id = guid_value(&mut map)?,
                None => skip_value(&mut map)?,
            }
        }
        Ok(id
            .zip(entity_id)
            .map(|(id, entity_id)| ListMember { id, entity_id }))
    }
}

fn list_columns(lookup: &str) -> Vec<String> {
    vec![
        "listid".to_owned(),
        NAME_COLUMN.to_owned(),
        "type".to_owned(),
        MEMBER_TYPE_COLUMN.to_owned(),
        "statecode".to_owned(),
        "lockstatus".to_owned(),
        format!("_{lookup}_value"),
    ]
}

fn parse_list(row: &Row, lookup: &str) -> Result<MarketingList, Error> {
    let bad = |message: String| Error::Response {
        method: "GET".to_owned(),
        path: "lists".to_owned(),
        message,
    };
    let id = guid(row, "listid").ok_or_else(|| bad("a list without `listid`".to_owned()))?;
    let code = row
        .get(MEMBER_TYPE_COLUMN)
        .and_then(Value::as_i64)
        .ok_or_else(|| bad(format!("list `{id}` has no `createdfromcode`")))?;
    Ok(MarketingList {
        id,
        name: text(row, NAME_COLUMN).unwrap_or_default(),
        dynamic: row.get("type").and_then(Value::as_bool).unwrap_or(false),
        member_type_code: code,
        active: row.get("statecode").and_then(Value::as_i64).unwrap_or(0) == 0,
        locked: row
            .get("lockstatus")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        audience: guid(row, &format!("_{lookup}_value")),
        etag: etag(row),
    })
}

impl Client {
    /// A marketing list by id; `None` when there is none. `audience_lookup` is the list's
    /// Audience lookup column (see [`super::schema::Names::list_audience_lookup`]).
    ///
    /// # Errors
    /// Any other failure.
    pub async fn marketing_list(
        &self,
        id: Uuid,
        audience_lookup: &str,
    ) -> Result<Option<MarketingList>, Error> {
        let columns = list_columns(audience_lookup);
        let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
        match self.retrieve("lists", id, &columns).await? {
            Some(row) => parse_list(&row, audience_lookup).map(Some),
            None => Ok(None),
        }
    }

    /// The marketing lists with exactly this name (several may share it).
    ///
    /// # Errors
    /// Any failure.
    pub async fn marketing_lists_named(
        &self,
        name: &str,
        audience_lookup: &str,
    ) -> Result<Vec<MarketingList>, Error> {
        let query = Query::new("lists")
            .select(list_columns(audience_lookup))
            .filter(Filter::eq(NAME_COLUMN, name));
        let rows: Vec<Row> = self.collect(&query).await?;
        rows.iter()
            .map(|r| parse_list(r, audience_lookup))
            .collect()
    }

    /// Create a static marketing list of `member_type` with a client-chosen id, optionally
    /// pointing its Audience lookup at an Audience record.
    ///
    /// # Errors
    /// Any refusal other than "already exists".
    pub async fn create_static_list(
        &self,
        id: Uuid,
        name: &str,
        member_type: MemberType,
        audience: Option<AudienceBinding<'_>>,
    ) -> Result<Created, Error> {
        let mut body = json!({
            "listid": id,
            NAME_COLUMN: name,
            "type": false,
            MEMBER_TYPE_COLUMN: member_type.list_code(),
        });
        if let (Some(binding), Some(map)) = (audience, body.as_object_mut()) {
            map.insert(binding.bind_key(), Value::String(binding.bind_value()));
        }
        self.create("lists", &body).await
    }

    /// Point a list's Audience lookup at an Audience record.
    ///
    /// # Errors
    /// The list does not exist, or any other refusal.
    pub async fn set_list_audience(
        &self,
        list_id: Uuid,
        audience: AudienceBinding<'_>,
    ) -> Result<(), Error> {
        let mut body = serde_json::Map::new();
        body.insert(audience.bind_key(), Value::String(audience.bind_value()));
        self.update("lists", list_id, &Value::Object(body), None)
            .await
            .map(|_| ())
    }

    /// The members of a list, streamed one page (up to 5000) at a time.
    pub fn list_members(
        &self,
        list_id: Uuid,
    ) -> impl Stream<Item = Result<Vec<ListMember>, Error>> + Send + 'static + use<> {
        let query = Query::new("listmembers")
            .select(["_entityid_value", "listmemberid"])
            .filter(Filter::eq("_listid_value", list_id));
        self.pages_of(&query, ListMemberReader)
    }

    /// Add many contacts or leads to a static list: unbound `AddListMembersList`, at most
    /// [`ADD_CHUNK`] per call. Members already in the list are left as they are.
    ///
    /// # Errors
    /// The first call the service refused (earlier chunks stay added).
    pub async fn add_list_members(
        &self,
        list_id: Uuid,
        member_type: MemberType,
        ids: &[Uuid],
    ) -> Result<(), Error> {
        self.add_list_members_each(list_id, member_type, ids)
            .await
            .into_iter()
            .try_for_each(|(_, answer)| answer)
    }

    /// [`Self::add_list_members`], every call sent whatever the others answered: returns which
    /// of `ids` each call carried and its answer, in the order of `ids`. Calls are sized by
    /// the client's sizer (at most [`ADD_CHUNK`]) and sent up to the client's parallelism at
    /// once, so a caller hands over all its members in one go (handing over 1,000 at a time
    /// would split each thousand over the requests in flight).
    pub async fn add_list_members_each(
        &self,
        list_id: Uuid,
        member_type: MemberType,
        ids: &[Uuid],
    ) -> Vec<(std::ops::Range<usize>, Result<(), Error>)> {
        let odata_type = format!("Microsoft.Dynamics.CRM.{}", member_type.logical_name());
        let (odata_type, id_column) = (odata_type.as_str(), member_type.id_column());
        let add = |range: std::ops::Range<usize>| async move {
            let chunk = &ids[range.clone()];
            let members: Vec<Value> = chunk
                .iter()
                .map(|id| json!({ "@odata.type": odata_type, id_column: id }))
                .collect();
            let body = json!({
                "List": { "@odata.type": "Microsoft.Dynamics.CRM.list", "listid": list_id },
                "Members": members,
            });
            let (started, throttled_before) = (std::time::Instant::now(), self.stats().throttled());
            let answer = self
                .post_action("AddListMembersList", &body, Idempotency::Idempotent)
                .await;
            self.batch_done(chunk.len(), started, throttled_before);
            (range, answer.map(|_| ()))
        };
        self.in_ranges(ids.len(), ADD_CHUNK, add).await
    }

    /// Add one member with the list-bound `AddMemberList`; returns the new `listmemberid`
    /// (or the existing one's, as the service answers).
    ///
    /// # Errors
    /// Any refusal.
    pub async fn add_list_member(&self, list_id: Uuid, entity_id: Uuid) -> Result<Uuid, Error> {
        let path = format!(
            "{}/Microsoft.Dynamics.CRM.AddMemberList",
            record_path("lists", list_id)
        );
        let answer = self
            .post_action(
                &path,
                &json!({ "EntityId": entity_id }),
                Idempotency::Idempotent,
            )
            .await?;
        answer
            .get("Id")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| Error::Response {
                method: "POST".to_owned(),
                path,
                message: "no `Id` in the AddMemberList answer".to_owned(),
            })
    }

    /// Remove one list member row; `false` when it was already gone.
    ///
    /// # Errors
    /// Any other refusal.
    pub async fn remove_list_member(&self, list_member_id: Uuid) -> Result<bool, Error> {
        self.delete("listmembers", list_member_id).await
    }

    /// Remove many list member rows with `DELETE listmembers(<id>)` (the route the
    /// `listmember` table reference documents) in `$batch` requests. A row already gone counts
    /// as removed (see [`already_gone`]). Returns each one's failure (`None` when removed), in
    /// the order given.
    ///
    /// # Errors
    /// A batch could not be sent or read.
    pub async fn remove_list_members(
        &self,
        list_member_ids: &[Uuid],
    ) -> Result<Vec<Option<String>>, Error> {
        let ops = list_member_ids
            .iter()
            .map(|id| Operation::delete(record_path("listmembers", *id)));
        self.run_batched(ops, |o| {
            if o.is_ok() || already_gone(o) {
                None
            } else {
                o.failure()
            }
        })
        .await
    }

    /// The `listmemberid` of each of `entities` on list `list_id` (those not on it are absent).
    ///
    /// # Errors
    /// The list's members could not be read.
    pub async fn list_member_ids(
        &self,
        list_id: Uuid,
        entities: &HashSet<Uuid>,
    ) -> Result<HashMap<Uuid, Uuid>, Error> {
        let mut found = HashMap::new();
        let mut pages = std::pin::pin!(self.list_members(list_id));
        while let Some(page) = pages.next().await {
            for member in page? {
                if entities.contains(&member.entity_id) {
                    found.insert(member.entity_id, member.id);
                }
            }
        }
        Ok(found)
    }
}

/// Whether a removal failed only because the member is already gone: the real answers are
/// `404` with `0x80040217` "listmember With Id = … Does Not Exist" for `DELETE listmembers(id)`
/// and `0x80048458` CannotRemoveNonListMember "Specified Item not a member of the specified
/// List." for `RemoveMemberList` (PD `reference/web-service-error-codes`). Any other 404 (a
/// "Resource not found for the segment …" of a missing route) is a failure.
#[must_use]
pub fn already_gone(outcome: &OpOutcome) -> bool {
    let OpOutcome::Failed(r) = outcome else {
        return false;
    };
    let e = r.error();
    let code = e.code.trim();
    code.eq_ignore_ascii_case(NOT_A_LIST_MEMBER)
        || (r.status == 404
            && (code.eq_ignore_ascii_case(NOT_FOUND)
                || (code.is_empty() && e.message.contains("Does Not Exist"))))
}

/// How to write a lookup to an Audience record: `"<lookup>@odata.bind": "/<set>(<id>)"`.
#[derive(Debug, Clone, Copy)]
pub struct AudienceBinding<'a> {
    /// The lookup column (its navigation property has the same name).
    pub lookup: &'a str,
    /// The Audience table's entity set.
    pub entity_set: &'a str,
    /// The Audience record.
    pub id: Uuid,
}

impl AudienceBinding<'_> {
    fn bind_key(&self) -> String {
        format!("{}@odata.bind", self.lookup)
    }
    fn bind_value(&self) -> String {
        format!("/{}", record_path(self.entity_set, self.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataverse::batch::OpResponse;

    fn failed(status: u16, body: &str) -> OpOutcome {
        OpOutcome::Failed(OpResponse {
            status,
            headers: Vec::new(),
            body: body.to_owned(),
            content_id: None,
        })
    }

    #[test]
    fn only_the_real_already_gone_answers_count_as_removed() {
        assert!(already_gone(&failed(
            404,
            r#"{"error":{"code":"0x80040217","message":"listmember With Id = 1 Does Not Exist"}}"#
        )));
        assert!(already_gone(&failed(
            400,
            r#"{"error":{"code":"0x80048458","message":"Specified Item not a member of the specified List."}}"#
        )));
        // A missing route is not a removal.
        assert!(!already_gone(&failed(
            404,
            r#"{"error":{"code":"0x8006088a","message":"Resource not found for the segment 'RemoveMemberList'."}}"#
        )));
        assert!(!already_gone(&failed(
            403,
            r#"{"error":{"code":"0x80040220","message":"no privilege"}}"#
        )));
    }

    #[test]
    fn list_rows_are_read_with_their_lookup() {
        let row: Row = serde_json::from_value(json!({
            "@odata.etag": "W/\"5\"",
            "listid": "00000000-0000-0000-0000-000000000001",
            "listname": "Newsletter",
            "type": false,
            "createdfromcode": 4,
            "statecode": 0,
            "lockstatus": true,
            "_mcsync_audienceid_value": "00000000-0000-0000-0000-000000000002"
        }))
        .unwrap();
        let list = parse_list(&row, "mcsync_audienceid").unwrap();
        assert_eq!(list.member_type(), Some(MemberType::Lead));
        assert!(list.locked && list.active && !list.dynamic);
        assert_eq!(list.audience, Some(Uuid::from_u128(2)));
        assert_eq!(list.etag.as_deref(), Some("W/\"5\""));
        let mut broken = row.clone();
        broken.remove("createdfromcode");
        assert!(parse_list(&broken, "mcsync_audienceid").is_err());
    }
}
