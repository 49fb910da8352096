//! Observation: read both sides of one binding into a [`Snapshot`] for the pure diff.
//! Read-only I/O; everything it reads is what the diff needs and no more.
//!
//! # What is read, and how many requests it takes
//! - Mailchimp: the audience (1 request, by id; by name, the audience list), its tags (static
//!   segments, pages of 1000), and its members of the selected statuses plus those whose status
//!   means consent changed (unsubscribed, cleaned) or, when pruning, that they left (archived), in pages of 1000 with a `fields=` projection
//!   of only the mapped fields (tags only when tags are synced).
//! - CRM: the Audience record (by Mailchimp id), the marketing list (by id or name), the Tag
//!   records of this audience, the list's members (pages of 5000), the contacts or leads on the
//!   list with only the needed columns, then the records that are not on the list but may match
//!   a member (by the stored Mailchimp contact id, then by e-mail — `In` filters of many values,
//!   several to a `$batch`), and the tag links of each Tag record.
//!
//! Memory is the snapshot's compact records; pages are converted as they arrive.
//!
//! Layout note: this is its own module (not under `plan/`) because plan, apply and watch all
//! observe, and `plan/` stays pure.

use std::collections::{BTreeSet, HashMap, HashSet};

use futures::StreamExt;
use serde_json::Value;
use uuid::Uuid;

use crate::config::{self, Binding, ListSelector, MemberStatus, Names, UnsubscribePolicy};
use crate::dataverse;
use crate::dataverse::people::Person;
use crate::dataverse::query::Literal;
use crate::dataverse::records::Row;
use crate::dataverse::tables::ToolTables;
use crate::mailchimp::{self, MemberQuery};
use crate::plan::snapshot::{self, CrmRecord, CrmSide, MailchimpSide, Snapshot};

