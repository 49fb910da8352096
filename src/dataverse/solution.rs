//! The tool's publisher and solution, so that what `crm bootstrap` creates can be exported and
//! moved between environments: find (or create) a publisher whose customization prefix is the
//! prefix of the tool's schema names, find (or create) the tool's solution of that publisher,
//! and say which solutions hold the tool's tables (`crm check`).
//!
//! Sources: "SchemaName … You should include the customization prefix that matches the solution
//! publisher", and `MSCRM.SolutionUniqueName: <solution>` on a metadata write puts the new
//! component in that solution (PD `webapi/create-update-entity-definitions-using-web-api.md`);
//! publishers are `publishers` (`uniquename`, `friendlyname`, `customizationprefix`,
//! `customizationoptionvalueprefix` 10000–99999), solutions `solutions` (`uniquename`,
//! `friendlyname`, `version`, lookup `publisherid`), membership `solutioncomponents`
//! (`objectid`, `componenttype`, lookup `solutionid`) (docs/dataverse.md §11).
//!
//! Invariants: found before created, by unique name or prefix, so a second bootstrap creates
//! nothing; created records get name-derived ids, so a retried create cannot make two.

use serde_json::{Value, json};
use uuid::Uuid;

use super::client::Client;
use super::error::Error;
use super::query::{Filter, Query};
use super::records::{Row, guid, text};
use super::schema::Schema;

/// The header that names the solution of a metadata write.
pub const SOLUTION_HEADER: &str = "MSCRM.SolutionUniqueName";

/// The tool's solution unique name.
pub const SOLUTION_UNIQUE_NAME: &str = "AudienceSync";

/// The option-value prefix of the tool's publisher (any value in 10000–99999 works; this one is
/// fixed so that choices the tool might add get stable values across environments).
pub const OPTION_VALUE_PREFIX: i64 = 62_411;

/// The publisher and solution the tool's components belong in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Customization prefix (the part of the schema names before `_`).
    pub prefix: String,
    /// Publisher unique name.
    pub publisher: String,
    /// Solution unique name.
    pub solution: String,
}

impl Target {
    /// The target for a schema: the prefix of its Audience table.
    #[must_use]
    pub fn for_schema(schema: &Schema) -> Self {
        let table = &schema.audience().logical_name;
        let prefix = table.split_once('_').map_or(table.as_str(), |(p, _)| p);
        Self {
            prefix: prefix.to_owned(),
            publisher: prefix.to_owned(),
            solution: SOLUTION_UNIQUE_NAME.to_owned(),
        }
    }
}

/// What bootstrap found or made of the publisher and solution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prepared {
    /// The publisher was missing (and, unless a dry run, is now created).
    pub publisher_missing: bool,
    /// The solution was missing (and, unless a dry run, is now created).
    pub solution_missing: bool,
    /// The solution's unique name (an existing solution of the publisher when the tool's own
    /// name was not found but is reused, else the tool's).
    pub solution: String,
}

/// A name-derived id (UUID v5 in the URL namespace of `https://audience-sync.dev/<kind>/<name>`).
fn name_id(kind: &str, name: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("https://audience-sync.dev/{kind}/{name}").as_bytes(),
    )
}

fn first(page: &Value) -> Option<&Row> {
    page["value"].as_array()?.first()?.as_object()
}

impl Client {
    /// The id of the first publisher with this customization prefix.
    async fn find_publisher(&self, prefix: &str) -> Result<Option<Uuid>, Error> {
        let query = Query::new("publishers")
            .select(["publisherid"])
            .filter(Filter::eq("customizationprefix", prefix))
            .top(1);
        let page: Value = self.get_json(&query.to_relative_url()?).await?;
        Ok(first(&page).and_then(|row| guid(row, "publisherid")))
    }

    /// Whether a solution of this unique name exists.
    async fn solution_exists(&self, unique: &str) -> Result<bool, Error> {
        let query = Query::new("solutions")
            .select(["solutionid"])
            .filter(Filter::eq("uniquename", unique))
            .top(1);
        let page: Value = self.get_json(&query.to_relative_url()?).await?;
        Ok(first(&page).is_some())
    }

    /// Find or (unless `dry_run`) create the publisher and solution of `target`.
    ///
    /// # Errors
    /// Reading or creating was refused.
    pub async fn prepare_solution(
        &self,
        target: &Target,
        dry_run: bool,
    ) -> Result<Prepared, Error> {
        let mut prepared = Prepared {
            solution: target.solution.clone(),
            ..Prepared::default()
        };
        let publisher = match self.find_publisher(&target.prefix).await? {
            Some(id) => id,
            None => {
                prepared.publisher_missing = true;
                let id = name_id("publisher", &target.publisher);
                if !dry_run {
                    let body = json!({
                        "publisherid": id,
                        "uniquename": target.publisher,
                        "friendlyname": "audience-sync",
                        "customizationprefix": target.prefix,
                        "customizationoptionvalueprefix": OPTION_VALUE_PREFIX,
                        "description": "Publisher of the audience-sync tables (Mailchimp audiences ↔ marketing lists).",
                    });
                    self.create("publishers", &body).await?;
                }
                id
            }
        };
        if !self.solution_exists(&target.solution).await? {
            prepared.solution_missing = true;
            if !dry_run {
                let body = json!({
                    "solutionid": name_id("solution", &target.solution),
                    "uniquename": target.solution,
                    "friendlyname": "audience-sync",
                    "version": "1.0.0.0",
                    "description": "The tables, columns and relationships audience-sync uses.",
                    "publisherid@odata.bind": format!("/publishers({publisher})"),
                });
                self.create("solutions", &body).await?;
            }
        }
        Ok(prepared)
    }

    /// The unique names of the solutions holding a table (by logical name), `Default` included.
    ///
    /// # Errors
    /// Any failure.
    pub async fn solutions_holding(&self, logical_name: &str) -> Result<Vec<String>, Error> {
        let def: Row = self
            .get_json(&format!(
                "EntityDefinitions(LogicalName='{logical_name}')?$select=MetadataId"
            ))
            .await?;
        let Some(id) = guid(&def, "MetadataId") else {
            return Ok(Vec::new());
        };
        let query = Query::new("solutioncomponents")
            .select(["_solutionid_value"])
            .filter(Filter::eq("objectid", id));
        let page: Value = self.get_json(&query.to_relative_url()?).await?;
        let mut names = Vec::new();
        for row in page["value"].as_array().into_iter().flatten() {
            let Some(solution) = row.as_object().and_then(|r| guid(r, "_solutionid_value")) else {
                continue;
            };
            let row: Row = self
                .get_json(&format!("solutions({solution})?$select=uniquename"))
                .await?;
            if let Some(name) = text(&row, "uniquename") {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Names;

    #[test]
    fn the_target_follows_the_configured_prefix() {
        let target = Target::for_schema(&Schema::new(&Names::default()));
        assert_eq!(target.prefix, "mcsync");
        assert_eq!(target.solution, SOLUTION_UNIQUE_NAME);
        let names = Names {
            audience_table: "contoso_audience".to_owned(),
            ..Names::default()
        };
        assert_eq!(Target::for_schema(&Schema::new(&names)).prefix, "contoso");
    }
}
