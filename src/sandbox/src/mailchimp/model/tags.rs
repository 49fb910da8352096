//! Tags of an audience (static segments with integer ids): create, rename, delete, tag and
//! untag members, and member counts.

use chrono::{DateTime, Utc};

use super::{Audience, Ids, MemberStatus};
use crate::mailchimp::errors::Problem;

impl Audience {
    pub(super) fn touch_tag(&mut self, id: u64, now: DateTime<Utc>) {
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

    /// Subscribed members carrying the tag (Mailchimp's `member_count` of a segment), from the
    /// cached [`Audience::counts`].
    #[must_use]
    pub fn tag_member_count(&self, id: u64) -> usize {
        self.counts().tag(id)
    }
}
