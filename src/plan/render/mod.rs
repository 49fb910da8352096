//! Renderers of a plan: [`text()`] for a terminal, [`markdown()`] for a pull-request comment,
//! [`json()`] for machines (the versioned format). All pure: plan in, `String` out.

mod json;
mod markdown;
mod text;

pub use json::json;
pub use markdown::{MARKDOWN_LIMIT, MarkdownOptions, markdown};
pub use text::{TextOptions, text};

use super::model::{Action, BindingPlan, Change, Plan, Value};

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

/// What a change is about, for a row: the member's e-mail, or the record's name, or its id.
fn subject(change: &Change) -> String {
    change
        .member
        .as_ref()
        .map(|m| m.email.clone())
        .or_else(|| change.name.clone())
        .unwrap_or_else(|| change.record.to_string())
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

fn value_text(value: Option<&Value>) -> String {
    value.map_or_else(|| "(empty)".to_owned(), ToString::to_string)
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
}
