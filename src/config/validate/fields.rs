//! Member fields and CRM column names: what `fields.map` and `lead_values` may name.

use super::words::closest;
use crate::config::yaml::shorten;

/// Member fields that can be mapped, besides `merge_fields.<TAG>` (and `.addr1`… of an address).
pub const KNOWN_SOURCES: &[&str] = &[
    "email_address",
    "status",
    "full_name",
    "email_type",
    "language",
    "vip",
    "member_rating",
    "timestamp_signup",
    "timestamp_opt",
    "last_changed",
    "ip_signup",
    "ip_opt",
    "source",
    "unique_email_id",
    "contact_id",
    "web_id",
    "unsubscribe_reason",
    "location.country_code",
    "location.timezone",
    "location.region",
    "location.latitude",
    "location.longitude",
    "tags",
];

const ADDRESS_PARTS: &[&str] = &["addr1", "addr2", "city", "state", "zip", "country"];

/// The help line for a member field that is not one.
pub(super) const SOURCE_HELP: &str = "member fields are `email_address`, `status`, `language`, `vip`, `location.country_code`, … and `merge_fields.<TAG>` with the audience's merge tags (Audience → Settings → Audience fields)";

/// Whether `source` names a member field; `Err` carries a suggestion when there is one.
///
/// # Errors
/// An explanation of why it is not one.
pub fn check_source(source: &str) -> Result<(), String> {
    if KNOWN_SOURCES.contains(&source) {
        return Ok(());
    }
    if let Some(rest) = source.strip_prefix("merge_fields.") {
        let mut parts = rest.splitn(2, '.');
        let tag = parts.next().unwrap_or_default();
        let valid_tag = !tag.is_empty()
            && tag.len() <= 10
            && tag
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if tag.is_empty() {
            return Err("`merge_fields.` names no merge tag".to_owned());
        }
        if !valid_tag {
            return Err(format!(
                "`{}` is not a merge tag (upper-case letters, digits and `_`, at most 10, like `FNAME`)",
                shorten(tag)
            ));
        }
        return match parts.next() {
            None => Ok(()),
            Some(part) if ADDRESS_PARTS.contains(&part) => Ok(()),
            Some(part) => Err(format!(
                "`{}` is not a part of an address merge field (one of: {})",
                shorten(part),
                ADDRESS_PARTS.join(", ")
            )),
        };
    }
    if source.is_empty() {
        return Err("the member field name is empty".to_owned());
    }
    let candidates: Vec<String> = KNOWN_SOURCES.iter().map(|s| (*s).to_owned()).collect();
    Err(match closest(source, &candidates) {
        Some(s) => format!(
            "`{}` is not a member field; did you mean `{s}`?",
            shorten(source)
        ),
        None => format!(
            "`{}` is not a member field (e.g. `email_address`, `merge_fields.FNAME`, `status`, `language`)",
            shorten(source)
        ),
    })
}

/// Whether `name` is a Dataverse logical name (lower-case letters, digits, `_`).
pub(super) fn is_logical_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 100
}

/// What is wrong with a column name, and how to fix it; `None` when it is a logical name.
pub(super) fn column_problem(column: &str, what: &str) -> Option<(String, String)> {
    if is_logical_name(column) {
        return None;
    }
    if column.trim().is_empty() {
        return Some((
            format!("the {what} name is empty"),
            format!("write the {what}'s logical name, like `{}`", example(what)),
        ));
    }
    let lower = column.trim().to_ascii_lowercase();
    let help = if is_logical_name(&lower) {
        format!("logical names are lower-case: did you mean `{lower}`?")
    } else {
        format!(
            "write the {what}'s *Logical name* from the maker portal (lower-case letters, digits and `_`), not its display name"
        )
    };
    Some((
        format!(
            "`{}` is not a Dataverse {what} logical name (lower-case letters, digits and `_`, like `{}`)",
            shorten(column),
            example(what)
        ),
        help,
    ))
}

fn example(what: &str) -> &'static str {
    match what {
        "table" => "mcsync_audience",
        "relationship" => "mcsync_tag_contact",
        _ => "emailaddress1",
    }
}
