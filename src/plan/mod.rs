//! The plan: what must change in the CRM so that it matches Mailchimp, per binding.
//!
//! Everything here is pure: [`snapshot`] holds what observation read (compact records),
//! [`diff::compute`] turns a binding and its snapshot into a [`BindingPlan`], [`model`] is the
//! versioned plan format (JSON schema in `schemas/plan.schema.json`, see [`schema`]),
//! [`simulate::apply_to_snapshot`] is the specification of what apply does to the CRM, and
//! [`render`] shows a plan to a person (text), a reviewer (Markdown) and a machine (JSON).
//! [`ids`] makes the deterministic ids of the records apply creates.

pub mod diff;
pub mod ids;
pub mod model;
pub mod render;
pub mod schema;
pub mod simulate;
pub mod snapshot;

#[cfg(test)]
pub(crate) mod fixture;

pub use diff::compute;
pub use model::{
    Action, BindingPlan, Change, FORMAT_VERSION, FieldChange, Guard, GuardReason, MemberRef,
    Plan, PlanMeta, Precondition, Problem, ProblemCode, Reason, Summary, Value,
};
pub use simulate::apply_to_snapshot;
pub use snapshot::Snapshot;
