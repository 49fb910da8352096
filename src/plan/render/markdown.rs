//! The pull-request comment rendering: one summary line and the guard/removal banners outside any
//! `<details>`, a summary table per binding, every group of rows in its own `<details>` block.
//!
//! Invariant: the result is always shorter than [`MARKDOWN_LIMIT`] characters (GitHub refuses
//! comments over 65,536), whatever the plan's size. Rows are cut least risky first: unmanaged
//! list members, then creates, additions and links, then updates, renames and unlinks, then
//! warnings; removals, consent changes and errors only when they alone exceed the limit. Every
//! cut group says how many rows it left out, and the summary says the full plan is in the JSON.
//! E-mail addresses are masked (`j***@example.com`) unless `show_pii`.

use std::fmt::Write as _;
use std::sync::LazyLock;

use regex::Regex;

use super::{counts_line, groups, mask_email, subject, summary_line, tag_names, thousands};
use crate::plan::model::{Action, BindingPlan, Change, Plan, Problem, UnmanagedMember, Value};

/// The rendering is always shorter than this many characters.
pub const MARKDOWN_LIMIT: usize = 65_000;

/// Room kept for one group's "rows not shown" note.
const NOTE_RESERVE: usize = 96;

/// How to render Markdown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MarkdownOptions {
    /// Show e-mail addresses unmasked.
    pub show_pii: bool,
}

/// A `<details>` group: a title, a table header and rows, with the tier it is cut at.
struct Section<'p> {
    binding: usize,
    title: String,
    header: &'static str,
    source: Source<'p>,
    /// 0 is cut last (errors, removals, consent), 4 first (unmanaged members).
    tier: u8,
    /// The rows shown, formatted only as they are kept (a plan may hold millions).
    rows: Vec<String>,
}

/// Where a section's rows come from.
enum Source<'p> {
    Problems(&'p [Problem]),
    Changes(&'p BindingPlan, &'p [Change]),
    Unmanaged(&'p [UnmanagedMember]),
}

impl Section<'_> {
    fn total(&self) -> usize {
        match self.source {
            Source::Problems(p) => p.len(),
            Source::Changes(_, c) => c.len(),
            Source::Unmanaged(u) => u.len(),
        }
    }

    fn row(&self, i: usize, pii: &Pii) -> Option<String> {
        Some(match self.source {
            Source::Problems(p) => problem_row(p.get(i)?, pii),
            Source::Changes(b, c) => change_row(b, c.get(i)?, pii),
            Source::Unmanaged(u) => {
                let u = u.get(i)?;
                let who = u
                    .email
                    .as_deref()
                    .map_or_else(|| "—".to_owned(), |e| pii.email(e));
                format!("| {} | {} |", cell(&who), u.record)
            }
        })
    }
}

fn tier(action: Action) -> u8 {
    match action {
        Action::RemoveListMember | Action::RemoveTag | Action::SetDoNotEmail => 0,
        Action::UpdateAudience
        | Action::UpdateList
        | Action::RenameTag
        | Action::UpdateRecord
        | Action::UnlinkTags => 2,
        Action::CreateAudience
        | Action::CreateList
        | Action::CreateTag
        | Action::CreateRecord
        | Action::AddListMember
        | Action::LinkTags => 3,
    }
}

/// Escapes a table cell: no line breaks, no pipes, no HTML.
fn cell(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' => s.push_str("\\|"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '&' => s.push_str("&amp;"),
            '\n' | '\r' => s.push(' '),
            c => s.push(c),
        }
    }
    s
}

