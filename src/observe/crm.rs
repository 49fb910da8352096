//! The CRM side of a binding: the Audience record, the marketing list and its members, the
//! records that may match a member but are not on the list, the Tag records and their links.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use foldhash::fast::FixedState;

use futures::StreamExt;
use serde_json::Value;
use uuid::Uuid;

use super::{Error, scalar_text};
use crate::clients::Clients;
use crate::config::{Binding, FieldMapping, ListSelector, Names};
use crate::dataverse::columns::{ColumnInfo, ColumnType};
use crate::dataverse::people::Person;
use crate::dataverse::query::Literal;
use crate::domain::MemberType;
use crate::plan::snapshot::{self, CrmRecord, CrmSide, MailchimpSide};

/// The name a column is selected and read under: `_<column>_value` for a lookup.
fn read_name(column: &str, types: &BTreeMap<String, ColumnType>) -> String {
    match types.get(column) {
        Some(ColumnType::Lookup { .. }) => format!("_{column}_value"),
        _ => column.to_owned(),
    }
}

fn column_text<'p>(person: &'p Person, column: &str) -> Option<Cow<'p, str>> {
    person.get(column).and_then(scalar_text)
}

/// What the CRM holds for the list: the tool's records and the list's members, converted to
/// compact records as pages arrive.
pub(super) struct ListSide {
    audience: Option<snapshot::AudienceRecord>,
    list: Option<snapshot::MarketingList>,
    tags: Vec<snapshot::TagRecord>,
    columns: Vec<String>,
    /// Names to select and read, one per column (see [`read_name`]).
    read_names: Vec<String>,
    column_types: BTreeMap<String, ColumnType>,
    records: Records,
}

/// The records read, in arrival order, with an index by id (cheaper at peak than a map of
/// records, which would briefly exist twice when turned into the snapshot's vector).
#[derive(Default)]
struct Records {
    list: Vec<CrmRecord>,
    index: HashMap<Uuid, usize, FixedState>,
}

impl Records {
    fn contains(&self, id: &Uuid) -> bool {
        self.index.contains_key(id)
    }

    fn insert_if_absent(&mut self, record: CrmRecord) {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.index.entry(record.id) {
            slot.insert(self.list.len());
            self.list.push(record);
        }
    }

    fn values(&self) -> impl Iterator<Item = &CrmRecord> {
        self.list.iter()
    }
}

impl ListSide {
    /// The stored Mailchimp id (`id_column`) and e-mail of each of `ids` read on the list.
    pub(super) fn keys_of(
        &self,
        ids: &HashSet<Uuid>,
        id_column: &str,
    ) -> Vec<(Option<String>, Option<String>)> {
        let column = |name: &str| self.columns.iter().position(|c| c == name);
        let (id_col, email_col) = (column(id_column), column(snapshot::EMAIL_COLUMN));
        let value =
            |r: &CrmRecord, col: Option<usize>| col.and_then(|i| r.value(i)).map(str::to_owned);
        self.records
            .values()
            .filter(|r| ids.contains(&r.id))
            .map(|r| (value(r, id_col), value(r, email_col)))
            .collect()
    }
}

