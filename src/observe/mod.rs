//! Observation: read both sides of one binding into a [`Snapshot`] for the pure diff.
//! Read-only I/O; everything it reads is what the diff needs and no more.
//!
//! # What is read, and how many requests it takes
//! - Mailchimp: the audience (1 request, by id; by name, the audience list) and the server's
//!   clock (`GET /ping`), then at the same time its tags (static segments, pages of 1000) and
//!   its members of the selected statuses plus those whose status means consent changed
//!   (unsubscribed, cleaned) or, when pruning, that they left (archived), in overlapping pages
//!   of 1000 with a `fields=` projection of only the mapped fields (tags only when tags are
//!   synced), then a catch-up of the members changed since the read began (one page per status
//!   unless the audience is busy). The audience may change meanwhile: see [`live`] for how the
//!   read converges and what it guarantees.
//! - CRM: the Audience record (by Mailchimp id), the marketing list (by id or name), the Tag
//!   records of this audience, the list's members (pages of 5000), the contacts or leads on the
//!   list with only the needed columns, then the records that are not on the list but may match
//!   a member (by the stored Mailchimp contact id, then by e-mail — `In` filters of many values,
//!   several to a `$batch`), and the tag links of each Tag record.
//!
//! Memory is the snapshot's compact records; pages are converted as they arrive.
//!
//! Layout note: this is its own module (not under `plan/`) because plan, apply and watch all
//! observe, and `plan/` stays pure. It is the only module that reads Mailchimp:
//! - [`mailchimp`]: the audience side of a binding, its cheap source version
//!   ([`source_version`]), and what a saved plan's members look like now ([`stale_members`]);
//! - [`crm`]: the marketing list's side;
//! - [`audiences`]: the account's audiences with their tag counts (`audiences`, `init`).

mod audiences;
mod crm;
pub mod live;
mod mailchimp;
pub mod since;

use serde_json::Value;

pub use audiences::{AudienceSummary, AudiencesError, audiences};
pub use crm::mapping_problems;
pub use mailchimp::{
    audience_id, member_fields, member_value, source_version, stale_members, statuses_to_read,
};

use crate::clients::Clients;
use crate::config::{Binding, Names};
use crate::dataverse;
use crate::plan::snapshot::Snapshot;

/// Observation failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading Mailchimp failed.
    #[error("reading Mailchimp failed")]
    Mailchimp(#[source] Box<crate::mailchimp::Error>),
    /// Reading the CRM failed.
    #[error("reading the CRM failed")]
    Dataverse(#[from] dataverse::Error),
    /// Mapped columns the CRM does not have, or cannot take values in (from its metadata).
    #[error("the field mapping does not fit the CRM: {}", .0.join("; "))]
    Mapping(Vec<String>),
    /// The binding names a marketing list by a name that several lists have.
    #[error("{count} marketing lists are named `{name}`; name the list by its id instead")]
    AmbiguousList {
        /// The name.
        name: String,
        /// How many lists have it.
        count: usize,
    },
}

impl From<crate::mailchimp::Error> for Error {
    fn from(err: crate::mailchimp::Error) -> Self {
        Self::Mailchimp(Box::new(err))
    }
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
        mailchimp::observe(binding, &clients.mailchimp),
        crm::observe_list(binding, names, clients)
    );
    let mailchimp = mailchimp?;
    let crm = crm::complete(binding, names, clients, list_side?, &mailchimp).await?;
    Ok(Snapshot { mailchimp, crm })
}

/// The text of a scalar JSON value (borrowed when it is a string; an empty string is none).
fn scalar_text(value: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match value {
        Value::String(s) => Some(std::borrow::Cow::Borrowed(s.as_str())).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string().into()),
        Value::Bool(b) => Some(b.to_string().into()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}
