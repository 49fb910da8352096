//! `audience-sync audiences`: list the Mailchimp account's audiences (id, name, subscribed
//! members, tags) so a user can write bindings. Also the Mailchimp connection every
//! Mailchimp-only command shares: from `--config` (its `mailchimp` section, `${VAR}` expanded)
//! or from `MAILCHIMP_API_KEY` / `MAILCHIMP_BASE_URL`.

use std::path::Path;

use anyhow::Context as _;
use futures::{StreamExt, TryStreamExt};
use secrecy::SecretString;
use serde::Serialize;

use crate::cli::{AudiencesArgs, OutputFormat};
use crate::exit::ExitStatus;
use crate::mailchimp::{Audience, Client};
use crate::output::Context;

/// An audience with its tag count.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Summary {
    /// The audience.
    #[serde(flatten)]
    pub audience: Audience,
    /// Its tags.
    pub tag_count: usize,
}

/// Expand `${VAR}` references from the environment.
fn expand(text: &str, what: &str) -> anyhow::Result<String> {
    crate::config::env::expand(text, &crate::config::env::process_env).map_err(|missing| {
        anyhow::anyhow!("{what} refers to `${{{}}}`, which is not set", missing.name)
    })
}

/// The Mailchimp client of a command: from a config file, or from the environment.
pub(super) fn client(config: Option<&Path>) -> anyhow::Result<Client> {
    let (key, base_url) = match config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config `{}`", path.display()))?;
            let value = crate::config::yaml::parse_value(&text)
                .with_context(|| format!("config `{}` is not valid YAML", path.display()))?;
            let section = value.get("mailchimp").cloned().with_context(|| {
                format!("config `{}` has no `mailchimp` section", path.display())
            })?;
            let mailchimp: crate::config::MailchimpConfig = serde_json::from_value(section)
                .with_context(|| {
                    format!("the `mailchimp` section of `{}` is invalid", path.display())
                })?;
            let key = expand(&mailchimp.api_key, "`mailchimp.api_key`")?;
            let base = mailchimp
                .base_url
                .as_deref()
                .map(|u| expand(u, "`mailchimp.base_url`"))
                .transpose()?;
            (key, base)
        }
        None => {
            let key = std::env::var("MAILCHIMP_API_KEY").unwrap_or_default();
            let base = std::env::var("MAILCHIMP_BASE_URL").ok();
            (key, base)
        }
    };
    Client::builder()
        .api_key(SecretString::from(key))
        .base_url(base_url)
        .build()
        .context("cannot connect to Mailchimp")
}

/// Every audience with its tag count (tag counts read concurrently, within the client's limit).
pub(super) async fn summaries(client: &Client) -> anyhow::Result<Vec<Summary>> {
    let audiences = client
        .lists()
        .await
        .context("cannot list the Mailchimp audiences")?;
    futures::stream::iter(audiences)
        .map(|audience| async move {
            let tag_count = client
                .tag_count(&audience.id)
                .await
                .with_context(|| format!("cannot count the tags of audience `{}`", audience.id))?;
            Ok::<_, anyhow::Error>(Summary {
                audience,
                tag_count,
            })
        })
        .buffered(crate::mailchimp::MAX_CONNECTIONS)
        .try_collect()
        .await
}

/// The text table.
fn table(rows: &[Summary]) -> String {
    let name_width = rows
        .iter()
        .map(|r| r.audience.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    let mut out = format!(
        "{:<10}  {:<name_width$}  {:>9}  {:>5}\n",
        "ID", "NAME", "MEMBERS", "TAGS"
    );
    for row in rows {
        out.push_str(&format!(
            "{:<10}  {:<name_width$}  {:>9}  {:>5}\n",
            row.audience.id, row.audience.name, row.audience.member_count, row.tag_count
        ));
    }
    out
}

pub(super) async fn run(args: AudiencesArgs, _ctx: &Context) -> anyhow::Result<ExitStatus> {
    let client = client(args.config.as_deref())?;
    let rows = summaries(&client).await?;
    match args.format {
        OutputFormat::Json => {
            println!("{}", serde_json::to_string_pretty(&rows)?);
        }
        OutputFormat::Text => {
            if rows.is_empty() {
                eprintln!("the Mailchimp account has no audiences");
            } else {
                print!("{}", table(&rows));
            }
        }
    }
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_aligns_columns() {
        let rows = vec![
            Summary {
                audience: Audience {
                    id: "a1b2c3d4e5".into(),
                    name: "Newsletter".into(),
                    member_count: 2125,
                    total_contacts: Some(2500),
                },
                tag_count: 5,
            },
            Summary {
                audience: Audience {
                    id: "0f0f0f0f0f".into(),
                    name: "Events".into(),
                    member_count: 7,
                    total_contacts: None,
                },
                tag_count: 0,
            },
        ];
        assert_eq!(
            table(&rows),
            "ID          NAME          MEMBERS   TAGS\n\
             a1b2c3d4e5  Newsletter       2125      5\n\
             0f0f0f0f0f  Events              7      0\n"
        );
    }

    #[test]
    fn references_expand_and_unset_ones_are_named() {
        let path = std::env::var("PATH").unwrap_or_default();
        assert_eq!(expand("${PATH}", "x").unwrap(), path);
        let err = expand("${AUDIENCE_SYNC_SURELY_UNSET_VAR}", "`mailchimp.api_key`").unwrap_err();
        assert!(err.to_string().contains("AUDIENCE_SYNC_SURELY_UNSET_VAR"));
    }
}
