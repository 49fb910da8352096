//! Member pages decoded straight from the response body into the few fields one read needs:
//! the identity, status, version and tags every read uses, and the text of each of a binding's
//! field paths. No `serde_json::Value` or map per member: fields no path names are skipped
//! without being built ([`IgnoredAny`](serde::de::IgnoredAny)), strings are borrowed from the body unless they hold
//! escapes, and each member keeps its text in one buffer.
//!
//! The text of a path is exactly what [`crate::observe::member_value`] gives for the same member
//! decoded as a [`super::Member`]: strings as sent (`""` is none), numbers as `serde_json`
//! prints them, booleans `true`/`false`, times re-printed as RFC 3339, tag names joined by
//! `, ` (the tests below compare the two on every kind of field).

use serde::de::{self, Deserializer};

use super::row::{MemberRow, Page, PageDecoder};
use super::{MemberStatus, MemberTag};

mod member;
mod merge;

use member::PageVisitor;

/// Where the text of one field path comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Email,
    Status,
    ContactId,
    LastChanged,
    Tags,
    /// A top-level field decoded into the member's buffer.
    Field(&'static str, Kind),
    /// `merge_fields.TAG` or `merge_fields.TAG.part`.
    Merge(String, Option<String>),
    /// `location.part` (one of [`LOCATION_TEXT`] or [`LOCATION_COORDS`]).
    Location(&'static str),
    /// A path no member field answers.
    Absent,
}

/// How a top-level field becomes text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Vip,
    Rating,
    WebId,
    Time,
}

const FIELDS: &[(&str, Kind)] = &[
    ("unique_email_id", Kind::Text),
    ("full_name", Kind::Text),
    ("email_type", Kind::Text),
    ("language", Kind::Text),
    ("unsubscribe_reason", Kind::Text),
    ("ip_signup", Kind::Text),
    ("ip_opt", Kind::Text),
    ("source", Kind::Text),
    ("vip", Kind::Vip),
    ("member_rating", Kind::Rating),
    ("web_id", Kind::WebId),
    ("timestamp_signup", Kind::Time),
    ("timestamp_opt", Kind::Time),
];

const LOCATION_TEXT: &[&str] = &["country_code", "timezone", "region"];
const LOCATION_COORDS: &[&str] = &["latitude", "longitude"];

/// Slots of a member's buffer before the paths' values.
const ID: usize = 0;
const CONTACT_ID: usize = 1;
const EMAIL: usize = 2;
const LAST_CHANGED: usize = 3;
const FIXED: usize = 4;

/// Where a slot's text is in the member's buffer: `start..end`, or [`NONE`].
type Span = (u32, u32);

/// No text (`text.get` of it is `None`).
const NONE: Span = (u32::MAX, 0);

/// The fields one read keeps of each member: the identity, status, `last_changed`, tags, and
/// the text of each of `paths` (a binding's field paths).
#[derive(Debug, Clone)]
pub struct Projection {
    sources: Vec<Source>,
    tag_names: bool,
    /// The merge tags the paths name, each once.
    merge: Vec<MergeTag>,
    location: bool,
}

/// The paths of one merge tag.
#[derive(Debug, Clone)]
struct MergeTag {
    tag: String,
    /// Slots of `merge_fields.TAG`.
    whole: Vec<usize>,
    /// Slots of `merge_fields.TAG.part`.
    parts: Vec<(String, usize)>,
}

impl Projection {
    /// Keep the text of these field paths (`merge_fields.ADDRESS.city`, `location.region`, …).
    #[must_use]
    pub fn new(paths: &[String]) -> Self {
        let sources: Vec<Source> = paths.iter().map(|p| source(p)).collect();
        let mut merge: Vec<MergeTag> = Vec::new();
        for (i, s) in sources.iter().enumerate() {
            let Source::Merge(tag, part) = s else {
                continue;
            };
            let at = match merge.iter().position(|m| m.tag == *tag) {
                Some(at) => at,
                None => {
                    merge.push(MergeTag {
                        tag: tag.clone(),
                        whole: Vec::new(),
                        parts: Vec::new(),
                    });
                    merge.len() - 1
                }
            };
            match part {
                None => merge[at].whole.push(FIXED + i),
                Some(part) => merge[at].parts.push((part.clone(), FIXED + i)),
            }
        }
        Self {
            tag_names: sources.contains(&Source::Tags),
            merge,
            location: sources.iter().any(|s| matches!(s, Source::Location(_))),
            sources,
        }
    }