pub(super) async fn observe_list(
    binding: &Binding,
    names: &Names,
    clients: &Clients,
) -> Result<ListSide, Error> {
    let dv = &clients.dataverse;
    let kind = binding.list.member_type;
    let list = match &binding.list.selector {
        ListSelector::Id(id) => dv.marketing_list(*id, &names.list_audience_lookup).await?,
        ListSelector::Name(name) => {
            let mut found = dv
                .marketing_lists_named(name, &names.list_audience_lookup)
                .await?;
            if found.len() > 1 {
                return Err(Error::AmbiguousList {
                    name: name.clone(),
                    count: found.len(),
                });
            }
            found.pop()
        }
    };
    let list = list.map(|l| snapshot::MarketingList {
        id: l.id,
        name: l.name,
        dynamic: l.dynamic,
        member_type_code: u8::try_from(l.member_type_code).unwrap_or(0),
        statecode: i32::from(!l.active),
        locked: l.locked,
        etag: l.etag.unwrap_or_default().into(),
        audience_record: l.audience,
    });
    let columns = snapshot::crm_columns(binding, names);
    let column_types = mapped_column_types(binding, clients).await?;
    let read_names: Vec<String> = columns
        .iter()
        .map(|c| read_name(c, &column_types))
        .collect();
    let select = select_columns(&read_names);
    let mut records = Records::default();
    // Only a static list of the binding's member type is read further: the diff refuses the
    // binding otherwise, and reading an account list as contacts would be wrong.
    let readable = list
        .as_ref()
        .filter(|l| !l.dynamic && l.member_type() == Some(kind));
    if let Some(list) = readable {
        // The `listmember` rows and the people on the list are two independent paged reads:
        // both run at once (each follows its own `@odata.nextLink`s).
        let member_ids = async {
            let mut ids: HashMap<Uuid, Uuid, FixedState> = HashMap::default();
            let mut members = std::pin::pin!(dv.list_members(list.id));
            while let Some(page) = members.next().await {
                ids.extend(page?.into_iter().map(|m| (m.entity_id, m.id)));
            }
            Ok::<_, Error>(ids)
        };
        let people = async {
            let mut pages = std::pin::pin!(dv.people_in_list(kind, list.id, &select));
            while let Some(page) = pages.next().await {
                for person in page? {
                    records.insert_if_absent(to_record(&person, &read_names, true));
                }
            }
            Ok::<_, Error>(())
        };
        let (member_ids, people) = futures::join!(member_ids, people);
        let member_ids = member_ids?;
        people?;
        for record in &mut records.list {
            record.list_member_id = member_ids.get(&record.id).copied();
        }
    }
    Ok(ListSide {
        audience: None,
        list,
        tags: Vec::new(),
        columns,
        read_names,
        column_types,
        records,
    })
}

/// The types of the binding's mapped columns that exist (the diff reports the others).
async fn mapped_column_types(
    binding: &Binding,
    clients: &Clients,
) -> Result<BTreeMap<String, ColumnType>, Error> {
    let mapped: BTreeSet<&str> = binding.fields.iter().map(|f| f.column.as_str()).collect();
    let mapped: Vec<&str> = mapped.into_iter().collect();
    let table = binding.list.member_type.logical_name();
    let infos = clients
        .columns
        .columns(&clients.dataverse, table, &mapped)
        .await?;
    let problems = mapping_problems(binding, table, &infos);
    if !problems.is_empty() {
        return Err(Error::Mapping(
            problems.into_iter().map(|(_, p)| p).collect(),
        ));
    }
    Ok(infos
        .into_iter()
        .filter_map(|(c, info)| info.column_type().cloned().map(|t| (c, t)))
        .collect())
}

/// What is wrong with the binding's mapping against the CRM's metadata: missing, read-only or
/// unsupported columns (values that do not convert are per-member problems of the plan).
#[must_use]
pub fn mapping_problems<'b>(
    binding: &'b Binding,
    table: &str,
    infos: &BTreeMap<String, ColumnInfo>,
) -> Vec<(&'b FieldMapping, String)> {
    let mut problems = Vec::new();
    for f in &binding.fields {
        let what = format!("`{}` → `{table}.{}`", f.source, f.column);
        let problem = match infos.get(&f.column) {
            None | Some(ColumnInfo::Missing) => {
                format!("{what}: the table has no column `{}`", f.column)
            }
            Some(ColumnInfo::Found {
                writable: false, ..
            }) => format!("{what}: the column is read-only"),
            Some(ColumnInfo::Found {
                column_type: ColumnType::Unsupported { what: kind },
                ..
            }) => format!("{what}: the column's type, {kind}, is not supported"),
            Some(ColumnInfo::Found { .. }) => continue,
        };
        problems.push((f, problem));
    }
    problems
}

fn select_columns(columns: &[String]) -> Vec<&str> {
    let mut select: Vec<&str> = columns.iter().map(String::as_str).collect();
    select.push(snapshot::DO_NOT_BULK_EMAIL_COLUMN);
    select.push(STATE_COLUMN);
    select
}

/// `statecode` of contact and lead: 0 active, 1 inactive.
const STATE_COLUMN: &str = "statecode";

fn to_record(person: &Person, columns: &[String], on_list: bool) -> CrmRecord {
    // borrowed from the person (only numbers and booleans are written out)
    let values: Vec<Option<Cow<str>>> = columns.iter().map(|c| column_text(person, c)).collect();
    let do_not_bulk_email = person
        .get(snapshot::DO_NOT_BULK_EMAIL_COLUMN)
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut record = CrmRecord::new(
        person.id,
        person.etag.as_deref().unwrap_or_default(),
        values.iter().map(Option::as_deref),
        do_not_bulk_email,
        Vec::new(),
        on_list,
    );
    record.inactive = person
        .get(STATE_COLUMN)
        .and_then(Value::as_i64)
        .is_some_and(|state| state != 0);
    record
}

