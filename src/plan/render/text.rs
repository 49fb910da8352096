//! The terminal rendering: per binding a heading (audience → list), one line of counts by change
//! kind, the guard and the problems, then the changes grouped by action; field updates as
//! `old → new`, long values as an inline word diff; long groups cut after `max_rows` rows unless
//! `full`. Colour only when asked (the caller decides from the terminal and `NO_COLOR`). Member
//! data is masked unless `show_pii` (CI logs are shared), and never carries control characters.

use std::fmt::Write as _;

use owo_colors::OwoColorize as _;
use similar::{ChangeTag, TextDiff};

use super::{Pii, counts_line, groups, heading, summary_line, tag_names, thousands};
use crate::plan::model::{BindingPlan, Change, FieldRef, Plan, Problem, ValueRef};

/// Values longer than this (or with line breaks) are shown as an inline diff.
const LONG_VALUE: usize = 60;

/// How to render text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextOptions {
    /// ANSI colours.
    pub color: bool,
    /// Show every row.
    pub full: bool,
    /// Rows per group when not `full`.
    pub max_rows: usize,
    /// Show member data (addresses, names, phones, addresses, mapped columns) unmasked.
    pub show_pii: bool,
}

impl Default for TextOptions {
    fn default() -> Self {
        Self {
            color: false,
            full: false,
            max_rows: 20,
            show_pii: false,
        }
    }
}

#[derive(Clone, Copy)]
enum Paint {
    Add,
    Change,
    Remove,
    Bold,
    Dim,
}

struct Out {
    buf: String,
    color: bool,
    pii: Pii,
}

impl Out {
    fn paint(&self, text: &str, paint: Paint) -> String {
        if !self.color {
            return text.to_owned();
        }
        match paint {
            Paint::Add => text.green().to_string(),
            Paint::Change => text.yellow().to_string(),
            Paint::Remove => text.red().to_string(),
            Paint::Bold => text.bold().to_string(),
            Paint::Dim => text.dimmed().to_string(),
        }
    }

    fn line(&mut self, indent: usize, text: &str) {
        for _ in 0..indent {
            self.buf.push_str("  ");
        }
        self.buf.push_str(text);
        self.buf.push('\n');
    }
}

fn symbol_paint(symbol: char) -> Paint {
    match symbol {
        '+' => Paint::Add,
        '-' => Paint::Remove,
        _ => Paint::Change,
    }
}

/// Render `plan` for a terminal.
#[must_use]
pub fn text(plan: &Plan, options: &TextOptions) -> String {
    let mut out = Out {
        buf: String::new(),
        color: options.color,
        pii: Pii {
            show: options.show_pii,
        },
    };
    let summary = format!("Plan: {}", summary_line(plan));
    let summary = out.paint(&summary, Paint::Bold);
    out.line(0, &summary);
    for binding in &plan.bindings {
        out.buf.push('\n');
        render_binding(&mut out, binding, options);
    }
    out.buf
}

fn render_binding(out: &mut Out, binding: &BindingPlan, options: &TextOptions) {
    let title = out.paint(&heading(binding), Paint::Bold);
    out.line(0, &title);
    let mut counts = counts_line(&binding.counts);
    for (n, what) in [
        (binding.errors.len(), "error"),
        (binding.warnings.len(), "warning"),
        (binding.unmanaged.len(), "unmanaged kept"),
    ] {
        if n > 0 {
            let _ = write!(
                counts,
                "; {} {what}{}",
                thousands(n as u64),
                if n == 1 || what.ends_with("kept") {
                    ""
                } else {
                    "s"
                }
            );
        }
    }
    out.line(1, &counts);
    if let Some(guard) = &binding.guard {
        let line = format!("! refused to apply: {}", guard.message);
        let line = out.paint(&line, Paint::Remove);
        out.line(1, &line);
    }
    let limit = if options.full {
        usize::MAX
    } else {
        options.max_rows
    };
    problems(out, "errors", &binding.errors, limit, Paint::Remove);
    problems(out, "warnings", &binding.warnings, limit, Paint::Change);
    for (action, changes) in groups(binding) {
        let head = format!(
            "{} {} ({})",
            action.symbol(),
            action.label(),
            thousands(changes.len() as u64)
        );
        let head = out.paint(&head, symbol_paint(action.symbol()));
        out.line(1, &head);
        for change in changes.iter().take(limit) {
            render_change(out, binding, change);
        }
        more(out, changes.len(), limit);
    }
    if !binding.unmanaged.is_empty() {
        let head = format!(
            "= kept, not managed by audience-sync ({})",
            thousands(binding.unmanaged.len() as u64)
        );
        let head = out.paint(&head, Paint::Dim);
        out.line(1, &head);
        for u in binding.unmanaged.iter().take(limit) {
            let who = u
                .email
                .as_deref()
                .map_or_else(|| u.record.to_string(), |e| out.pii.member_text(e));
            out.line(3, &who);
        }
        more(out, binding.unmanaged.len(), limit);
    }
}

