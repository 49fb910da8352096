//! The commands' [`Reporter`]: a progress bar on stderr when it is a terminal (hidden
//! otherwise), and each event as a line on stderr.

use std::sync::{Mutex, PoisonError};

use indicatif::{ProgressBar, ProgressStyle};

use crate::output::Context;
use crate::sync::{Event, Phase, Reporter};

/// Progress and events on the terminal.
pub(super) struct Terminal {
    draw: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl Terminal {
    /// A reporter that draws bars only when stderr is a terminal.
    pub(super) fn new(ctx: &Context) -> Self {
        Self {
            draw: ctx.progress,
            bar: Mutex::new(None),
        }
    }

    fn with_bar(&self, f: impl FnOnce(&ProgressBar)) {
        let bar = self.bar.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bar) = bar.as_ref() {
            f(bar);
        }
    }
}

impl Reporter for Terminal {
    fn begin(&self, _phase: Phase, total: usize) {
        let bar = if self.draw {
            let bar = ProgressBar::new(total as u64);
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} [{pos}/{len}]") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        } else {
            ProgressBar::hidden()
        };
        *self.bar.lock().unwrap_or_else(PoisonError::into_inner) = Some(bar);
    }

    fn binding(&self, phase: Phase, binding: &str) {
        let verb = match phase {
            Phase::Plan => "reading",
            Phase::Apply => "applying",
        };
        self.with_bar(|bar| bar.set_message(format!("{verb} `{binding}`")));
    }

    fn advance(&self, units: usize) {
        self.with_bar(|bar| bar.inc(units as u64));
    }

    fn end(&self) {
        if let Some(bar) = self
            .bar
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            bar.finish_and_clear();
        }
    }

    fn event(&self, binding: &str, event: &Event<'_>) {
        // A line printed while a bar is drawn goes above it.
        let line = event.line(binding);
        let bar = self.bar.lock().unwrap_or_else(PoisonError::into_inner);
        match bar.as_ref() {
            Some(bar) if !bar.is_hidden() => bar.suspend(|| eprintln!("{line}")),
            _ => eprintln!("{line}"),
        }
    }
}
