//! The checks of a saved plan (`plan -out FILE`, then `apply FILE`) that need the services:
//! every binding it names is in the config, it was not applied already (its Sync Run record),
//! and which of its members changed in Mailchimp since (their changes are stale). The whole-plan
//! check that needs nothing but the config is [`crate::apply::saved::check_plan`].

use std::collections::{HashMap, HashSet};

use super::{Event, Session};
use crate::apply::saved::{self, Stale};
use crate::plan::Plan;
use crate::{dataverse, observe};

/// Stale members (subscriber hashes) by binding.
pub type StaleMembers = HashMap<String, HashSet<String>>;

/// Why a saved plan is not applied.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The plan as a whole is stale.
    #[error(transparent)]
    Stale(#[from] Stale),
    /// A binding's Mailchimp side could not be read.
    #[error("binding `{binding}`")]
    Read {
        /// The binding.
        binding: String,
        /// Why.
        #[source]
        source: observe::Error,
    },
    /// The CRM could not be read.
    #[error(transparent)]
    Crm(#[from] dataverse::Error),
}

impl Session<'_> {
    /// Check a saved plan (identified by `plan_id`) against the config and both services; the
    /// members whose changes are stale, by binding, each binding's count reported as
    /// [`Event::StaleMembers`].
    ///
    /// # Errors
    /// The plan is stale as a whole, or a service could not be read.
    pub async fn check_saved(&self, plan: &Plan, plan_id: &str) -> Result<StaleMembers, Error> {
        let mut stale_members = HashMap::new();
        for b in &plan.bindings {
            let Some(binding) = self.loaded.bindings.iter().find(|x| x.name == b.name) else {
                return Err(Stale::UnknownBinding(b.name.clone()).into());
            };
            if let Some(run) =
                saved::already_applied(&self.clients.tables, plan_id, &b.name).await?
            {
                return Err(Stale::AlreadyApplied {
                    binding: b.name.clone(),
                    run,
                }
                .into());
            }
            if b.changes.is_empty() {
                continue;
            }
            let stale = observe::stale_members(&self.clients.mailchimp, binding, b)
                .await
                .map_err(|source| Error::Read {
                    binding: b.name.clone(),
                    source,
                })?;
            if !stale.is_empty() {
                self.reporter
                    .event(&b.name, &Event::StaleMembers(stale.len()));
            }
            stale_members.insert(b.name.clone(), stale);
        }
        Ok(stale_members)
    }
}