fn more(out: &mut Out, total: usize, limit: usize) {
    if total > limit {
        let line = format!("… and {} more", thousands((total - limit) as u64));
        let line = out.paint(&line, Paint::Dim);
        out.line(3, &line);
    }
}

fn problems(out: &mut Out, title: &str, list: &[Problem], limit: usize, paint: Paint) {
    if list.is_empty() {
        return;
    }
    let head = format!("{title} ({})", thousands(list.len() as u64));
    let head = out.paint(&head, paint);
    out.line(1, &head);
    for p in list.iter().take(limit) {
        let code = serde_json::to_value(p.code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let email = p.member.as_ref().map(|m| m.email());
        let message = out.pii.message(&p.message, email);
        out.line(3, &format!("{code}: {message}"));
    }
    more(out, list.len(), limit);
}

fn render_change(out: &mut Out, binding: &BindingPlan, change: &Change) {
    let symbol = change.action.symbol().to_string();
    let symbol = out.paint(&symbol, symbol_paint(change.action.symbol()));
    let subject = out.pii.subject(change);
    let mut line = format!("{symbol} {subject}  ({})", change.reason.code());
    if !change.tags.is_empty() {
        let _ = write!(line, ": {}", tag_names(binding, change));
    }
    out.line(2, &line);
    for field in &change.fields {
        let text = field_text(out, change, &field);
        out.line(4, &text);
    }
}

fn field_text(out: &Out, change: &Change, field: &FieldRef<'_>) -> String {
    let unmasked = out.pii.show || !super::is_person(change);
    if let (Some(ValueRef::Text(old)), Some(ValueRef::Text(new)), true) =
        (field.before, field.after, unmasked)
    {
        if old.len() > LONG_VALUE
            || new.len() > LONG_VALUE
            || old.contains('\n')
            || new.contains('\n')
        {
            let (old, new) = (super::printable(old), super::printable(new));
            return format!("{}: {}", field.column, inline_diff(out, &old, &new));
        }
    }
    let value = |v: &Option<ValueRef<'_>>| out.pii.value(change, *v);
    if change.precondition.absent {
        return format!("{}: {}", field.column, value(&field.after));
    }
    format!(
        "{}: {} → {}",
        field.column,
        out.paint(&value(&field.before), Paint::Remove),
        out.paint(&value(&field.after), Paint::Add)
    )
}

/// A word diff: removed words as `[-…-]`, added as `{+…+}` (coloured instead when colour is on).
fn inline_diff(out: &Out, old: &str, new: &str) -> String {
    let diff = TextDiff::from_words(old, new);
    let mut s = String::new();
    for change in diff.iter_all_changes() {
        let value = change.value().replace('\n', "⏎");
        match change.tag() {
            ChangeTag::Equal => s.push_str(&value),
            ChangeTag::Delete if out.color => s.push_str(&out.paint(&value, Paint::Remove)),
            ChangeTag::Insert if out.color => s.push_str(&out.paint(&value, Paint::Add)),
            ChangeTag::Delete => {
                let _ = write!(s, "[-{value}-]");
            }
            ChangeTag::Insert => {
                let _ = write!(s, "{{+{value}+}}");
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_diff_marks_words() {
        let out = Out {
            buf: String::new(),
            color: false,
            pii: Pii { show: false },
        };
        assert_eq!(
            inline_diff(&out, "the quick brown fox", "the slow brown fox"),
            "the [-quick-]{+slow+} brown fox"
        );
    }
}
