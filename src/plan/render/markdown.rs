//! The pull-request comment rendering: one summary line and the guard/removal banners outside any
//! `<details>`, a summary table per binding, every group of rows in its own `<details>` block.
//!
//! Invariant: the result is always shorter than [`MARKDOWN_LIMIT`] characters (GitHub refuses
//! comments over 65,536), whatever the plan's size. Rows are cut least risky first: unmanaged
//! list members, then creates, additions and links, then updates, renames and unlinks, then
//! warnings; removals, consent changes and errors only when they alone exceed the limit. Every
//! cut group says how many rows it left out, and the summary says the full plan is in the JSON.
//!
//! Member data is masked (`j***@example.com`, `***`) unless `show_pii`, and whatever comes from
//! a member is shown as a code span ([`code`]): no image, link, mention, HTML or table break
//! from a member's name, masked or not.

use std::fmt::Write as _;

use super::{Pii, counts_line, groups, summary_line, tag_names, thousands};
use crate::plan::model::{Action, BindingPlan, Change, Plan, Problem, UnmanagedMember, ValueRef};

/// The rendering is always shorter than this many characters.
pub const MARKDOWN_LIMIT: usize = 65_000;

/// Room kept for one group's "rows not shown" note.
const NOTE_RESERVE: usize = 96;

/// How to render Markdown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MarkdownOptions {
    /// Show member data (addresses, names, phones, addresses, mapped columns) unmasked.
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

    fn row(&self, i: usize, pii: Pii) -> Option<String> {
        Some(match self.source {
            Source::Problems(p) => problem_row(p.get(i)?, pii),
            Source::Changes(b, c) => change_row(b, c.get(i)?, pii),
            Source::Unmanaged(u) => {
                let u = u.get(i)?;
                let who = u
                    .email
                    .as_deref()
                    .map_or_else(|| "—".to_owned(), |e| code(&pii.member_text(e)));
                format!("| {who} | {} |", u.record)
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

/// `text` as an inline code span, safe in a table cell: nothing in it is Markdown or HTML (no
/// image, link, autolink, mention or tag), no line break, no cell break (`\|`, which GFM
/// tables resolve before the code span).
fn code(text: &str) -> String {
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .replace('|', "\\|");
    if text.trim().is_empty() {
        return "` `".to_owned();
    }
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// A column value, cut at 80 characters.
fn value(pii: Pii, change: &Change, v: Option<ValueRef<'_>>) -> String {
    let mut s = pii.value(change, v);
    if s.chars().count() > 80 {
        s = s.chars().take(77).collect::<String>() + "…";
    }
    code(&s)
}

fn change_row(binding: &BindingPlan, change: &Change, pii: Pii) -> String {
    let who = code(&pii.subject(change));
    let mut details: Vec<String> = change
        .fields
        .iter()
        .map(|f| {
            let column = cell(&f.column);
            if f.before.is_none() && change.precondition.absent {
                format!("{column} = {}", value(pii, change, f.after))
            } else {
                format!(
                    "{column}: {} → {}",
                    value(pii, change, f.before),
                    value(pii, change, f.after)
                )
            }
        })
        .collect();
    if !change.tags.is_empty() {
        details.push(cell(&tag_names(binding, change)));
    }
    format!(
        "| {who} | {} | {} |",
        change.reason.code(),
        details.join("; ")
    )
}

fn problem_row(p: &Problem, pii: Pii) -> String {
    let code_of = serde_json::to_value(p.code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let email = p.member.as_ref().map(|m| m.email());
    let who = email.map_or_else(|| "—".to_owned(), |e| code(&pii.member_text(e)));
    let message = code(&pii.message(&p.message, email));
    format!("| {who} | {code_of} | {message} |")
}

/// Render `plan` as a pull-request comment, always under [`MARKDOWN_LIMIT`] characters.
#[must_use]
pub fn markdown(plan: &Plan, options: &MarkdownOptions) -> String {
    let pii = Pii {
        show: options.show_pii,
    };
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
                let Some(row) = s.row(s.rows.len(), pii) else {
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
