//! The seed file's Mailchimp part: audiences with their merge fields, tags and members, plus the
//! emulator's settings (its API key, fault injection). Written by people, so every field but the
//! names has a default and unknown fields are refused.
//!
//! ```yaml
//! mailchimp:
//!   audiences:
//!     - name: Newsletter
//!       id: a1b2c3d4e5            # optional: 10 lowercase hex characters, else derived from the name
//!       tags: [Customers, VIP]    # tags that exist even without members
//!       members:
//!         - email: ada@example.com
//!           status: subscribed    # default
//!           merge_fields: { FNAME: Ada, LNAME: Lovelace }
//!           tags: [VIP]
//! ```

use serde::Deserialize;
use serde_json::{Map, Value};

use super::model::MemberStatus;
use crate::faults::Faults;

/// Seed data for the Mailchimp half.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// The API key the emulator accepts (default: a fixed fake key ending in `-us21`).
    #[serde(default)]
    pub api_key: Option<String>,
    /// The audiences (Mailchimp lists).
    #[serde(default)]
    pub audiences: Vec<AudienceSeed>,
    /// Fault injection from the start (also settable at run time).
    #[serde(default)]
    pub faults: Option<Faults>,
    /// Churn from the start: members change while requests are served (also settable at run
    /// time, `PUT /_sandbox/mailchimp/churn`).
    #[serde(default)]
    pub churn: Option<super::churn::Churn>,
    /// Whether `GET …/members` without `status` lists archived members too. Mailchimp does not
    /// document it; users report needing a way to list contacts "including archived" ones
    /// (MailChimp.Net#529), so the default is false: archived members come with `status=archived`.
    #[serde(default)]
    pub list_archived_without_status: Option<bool>,
}

/// One audience.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudienceSeed {
    /// The audience's name.
    pub name: String,
    /// Its id: 10 lowercase hex characters. Default: derived from the name.
    #[serde(default)]
    pub id: Option<String>,
    /// Creation time, ISO 8601. Default: a fixed date.
    #[serde(default)]
    pub date_created: Option<String>,
    /// Merge fields. Default: FNAME, LNAME, ADDRESS, PHONE, BIRTHDAY (as a new Mailchimp list).
    #[serde(default)]
    pub merge_fields: Option<Vec<MergeFieldSeed>>,
    /// Tags that exist in the audience (tags named by members are created too).
    #[serde(default)]
    pub tags: Vec<String>,
    /// The members.
    #[serde(default)]
    pub members: Vec<MemberSeed>,
}

/// One merge field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeFieldSeed {
    /// The merge tag, e.g. `COMPANY`.
    pub tag: String,
    /// The label. Default: the tag.
    #[serde(default)]
    pub name: Option<String>,
    /// Field type (text, number, address, phone, date, url, imageurl, radio, dropdown, birthday, zip).
    #[serde(default = "default_field_type", rename = "type")]
    pub field_type: String,
    /// Whether a value is required on writes.
    #[serde(default)]
    pub required: bool,
}

fn default_field_type() -> String {
    "text".to_owned()
}

/// One member.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberSeed {
    /// The e-mail address.
    #[serde(alias = "email_address")]
    pub email: String,
    /// Subscription status. Default `subscribed`.
    #[serde(default = "default_status")]
    pub status: MemberStatus,
    /// Merge field values by tag.
    #[serde(default)]
    pub merge_fields: Map<String, Value>,
    /// Tag names.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Language code, e.g. `en`.
    #[serde(default)]
    pub language: Option<String>,
    /// VIP flag.
    #[serde(default)]
    pub vip: bool,
    /// Country code of the member's location, e.g. `DE`.
    #[serde(default)]
    pub country_code: Option<String>,
    /// Sign-up time, ISO 8601.
    #[serde(default)]
    pub timestamp_signup: Option<String>,
    /// Last change, ISO 8601. Default: the sign-up time.
    #[serde(default)]
    pub last_changed: Option<String>,
    /// The contact id (32 hex characters). Default: derived from the audience and e-mail.
    #[serde(default)]
    pub contact_id: Option<String>,
}

fn default_status() -> MemberStatus {
    MemberStatus::Subscribed
}

impl MemberSeed {
    /// A subscribed member with no fields: a start for tests that build seeds in code.
    #[must_use]
    pub fn new(email: &str) -> Self {
        Self {
            email: email.to_owned(),
            status: MemberStatus::Subscribed,
            merge_fields: Map::new(),
            tags: Vec::new(),
            language: None,
            vip: false,
            country_code: None,
            timestamp_signup: None,
            last_changed: None,
            contact_id: None,
        }
    }
}
