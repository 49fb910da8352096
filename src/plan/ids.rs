//! Deterministic ids of the CRM records the tool creates.
//!
//! Every record `apply` creates gets a UUID v5 computed from Mailchimp identities, so a retried or
//! repeated create can never make a duplicate: the second `POST` with the same id fails with a
//! duplicate-key error that apply treats as "already done" (and the next plan matches the record by
//! its stored Mailchimp id anyway).
//!
//! Invariants (apply and tests rely on them; changing any of them is a breaking change of the
//! plan format):
//! - the namespace is [`NAMESPACE`], itself `uuid_v5(NAMESPACE_URL, "https://audience-sync.dev/ids/v1")`;
//! - the name hashed is ASCII text `"<kind>:<audience id>:<mailchimp id>"` with the kinds
//!   `audience`, `list`, `member`, `tag` below; ids are used exactly as Mailchimp spells them;
//!   `person` hashes `"person:<table>:<normalised e-mail>"` instead (one record per person).

use sha1::{Digest, Sha1};
use uuid::Uuid;

/// The namespace of every id this module makes.
pub const NAMESPACE: Uuid = Uuid::from_u128(0x8bce_5bef_9114_50b4_aab7_67c7_0e52_f3d2);

/// `Uuid::new_v5(&NAMESPACE, "<kind>:<audience_id>:<rest>")`, hashed in place (no name string)
/// by a SHA-1 that uses the processor's SHA instructions: a first sync makes an id per member.
fn v5(kind: &str, audience_id: &str, rest: &str) -> Uuid {
    let mut hash = Sha1::new();
    hash.update(NAMESPACE.as_bytes());
    for part in [kind, ":", audience_id, ":", rest] {
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    let mut bytes = [0_u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_sha1_bytes(bytes).into_uuid()
}

/// The id of the Audience record of Mailchimp audience `audience_id`.
#[must_use]
pub fn audience_record(audience_id: &str) -> Uuid {
    v5("audience", audience_id, "")
}

/// The id of a marketing list the tool creates for `audience_id` under the name `list_name`.
#[must_use]
pub fn list(audience_id: &str, list_name: &str) -> Uuid {
    v5("list", audience_id, list_name)
}

/// The id of the contact or lead created for Mailchimp member `contact_id` of `audience_id`.
#[must_use]
pub fn member_record(audience_id: &str, contact_id: &str) -> Uuid {
    v5("member", audience_id, contact_id)
}

/// The id of the contact or lead (`table`: its logical name) created for the person with the
/// normalised (trimmed, lower-cased) e-mail `email`: the same in every audience, so bindings of
/// audiences that share a person create one record, even within one run (the second create
/// meets the first's id and counts as done).
#[must_use]
pub fn person_record(table: &str, email: &str) -> Uuid {
    v5("person", table, email)
}

/// The id of the Tag record of Mailchimp tag `tag_id` of `audience_id`.
#[must_use]
pub fn tag_record(audience_id: &str, tag_id: u64) -> Uuid {
    v5("tag", audience_id, &tag_id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_is_derived_from_the_documented_url() {
        let derived = Uuid::new_v5(&Uuid::NAMESPACE_URL, b"https://audience-sync.dev/ids/v1");
        assert_eq!(NAMESPACE, derived, "NAMESPACE should be {derived}");
    }

    #[test]
    fn ids_are_uuid_v5_of_the_documented_names() {
        let long = "Ñame with ünïcode and a long tail ".repeat(5);
        let cases = [
            ("member", "a1", "c1"),
            ("person", "contact", "pat@example.com"),
            ("tag", "64d3301861", "10004"),
            ("audience", "", ""),
            ("list", "a1", long.as_str()),
        ];
        for (kind, audience, rest) in cases {
            let name = format!("{kind}:{audience}:{rest}");
            assert_eq!(
                v5(kind, audience, rest),
                Uuid::new_v5(&NAMESPACE, name.as_bytes()),
                "{name}"
            );
        }
    }

    #[test]
    fn ids_are_stable_and_distinct_by_kind() {
        assert_eq!(member_record("a1", "c1"), member_record("a1", "c1"));
        assert_ne!(member_record("a1", "c1"), member_record("a2", "c1"));
        assert_ne!(tag_record("a1", 1), member_record("a1", "1"));
        assert_eq!(member_record("a1", "c1").get_version_num(), 5);
    }
}
