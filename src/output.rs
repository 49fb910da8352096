//! Where output goes and how it looks: stdout carries a command's result, stderr its logs and
//! progress. Colour only on a terminal, never with `--no-color` or `NO_COLOR`.

use std::io::IsTerminal;

use crate::cli::GlobalArgs;

/// What every command needs to know about its output.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// Colour stdout (a terminal, and colour not turned off).
    pub color: bool,
    /// stdin and stdout are a terminal: a person is there to answer a prompt.
    pub interactive: bool,
    /// stderr is a terminal: progress indicators may be drawn.
    pub progress: bool,
}

impl Context {
    /// Decide from the global flags and the terminals attached.
    #[must_use]
    pub fn from_global(global: &GlobalArgs) -> Self {
        let allowed = color_allowed(global);
        Self {
            color: allowed && std::io::stdout().is_terminal(),
            interactive: std::io::stdin().is_terminal() && std::io::stdout().is_terminal(),
            progress: std::io::stderr().is_terminal(),
        }
    }

    /// A context for tests and embedding: no colour, no prompts, no progress.
    #[must_use]
    pub fn plain() -> Self {
        Self {
            color: false,
            interactive: false,
            progress: false,
        }
    }
}

fn color_allowed(global: &GlobalArgs) -> bool {
    !global.no_color && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Whether stderr (logs, diagnostics) may be coloured.
#[must_use]
pub fn stderr_color(global: &GlobalArgs) -> bool {
    color_allowed(global) && std::io::stderr().is_terminal()
}

/// An error with its causes on one line, `a: b: c`, each cause once (a layer that already
/// repeats its source's text does not get it twice).
#[must_use]
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
