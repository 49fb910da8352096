//! The typed shapes the client reads. They tolerate unknown fields (Mailchimp adds fields) and
//! Mailchimp's habit of sending `""` for an absent date or text: such values become `None`.

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

pub use crate::domain::MemberStatus;

/// An audience (Mailchimp list), as `audiences` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audience {
    /// 10 lowercase hex characters.
    pub id: String,
    /// Name.
    pub name: String,
    /// Subscribed members (`stats.member_count`).
    pub member_count: u64,
    /// Members in any status (`stats.total_contacts`), when Mailchimp reports it.
    pub total_contacts: Option<u64>,
}

/// The list object as read with our `fields=` projection.
#[derive(Debug, Deserialize)]
pub(super) struct RawAudience {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub stats: RawStats,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawStats {
    #[serde(default)]
    pub member_count: u64,
    #[serde(default)]
    pub total_contacts: Option<u64>,
}

impl From<RawAudience> for Audience {
    fn from(raw: RawAudience) -> Self {
        Self {
            id: raw.id,
            name: raw.name,
            member_count: raw.stats.member_count,
            total_contacts: raw.stats.total_contacts,
        }
    }
}

/// An audience by id or by exact name (the config's selector).
pub use crate::domain::AudienceSelector;

/// A merge field definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeField {
    /// The unchanging numeric id.
    pub merge_id: u64,
    /// The merge tag, e.g. `FNAME` (the key in a member's `merge_fields`).
    pub tag: String,
    /// The label.
    #[serde(default)]
    pub name: String,
    /// Field type (text, number, address, phone, date, url, imageurl, radio, dropdown, birthday, zip).
    #[serde(rename = "type", default)]
    pub field_type: String,
    /// Whether Mailchimp requires a value.
    #[serde(default)]
    pub required: bool,
}

/// A tag (static segment) of an audience.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// The segment id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Subscribed members carrying it (Mailchimp's `member_count`).
    #[serde(default)]
    pub member_count: u64,
}

/// A tag on a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberTag {
    /// The segment id.
    pub id: u64,
    /// Name.
    pub name: String,
}

/// Where a member is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// ISO country code.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub country_code: Option<String>,
    /// Latitude (0 when unknown).
    #[serde(default)]
    pub latitude: Option<f64>,
    /// Longitude (0 when unknown).
    #[serde(default)]
    pub longitude: Option<f64>,
    /// Time zone.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub timezone: Option<String>,
    /// Region.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub region: Option<String>,
}

/// A list member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// Subscriber hash: MD5 of the lower-cased e-mail. Changes when the e-mail changes.
    pub id: String,
    /// The contact id: stable for the member's life. The CRM link uses it.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub contact_id: Option<String>,
    /// The address's id across Mailchimp: stable too.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub unique_email_id: Option<String>,
    /// The e-mail address.
    pub email_address: String,
    /// Subscription status.
    pub status: MemberStatus,
    /// The member's name as Mailchimp composes it (read-only).
    #[serde(default, deserialize_with = "empty_as_none")]
    pub full_name: Option<String>,
    /// `html` or `text`.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub email_type: Option<String>,
    /// Star rating, 1–5.
    #[serde(default)]
    pub member_rating: Option<u8>,
    /// The member's id in the Mailchimp web app (read-only).
    #[serde(default)]
    pub web_id: Option<u64>,
    /// Why the member unsubscribed, when they said.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub unsubscribe_reason: Option<String>,
    /// The IP address the member signed up from.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub ip_signup: Option<String>,
    /// The IP address the member confirmed their opt-in from.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub ip_opt: Option<String>,
    /// Where the member came from (`API - Generic`, `Hosted Signup Form`, …).
    #[serde(default, deserialize_with = "empty_as_none")]
    pub source: Option<String>,
    /// Opt-in time.
    #[serde(default, deserialize_with = "time_or_empty")]
    pub timestamp_opt: Option<DateTime<FixedOffset>>,
    /// Merge field values by tag; an ADDRESS is an object, or `""` when empty.
    #[serde(default)]
    pub merge_fields: Map<String, Value>,
    /// Language code.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub language: Option<String>,
    /// VIP flag.
    #[serde(default)]
    pub vip: bool,
    /// Location.
    #[serde(default)]
    pub location: Option<Location>,
    /// Sign-up time.
    #[serde(default, deserialize_with = "time_or_empty")]
    pub timestamp_signup: Option<DateTime<FixedOffset>>,
    /// Last change (the version a plan records).
    #[serde(default, deserialize_with = "time_or_empty")]
    pub last_changed: Option<DateTime<FixedOffset>>,
    /// How many tags the member has (the `tags` of a member object stop at 50).
    #[serde(default)]
    pub tags_count: Option<u64>,
    /// The member's tags: complete once the client hands the member out.
    #[serde(default)]
    pub tags: Vec<MemberTag>,
}

