//! The emulated account's data and every change to it, with Mailchimp's rules: subscriber hash =
//! MD5 of the lower-cased e-mail, `contact_id` and `unique_email_id` fixed for a member's life,
//! archive keeps the member (status `archived`), permanent deletion forgets the address for good
//! ("Forgotten Email Not Subscribed"), unsubscribed or cleaned members cannot be re-subscribed
//! ("Member In Compliance State"), tags are static segments with integer ids.
//!
//! # Invariants
//! - `Audience::index` maps every member's subscriber hash to its position in `members`.
//! - Member order is insertion order; offsets shift only when a member is deleted permanently.
//! - A member's `tags` hold tag ids that exist in its audience, each at most once.

mod counts;
mod members;
mod tags;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::errors::Problem;

/// A member's status, with the wire names of the Marketing API's `status` enum
/// (`/work/shared/specs/mailchimp-marketing.json`, `ListMembers2.status`: subscribed,
/// unsubscribed, cleaned, pending, transactional, archived). The emulator's own type: it shares
/// nothing with the client, so a wrong name cannot hide on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberStatus {
    /// Opted in.
    Subscribed,
    /// Opted out.
    Unsubscribed,
    /// Bounced or marked as spam.
    Cleaned,
    /// Waiting for double opt-in confirmation.
    Pending,
    /// Only receives transactional e-mail.
    Transactional,
    /// Archived (kept, but not a contact any more).
    Archived,
}

impl MemberStatus {
    /// The name the API uses.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subscribed => "subscribed",
            Self::Unsubscribed => "unsubscribed",
            Self::Cleaned => "cleaned",
            Self::Pending => "pending",
            Self::Transactional => "transactional",
            Self::Archived => "archived",
        }
    }
}

/// Lower-case hex MD5 of `text`.
#[must_use]
pub fn md5_hex(text: &str) -> String {
    hex::encode(Md5::digest(text.as_bytes()))
}

/// The subscriber hash of an e-mail address: MD5 of its lower-cased form.
#[must_use]
pub fn subscriber_hash(email: &str) -> String {
    md5_hex(&email.trim().to_lowercase())
}

/// Mailchimp's timestamp format: `2015-10-21T15:41:36+00:00`.
#[must_use]
pub fn format_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

/// Parse the ISO 8601 forms Mailchimp accepts in filters and seeds.
#[must_use]
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S") {
        return Some(t.and_utc());
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S") {
        return Some(t.and_utc());
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// A crude but sufficient e-mail check: one `@`, something on both sides, a dot in the domain.
#[must_use]
pub fn is_valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace)
}

/// Id counters, account-wide as in Mailchimp.
#[derive(Debug, Serialize, Deserialize)]
pub struct Ids {
    /// Next segment (tag) id.
    pub segment: u64,
    /// Next member `web_id`.
    pub web: u64,
}

impl Ids {
    /// A new segment id.
    pub fn segment(&mut self) -> u64 {
        self.segment += 1;
        self.segment
    }
    /// A new member web id.
    pub fn web(&mut self) -> u64 {
        self.web += 1;
        self.web
    }
}

/// The whole account.
#[derive(Debug, Serialize, Deserialize)]
pub struct Data {
    /// Audiences in creation order.
    pub audiences: Vec<Audience>,
    /// Id counters.
    pub ids: Ids,
}

impl Default for Data {
    fn default() -> Self {
        Self {
            audiences: Vec::new(),
            ids: Ids {
                segment: 10_000,
                web: 100_000_000,
            },
        }
    }
}

impl Data {
    /// The audience with this id.
    ///
    /// # Errors
    /// 404 when there is none.
    pub fn audience(&self, list_id: &str) -> Result<&Audience, Problem> {
        self.audiences
            .iter()
            .find(|a| a.id == list_id)
            .ok_or_else(Problem::not_found)
    }

    /// The audience with this id, to change it, with the id counters.
    ///
    /// # Errors
    /// 404 when there is none.
    pub fn audience_mut(&mut self, list_id: &str) -> Result<(&mut Audience, &mut Ids), Problem> {
        let Data { audiences, ids } = self;
        let audience = audiences
            .iter_mut()
            .find(|a| a.id == list_id)
            .ok_or_else(Problem::not_found)?;
        // Whoever asks for it may change it: cached listings are stale from now on.
        audience.version += 1;
        Ok((audience, ids))
    }
}

/// A merge field definition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MergeField {
    /// The unchanging numeric id.
    pub merge_id: u32,
    /// The merge tag, e.g. `FNAME`.
    pub tag: String,
    /// The label.
    pub name: String,
    /// Field type.
    pub field_type: String,
    /// Required on writes.
    pub required: bool,
    /// Position in forms.
    pub display_order: u32,
}

