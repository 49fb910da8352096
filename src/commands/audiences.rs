//! `audience-sync audiences`: list the Mailchimp account's audiences (id, name, subscribed
//! members, tags) so a user can write bindings. The Mailchimp connection comes from `--config`
//! (its `mailchimp` section, `${VAR}` expanded) or from `MAILCHIMP_API_KEY` /
//! `MAILCHIMP_BASE_URL` ([`crate::clients::mailchimp_only`]).

use crate::cli::{AudiencesArgs, OutputFormat};
use crate::exit::ExitStatus;
use crate::output::Context;
use crate::sync::AudienceSummary;

/// The text table.
fn table(rows: &[AudienceSummary]) -> String {
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
    let client = crate::clients::mailchimp_only(args.config.as_deref())?;
    let rows = crate::sync::audiences(&client).await?;
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
    use crate::mailchimp::Audience;

    #[test]
    fn the_table_aligns_columns() {
        let rows = vec![
            AudienceSummary {
                audience: Audience {
                    id: "a1b2c3d4e5".into(),
                    name: "Newsletter".into(),
                    member_count: 2125,
                    total_contacts: Some(2500),
                },
                tag_count: 5,
            },
            AudienceSummary {
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
}