/// Add to `found` the people of `pages` that are not among `records` yet (not on the list).
async fn collect_unread(
    pages: impl futures::Stream<Item = Result<Vec<Person>, crate::dataverse::Error>>,
    records: &Records,
    columns: &[String],
    found: &mut Vec<CrmRecord>,
) -> Result<(), Error> {
    let mut pages = std::pin::pin!(pages);
    while let Some(page) = pages.next().await {
        found.extend(
            page?
                .iter()
                .filter(|p| !records.contains(&p.id))
                .map(|p| to_record(p, columns, false)),
        );
    }
    Ok(())
}

pub(super) async fn complete(
    binding: &Binding,
    names: &Names,
    clients: &Clients,
    mut side: ListSide,
    mailchimp: &MailchimpSide,
) -> Result<CrmSide, Error> {
    let dv = &clients.dataverse;
    let kind = binding.list.member_type;
    side.audience = clients
        .tables
        .audiences_by_mailchimp_id(&mailchimp.audience.id)
        .await?
        .into_iter()
        .min_by_key(|a| a.id)
        .map(|a| snapshot::AudienceRecord {
            id: a.id,
            etag: a.etag.unwrap_or_default().into(),
            name: a.name,
            sync_status: None,
        });
    if let Some(record) = &side.audience {
        side.tags = clients
            .tables
            .tags(record.id)
            .await?
            .into_iter()
            .filter_map(|t| {
                Some(snapshot::TagRecord {
                    id: t.id,
                    mailchimp_id: t.mailchimp_id.parse().ok()?,
                    name: t.name,
                    etag: t.etag.unwrap_or_default().into(),
                })
            })
            .collect();
    }
    let columns = side.read_names.clone();
    let select = select_columns(&columns);
    let id_index = side
        .columns
        .iter()
        .position(|c| c == names.mailchimp_id_column(binding.list.member_type));
    let email_index = side
        .columns
        .iter()
        .position(|c| c == snapshot::EMAIL_COLUMN);
    let id_column = names
        .mailchimp_id_column(binding.list.member_type)
        .to_owned();

    // The tag links (only this audience's Tag records) do not depend on the look-ups below:
    // they are read meanwhile, every tag at once.
    let records = &mut side.records;
    let lookups = async {
        // Records not on the list that may match a member: by stored Mailchimp id, then by
        // e-mail.
        // The sets borrow their values and are sized up front: in a steady-state plan every
        // member is on the list, and these are its largest tables.
        let id_of = |r| value_at(r, id_index);
        let mut known_ids = fast_set(records.list.len());
        known_ids.extend(records.values().filter_map(id_of));
        let wanted_ids: Vec<Literal> = mailchimp
            .members
            .iter()
            .map(snapshot::Member::contact_id)
            .filter(|id| !id.is_empty() && !known_ids.contains(*id))
            .map(|id| Literal::Str(id.to_owned()))
            .collect();
        let mut found: Vec<CrmRecord> = Vec::new();
        if !wanted_ids.is_empty() {
            let pages = dv.people_where_in(kind, &id_column, wanted_ids, &select);
            collect_unread(pages, records, &columns, &mut found).await?;
        }
        // The records known now: the list's and those just found by id.
        known_ids.extend(found.iter().filter_map(id_of));
        let mut known_emails = fast_set(records.list.len() + found.len());
        known_emails.extend(
            records
                .values()
                .chain(&found)
                .filter_map(|r| value_at(r, email_index))
                .map(lower_trimmed),
        );
        let wanted_emails: Vec<String> = mailchimp
            .members
            .iter()
            .filter(|m| !known_ids.contains(m.contact_id()))
            .map(|m| lower_trimmed(m.email()))
            .filter(|e| !e.is_empty() && !known_emails.contains(e))
            .map(Cow::into_owned)
            .collect();
        let wanted_emails = sorted_unique(wanted_emails);
        drop(known_ids);
        drop(known_emails);
        for record in found.drain(..) {
            records.insert_if_absent(record);
        }
        if !wanted_emails.is_empty() {
            let pages = dv.people_by_emails(kind, wanted_emails, &select);
            collect_unread(pages, records, &columns, &mut found).await?;
        }
        for record in found {
            records.insert_if_absent(record);
        }
        Ok::<_, Error>(())
    };
    let (looked_up, links) = futures::join!(lookups, tag_links(clients, kind, &side.tags));
    looked_up?;
    let links = links?;
    let Records {
        list: mut records,
        index,
    } = side.records;
    for (person, mut tags) in links {
        // Only the records read (the list's and the look-ups') carry their links.
        if let Some(&i) = index.get(&person) {
            tags.sort_unstable();
            tags.dedup();
            records[i].tag_links = tags.into();
        }
    }
    drop(index);
    records.sort_by_key(|r| r.id);
    Ok(CrmSide {
        audience: side.audience,
        list: side.list,
        tags: side.tags,
        columns: side.columns,
        column_types: side.column_types,
        records,
    })
}

