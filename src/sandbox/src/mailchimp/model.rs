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

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::problem::{FieldError, Problem};

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

/// Cached member listings: (status, archived included) → (audience version, positions).
type Listings = HashMap<(Option<MemberStatus>, bool), (u64, std::sync::Arc<Vec<u32>>)>;

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
        }
    }

    /// Positions of the members with `status` (`None`: every status, archived members only
    /// when `include_archived`), in member order. Cached until the audience changes, so paging
    /// through a large audience does not scan every member for every page.
    #[must_use]
    pub fn positions(
        &self,
        status: Option<MemberStatus>,
        include_archived: bool,
    ) -> std::sync::Arc<Vec<u32>> {
        let key = (status, include_archived);
        let mut cache = self
            .listings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((version, positions)) = cache.get(&key)
            && *version == self.version
        {
            return std::sync::Arc::clone(positions);
        }
        let positions: Vec<u32> = self
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| match status {
                Some(s) => m.status == s,
                None => include_archived || m.status != MemberStatus::Archived,
            })
            .filter_map(|(i, _)| u32::try_from(i).ok())
            .collect();
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

    fn check_merge_fields(
        &self,
        given: Option<&Map<String, Value>>,
        existing: Option<&Map<String, Value>>,
        skip: bool,
    ) -> Result<Map<String, Value>, Problem> {
        let mut out = Map::new();
        let mut errors = Vec::new();
        for field in &self.merge_fields {
            let value = given
                .and_then(|g| g.get(&field.tag))
                .or_else(|| existing.and_then(|e| e.get(&field.tag)));
            let empty = value.is_none_or(|v| v.is_null() || v.as_str() == Some(""));
            if field.required && empty && !skip {
                errors.push(FieldError {
                    field: field.tag.clone(),
                    message: "Please enter a value".to_owned(),
                });
            }
            let value = match value {
                Some(Value::Null) | None => Value::String(String::new()),
                Some(v) => v.clone(),
            };
            out.insert(field.tag.clone(), value);
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(Problem::invalid_resource(
                "Your merge fields were invalid.",
                errors,
            ))
        }
    }

    /// Add a new member (POST): refuses an existing or forgotten address.
    ///
    /// # Errors
    /// "Invalid Resource", "Member Exists", "Forgotten Email Not Subscribed".
    pub fn add_member(
        &mut self,
        input: MemberInput,
        ids: &mut Ids,
        now: DateTime<Utc>,
    ) -> Result<usize, Problem> {
        let email = input.email.clone().unwrap_or_default();
        if !is_valid_email(&email) {
            return Err(Problem::invalid_resource(
                "Please provide a valid email address.",
                Vec::new(),
            ));
        }
        let Some(status) = input.status else {
            return Err(Problem::missing("status", "enum"));
        };
        let hash = subscriber_hash(&email);
        if let Some(&i) = self.index.get(&hash) {
            if self.members[i].status != MemberStatus::Archived {
                return Err(Problem::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "Member Exists",
                    format!(
                        "{email} is already a list member. Use PUT to insert or update list members."
                    ),
                ));
            }
            let input = MemberInput {
                status: Some(status),
                ..input
            };
            self.update_member(i, input, ids, now)?;
            return Ok(i);
        }
        self.insert_new(email, status, input, ids, now)
    }

    fn insert_new(
        &mut self,
        email: String,
        status: MemberStatus,
        input: MemberInput,
        ids: &mut Ids,
        now: DateTime<Utc>,
    ) -> Result<usize, Problem> {
        let hash = subscriber_hash(&email);
        if self.forgotten.contains(&hash) {
            return Err(Problem::new(
                axum::http::StatusCode::BAD_REQUEST,
                "Forgotten Email Not Subscribed",
                format!(
                    "{email} was permanently deleted and cannot be re-imported. The contact must re-subscribe to get back on the list."
                ),
            ));
        }
        if status == MemberStatus::Archived {
            return Err(Problem::invalid_field(
                "status",
                "Data presented is not one of the accepted values: subscribed, unsubscribed, cleaned, pending, transactional",
            ));
        }
        let merge_fields = self.check_merge_fields(
            input.merge_fields.as_ref(),
            None,
            input.skip_merge_validation,
        )?;
        let contact_id = input
            .contact_id
            .clone()
            .unwrap_or_else(|| md5_hex(&format!("contact:{}:{}", self.id, email.to_lowercase())));
        let signup = input.timestamp_signup.unwrap_or(now);
        let mut member = Member {
            unique_email_id: md5_hex(&format!("unique:{}:{}", self.id, email.to_lowercase()))[..10]
                .to_owned(),
            contact_id,
            web_id: ids.web(),
            hash: hash.clone(),
            email,
            status,
            email_type: input
                .email_type
                .clone()
                .unwrap_or_else(|| "html".to_owned()),
            merge_fields,
            tags: Vec::new(),
            language: input.language.clone().unwrap_or_default(),
            vip: input.vip.unwrap_or(false),
            location: Location {
                country_code: input.country_code.clone().unwrap_or_default(),
                ..Location::default()
            },
            timestamp_signup: Some(signup),
            timestamp_opt: (status == MemberStatus::Subscribed).then_some(signup),
            last_changed: input.last_changed.unwrap_or(now),
            unsubscribe_reason: None,
            source: "API - Generic".to_owned(),
        };
        for name in input.tags.iter().flatten() {
            let id = self.ensure_tag(name, ids, now);
            if !member.tags.iter().any(|(t, _)| *t == id) {
                member.tags.push((id, now));
            }
        }
        self.members.push(member);
        self.index.insert(hash, self.members.len() - 1);
        Ok(self.members.len() - 1)
    }

    /// Create or update (PUT). The path's key must name the body's e-mail when the member is new.
    ///
    /// # Errors
    /// "Invalid Resource", "Member In Compliance State", "Forgotten Email Not Subscribed",
    /// "Member Exists" (an e-mail change onto another member).
    pub fn upsert_member(
        &mut self,
        key: &str,
        input: MemberInput,
        ids: &mut Ids,
        now: DateTime<Utc>,
    ) -> Result<usize, Problem> {
        let Some(email) = input.email.clone() else {
            return Err(Problem::missing("email_address", "string"));
        };
        if let Some(i) = self.find(key) {
            return self.update_member(i, input, ids, now);
        }
        let Some(status) = input.status_if_new else {
            return Err(Problem::missing("status_if_new", "enum"));
        };
        if !is_valid_email(&email) {
            return Err(Problem::invalid_resource(
                "Please provide a valid email address.",
                Vec::new(),
            ));
        }
        if subscriber_hash(&email) != key.to_lowercase() && !key.contains('@') {
            return Err(Problem::bad_request(
                "The subscriber hash in the path does not match the email address in the body.",
            ));
        }
        let status = input.status.unwrap_or(status);
        self.insert_new(email, status, input, ids, now)
    }

    /// Change an existing member (PATCH, and PUT/POST on an existing or archived one).
    ///
    /// # Errors
    /// "Invalid Resource", "Member In Compliance State", "Member Exists".
    pub fn update_member(
        &mut self,
        i: usize,
        input: MemberInput,
        ids: &mut Ids,
        now: DateTime<Utc>,
    ) -> Result<usize, Problem> {
        let current = self.members[i].clone();
        let merge_fields = self.check_merge_fields(
            input.merge_fields.as_ref(),
            Some(&current.merge_fields),
            input.skip_merge_validation,
        )?;
        let mut member = current.clone();
        if let Some(status) = input
            .status
            .or(if current.status == MemberStatus::Archived {
                input.status_if_new
            } else {
                None
            })
        {
            if status == MemberStatus::Archived {
                return Err(Problem::invalid_field(
                    "status",
                    "Data presented is not one of the accepted values: subscribed, unsubscribed, cleaned, pending, transactional",
                ));
            }
            let compliance = matches!(
                (current.status, status),
                (
                    MemberStatus::Unsubscribed | MemberStatus::Cleaned,
                    MemberStatus::Subscribed
                ) | (MemberStatus::Cleaned, MemberStatus::Pending)
            );
            if compliance {
                return Err(Problem::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "Member In Compliance State",
                    format!(
                        "{} is already a list member in compliance state due to unsubscribe, bounce, or compliance review.",
                        current.email
                    ),
                ));
            }
            if status != current.status {
                if status == MemberStatus::Subscribed {
                    member.timestamp_opt = Some(now);
                }
                member.unsubscribe_reason = (status == MemberStatus::Unsubscribed)
                    .then(|| "N/A (Unsubscribed by an admin)".to_owned());
            }
            member.status = status;
        }
        if let Some(email) = input
            .email
            .as_ref()
            .filter(|e| !e.eq_ignore_ascii_case(&current.email))
        {
            if !is_valid_email(email) {
                return Err(Problem::invalid_resource(
                    "Please provide a valid email address.",
                    Vec::new(),
                ));
            }
            let hash = subscriber_hash(email);
            if self.index.contains_key(&hash) {
                return Err(Problem::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "Member Exists",
                    format!(
                        "{email} is already a list member. Use PUT to insert or update list members."
                    ),
                ));
            }
            member.email.clone_from(email);
            member.hash = hash;
        } else if let Some(email) = &input.email {
            member.email.clone_from(email);
        }
        member.merge_fields = merge_fields;
        if let Some(language) = input.language {
            member.language = language;
        }
        if let Some(vip) = input.vip {
            member.vip = vip;
        }
        if let Some(kind) = input.email_type {
            member.email_type = kind;
        }
        if let Some(country) = input.country_code {
            member.location.country_code = country;
        }
        for name in input.tags.iter().flatten() {
            let id = self.ensure_tag(name, ids, now);
            if !member.tags.iter().any(|(t, _)| *t == id) {
                member.tags.push((id, now));
            }
        }
        member.last_changed = input.last_changed.unwrap_or(now);
        let rehash = member.hash != current.hash;
        self.members[i] = member;
        if rehash {
            self.reindex();
        }
        Ok(i)
    }

    /// Archive (DELETE): the member stays, with status `archived`.
    ///
    /// # Errors
    /// 404 when unknown; 405 for a cleaned, pending or archived member, as Mailchimp answers.
    pub fn archive(&mut self, key: &str, now: DateTime<Utc>) -> Result<(), Problem> {
        let i = self.find(key).ok_or_else(Problem::not_found)?;
        let member = &mut self.members[i];
        if matches!(
            member.status,
            MemberStatus::Cleaned | MemberStatus::Pending | MemberStatus::Archived
        ) {
            return Err(Problem::method_not_allowed(
                "This list member cannot be removed. Can not archive a contact that is bounced, pending or archived",
                "GET, PUT",
            ));
        }
        member.status = MemberStatus::Archived;
        member.last_changed = now;
        Ok(())
    }

    /// Delete for good: the member disappears and the address can never be added again.
    ///
    /// # Errors
    /// 404 when unknown.
    pub fn delete_permanent(&mut self, key: &str) -> Result<(), Problem> {
        let i = self.find(key).ok_or_else(Problem::not_found)?;
        let member = self.members.remove(i);
        self.forgotten.insert(member.hash);
        self.reindex();
        Ok(())
    }

    /// Apply `(name, active)` tag changes to one member (POST …/tags): an active tag that does
    /// not exist is created, an inactive one that does not exist is ignored.
    ///
    /// # Errors
    /// 404 when the member is unknown.
    pub fn set_member_tags(
        &mut self,
        key: &str,
        changes: &[(String, bool)],
        ids: &mut Ids,
        now: DateTime<Utc>,
    ) -> Result<(), Problem> {
        let i = self.find(key).ok_or_else(Problem::not_found)?;
        for (name, active) in changes {
            if *active {
                let id = self.ensure_tag(name, ids, now);
                let member = &mut self.members[i];
                if !member.tags.iter().any(|(t, _)| *t == id) {
                    member.tags.push((id, now));
                    self.touch_tag(id, now);
                }
            } else if let Some(id) = self.tag_id(name) {
                let member = &mut self.members[i];
                let before = member.tags.len();
                member.tags.retain(|(t, _)| *t != id);
                if member.tags.len() != before {
                    self.touch_tag(id, now);
                }
            }
        }
        Ok(())
    }

    fn touch_tag(&mut self, id: u64, now: DateTime<Utc>) {
        if let Some(tag) = self.tags.iter_mut().find(|t| t.id == id) {
            tag.updated_at = now;
        }
    }

    /// Create a tag (POST /segments with `static_segment`).
    ///
    /// # Errors
    /// 400 when a tag of that name exists.
    pub fn create_tag(
        &mut self,
        name: &str,
        emails: &[String],
        ids: &mut Ids,
        now: DateTime<Utc>,
    ) -> Result<u64, Problem> {
        if name.trim().is_empty() {
            return Err(Problem::invalid_field(
                "name",
                "This value should not be blank.",
            ));
        }
        if self.tag_id(name).is_some() {
            return Err(Problem::bad_request(format!(
                "Sorry, there is already a tag named \"{name}\"."
            )));
        }
        let id = self.ensure_tag(name, ids, now);
        for email in emails {
            self.tag_member(id, email, now);
        }
        Ok(id)
    }

    /// Put one member into a tag; false when the address is not a member.
    pub fn tag_member(&mut self, id: u64, email: &str, now: DateTime<Utc>) -> bool {
        let Some(i) = self.find(email) else {
            return false;
        };
        let member = &mut self.members[i];
        if member.status == MemberStatus::Archived {
            return false;
        }
        if !member.tags.iter().any(|(t, _)| *t == id) {
            member.tags.push((id, now));
        }
        self.touch_tag(id, now);
        true
    }

    /// Take one member out of a tag; false when it was not in it.
    pub fn untag_member(&mut self, id: u64, key: &str, now: DateTime<Utc>) -> bool {
        let Some(i) = self.find(key) else {
            return false;
        };
        let member = &mut self.members[i];
        let before = member.tags.len();
        member.tags.retain(|(t, _)| *t != id);
        let changed = member.tags.len() != before;
        if changed {
            self.touch_tag(id, now);
        }
        changed
    }

    /// Rename a tag and, when `emails` is given, replace its members (PATCH /segments/{id}).
    ///
    /// # Errors
    /// 404 for an unknown tag, 400 when the new name is taken.
    pub fn update_tag(
        &mut self,
        id: u64,
        name: &str,
        emails: Option<&[String]>,
        now: DateTime<Utc>,
    ) -> Result<(), Problem> {
        if self.tag(id).is_none() {
            return Err(Problem::not_found());
        }
        if name.trim().is_empty() {
            return Err(Problem::invalid_field(
                "name",
                "This value should not be blank.",
            ));
        }
        if self.tags.iter().any(|t| t.name == name && t.id != id) {
            return Err(Problem::bad_request(format!(
                "Sorry, there is already a tag named \"{name}\"."
            )));
        }
        if let Some(emails) = emails {
            for member in &mut self.members {
                member.tags.retain(|(t, _)| *t != id);
            }
            for email in emails {
                self.tag_member(id, email, now);
            }
        }
        if let Some(tag) = self.tags.iter_mut().find(|t| t.id == id) {
            name.clone_into(&mut tag.name);
            tag.updated_at = now;
        }
        Ok(())
    }

    /// Delete a tag and take it off every member.
    ///
    /// # Errors
    /// 404 for an unknown tag.
    pub fn delete_tag(&mut self, id: u64) -> Result<(), Problem> {
        let before = self.tags.len();
        self.tags.retain(|t| t.id != id);
        if self.tags.len() == before {
            return Err(Problem::not_found());
        }
        for member in &mut self.members {
            member.tags.retain(|(t, _)| *t != id);
        }
        Ok(())
    }

    /// Subscribed members carrying the tag (Mailchimp's `member_count` of a segment).
    #[must_use]
    pub fn tag_member_count(&self, id: u64) -> usize {
        self.members
            .iter()
            .filter(|m| {
                m.status == MemberStatus::Subscribed && m.tags.iter().any(|(t, _)| *t == id)
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audience() -> (Audience, Ids) {
        let now = Utc::now();
        (
            Audience::new("a1b2c3d4e5".into(), 1, "Test".into(), now),
            Data::default().ids,
        )
    }

    fn input(email: &str, status: MemberStatus) -> MemberInput {
        MemberInput {
            email: Some(email.into()),
            status: Some(status),
            ..MemberInput::default()
        }
    }

    #[test]
    fn subscriber_hash_is_md5_of_the_lowercased_address() {
        assert_eq!(
            subscriber_hash("Urist.McVankab@Freddiesjokes.com"),
            md5_hex("urist.mcvankab@freddiesjokes.com")
        );
    }

    #[test]
    fn adding_an_existing_address_is_member_exists_and_a_forgotten_one_is_refused() {
        let (mut a, mut ids) = audience();
        let now = Utc::now();
        a.add_member(
            input("x@example.com", MemberStatus::Subscribed),
            &mut ids,
            now,
        )
        .unwrap();
        let err = a
            .add_member(
                input("X@example.com", MemberStatus::Subscribed),
                &mut ids,
                now,
            )
            .unwrap_err();
        assert_eq!(err.title, "Member Exists");
        a.delete_permanent("x@example.com").unwrap();
        let err = a
            .add_member(
                input("x@example.com", MemberStatus::Subscribed),
                &mut ids,
                now,
            )
            .unwrap_err();
        assert_eq!(err.title, "Forgotten Email Not Subscribed");
    }

    #[test]
    fn an_unsubscribed_member_cannot_be_resubscribed_but_may_go_pending() {
        let (mut a, mut ids) = audience();
        let now = Utc::now();
        let i = a
            .add_member(
                input("u@example.com", MemberStatus::Unsubscribed),
                &mut ids,
                now,
            )
            .unwrap();
        let err = a
            .update_member(
                i,
                input("u@example.com", MemberStatus::Subscribed),
                &mut ids,
                now,
            )
            .unwrap_err();
        assert_eq!(err.title, "Member In Compliance State");
        a.update_member(
            i,
            input("u@example.com", MemberStatus::Pending),
            &mut ids,
            now,
        )
        .unwrap();
        assert_eq!(a.members[i].status, MemberStatus::Pending);
    }

    #[test]
    fn changing_the_email_changes_the_hash_but_not_the_contact_id() {
        let (mut a, mut ids) = audience();
        let now = Utc::now();
        let i = a
            .add_member(
                input("old@example.com", MemberStatus::Subscribed),
                &mut ids,
                now,
            )
            .unwrap();
        let contact = a.members[i].contact_id.clone();
        let old_hash = a.members[i].hash.clone();
        a.update_member(
            i,
            MemberInput {
                email: Some("new@example.com".into()),
                ..MemberInput::default()
            },
            &mut ids,
            now,
        )
        .unwrap();
        let m = a.member("new@example.com").unwrap();
        assert_eq!(m.contact_id, contact);
        assert_ne!(m.hash, old_hash);
        assert!(a.member(&old_hash).is_err());
        assert!(a.member(&contact).is_ok());
    }

    #[test]
    fn required_merge_fields_are_reported_by_tag() {
        let (mut a, mut ids) = audience();
        a.merge_fields[1].required = true;
        let err = a
            .add_member(
                input("r@example.com", MemberStatus::Subscribed),
                &mut ids,
                Utc::now(),
            )
            .unwrap_err();
        assert_eq!(err.title, "Invalid Resource");
        assert_eq!(err.errors[0].field, "LNAME");
        let mut skip = input("r@example.com", MemberStatus::Subscribed);
        skip.skip_merge_validation = true;
        assert!(a.add_member(skip, &mut ids, Utc::now()).is_ok());
    }

    #[test]
    fn archive_keeps_the_member_and_put_brings_it_back() {
        let (mut a, mut ids) = audience();
        let now = Utc::now();
        a.add_member(
            input("z@example.com", MemberStatus::Subscribed),
            &mut ids,
            now,
        )
        .unwrap();
        a.archive("z@example.com", now).unwrap();
        assert_eq!(
            a.member("z@example.com").unwrap().status,
            MemberStatus::Archived
        );
        assert_eq!(
            a.archive("z@example.com", now).unwrap_err().status.as_u16(),
            405
        );
        let put = MemberInput {
            email: Some("z@example.com".into()),
            status_if_new: Some(MemberStatus::Subscribed),
            ..MemberInput::default()
        };
        a.upsert_member(&subscriber_hash("z@example.com"), put, &mut ids, now)
            .unwrap();
        assert_eq!(
            a.member("z@example.com").unwrap().status,
            MemberStatus::Subscribed
        );
    }
}
