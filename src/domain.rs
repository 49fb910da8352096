//! The shared vocabulary, at the bottom layer: the words every other module uses for Mailchimp
//! members and CRM tables, each defined once. It imports nothing of the product above it.
//!
//! - [`MemberStatus`]: a Mailchimp member status, with Mailchimp's wire names.
//! - [`MemberType`]: contact or lead, with its marketing-list code (`createdfromcode`: 2 contact,
//!   4 lead; 1 is accounts, which the tool never syncs; see `docs/dataverse.md`), its table's
//!   logical name, entity set, primary key and list ↔ member relationship.
//! - [`AudienceSelector`]: which Mailchimp audience, by id or by name.
//! - [`Names`]: the tool's own CRM table, relationship and column names, resolved, with the one
//!   table of defaults ([`default_names`]) that `crm bootstrap` creates.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Mailchimp member status.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
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
    /// Archived in Mailchimp.
    Archived,
}

impl MemberStatus {
    /// Every status, in Mailchimp's order.
    pub const ALL: [Self; 6] = [
        Self::Subscribed,
        Self::Unsubscribed,
        Self::Cleaned,
        Self::Pending,
        Self::Transactional,
        Self::Archived,
    ];

    /// The name Mailchimp uses.
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

/// The `createdfromcode` of a marketing list of accounts (the tool does not sync these).
pub const ACCOUNT_LIST_CODE: i64 = 1;

/// Member type of a marketing list (`createdfromcode`: 2 contact, 4 lead).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MemberType {
    /// Contacts.
    Contact,
    /// Leads.
    Lead,
}

impl MemberType {
    /// Both, in a fixed order.
    pub const ALL: [Self; 2] = [Self::Contact, Self::Lead];

    /// The marketing list's `createdfromcode` for lists of this type.
    #[must_use]
    pub fn list_code(self) -> i64 {
        match self {
            Self::Contact => 2,
            Self::Lead => 4,
        }
    }

    /// The member type of a list's `createdfromcode`; `None` for accounts and unknown codes.
    #[must_use]
    pub fn from_list_code(code: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.list_code() == code)
    }

    /// The member table's logical name (`contact`, `lead`), also the word messages use.
    #[must_use]
    pub fn logical_name(self) -> &'static str {
        match self {
            Self::Contact => "contact",
            Self::Lead => "lead",
        }
    }

    /// The member table's entity set (URL segment).
    #[must_use]
    pub fn entity_set(self) -> &'static str {
        match self {
            Self::Contact => "contacts",
            Self::Lead => "leads",
        }
    }

    /// The member table's primary key column.
    #[must_use]
    pub fn id_column(self) -> &'static str {
        match self {
            Self::Contact => "contactid",
            Self::Lead => "leadid",
        }
    }

    /// The list ↔ member relationship (navigation property on both sides).
    #[must_use]
    pub fn list_relationship(self) -> &'static str {
        match self {
            Self::Contact => "listcontact_association",
            Self::Lead => "listlead_association",
        }
    }
}

/// Which Mailchimp audience.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudienceSelector {
    /// By list id.
    Id(String),
    /// By exact name.
    Name(String),
}

/// The default logical names of the tool's own CRM schema: what `crm bootstrap` creates when the
/// config's `dataverse.names` says nothing. The one table of them.
pub mod default_names {
    /// The Audience table.
    pub const AUDIENCE_TABLE: &str = "mcsync_audience";
    /// The Tag table.
    pub const TAG_TABLE: &str = "mcsync_tag";
    /// The Sync Run table.
    pub const SYNC_RUN_TABLE: &str = "mcsync_syncrun";
    /// The Tag ↔ Contact relationship.
    pub const TAG_CONTACT_RELATIONSHIP: &str = "mcsync_tag_contact";
    /// The Tag ↔ Lead relationship.
    pub const TAG_LEAD_RELATIONSHIP: &str = "mcsync_tag_lead";
    /// The marketing list's lookup to its Audience record.
    pub const LIST_AUDIENCE_LOOKUP: &str = "mcsync_audienceid";
    /// The Mailchimp contact id column on contact.
    pub const CONTACT_MAILCHIMP_ID_COLUMN: &str = "mcsync_mailchimpcontactid";
    /// The Mailchimp contact id column on lead.
    pub const LEAD_MAILCHIMP_ID_COLUMN: &str = "mcsync_mailchimpcontactid";
    /// The subscriber status column on contact and lead.
    pub const SUBSCRIBER_STATUS_COLUMN: &str = "mcsync_mailchimpstatus";
}

/// The tool's CRM schema names, every default applied (the config's `dataverse.names` resolved).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Names {
    /// The Audience table.
    pub audience_table: String,
    /// The Tag table.
    pub tag_table: String,
    /// The Sync Run table.
    pub sync_run_table: String,
    /// The Tag ↔ Contact relationship.
    pub tag_contact_relationship: String,
    /// The Tag ↔ Lead relationship.
    pub tag_lead_relationship: String,
    /// The marketing list's lookup to its Audience record.
    pub list_audience_lookup: String,
    /// The Mailchimp contact id column on contact.
    pub contact_mailchimp_id_column: String,
    /// The Mailchimp contact id column on lead.
    pub lead_mailchimp_id_column: String,
    /// The subscriber status column on contact and lead.
    pub subscriber_status_column: String,
}

impl Default for Names {
    fn default() -> Self {
        use default_names as d;
        Self {
            audience_table: d::AUDIENCE_TABLE.to_owned(),
            tag_table: d::TAG_TABLE.to_owned(),
            sync_run_table: d::SYNC_RUN_TABLE.to_owned(),
            tag_contact_relationship: d::TAG_CONTACT_RELATIONSHIP.to_owned(),
            tag_lead_relationship: d::TAG_LEAD_RELATIONSHIP.to_owned(),
            list_audience_lookup: d::LIST_AUDIENCE_LOOKUP.to_owned(),
            contact_mailchimp_id_column: d::CONTACT_MAILCHIMP_ID_COLUMN.to_owned(),
            lead_mailchimp_id_column: d::LEAD_MAILCHIMP_ID_COLUMN.to_owned(),
            subscriber_status_column: d::SUBSCRIBER_STATUS_COLUMN.to_owned(),
        }
    }
}

impl Names {
    /// The Mailchimp contact id column for a member type.
    #[must_use]
    pub fn mailchimp_id_column(&self, member_type: MemberType) -> &str {
        match member_type {
            MemberType::Contact => &self.contact_mailchimp_id_column,
            MemberType::Lead => &self.lead_mailchimp_id_column,
        }
    }

    /// The Tag ↔ member relationship for a member type.
    #[must_use]
    pub fn tag_relationship(&self, member_type: MemberType) -> &str {
        match member_type {
            MemberType::Contact => &self.tag_contact_relationship,
            MemberType::Lead => &self.tag_lead_relationship,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_codes_round_trip_and_accounts_are_no_member_type() {
        for t in MemberType::ALL {
            assert_eq!(MemberType::from_list_code(t.list_code()), Some(t));
        }
        assert_eq!(MemberType::Contact.list_code(), 2);
        assert_eq!(MemberType::Lead.list_code(), 4);
        assert_eq!(MemberType::from_list_code(ACCOUNT_LIST_CODE), None);
        assert_eq!(MemberType::from_list_code(3), None);
    }

    #[test]
    fn statuses_use_mailchimp_wire_names() {
        for s in MemberStatus::ALL {
            assert_eq!(
                serde_json::to_value(s).ok(),
                Some(serde_json::Value::String(s.as_str().to_owned()))
            );
        }
    }
}