/// Observation failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading Mailchimp failed.
    #[error("reading Mailchimp failed")]
    Mailchimp(#[source] Box<mailchimp::Error>),
    /// Reading the CRM failed.
    #[error("reading the CRM failed")]
    Dataverse(#[from] dataverse::Error),
    /// The binding names a marketing list by a name that several lists have.
    #[error("{count} marketing lists are named `{name}`; name the list by its id instead")]
    AmbiguousList {
        /// The name.
        name: String,
        /// How many lists have it.
        count: usize,
    },
    /// The config's connection settings cannot be used.
    #[error(transparent)]
    Config(#[from] config::Error),
}

impl From<mailchimp::Error> for Error {
    fn from(err: mailchimp::Error) -> Self {
        Self::Mailchimp(Box::new(err))
    }
}

/// The clients a binding is observed (and applied) with.
#[derive(Clone)]
pub struct Clients {
    /// Mailchimp.
    pub mailchimp: mailchimp::Client,
    /// Dataverse.
    pub dataverse: dataverse::Client,
    /// The tool's own CRM tables.
    pub tables: ToolTables,
}

impl Clients {
    /// Build both clients from a loaded config (resolving its `${VAR}`s).
    ///
    /// # Errors
    /// A variable is not set, or a setting cannot be used.
    pub fn connect(loaded: &config::Loaded) -> Result<Self, Error> {
        let mc = loaded.mailchimp()?;
        let mailchimp = mailchimp::Client::builder()
            .api_key(mc.api_key)
            .base_url(mc.base_url)
            .build()?;
        let dataverse = dataverse::Client::from_settings(loaded.dataverse()?)?;
        let tables = ToolTables::new(
            dataverse.clone(),
            dataverse::schema::Schema::new(&loaded.names),
        );
        Ok(Self {
            mailchimp,
            dataverse,
            tables,
        })
    }
}

/// The statuses read from Mailchimp for a binding: the selected ones, and those that carry a
/// consent change the binding acts on.
#[must_use]
pub fn statuses_to_read(binding: &Binding) -> Vec<MemberStatus> {
    let mut statuses: BTreeSet<MemberStatus> = binding.statuses.clone();
    if binding.on_unsubscribe != UnsubscribePolicy::Keep {
        statuses.insert(MemberStatus::Unsubscribed);
        statuses.insert(MemberStatus::Cleaned);
    }
    if binding.prune_members {
        // Archived members would read as simply gone; reading them names the reason.
        statuses.insert(MemberStatus::Archived);
    }
    statuses.into_iter().collect()
}

/// The `fields=` member fields needed for these paths (top-level names).
#[must_use]
pub fn member_fields(paths: &[String], with_tags: bool) -> Vec<String> {
    let mut fields: BTreeSet<String> = paths
        .iter()
        .map(|p| p.split('.').next().unwrap_or(p).to_owned())
        .filter(|f| !matches!(f.as_str(), "id" | "email_address" | "status" | "contact_id"))
        .collect();
    fields.insert("last_changed".to_owned());
    if with_tags {
        fields.insert("tags".to_owned());
    }
    fields.into_iter().collect()
}

/// The text of a member field, by path (`merge_fields.ADDRESS.city`, `location.country_code`).
#[must_use]
pub fn member_value(member: &mailchimp::Member, path: &str) -> Option<String> {
    let text = |v: Option<&String>| v.cloned();
    match path {
        "email_address" => Some(member.email_address.clone()),
        "status" => Some(member.status.as_str().to_owned()),
        "contact_id" => text(member.contact_id.as_ref()),
        "unique_email_id" => text(member.unique_email_id.as_ref()),
        "language" => text(member.language.as_ref()),
        "vip" => Some(member.vip.to_string()),
        "timestamp_signup" => member.timestamp_signup.map(|t| t.to_rfc3339()),
        "last_changed" => member.last_changed.map(|t| t.to_rfc3339()),
        "tags" => Some(
            member
                .tags
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        _ => {
            if let Some(rest) = path.strip_prefix("merge_fields.") {
                let mut parts = rest.splitn(2, '.');
                let tag = parts.next()?;
                let value = member.merge_fields.get(tag)?;
                return match parts.next() {
                    None => scalar_text(value),
                    Some(part) => value.get(part).and_then(scalar_text),
                };
            }
            if let Some(part) = path.strip_prefix("location.") {
                let location = member.location.as_ref()?;
                let value = serde_json::to_value(location).ok()?;
                return value.get(part).and_then(scalar_text);
            }
            None
        }
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

fn column_text(row: &Row, column: &str) -> Option<String> {
    row.get(column).and_then(scalar_text)
}

/// Read both sides of `binding`. The Mailchimp side and the marketing list's side are read at
/// the same time; the records that may match members but are not on the list are looked up once
/// the members are known.
///
/// # Errors
/// A read failed (after the clients' retries), or the list's name is ambiguous.
pub async fn observe(
    binding: &Binding,
    names: &Names,
    clients: &Clients,
) -> Result<Snapshot, Error> {
    let (mailchimp, list_side) = tokio::join!(
        observe_mailchimp(binding, &clients.mailchimp),
        observe_list(binding, names, clients)
    );
    let mailchimp = mailchimp?;
    let crm = complete_crm(binding, names, clients, list_side?, &mailchimp).await?;
    Ok(Snapshot { mailchimp, crm })
}

async fn observe_mailchimp(
    binding: &Binding,
    client: &mailchimp::Client,
) -> Result<MailchimpSide, Error> {
    let audience = client.find_audience(&binding.audience).await?;
    let tags = if binding.tags.sync {
        client
            .tags(&audience.id)
            .await?
            .into_iter()
            .map(|t| snapshot::Tag {
                id: t.id,
                name: t.name,
                member_count: t.member_count,
            })
            .collect()
    } else {
        Vec::new()
    };
    let field_paths = snapshot::member_field_paths(binding);
    let query = MemberQuery {
        statuses: statuses_to_read(binding),
        since_last_changed: None,
        fields: Some(member_fields(&field_paths, binding.tags.sync)),
    };
    let mut members = Vec::new();
    let mut pages = client.members(&audience.id, query);
    while let Some(page) = pages.next().await {
        for member in page? {
            let values: Vec<Option<String>> = field_paths
                .iter()
                .map(|p| member_value(&member, p))
                .collect();
            let last_changed = member
                .last_changed
                .map(|t| t.to_rfc3339())
                .unwrap_or_default();
            let contact_id = member.contact_id.clone().unwrap_or_default();
            members.push(snapshot::Member::new(
                &member.id,
                &contact_id,
                &member.email_address,
                member.status,
                &last_changed,
                values.iter().map(Option::as_deref),
                member.tags.iter().map(|t| t.id).collect(),
            ));
        }
    }
    Ok(MailchimpSide {
        audience: snapshot::Audience {
            id: audience.id,
            name: audience.name,
        },
        tags,
        field_paths,
        members,
    })
}

/// What the CRM holds for the list: the tool's records and the list's members, converted to
/// compact records as pages arrive.
struct ListSide {
    audience: Option<snapshot::AudienceRecord>,
    list: Option<snapshot::MarketingList>,
    tags: Vec<snapshot::TagRecord>,
    columns: Vec<String>,
    records: Records,
}

/// The records read, in arrival order, with an index by id (cheaper at peak than a map of
/// records, which would briefly exist twice when turned into the snapshot's vector).
#[derive(Default)]
struct Records {
    list: Vec<CrmRecord>,
    index: HashMap<Uuid, usize>,
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

async fn observe_list(
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
        etag: l.etag.unwrap_or_default().into(),
        audience_record: l.audience,
    });
    let columns = snapshot::crm_columns(binding, names);
    let select = select_columns(&columns);
    let mut records = Records::default();
    // Only a static list of the binding's member type is read further: the diff refuses the
    // binding otherwise, and reading an account list as contacts would be wrong.
    let readable = list
        .as_ref()
        .filter(|l| !l.dynamic && l.member_type() == Some(kind));
    if let Some(list) = readable {
        let mut list_member_ids: HashMap<Uuid, Uuid> = HashMap::new();
        let mut members = std::pin::pin!(dv.list_members(list.id));
        while let Some(page) = members.next().await {
            for member in page? {
                list_member_ids.insert(member.entity_id, member.id);
            }
        }
        let mut pages = std::pin::pin!(dv.people_in_list(kind, list.id, &select));
        while let Some(page) = pages.next().await {
            for person in page? {
                let mut record = to_record(&person, &columns, true);
                record.list_member_id = list_member_ids.get(&person.id).copied();
                records.insert_if_absent(record);
            }
        }
    }
    Ok(ListSide {
        audience: None,
        list,
        tags: Vec::new(),
        columns,
        records,
    })
}

fn select_columns(columns: &[String]) -> Vec<&str> {
    let mut select: Vec<&str> = columns.iter().map(String::as_str).collect();
    select.push(snapshot::DO_NOT_BULK_EMAIL_COLUMN);
    select
}

fn to_record(person: &Person, columns: &[String], on_list: bool) -> CrmRecord {
    let values: Vec<Option<String>> = columns
        .iter()
        .map(|c| column_text(&person.row, c))
        .collect();
    let do_not_bulk_email = person
        .row
        .get(snapshot::DO_NOT_BULK_EMAIL_COLUMN)
        .and_then(Value::as_bool)
        .unwrap_or(false);
    CrmRecord::new(
        person.id,
        person.etag.as_deref().unwrap_or_default(),
        values.iter().map(Option::as_deref),
        do_not_bulk_email,
        Vec::new(),
        on_list,
    )
}

async fn complete_crm(
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
    let columns = side.columns.clone();
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

    // Records not on the list that may match a member: by stored Mailchimp id, then by e-mail.
    let known_ids: HashSet<&str> = side
        .records
        .values()
        .filter_map(|r| id_index.and_then(|i| r.value(i)))
        .collect();
    let wanted_ids: Vec<Literal> = mailchimp
        .members
        .iter()
        .map(snapshot::Member::contact_id)
        .filter(|id| !id.is_empty() && !known_ids.contains(*id))
        .map(|id| Literal::Str(id.to_owned()))
        .collect();
    drop(known_ids);
    let mut found: Vec<CrmRecord> = Vec::new();
    if !wanted_ids.is_empty() {
        let mut pages = std::pin::pin!(dv.people_where_in(kind, &id_column, wanted_ids, &select));
        while let Some(page) = pages.next().await {
            found.extend(
                page?
                    .iter()
                    .filter(|p| !side.records.contains(&p.id))
                    .map(|p| to_record(p, &columns, false)),
            );
        }
    }
    for record in found.drain(..) {
        side.records.insert_if_absent(record);
    }
    let matched_ids: HashSet<&str> = side
        .records
        .values()
        .filter_map(|r| id_index.and_then(|i| r.value(i)))
        .collect();
    let known_emails: HashSet<String> = side
        .records
        .values()
        .filter_map(|r| email_index.and_then(|i| r.value(i)))
        .map(|e| e.trim().to_lowercase())
        .collect();
    let wanted_emails: Vec<String> = mailchimp
        .members
        .iter()
        .filter(|m| !matched_ids.contains(m.contact_id()))
        .map(|m| m.email().trim().to_lowercase())
        .filter(|e| !e.is_empty() && !known_emails.contains(e))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    drop(matched_ids);
    drop(known_emails);
    if !wanted_emails.is_empty() {
        let mut pages = std::pin::pin!(dv.people_by_emails(kind, &wanted_emails, &select));
        while let Some(page) = pages.next().await {
            found.extend(
                page?
                    .iter()
                    .filter(|p| !side.records.contains(&p.id))
                    .map(|p| to_record(p, &columns, false)),
            );
        }
    }
    for record in found {
        side.records.insert_if_absent(record);
    }

    // Tag links of the records read (only this audience's Tag records).
    let mut links: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for tag in &side.tags {
        let mut pages = std::pin::pin!(clients.tables.tag_members(kind, tag.id));
        while let Some(page) = pages.next().await {
            for person in page? {
                if side.records.contains(&person) {
                    links.entry(person).or_default().push(tag.id);
                }
            }
        }
    }
    let Records {
        list: mut records,
        index,
    } = side.records;
    for (person, mut tags) in links {
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
        records,
    })
}