/// A tag (static segment).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tag {
    /// Segment id.
    pub id: u64,
    /// Name, unique in its audience.
    pub name: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last rename or membership change.
    pub updated_at: DateTime<Utc>,
}

/// Where a member is.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Location {
    /// ISO country code, e.g. `US`.
    pub country_code: String,
    /// Latitude.
    pub latitude: f64,
    /// Longitude.
    pub longitude: f64,
    /// Time zone name.
    pub timezone: String,
}

/// A list member.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Member {
    /// Subscriber hash: MD5 of the lower-cased e-mail (changes with the e-mail).
    pub hash: String,
    /// The e-mail address as given.
    pub email: String,
    /// Fixed 10-hex id of the address across Mailchimp.
    pub unique_email_id: String,
    /// Fixed 32-hex contact id.
    pub contact_id: String,
    /// Numeric id of the member in the web app.
    pub web_id: u64,
    /// Subscription status.
    pub status: MemberStatus,
    /// `html` or `text`.
    pub email_type: String,
    /// Merge field values by tag.
    pub merge_fields: Map<String, Value>,
    /// Tag ids with the time each was added, oldest first.
    pub tags: Vec<(u64, DateTime<Utc>)>,
    /// Language code.
    pub language: String,
    /// VIP flag.
    pub vip: bool,
    /// Location.
    pub location: Location,
    /// Sign-up time.
    pub timestamp_signup: Option<DateTime<Utc>>,
    /// Opt-in time.
    pub timestamp_opt: Option<DateTime<Utc>>,
    /// Last change of the member's data.
    pub last_changed: DateTime<Utc>,
    /// Why the member unsubscribed.
    pub unsubscribe_reason: Option<String>,
    /// How the member was added.
    pub source: String,
}

/// Cached member listings: (status, archived included, sort field) → (audience version,
/// positions).
type Listings =
    HashMap<(Option<MemberStatus>, bool, Option<SortField>), (u64, std::sync::Arc<Vec<u32>>)>;

/// A `sort_field` of the member listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortField {
    /// `timestamp_opt`.
    TimestampOpt,
    /// `timestamp_signup`.
    TimestampSignup,
    /// `last_changed` (and any other accepted value).
    LastChanged,
}

impl SortField {
    /// The field a `sort_field` value names.
    #[must_use]
    pub fn named(field: &str) -> Self {
        match field {
            "timestamp_opt" => Self::TimestampOpt,
            "timestamp_signup" => Self::TimestampSignup,
            _ => Self::LastChanged,
        }
    }

    /// The sort key of a member.
    #[must_use]
    pub fn key(self, member: &Member) -> Option<chrono::DateTime<chrono::Utc>> {
        match self {
            Self::TimestampOpt => member.timestamp_opt,
            Self::TimestampSignup => member.timestamp_signup,
            Self::LastChanged => Some(member.last_changed),
        }
    }
}

/// An audience (Mailchimp list).
#[derive(Debug, Serialize, Deserialize)]
pub struct Audience {
    /// 10 lowercase hex characters.
    pub id: String,
    /// Numeric id in the web app.
    pub web_id: u64,
    /// Name.
    pub name: String,
    /// Creation time.
    pub date_created: DateTime<Utc>,
    /// Merge fields in display order.
    pub merge_fields: Vec<MergeField>,
    /// Tags in creation order.
    pub tags: Vec<Tag>,
    /// Members in insertion order.
    pub members: Vec<Member>,
    /// Subscriber hash → position in `members` (rebuilt after loading).
    #[serde(skip)]
    pub index: HashMap<String, usize>,
    /// Subscriber hashes of permanently deleted members.
    pub forgotten: HashSet<String>,
    /// Bumped on every change (see [`Data::audience_mut`]); keys [`Audience::positions`].
    #[serde(skip)]
    pub version: u64,
    /// Positions of the members of a status listing, for the version they were computed at.
    #[serde(skip)]
    listings: std::sync::Mutex<Listings>,
    /// Members by status and per tag, for the version they were computed at.
    #[serde(skip)]
    counts: counts::CountsCache,
}

/// What a write says about a member (POST, PUT, PATCH bodies; seeds; test helpers).
#[derive(Debug, Clone, Default)]
pub struct MemberInput {
    /// E-mail address.
    pub email: Option<String>,
    /// Status to set.
    pub status: Option<MemberStatus>,
    /// Status for a new member (PUT).
    pub status_if_new: Option<MemberStatus>,
    /// Merge field values to set.
    pub merge_fields: Option<Map<String, Value>>,
    /// Tags to add (POST only).
    pub tags: Option<Vec<String>>,
    /// Language.
    pub language: Option<String>,
    /// VIP flag.
    pub vip: Option<bool>,
    /// `html` or `text`.
    pub email_type: Option<String>,
    /// Sign-up time.
    pub timestamp_signup: Option<DateTime<Utc>>,
    /// Location country.
    pub country_code: Option<String>,
    /// Contact id to use for a new member (seeds).
    pub contact_id: Option<String>,
    /// Last change to record instead of now (seeds).
    pub last_changed: Option<DateTime<Utc>>,
    /// Accept missing required merge fields.
    pub skip_merge_validation: bool,
}