/// Anything shaped like an e-mail address inside a text.
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"[^\s<>"'`,;:()\[\]|]+@[^\s<>"'`,;:()\[\]|@]+"#).expect("a valid constant regex")
});

struct Pii(bool);

impl Pii {
    /// `text` with every address in it masked, unless PII is shown.
    fn email(&self, text: &str) -> String {
        if self.0 {
            text.to_owned()
        } else {
            EMAIL
                .replace_all(text, |c: &regex::Captures<'_>| mask_email(&c[0]))
                .into_owned()
        }
    }

    fn value(&self, value: Option<&Value>) -> String {
        match value {
            None => "(empty)".to_owned(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(v) => {
                let mut s = v.to_string();
                if s.chars().count() > 80 {
                    s = s.chars().take(77).collect::<String>() + "…\"";
                }
                self.email(&s)
            }
        }
    }
}

fn change_row(binding: &BindingPlan, change: &Change, pii: &Pii) -> String {
    let who = pii.email(&subject(change));
    let mut details: Vec<String> = change
        .fields
        .iter()
        .map(|f| {
            if f.before.is_none() && change.precondition.absent {
                format!("{} = {}", f.column, pii.value(f.after.as_ref()))
            } else {
                format!(
                    "{}: {} → {}",
                    f.column,
                    pii.value(f.before.as_ref()),
                    pii.value(f.after.as_ref())
                )
            }
        })
        .collect();
    if !change.tags.is_empty() {
        details.push(tag_names(binding, change));
    }
    format!(
        "| {} | {} | {} |",
        cell(&who),
        change.reason.code(),
        cell(&details.join("; "))
    )
}

fn problem_row(p: &Problem, pii: &Pii) -> String {
    let code = serde_json::to_value(p.code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let who = p
        .member
        .as_ref()
        .map_or_else(|| "—".to_owned(), |m| pii.email(&m.email));
    let message = pii.email(&p.message);
    format!("| {} | {code} | {} |", cell(&who), cell(&message))
}

/// Render `plan` as a pull-request comment, always under [`MARKDOWN_LIMIT`] characters.
#[must_use]
pub fn markdown(plan: &Plan, options: &MarkdownOptions) -> String {
    let pii = Pii(options.show_pii);
    let mut sections = sections(plan);
    let skeleton = render(plan, &sections, true).len();
    let mut budget = MARKDOWN_LIMIT.saturating_sub(skeleton + 1);
    // Tier by tier, most risky first; within a tier one row per group in turn, so that every
    // group of the tier shows its first rows.
    for t in 0..=4 {
        let mut open: Vec<usize> = (0..sections.len())
            .filter(|&i| sections[i].tier == t)
            .collect();
        while !open.is_empty() {
            open.retain(|&i| {
                let s = &mut sections[i];
                let Some(row) = s.row(s.rows.len(), &pii) else {
                    return false;
                };
                let cost = row.len() + 1;
                if cost > budget {
                    return false;
                }
                budget -= cost;
                s.rows.push(row);
                true
            });
        }
    }
    let mut out = render(plan, &sections, false);
    if out.len() >= MARKDOWN_LIMIT {
        // Only reachable with thousands of bindings: the skeleton itself is too long.
        let mut end = MARKDOWN_LIMIT - 200;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push_str(
            "\n\n_… the rest of this plan is too long for a comment; see the JSON plan._\n",
        );
    }
    out
}

fn sections(plan: &Plan) -> Vec<Section<'_>> {
    let mut out = Vec::new();
    for (bi, binding) in plan.bindings.iter().enumerate() {
        let mut push = |title: String, header, source, tier| {
            out.push(Section {
                binding: bi,
                title,
                header,
                source,
                tier,
                rows: Vec::new(),
            });
        };
        if !binding.errors.is_empty() {
            push(
                format!("Errors ({})", thousands(binding.errors.len() as u64)),
                "| member | error | message |\n|---|---|---|",
                Source::Problems(&binding.errors),
                0,
            );
        }
        if !binding.warnings.is_empty() {
            push(
                format!("Warnings ({})", thousands(binding.warnings.len() as u64)),
                "| member | warning | message |\n|---|---|---|",
                Source::Problems(&binding.warnings),
                1,
            );
        }
        for (action, changes) in groups(binding) {
            push(
                format!(
                    "{} {} ({})",
                    action.symbol(),
                    action.label(),
                    thousands(changes.len() as u64)
                ),
                "| subject | reason | details |\n|---|---|---|",
                Source::Changes(binding, changes),
                tier(action),
            );
        }
        if !binding.unmanaged.is_empty() {
            push(
                format!(
                    "Kept, not managed by audience-sync ({})",
                    thousands(binding.unmanaged.len() as u64)
                ),
                "| list member | record |\n|---|---|",
                Source::Unmanaged(&binding.unmanaged),
                4,
            );
        }
    }
    out
}

/// Render with each section's kept rows; `skeleton` renders no rows and reserves every note.
fn render(plan: &Plan, sections: &[Section], skeleton: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "**audience-sync plan:** {}", summary_line(plan));
    let cut: usize = sections.iter().map(|s| s.total() - s.rows.len()).sum();
    if skeleton {
        out.push_str(&" ".repeat(NOTE_RESERVE * 2));
        out.push('\n');
    } else if cut > 0 {
        let _ = writeln!(
            out,
            "\n_{} rows are not shown to keep this comment under {} characters; the full plan is in the JSON output (`--format json`)._",
            thousands(cut as u64),
            thousands(MARKDOWN_LIMIT as u64)
        );
    }
    for b in plan.bindings.iter().filter(|b| b.guard.is_some()) {
        if let Some(g) = &b.guard {
            let _ = write!(
                out,
                "\n> [!CAUTION]\n> **Refused to apply `{}`:** {}\n",
                b.name,
                cell(&g.message)
            );
        }
    }
    let removals: u64 = plan
        .bindings
        .iter()
        .map(|b| b.count(Action::RemoveListMember) + b.count(Action::RemoveTag))
        .sum();
    let consent: u64 = plan
        .bindings
        .iter()
        .map(|b| b.count(Action::SetDoNotEmail))
        .sum();
    if removals > 0 || consent > 0 {
        let _ = write!(
            out,
            "\n> [!WARNING]\n> This plan removes {} list members or Tag records and sets do-not-e-mail on {} records.\n",
            thousands(removals),
            thousands(consent)
        );
    }
    for (bi, binding) in plan.bindings.iter().enumerate() {
        binding_table(&mut out, binding);
        for s in sections.iter().filter(|s| s.binding == bi) {
            let _ = write!(
                out,
                "\n<details><summary>{}</summary>\n\n{}\n",
                cell(&s.title),
                s.header
            );
            let kept = if skeleton { 0 } else { s.rows.len() };
            for row in &s.rows[..kept] {
                out.push_str(row);
                out.push('\n');
            }
            if skeleton {
                out.push_str(&" ".repeat(NOTE_RESERVE));
                out.push('\n');
            } else if kept < s.total() {
                let _ = writeln!(
                    out,
                    "\n_… and {} more rows not shown (see the JSON plan)._",
                    thousands((s.total() - kept) as u64)
                );
            }
            out.push_str("\n</details>\n");
        }
    }
    out
}

fn binding_table(out: &mut String, binding: &BindingPlan) {
    let _ = write!(
        out,
        "\n### `{}`: {} → {}\n\n{}\n\n| change | count |\n|---|---:|\n",
        binding.name,
        cell(&binding.audience.name),
        cell(&binding.list.name),
        counts_line(&binding.counts)
    );
    for action in Action::ALL {
        let n = binding.count(action);
        if n > 0 {
            let _ = writeln!(
                out,
                "| {} {} | {} |",
                action.symbol(),
                action.label(),
                thousands(n)
            );
        }
    }
    for (n, what) in [
        (binding.errors.len(), "errors"),
        (binding.warnings.len(), "warnings"),
        (binding.unmanaged.len(), "unmanaged kept"),
    ] {
        if n > 0 {
            let _ = writeln!(out, "| {what} | {} |", thousands(n as u64));
        }
    }
}
