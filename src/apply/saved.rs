//! The checks a saved plan (`plan -out FILE`, then `apply FILE`) must pass, as a whole and per
//! record, before and while it is applied.
//!
//! - As a whole: it was made from this very config (same digest), by a plan format this build
//!   reads, and it was not applied already (its Sync Run record, whose id derives from the plan,
//!   does not exist). Otherwise: "saved plan is stale" and the reason.
//! - Per record: the CRM side is checked by `If-Match` with the ETag the plan saw (in the
//!   executor); the Mailchimp side by [`crate::observe::stale_members`], which names the members
//!   whose `last_changed` moved or who are gone: their changes are stale.

use sha2::{Digest, Sha256};

use crate::dataverse;
use crate::dataverse::tables::ToolTables;
use crate::plan::{FORMAT_VERSION, Plan};

/// Why a saved plan as a whole cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    /// The config changed since the plan was made.
    #[error(
        "saved plan is stale: the config changed since the plan was made (plan `{plan}`, config `{config}`); run `plan` again"
    )]
    ConfigChanged {
        /// The plan's config digest.
        plan: String,
        /// The config's.
        config: String,
    },
    /// The plan was applied already.
    #[error(
        "saved plan is stale: it was already applied to binding `{binding}` (Sync Run `{run}`); run `plan` again"
    )]
    AlreadyApplied {
        /// The binding.
        binding: String,
        /// Its Sync Run record.
        run: uuid::Uuid,
    },
    /// Another major version of the plan format.
    #[error(
        "saved plan is stale: it is format `{0}`, this build applies format `{FORMAT_VERSION}`; run `plan` again"
    )]
    Format(String),
    /// The plan names a binding the config does not have.
    #[error("saved plan is stale: the config has no binding `{0}`; run `plan` again")]
    UnknownBinding(String),
}

/// The identity of a plan: `sha256:<hex>` of its JSON.
#[must_use]
pub fn plan_id(plan_json: &str) -> String {
    let digest = Sha256::digest(plan_json.as_bytes());
    let mut hex = String::with_capacity(71);
    hex.push_str("sha256:");
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// Check the plan against the config it claims to come from (pure).
///
/// # Errors
/// The plan's format or config digest differs.
pub fn check_plan(plan: &Plan, config_digest: &str) -> Result<(), Stale> {
    let major = |v: &str| v.split('.').next().unwrap_or_default().to_owned();
    if major(&plan.format_version) != major(FORMAT_VERSION) {
        return Err(Stale::Format(plan.format_version.clone()));
    }
    let config = format!("sha256:{config_digest}");
    if plan.config_digest != config {
        return Err(Stale::ConfigChanged {
            plan: plan.config_digest.clone(),
            config,
        });
    }
    Ok(())
}

/// Whether the plan `plan_id` was applied to `binding` already (its Sync Run record exists).
///
/// # Errors
/// The CRM could not be read.
pub async fn already_applied(
    tables: &ToolTables,
    plan_id: &str,
    binding: &str,
) -> Result<Option<uuid::Uuid>, dataverse::Error> {
    let id = super::run_id(plan_id, binding);
    let table = tables.schema.sync_run();
    let row = tables
        .client
        .retrieve(&table.entity_set, id, &[table.primary_id.as_str()])
        .await?;
    Ok(row.map(|_| id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PlanMeta;

    fn plan(digest: &str) -> Plan {
        Plan::new(
            PlanMeta {
                tool_version: "0".into(),
                config_digest: format!("sha256:{digest}"),
                created_at: "2026-01-01T00:00:00Z".into(),
            },
            Vec::new(),
        )
    }

    #[test]
    fn a_plan_of_another_config_or_format_is_stale() {
        assert_eq!(check_plan(&plan("abc"), "abc"), Ok(()));
        let err = check_plan(&plan("abc"), "def").unwrap_err();
        assert!(err.to_string().starts_with("saved plan is stale"), "{err}");
        let mut other = plan("abc");
        other.format_version = "1.0".into();
        assert_eq!(check_plan(&other, "abc"), Err(Stale::Format("1.0".into())));
    }

    #[test]
    fn plan_ids_are_stable_digests() {
        assert_eq!(plan_id("x"), plan_id("x"));
        assert_ne!(plan_id("x"), plan_id("y"));
        assert!(plan_id("x").starts_with("sha256:"));
    }
}
