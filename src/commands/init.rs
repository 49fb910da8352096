//! `audience-sync init`: write a starter config ([`crate::config::starter`]) from the account's
//! audiences, one binding per audience, every binding commented out. Needs only Mailchimp access
//! (`MAILCHIMP_API_KEY`, `MAILCHIMP_BASE_URL`).

use anyhow::Context as _;

use crate::cli::InitArgs;
use crate::config::starter::{self, DataverseStarter, Starter, StarterAudience};
use crate::exit::ExitStatus;
use crate::output::Context;
use crate::sync::AudienceSummary;

/// The starter's view of the account's audiences.
pub(super) fn starter_audiences(summaries: &[AudienceSummary]) -> Vec<StarterAudience> {
    summaries
        .iter()
        .map(|s| StarterAudience {
            id: s.audience.id.clone(),
            name: s.audience.name.clone(),
            members: s.audience.member_count,
            tags: s.tag_count,
        })
        .collect()
}

pub(super) async fn run(args: InitArgs, _ctx: &Context) -> anyhow::Result<ExitStatus> {
    if args.out.exists() && !args.force {
        eprintln!(
            "error: `{}` already exists; use --force to overwrite it",
            args.out.display()
        );
        return Ok(ExitStatus::Failure);
    }
    let client = crate::clients::mailchimp_only(None)?;
    let audiences = starter_audiences(&crate::sync::audiences(&client).await?);
    let text = starter::render(&Starter {
        audiences: &audiences,
        mailchimp_base_url: std::env::var("MAILCHIMP_BASE_URL")
            .ok()
            .filter(|v| !v.is_empty())
            .map(|_| "${MAILCHIMP_BASE_URL}".to_owned()),
        dataverse: DataverseStarter::from_env(|k| std::env::var(k).ok().filter(|v| !v.is_empty())),
        active: false,
    });
    std::fs::write(&args.out, text)
        .with_context(|| format!("cannot write `{}`", args.out.display()))?;
    eprintln!(
        "wrote `{}` with {} audience binding(s), all commented out: uncomment the ones to sync",
        args.out.display(),
        audiences.len()
    );
    Ok(ExitStatus::Success)
}
