//! `audience-sync force-unlock BINDING LEASE_ID`: release a binding's apply lease that a crashed
//! run left behind. Only the lease with exactly that id is released (so a lease taken since by
//! another run is never broken by mistake); a sync left "In Progress" is marked "Error".

use crate::apply::lease;
use crate::cli::ForceUnlockArgs;
use crate::clients::Clients;
use crate::exit::ExitStatus;
use crate::output::Context;
use crate::sync::{Session, Silent};

pub(super) async fn run(args: ForceUnlockArgs, _ctx: &Context) -> anyhow::Result<ExitStatus> {
    let Some(loaded) = super::load_config(&args.config)? else {
        return Ok(ExitStatus::Failure);
    };
    let Some(binding) = loaded.bindings.iter().find(|b| b.name == args.binding) else {
        eprintln!(
            "error: the config has no binding `{}`; bindings: {}",
            args.binding,
            loaded
                .bindings
                .iter()
                .map(|b| format!("`{}`", b.name))
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(ExitStatus::Failure);
    };
    let clients = Clients::connect(&loaded)?;
    let session = Session {
        loaded: &loaded,
        clients: &clients,
        reporter: &Silent,
    };
    let audience = session.audience_id(binding).await?;
    let Some(record) = lease::find_record(&clients.tables, &audience).await? else {
        eprintln!(
            "error: binding `{}` has no Audience record in the CRM, so no lease",
            binding.name
        );
        return Ok(ExitStatus::Failure);
    };
    match lease::force_release(&clients.tables, &record, &args.lease_id).await? {
        Some(released) => {
            eprintln!(
                "released lease `{}` of `{}` ({}) on binding `{}`",
                released.id, released.owner, released.operation, binding.name
            );
            Ok(ExitStatus::Success)
        }
        None => {
            match &record.lease {
                Some(current) => eprintln!(
                    "error: binding `{}` is leased as `{}` by `{}`, not as `{}`; nothing was released",
                    binding.name, current.id, current.owner, args.lease_id
                ),
                None => eprintln!(
                    "error: binding `{}` holds no lease; nothing was released",
                    binding.name
                ),
            }
            Ok(ExitStatus::Failure)
        }
    }
}
