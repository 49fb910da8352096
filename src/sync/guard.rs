//! The removal guard policy: whether a plan whose removals exceed a binding's threshold may be
//! applied. The guard itself (how many removals a binding allows, and the message) is computed
//! by the pure diff; *whether* to go on despite it is decided here and nowhere else:
//! `apply --allow-removals` allows it, `watch` never does.

use crate::plan::BindingPlan;

/// What to do with a plan whose removal guard refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    /// Apply the removals anyway (`--allow-removals`).
    pub allow_removals: bool,
}

/// The bindings whose guard stops the apply, with each guard's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("nothing was applied; pass `--allow-removals` to apply these removals")]
pub struct Refused {
    /// `(binding, message)` for each refusing guard, in plan order.
    pub bindings: Vec<(String, String)>,
}

impl Policy {
    /// Never apply removals beyond a guard (`watch`).
    #[must_use]
    pub fn refuse() -> Self {
        Self::default()
    }

    /// Check the bindings about to be applied: one refusing guard stops them all (unless
    /// removals are allowed), so that a plan is applied whole or not at all.
    ///
    /// # Errors
    /// Some binding's guard refuses and removals are not allowed.
    pub fn check<'a>(
        self,
        plans: impl IntoIterator<Item = &'a BindingPlan>,
    ) -> Result<(), Refused> {
        if self.allow_removals {
            return Ok(());
        }
        let bindings: Vec<(String, String)> = plans
            .into_iter()
            .filter_map(|b| Some((b.name.clone(), b.guard.as_ref()?.message.clone())))
            .collect();
        if bindings.is_empty() {
            Ok(())
        } else {
            Err(Refused { bindings })
        }
    }
}