    /// The text of path `i` of `member` (`joined_tags`: [`Projected::joined_tags`]).
    #[must_use]
    pub fn value<'a>(
        &self,
        member: &'a Projected,
        i: usize,
        joined_tags: Option<&'a str>,
    ) -> Option<&'a str> {
        match self.sources.get(i)? {
            Source::Email => member.slot(EMAIL),
            Source::Status => Some(member.status.as_str()),
            Source::ContactId => member.slot(CONTACT_ID),
            Source::LastChanged => member.slot(LAST_CHANGED),
            Source::Tags => joined_tags,
            Source::Field(..) | Source::Merge(..) | Source::Location(_) => member.slot(FIXED + i),
            Source::Absent => None,
        }
    }

    /// How many paths it keeps.
    #[must_use]
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// Whether it keeps no path.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }
}

fn source(path: &str) -> Source {
    match path {
        "email_address" => Source::Email,
        "status" => Source::Status,
        "contact_id" => Source::ContactId,
        "last_changed" => Source::LastChanged,
        "tags" => Source::Tags,
        _ => {
            if let Some(&(name, kind)) = FIELDS.iter().find(|(name, _)| *name == path) {
                return Source::Field(name, kind);
            }
            if let Some(rest) = path.strip_prefix("merge_fields.") {
                return match rest.split_once('.') {
                    None => Source::Merge(rest.to_owned(), None),
                    Some((tag, part)) => Source::Merge(tag.to_owned(), Some(part.to_owned())),
                };
            }
            if let Some(part) = path.strip_prefix("location.") {
                let known = LOCATION_TEXT
                    .iter()
                    .chain(LOCATION_COORDS)
                    .find(|p| **p == part);
                return known.map_or(Source::Absent, |p| Source::Location(p));
            }
            Source::Absent
        }
    }
}

/// A member as a [`Projection`] keeps it.
#[derive(Debug, Clone)]
pub struct Projected {
    status: MemberStatus,
    version: i64,
    tags_count: Option<u64>,
    tags: Vec<u64>,
    /// Only when a path reads the tags' names.
    tag_names: Vec<String>,
    text: String,
    slots: Vec<Span>,
}

impl Projected {
    fn slot(&self, i: usize) -> Option<&str> {
        let &(start, end) = self.slots.get(i)?;
        self.text.get(start as usize..end as usize)
    }

    /// The subscriber hash.
    #[must_use]
    pub fn id(&self) -> &str {
        self.slot(ID).unwrap_or_default()
    }

    /// The contact id (`""` when Mailchimp gave none).
    #[must_use]
    pub fn contact_id(&self) -> &str {
        self.slot(CONTACT_ID).unwrap_or_default()
    }

    /// The e-mail address.
    #[must_use]
    pub fn email(&self) -> &str {
        self.slot(EMAIL).unwrap_or_default()
    }

    /// `last_changed` as RFC 3339 (`""` when Mailchimp gave none).
    #[must_use]
    pub fn last_changed(&self) -> &str {
        self.slot(LAST_CHANGED).unwrap_or_default()
    }

    /// Its status.
    #[must_use]
    pub fn status(&self) -> MemberStatus {
        self.status
    }

    /// Ids of its tags.
    #[must_use]
    pub fn tag_ids(&self) -> &[u64] {
        &self.tags
    }

    /// Its tag names joined by `, `, when the projection reads them.
    #[must_use]
    pub fn joined_tags(&self, projection: &Projection) -> Option<String> {
        projection.tag_names.then(|| self.tag_names.join(", "))
    }
}

impl MemberRow for Projected {
    fn id(&self) -> &str {
        Projected::id(self)
    }

    fn key(&self) -> &str {
        self.slot(CONTACT_ID).unwrap_or_else(|| self.id())
    }

    fn status(&self) -> MemberStatus {
        self.status
    }

    fn version(&self) -> i64 {
        self.version
    }

    fn tags_incomplete(&self) -> bool {
        self.tags_count.is_some_and(|n| n > self.tags.len() as u64)
    }

    fn set_tags(&mut self, tags: Vec<MemberTag>) {
        self.tags_count = Some(tags.len() as u64);
        self.tags = tags.iter().map(|t| t.id).collect();
        self.tag_names = tags.into_iter().map(|t| t.name).collect();
    }
}

impl PageDecoder for Projection {
    type Row = Projected;

    fn decode(&self, body: &[u8]) -> Result<Page<Projected>, serde_json::Error> {
        // One UTF-8 check of the whole body is much cheaper than one per string.
        let body = std::str::from_utf8(body).map_err(<serde_json::Error as de::Error>::custom)?;
        let mut de = serde_json::Deserializer::from_str(body);
        let page = (&mut de).deserialize_map(PageVisitor(self))?;
        de.end()?;
        Ok(page)
    }
}

#[cfg(test)]
mod tests;