/// What `members` reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberQuery {
    /// Only these statuses (each is one `status=` filter). Empty: no filter, which is
    /// Mailchimp's default listing (archived members are not in it); [`ALL_STATUSES`] reads
    /// every member.
    pub statuses: Vec<MemberStatus>,
    /// Only members changed since then (`since_last_changed`).
    pub since_last_changed: Option<DateTime<Utc>>,
    /// Member fields to request (`merge_fields`, `language`, …); `None`: every field of
    /// [`Member`]. `id`, `email_address`, `status` and `contact_id` are always requested; name
    /// `tags` to get complete tags.
    pub fields: Option<Vec<String>>,
    /// The order pages are read in.
    pub order: MemberOrder,
}

/// The stable order a read pages through (always ascending).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MemberOrder {
    /// By sign-up time: members who sign up during the read come last, and a member keeps its
    /// place when it changes.
    #[default]
    Signup,
    /// By last change: members who change during the read move to the end (catch-up reads).
    LastChanged,
}

impl MemberOrder {
    /// The `sort_field` value.
    #[must_use]
    pub fn sort_field(self) -> &'static str {
        match self {
            Self::Signup => "timestamp_signup",
            Self::LastChanged => "last_changed",
        }
    }
}

/// Every member status, for a read of the whole audience archived members included.
pub const ALL_STATUSES: [MemberStatus; 6] = MemberStatus::ALL;

/// Every field of [`Member`], as `fields=` names them.
pub const MEMBER_FIELDS: &[&str] = &[
    "id",
    "contact_id",
    "unique_email_id",
    "email_address",
    "status",
    "full_name",
    "email_type",
    "member_rating",
    "web_id",
    "unsubscribe_reason",
    "ip_signup",
    "ip_opt",
    "source",
    "timestamp_opt",
    "merge_fields",
    "language",
    "vip",
    "location",
    "timestamp_signup",
    "last_changed",
    "tags_count",
    "tags",
];

impl MemberQuery {
    /// The `fields=` value for a members page.
    #[must_use]
    pub fn fields_param(&self) -> String {
        let mut out: Vec<String> = self
            .field_names()
            .iter()
            .map(|f| format!("members.{f}"))
            .collect();
        out.push("total_items".to_owned());
        out.join(",")
    }

    /// The `fields=` value for one member (`GET …/members/{subscriber_hash}`).
    #[must_use]
    pub fn member_fields_param(&self) -> String {
        self.field_names().join(",")
    }

    /// The member fields asked for, each once.
    fn field_names(&self) -> Vec<&str> {
        let mut fields: Vec<&str> = vec!["id", "email_address", "status", "contact_id"];
        match &self.fields {
            None => fields.extend(MEMBER_FIELDS),
            Some(extra) => {
                fields.extend(extra.iter().map(String::as_str));
                if extra.iter().any(|f| f == "tags") {
                    fields.push("tags_count");
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        fields.retain(|f| seen.insert(*f));
        fields
    }

    /// Whether tags are read (and so must be completed beyond 50).
    #[must_use]
    pub fn wants_tags(&self) -> bool {
        self.fields
            .as_ref()
            .is_none_or(|f| f.iter().any(|x| x == "tags"))
    }
}

fn empty_as_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value: Option<String> = Option::deserialize(d)?;
    Ok(value.filter(|s| !s.is_empty()))
}

fn time_or_empty<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<FixedOffset>>, D::Error> {
    let value: Option<String> = Option::deserialize(d)?;
    match value.as_deref() {
        None | Some("") => Ok(None),
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_strings_from_mailchimp_become_none() {
        let member: Member = serde_json::from_str(
            r#"{"id":"h","email_address":"a@b.c","status":"archived","contact_id":"",
                "timestamp_signup":"","last_changed":"2022-02-23T19:31:55+00:00","language":"",
                "merge_fields":{"FNAME":"Test2","ADDRESS":""},"unknown":1}"#,
        )
        .unwrap();
        assert_eq!(member.contact_id, None);
        assert_eq!(member.timestamp_signup, None);
        assert!(member.last_changed.is_some());
        assert_eq!(member.status, MemberStatus::Archived);
        assert!(member.tags.is_empty());
    }

    #[test]
    fn fields_always_carry_the_identity_and_the_tag_count_with_tags() {
        let query = MemberQuery {
            fields: Some(vec!["merge_fields".into(), "tags".into()]),
            ..MemberQuery::default()
        };
        assert_eq!(
            query.fields_param(),
            "members.id,members.email_address,members.status,members.contact_id,members.merge_fields,members.tags,members.tags_count,total_items"
        );
        assert!(query.wants_tags());
        let all = MemberQuery::default().fields_param();
        assert!(all.contains("members.location") && all.ends_with(",total_items"));
    }
}