/// The default merge fields of a new Mailchimp list.
#[must_use]
pub fn default_merge_fields() -> Vec<MergeField> {
    [
        ("FNAME", "First Name", "text"),
        ("LNAME", "Last Name", "text"),
        ("ADDRESS", "Address", "address"),
        ("PHONE", "Phone Number", "phone"),
        ("BIRTHDAY", "Birthday", "birthday"),
    ]
    .iter()
    .zip(1u32..)
    .map(|(&(tag, name, kind), n)| MergeField {
        merge_id: n,
        tag: tag.to_owned(),
        name: name.to_owned(),
        field_type: kind.to_owned(),
        required: false,
        display_order: n + 1,
    })
    .collect()
}

impl Audience {
    /// An empty audience.
    #[must_use]
    pub fn new(id: String, web_id: u64, name: String, date_created: DateTime<Utc>) -> Self {
        Self {
            id,
            web_id,
            name,
            date_created,
            merge_fields: default_merge_fields(),
            tags: Vec::new(),
            members: Vec::new(),
            index: HashMap::new(),
            forgotten: HashSet::new(),
            version: 0,
            listings: std::sync::Mutex::new(HashMap::new()),
            counts: counts::CountsCache::default(),
        }
    }

    /// Positions of the members with `status` (`None`: every status, archived members only
    /// when `include_archived`), in member order, or sorted (stably, ascending) by `sort`.
    /// Cached until the audience changes: a listing is an index, so a page of a large audience
    /// is a slice of it, not a scan or a sort of every member for every page.
    #[must_use]
    pub fn listing(
        &self,
        status: Option<MemberStatus>,
        include_archived: bool,
        sort: Option<SortField>,
    ) -> std::sync::Arc<Vec<u32>> {
        let key = (status, include_archived, sort);
        let mut cache = self
            .listings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((version, positions)) = cache.get(&key)
            && *version == self.version
        {
            return std::sync::Arc::clone(positions);
        }
        let mut positions: Vec<u32> = self
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| match status {
                Some(s) => m.status == s,
                None => include_archived || m.status != MemberStatus::Archived,
            })
            .filter_map(|(i, _)| u32::try_from(i).ok())
            .collect();
        if let Some(field) = sort {
            positions.sort_by_key(|&i| self.members.get(i as usize).and_then(|m| field.key(m)));
        }
        let positions = std::sync::Arc::new(positions);
        cache.insert(key, (self.version, std::sync::Arc::clone(&positions)));
        positions
    }

    /// Position of the member a path names: by subscriber hash, e-mail address or contact id
    /// (the spec's `subscriber_hash` accepts all three).
    #[must_use]
    pub fn find(&self, key: &str) -> Option<usize> {
        if key.contains('@') {
            return self.index.get(&subscriber_hash(key)).copied();
        }
        let key = key.to_lowercase();
        self.index
            .get(&key)
            .copied()
            .or_else(|| self.members.iter().position(|m| m.contact_id == key))
    }

    /// The member a path names.
    ///
    /// # Errors
    /// 404 when there is none.
    pub fn member(&self, key: &str) -> Result<&Member, Problem> {
        self.find(key)
            .map(|i| &self.members[i])
            .ok_or_else(Problem::not_found)
    }

    /// The tag with this id.
    #[must_use]
    pub fn tag(&self, id: u64) -> Option<&Tag> {
        self.tags.iter().find(|t| t.id == id)
    }

    /// The id of the tag with this exact name.
    #[must_use]
    pub fn tag_id(&self, name: &str) -> Option<u64> {
        self.tags.iter().find(|t| t.name == name).map(|t| t.id)
    }

    /// The id of the tag with this name, creating the tag when missing.
    pub fn ensure_tag(&mut self, name: &str, ids: &mut Ids, now: DateTime<Utc>) -> u64 {
        if let Some(id) = self.tag_id(name) {
            return id;
        }
        let id = ids.segment();
        self.tags.push(Tag {
            id,
            name: name.to_owned(),
            created_at: now,
            updated_at: now,
        });
        id
    }

    /// Rebuild `index` from `members`.
    pub fn reindex(&mut self) {
        self.index = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.hash.clone(), i))
            .collect();
    }
}

#[cfg(test)]
mod tests;
