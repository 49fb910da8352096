//! What `validate` knows without the CRM: the kind of value each Mailchimp member field holds,
//! the kind of the standard contact and lead columns users map, and which kinds go together.
//! Custom columns and merge fields are checked by `plan` and `crm check` against the live
//! metadata (see `dataverse::columns`).
//!
//! Column kinds are Microsoft's contact and lead table references (Power Apps
//! `reference/entities/contact.md`, Dynamics 365 CE `developer/reference/entities/lead.md`);
//! member fields are Mailchimp's list member schema (`/lists/{list_id}/members`).

/// The kind of a value or column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text.
    Text,
    /// Yes/No.
    Boolean,
    /// Whole number.
    Integer,
    /// Decimal or floating point number.
    Decimal,
    /// Choice (matched by label or value).
    Choice,
    /// Date only.
    DateOnly,
    /// Date and time.
    DateTime,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Boolean => "Yes/No",
            Self::Integer => "whole number",
            Self::Decimal => "decimal number",
            Self::Choice => "choice",
            Self::DateOnly => "date-only",
            Self::DateTime => "date-and-time",
        }
    }
}

/// The kind of a member field's value; `None` for merge fields (their type is the audience's).
#[must_use]
pub fn source_kind(source: &str) -> Option<Kind> {
    Some(match source {
        "vip" => Kind::Boolean,
        "member_rating" | "web_id" => Kind::Integer,
        "timestamp_signup" | "timestamp_opt" | "last_changed" => Kind::DateTime,
        "location.latitude" | "location.longitude" => Kind::Decimal,
        s if s.starts_with("merge_fields.") => return None,
        _ => Kind::Text,
    })
}

/// The kind of a standard contact or lead column the tool knows; `None` for any other column.
#[must_use]
pub fn column_kind(column: &str) -> Option<Kind> {
    Some(match column {
        "donotbulkemail"
        | "donotemail"
        | "donotphone"
        | "donotpostalmail"
        | "donotfax"
        | "donotsendmm"
        | "donotbulkpostalmail" => Kind::Boolean,
        "numberofchildren" => Kind::Integer,
        "birthdate" | "anniversary" => Kind::DateOnly,
        "lastusedincampaign" => Kind::DateTime,
        "gendercode"
        | "familystatuscode"
        | "preferredcontactmethodcode"
        | "leadsourcecode"
        | "industrycode" => Kind::Choice,
        "firstname"
        | "lastname"
        | "middlename"
        | "emailaddress1"
        | "emailaddress2"
        | "emailaddress3"
        | "telephone1"
        | "telephone2"
        | "mobilephone"
        | "jobtitle"
        | "companyname"
        | "subject"
        | "description"
        | "websiteurl"
        | "address1_line1"
        | "address1_line2"
        | "address1_line3"
        | "address1_city"
        | "address1_stateorprovince"
        | "address1_postalcode"
        | "address1_country" => Kind::Text,
        _ => return None,
    })
}

fn fits(from: Kind, into: Kind) -> bool {
    use Kind::{Boolean, Choice, DateOnly, DateTime, Decimal, Integer, Text};
    matches!(
        (from, into),
        (_, Text)
            | (Text, Choice | Boolean)
            | (Boolean, Boolean)
            | (Integer, Integer | Decimal | Choice)
            | (Decimal, Decimal)
            | (DateTime, DateTime | DateOnly)
    )
}

/// Why member field `source` cannot go into standard column `column`, with a help line; `None`
/// when it can, or when either side's kind is not known here.
#[must_use]
pub fn mismatch(source: &str, column: &str) -> Option<(String, String)> {
    let from = source_kind(source)?;
    let into = column_kind(column)?;
    if fits(from, into) {
        return None;
    }
    Some((
        format!(
            "`{source}` holds a {} value, which cannot go into `{column}`, a {} column",
            from.name(),
            into.name()
        ),
        format!(
            "map `{source}` onto a {} or text column, or map a member field of {} kind onto `{column}`",
            from.name(),
            into.name()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitting_pairs_pass() {
        for (source, column) in [
            ("vip", "donotphone"),
            ("timestamp_signup", "lastusedincampaign"),
            ("timestamp_signup", "birthdate"),
            ("member_rating", "numberofchildren"),
            ("language", "preferredcontactmethodcode"),
            ("vip", "description"),
            ("merge_fields.BIRTHDAY", "birthdate"),
            ("language", "mcsync_language"),
        ] {
            assert_eq!(mismatch(source, column), None, "{source} → {column}");
        }
    }

    #[test]
    fn kinds_that_cannot_meet_are_named() {
        let (message, help) = mismatch("timestamp_signup", "donotphone").expect("mismatch");
        assert!(
            message.contains("date-and-time") && message.contains("Yes/No"),
            "{message}"
        );
        assert!(help.contains("donotphone"));
        assert!(mismatch("email_address", "numberofchildren").is_some());
        assert!(mismatch("vip", "birthdate").is_some());
        assert!(mismatch("member_rating", "donotbulkemail").is_some());
    }
}