/// The value of column `index` of `record`, if both are there.
fn value_at(record: &CrmRecord, index: Option<usize>) -> Option<&str> {
    index.and_then(|i| record.value(i))
}

/// An empty set with room for `n` values, hashed by foldhash.
fn fast_set<T>(n: usize) -> HashSet<T, FixedState> {
    HashSet::with_capacity_and_hasher(n, FixedState::default())
}

/// `text.trim().to_lowercase()`, borrowed when that changes nothing (ASCII without capitals).
/// Not `normalize_email`: that one keeps titlecase letters as they are, and record ids are made
/// from it, so it cannot change; the look-ups have always lower-cased fully.
fn lower_trimmed(text: &str) -> Cow<'_, str> {
    let trimmed = text.trim();
    if trimmed
        .bytes()
        .all(|b| b.is_ascii() && !b.is_ascii_uppercase())
    {
        Cow::Borrowed(trimmed)
    } else {
        Cow::Owned(trimmed.to_lowercase())
    }
}

/// `texts` in byte order without repeats, sorted by [`snapshot::prefix_key`] first.
fn sorted_unique(texts: Vec<String>) -> Vec<String> {
    let mut keyed: Vec<(u64, String)> = texts
        .into_iter()
        .map(|t| (snapshot::prefix_key(t.bytes()), t))
        .collect();
    keyed.sort_unstable();
    keyed.dedup_by(|a, b| a.1 == b.1);
    keyed.into_iter().map(|(_, t)| t).collect()
}

/// The people linked to each of `tags`, as person → tags (every tag read at once, within the
/// client's parallelism).
async fn tag_links(
    clients: &Clients,
    kind: MemberType,
    tags: &[snapshot::TagRecord],
) -> Result<HashMap<Uuid, Vec<Uuid>, FixedState>, Error> {
    // Collected before they are polled: a lazy map holding a closure over `&TagRecord` would
    // make the future not provably `Send` (rustc #102211).
    let reads: Vec<_> = tags
        .iter()
        .map(|tag| tag_people(clients, kind, tag.id))
        .collect();
    let mut reads = futures::stream::iter(reads).buffer_unordered(clients.dataverse.parallelism());
    let mut links: HashMap<Uuid, Vec<Uuid>, FixedState> = HashMap::default();
    while let Some(read) = reads.next().await {
        let (tag, people) = read?;
        for person in people {
            links.entry(person).or_default().push(tag);
        }
    }
    Ok(links)
}

/// The people linked to one tag.
async fn tag_people(
    clients: &Clients,
    kind: MemberType,
    tag: Uuid,
) -> Result<(Uuid, Vec<Uuid>), Error> {
    let mut people = Vec::new();
    let mut pages = std::pin::pin!(clients.tables.tag_members(kind, tag));
    while let Some(page) = pages.next().await {
        people.extend(page?);
    }
    Ok((tag, people))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_trimmed_is_trim_then_to_lowercase() {
        for text in [
            "",
            " ",
            "a@x.io",
            " A@X.io ",
            "ǅ@x.io",
            "\u{212A}elvin@x.io",
            "Äsa@x.io",
            "é@x.io\t",
        ] {
            let lowered = lower_trimmed(text);
            assert_eq!(lowered, text.trim().to_lowercase(), "{text:?}");
            let unchanged = text.trim() == text.trim().to_lowercase() && text.is_ascii();
            assert_eq!(matches!(lowered, Cow::Borrowed(_)), unchanged, "{text:?}");
        }
    }

    #[test]
    fn sorted_unique_is_byte_order_without_repeats() {
        let texts: Vec<String> = [
            "zed@x.io",
            "a@x.io",
            "abcdefgh1@x.io",
            "abcdefgh0@x.io",
            "abcdefgh",
            "abc",
            "a@x.io",
            "abcdefgh0@x.io",
            "é@x.io",
            "",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        let expected: Vec<String> = texts
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(sorted_unique(texts), expected);
    }
}
