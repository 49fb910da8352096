//! Members of an audience: add, upsert and update with Mailchimp's rules (merge fields checked
//! by tag, no re-subscribing an unsubscribed or cleaned member, the hash following the e-mail),
//! archive, permanent deletion (the address is forgotten), and a member's tags.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{
    Audience, Ids, Location, Member, MemberInput, MemberStatus, is_valid_email, md5_hex,
    subscriber_hash,
};
use crate::mailchimp::errors::{FieldError, Problem};

impl Audience {
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
            unique_email_id: unique_email_id(&self.id, &email),
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
            // `unique_email_id` belongs to the address, not the contact.
            member.unique_email_id = unique_email_id(&self.id, email);
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
}

/// The `unique_email_id` of an address in an audience: fixed per address (10 hex characters).
fn unique_email_id(list_id: &str, email: &str) -> String {
    md5_hex(&format!("unique:{list_id}:{}", email.to_lowercase()))[..10].to_owned()
}
