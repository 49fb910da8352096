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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fixture::{Builder, bindings};
    use crate::plan::{Guard, GuardReason, compute};

    fn plans() -> (BindingPlan, BindingPlan) {
        let (bindings, names) = bindings(
            "bindings:\n  - {name: b, audience: {id: a1}, marketing_list: {name: L, member_type: contact}}\n",
        );
        let snapshot = Builder::new(&bindings[0], &names, ("a1", "A")).build();
        let clean = compute(&bindings[0], &names, &snapshot);
        let mut refused = clean.clone();
        refused.name = "r".to_owned();
        refused.guard = Some(Guard {
            reason: GuardReason::TooManyRemovals,
            message: "3 removals, 2 allowed".to_owned(),
            removals: 3,
            allowed: 2,
            list_size: 4,
            override_flag: "--allow-removals".to_owned(),
        });
        (clean, refused)
    }

    #[test]
    fn one_refusing_guard_stops_the_whole_plan_unless_removals_are_allowed() {
        let (clean, refused) = plans();
        assert_eq!(Policy::refuse().check([&clean]), Ok(()));
        let err = Policy::refuse().check([&clean, &refused]).unwrap_err();
        assert_eq!(
            err.bindings,
            vec![("r".to_owned(), "3 removals, 2 allowed".to_owned())]
        );
        let allow = Policy {
            allow_removals: true,
        };
        assert_eq!(allow.check([&clean, &refused]), Ok(()));
    }
}
