//! How a sync tells what it is doing, without deciding where it goes: commands draw a
//! progress bar and write to stderr, `watch` logs through `tracing`. The sync calls a
//! [`Reporter`]; every method has a default that does nothing.

use crate::observe;
use crate::output::error_chain;

/// A stretch of work with a known size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading and planning bindings (one unit per binding).
    Plan,
    /// Applying changes (one unit per change).
    Apply,
}

/// Something worth telling about one binding.
#[derive(Debug)]
pub enum Event<'a> {
    /// The binding is suspended in the config: skipped.
    Suspended,
    /// Its sides could not be read: it is not planned (the others still are).
    ReadFailed(&'a observe::Error),
    /// Another applier ran while this one waited for the lease: planning again.
    Superseded,
    /// Members of a saved plan changed in Mailchimp since: their changes are skipped as stale.
    StaleMembers(usize),
}

impl Event<'_> {
    /// The event as one line for a person.
    #[must_use]
    pub fn line(&self, binding: &str) -> String {
        match self {
            Self::Suspended => format!("binding `{binding}` is suspended: skipped"),
            Self::ReadFailed(err) => format!("error: binding `{binding}`: {}", error_chain(*err)),
            Self::Superseded => format!(
                "binding `{binding}`: another applier ran while this one waited; planning again"
            ),
            Self::StaleMembers(n) => format!(
                "binding `{binding}`: {n} member(s) changed in Mailchimp since the plan was made; their changes are skipped as stale"
            ),
        }
    }
}

/// Where a sync reports. Implementations must be cheap: they are called on every step.
pub trait Reporter: Send + Sync {
    /// A phase of `total` units begins.
    fn begin(&self, phase: Phase, total: usize) {
        let _ = (phase, total);
    }

    /// The phase moves on to `binding`.
    fn binding(&self, phase: Phase, binding: &str) {
        let _ = (phase, binding);
    }

    /// `units` more of the phase are done.
    fn advance(&self, units: usize) {
        let _ = units;
    }

    /// The phase is over.
    fn end(&self) {}

    /// Something happened to `binding`.
    fn event(&self, binding: &str, event: &Event<'_>) {
        let _ = (binding, event);
    }
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Reporter for Silent {}

/// Events as `tracing` records (for `watch`); no progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tracing;

impl Reporter for Tracing {
    fn event(&self, binding: &str, event: &Event<'_>) {
        match event {
            Event::ReadFailed(err) => {
                tracing::warn!(binding, error = %error_chain(*err), "reading failed");
            }
            other => tracing::info!(binding, "{}", other.line(binding)),
        }
    }
}
