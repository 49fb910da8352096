//! What a paged member read yields: any row a members page decodes into ([`PageDecoder`]),
//! with what the pager, the tag completion and a convergent read need of it ([`MemberRow`]).
//! [`FullMembers`] decodes the whole [`Member`]; [`super::Projection`] keeps only the fields
//! one read needs, straight from the response body.

use super::{Member, MemberStatus, MemberTag};

/// One page of a collection, as decoded.
#[derive(Debug, serde::Deserialize)]
pub struct Page<T> {
    /// The page's items.
    #[serde(
        alias = "lists",
        alias = "segments",
        alias = "merge_fields",
        alias = "members",
        alias = "tags"
    )]
    pub items: Vec<T>,
    /// The size of the whole (filtered) collection when the page was served.
    #[serde(default)]
    pub total_items: usize,
}

/// A member as a paged read yields it.
pub trait MemberRow: Send + Sync + 'static {
    /// The subscriber hash (repeats are dropped by it).
    fn id(&self) -> &str;
    /// The member's identity across e-mail changes: its contact id, or its subscriber hash
    /// when it has none.
    fn key(&self) -> &str;
    /// Its status.
    fn status(&self) -> MemberStatus;
    /// `last_changed` in seconds (members without one sort first).
    fn version(&self) -> i64;
    /// Whether the member object stopped short of the member's tags (`tags_count` says more).
    fn tags_incomplete(&self) -> bool;
    /// Replace its tags by the complete list.
    fn set_tags(&mut self, tags: Vec<MemberTag>);
}

/// How the body of a members page becomes rows.
pub trait PageDecoder: Send + Sync + 'static {
    /// The row a member becomes.
    type Row: MemberRow;

    /// Decode one members page (`{"members": […], "total_items": n}`).
    ///
    /// # Errors
    /// The body is not such a page.
    fn decode(&self, body: &[u8]) -> Result<Page<Self::Row>, serde_json::Error>;
}

/// Every field of [`Member`].
#[derive(Debug, Clone, Copy, Default)]
pub struct FullMembers;

impl PageDecoder for FullMembers {
    type Row = Member;

    fn decode(&self, body: &[u8]) -> Result<Page<Member>, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

impl MemberRow for Member {
    fn id(&self) -> &str {
        &self.id
    }

    fn key(&self) -> &str {
        self.contact_id.as_deref().unwrap_or(&self.id)
    }

    fn status(&self) -> MemberStatus {
        self.status
    }

    fn version(&self) -> i64 {
        self.last_changed.map_or(i64::MIN, |t| t.timestamp())
    }

    fn tags_incomplete(&self) -> bool {
        self.tags_count.is_some_and(|n| n > self.tags.len() as u64)
    }

    fn set_tags(&mut self, tags: Vec<MemberTag>) {
        self.tags_count = Some(tags.len() as u64);
        self.tags = tags;
    }
}
