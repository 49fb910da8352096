//! Renderers of a plan: [`text()`] for a terminal, [`markdown()`] for a pull-request comment,
//! [`json()`] for machines (the versioned format; [`write_json`] streams it). All pure: plan
//! in, `String` (or bytes to a writer) out.
//!
//! Text and Markdown are meant to be shared (CI logs, pull requests): every member value (the
//! e-mail, names, phones, addresses, any mapped column of a contact or lead) is masked there
//! unless `show_pii` ([`Pii`]); member text never carries control characters into a terminal.
//! The JSON plan keeps full values: it is what `apply FILE` needs (see `schemas/plan.schema.json`
//! for which fields are personal data).

mod json;
mod markdown;
mod text;

pub use json::{JsonError, json, to_writer_compact, write_json};
pub use markdown::{MARKDOWN_LIMIT, MarkdownOptions, markdown};
pub use text::{TextOptions, text};

use super::model::{Action, BindingPlan, Change, Plan, ValueRef};

/// `1234567` → `1,234,567`.
#[must_use]
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `jane.doe@example.com` → `j***@example.com`; anything that is not an address is returned as is.
#[must_use]
pub fn mask_email(value: &str) -> String {
    match value.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        _ => value.to_owned(),
    }
}

/// Anything shaped like an e-mail address inside a text.
static EMAIL: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r#"[^\s<>"'`,;:()\[\]|]+@[^\s<>"'`,;:()\[\]|@]+"#)
        .expect("a valid constant regex")
});

/// What a masked member value shows.
const MASK: &str = "***";

/// Member data shown in full (`--show-pii`) or masked (the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pii {
    /// Show member data unmasked.
    pub show: bool,
}

impl Pii {
    /// A member's text (an address, a name): `j***@example.com` for an address, else `***`.
    fn member_text(self, text: &str) -> String {
        if self.show || text.is_empty() {
            return printable(text);
        }
        let address = EMAIL
            .find(text.trim())
            .is_some_and(|m| m.range() == (0..text.trim().len()));
        if address {
            printable(&mask_email(text))
        } else {
            MASK.to_owned()
        }
    }

    /// A message about a member: its address (`known`) and any other address in it masked.
    fn message(self, text: &str, known: Option<&str>) -> String {
        if self.show {
            return printable(text);
        }
        let text = match known.filter(|k| !k.is_empty()) {
            Some(k) => text.replace(k, &self.member_text(k)),
            None => text.to_owned(),
        };
        let text = EMAIL.replace_all(&text, |c: &regex::Captures<'_>| mask_email(&c[0]));
        printable(&text)
    }

    /// What a change row is about: the member's address, or the record's name (an address, for
    /// a contact or lead), or its id.
    fn subject(self, change: &Change) -> String {
        if let Some(m) = &change.member {
            return self.member_text(m.email());
        }
        match &change.name {
            Some(name) if is_person(change) => self.member_text(name),
            Some(name) => printable(name),
            None => change.record.to_string(),
        }
    }

    /// A column value of `change`, as `Display` shows it; a text of a contact or lead masked.
    fn value(self, change: &Change, value: Option<ValueRef<'_>>) -> String {
        match value {
            None => "(empty)".to_owned(),
            Some(ValueRef::Text(t)) if !self.show && is_person(change) && !is_status(t) => {
                self.member_text(t)
            }
            Some(v) => printable(&v.to_string()),
        }
    }
}

/// Whether `change` writes a contact or lead (whose values are member data).
fn is_person(change: &Change) -> bool {
    change.member.is_some()
        || matches!(
            change.action,
            Action::CreateRecord
                | Action::UpdateRecord
                | Action::SetDoNotEmail
                | Action::AddListMember
                | Action::LinkTags
                | Action::UnlinkTags
                | Action::RemoveListMember
        )
}

/// A Mailchimp status (`subscribed`, `unsubscribed`, …): the tool's vocabulary, shown.
fn is_status(text: &str) -> bool {
    serde_json::from_value::<crate::config::MemberStatus>(serde_json::Value::from(text)).is_ok()
}

/// `text` without control characters (a terminal escape in a member's name, say).
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// Counts by action as `3 create record, 1 remove from list`, or `no changes`.
fn counts_line(counts: &std::collections::BTreeMap<Action, u64>) -> String {
    let parts: Vec<String> = Action::ALL
        .iter()
        .filter_map(|a| {
            counts
                .get(a)
                .filter(|n| **n > 0)
                .map(|n| format!("{} {}", thousands(*n), a.label()))
        })
        .collect();
    if parts.is_empty() {
        "no changes".to_owned()
    } else {
        parts.join(", ")
    }
}

/// The one-line summary of a whole plan.
fn summary_line(plan: &Plan) -> String {
    let s = &plan.summary;
    let mut line = format!(
        "{} changes in {} binding{}",
        thousands(s.changes),
        thousands(s.bindings),
        if s.bindings == 1 { "" } else { "s" }
    );
    if s.changes > 0 {
        line.push_str(&format!(" ({})", counts_line(&s.by_action)));
    }
    for (n, what) in [
        (s.errors, "error"),
        (s.warnings, "warning"),
        (s.unmanaged_kept, "unmanaged list member kept"),
    ] {
        if n > 0 {
            line.push_str(&format!(
                ", {} {what}{}",
                thousands(n),
                if n == 1 { "" } else { "s" }
            ));
        }
    }
    line
}

/// The tag names a link change lists.
fn tag_names(binding: &BindingPlan, change: &Change) -> String {
    change
        .tags
        .iter()
        .map(|t| {
            binding
                .tag_name(*t)
                .map_or_else(|| t.to_string(), str::to_owned)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Changes of one binding grouped by action, in order.
fn groups(binding: &BindingPlan) -> Vec<(Action, &[Change])> {
    let mut out = Vec::new();
    let mut rest = binding.changes.as_slice();
    while let Some(first) = rest.first() {
        let n = rest.iter().take_while(|c| c.action == first.action).count();
        let (group, tail) = rest.split_at(n);
        out.push((first.action, group));
        rest = tail;
    }
    out
}

/// A binding's heading: `name: "audience" (id) → "list" (contact list)`.
fn heading(binding: &BindingPlan) -> String {
    let kind = match binding.list.member_type {
        crate::config::MemberType::Contact => "contact",
        crate::config::MemberType::Lead => "lead",
    };
    format!(
        "{}: \"{}\" ({}) → \"{}\" ({kind} list{})",
        binding.name,
        binding.audience.name,
        binding.audience.id,
        binding.list.name,
        if binding.list.exists {
            ""
        } else if binding.errors.is_empty() {
            ", to create"
        } else {
            ", not found"
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_and_masks() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234), "1,234");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(mask_email("jane@example.com"), "j***@example.com");
        assert_eq!(mask_email("not an address"), "not an address");
    }

    #[test]
    fn member_text_is_masked_unless_shown() {
        let masked = Pii { show: false };
        assert_eq!(masked.member_text("jane@example.com"), "j***@example.com");
        assert_eq!(masked.member_text("Jane"), "***");
        assert_eq!(masked.member_text("Jane <jane@example.com>"), "***");
        assert_eq!(
            masked.message("two records for jane@example.com", Some("jane@example.com")),
            "two records for j***@example.com"
        );
        let shown = Pii { show: true };
        assert_eq!(shown.member_text("Jane\u{1b}[31m"), "Jane\u{fffd}[31m");
    }
}
