//! The metadata Web API for `crm bootstrap` and `crm check`: observe which of the tool's tables,
//! columns and relationships exist, compute what is missing (pure), create it, and probe the
//! application user's access.
//!
//! Invariants: bootstrap only ever creates, never alters or deletes; [`plan`] is a pure function
//! of the [`Schema`] and the [`Observed`] metadata, so running bootstrap again after success
//! plans nothing. Bootstrap first finds or creates the tool's publisher and solution
//! ([`super::solution`]) and sends `MSCRM.SolutionUniqueName` on every metadata write, so the
//! components land in a solution that can be exported.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use reqwest::Method;

use super::client::{Client, Req};
use super::error::Error;
use super::query::Query;
use super::records::Row;
use super::schema::{Column, ColumnKind, Lookup, ManyToMany, Schema, Table, sync_run};
use super::solution::{Prepared, Target};
use crate::http::Idempotency;

/// Tables outside the tool that it reads or extends.
pub const SYSTEM_TABLES: [&str; 3] = ["contact", "lead", "list"];

/// A table as the metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TableInfo {
    /// Logical name.
    #[serde(rename = "LogicalName")]
    pub logical_name: String,
    /// Entity set name.
    #[serde(rename = "EntitySetName", default)]
    pub entity_set: Option<String>,
    /// Primary key column.
    #[serde(rename = "PrimaryIdAttribute", default)]
    pub primary_id: Option<String>,
}

/// What the environment has of the tool's schema.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Tables that exist, by logical name.
    pub tables: BTreeMap<String, TableInfo>,
    /// Column logical names per existing table.
    pub columns: BTreeMap<String, BTreeSet<String>>,
    /// Relationship schema names that exist.
    pub relationships: BTreeSet<String>,
}

/// One thing bootstrap creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A table with its primary name column.
    CreateTable(Table),
    /// A column on an existing (or just created) table.
    CreateColumn {
        /// Table logical name.
        table: String,
        /// The column.
        column: Column,
    },
    /// A lookup column with its one-to-many relationship.
    CreateLookup(Lookup),
    /// A many-to-many relationship.
    CreateManyToMany(ManyToMany),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CreateTable(t) => write!(
                f,
                "table `{}` (entity set `{}`, primary name `{}`)",
                t.logical_name, t.entity_set, t.primary_name.logical_name
            ),
            Self::CreateColumn { table, column } => {
                write!(
                    f,
                    "column `{table}.{}` ({})",
                    column.logical_name,
                    kind_text(column.kind)
                )
            }
            Self::CreateLookup(l) => write!(
                f,
                "lookup `{}.{}` → `{}` (relationship `{}`)",
                l.referencing_table, l.column, l.referenced_table, l.relationship
            ),
            Self::CreateManyToMany(m) => write!(
                f,
                "many-to-many relationship `{}` (`{}` ↔ `{}`)",
                m.schema_name, m.entity1, m.entity2
            ),
        }
    }
}

fn kind_text(kind: ColumnKind) -> String {
    match kind {
        ColumnKind::String { max_len } => format!("text, max {max_len}"),
        ColumnKind::Memo { max_len } => format!("multiline text, max {max_len}"),
        ColumnKind::Integer => "whole number".to_owned(),
        ColumnKind::DateTime => "date and time".to_owned(),
    }
}

/// What bootstrap would do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Items to create, in order.
    pub steps: Vec<Step>,
    /// What bootstrap cannot fix (e.g. the marketing list table is not installed).
    pub problems: Vec<String>,
}

/// Compute what is missing (pure).
#[must_use]
pub fn plan(schema: &Schema, observed: &Observed) -> Plan {
    let mut out = Plan::default();
    let has_column = |table: &str, column: &str| {
        observed
            .columns
            .get(table)
            .is_some_and(|c| c.contains(column))
    };
    for table in &schema.tables {
        let exists = observed.tables.contains_key(&table.logical_name);
        if !exists {
            out.steps.push(Step::CreateTable(table.clone()));
        } else if let Some(info) = observed.tables.get(&table.logical_name) {
            if let Some(set) = &info.entity_set {
                if set != &table.entity_set {
                    out.problems.push(format!(
                        "table `{}` has entity set `{set}`, the tool expects `{}`",
                        table.logical_name, table.entity_set
                    ));
                }
            }
        }
        for column in &table.columns {
            if !exists || !has_column(&table.logical_name, &column.logical_name) {
                out.steps.push(Step::CreateColumn {
                    table: table.logical_name.clone(),
                    column: column.clone(),
                });
            }
        }
    }
    for system in SYSTEM_TABLES {
        if !observed.tables.contains_key(system) {
            out.problems.push(format!(
                "table `{system}` does not exist{}",
                if system == "list" {
                    " (marketing lists come with Dynamics 365 Sales or Marketing)"
                } else {
                    ""
                }
            ));
        }
    }
    for extra in &schema.extra_columns {
        if observed.tables.contains_key(&extra.table)
            && !has_column(&extra.table, &extra.column.logical_name)
        {
            out.steps.push(Step::CreateColumn {
                table: extra.table.clone(),
                column: extra.column.clone(),
            });
        }
    }
    let own = |name: &str| schema.table(name).is_some();
    for lookup in &schema.lookups {
        let table_there = observed.tables.contains_key(&lookup.referencing_table)
            || own(&lookup.referencing_table);
        let fresh = !observed.tables.contains_key(&lookup.referencing_table);
        if table_there && (fresh || !has_column(&lookup.referencing_table, &lookup.column)) {
            out.steps.push(Step::CreateLookup(lookup.clone()));
        }
    }
    for m in &schema.many_to_many {
        let ends_there = observed.tables.contains_key(&m.entity2);
        if ends_there && !observed.relationships.contains(&m.schema_name) {
            out.steps.push(Step::CreateManyToMany(m.clone()));
        }
    }
    out
}

fn label(text: &str) -> Value {
    json!({
        "@odata.type": "Microsoft.Dynamics.CRM.Label",
        "LocalizedLabels": [{
            "@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel",
            "Label": text,
            "LanguageCode": 1033
        }]
    })
}

/// The `AttributeMetadata` body of a column.
#[must_use]
pub fn attribute_body(column: &Column, primary_name: bool) -> Value {
    let mut body = match column.kind {
        ColumnKind::String { max_len } => json!({
            "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
            "AttributeType": "String",
            "AttributeTypeName": { "Value": "StringType" },
            "MaxLength": max_len,
            "FormatName": { "Value": "Text" },
        }),
        ColumnKind::Memo { max_len } => json!({
            "@odata.type": "Microsoft.Dynamics.CRM.MemoAttributeMetadata",
            "AttributeType": "Memo",
            "AttributeTypeName": { "Value": "MemoType" },
            "Format": "TextArea",
            "MaxLength": max_len,
        }),
        ColumnKind::Integer => json!({
            "@odata.type": "Microsoft.Dynamics.CRM.IntegerAttributeMetadata",
            "AttributeType": "Integer",
            "AttributeTypeName": { "Value": "IntegerType" },
            "Format": "None",
            "MinValue": -2_147_483_648_i64,
            "MaxValue": 2_147_483_647_i64,
        }),
        ColumnKind::DateTime => json!({
            "@odata.type": "Microsoft.Dynamics.CRM.DateTimeAttributeMetadata",
            "AttributeType": "DateTime",
            "AttributeTypeName": { "Value": "DateTimeType" },
            "Format": "DateAndTime",
            "DateTimeBehavior": { "Value": "UserLocal" },
        }),
    };
    if let Some(map) = body.as_object_mut() {
        map.insert("SchemaName".into(), json!(column.logical_name));
        map.insert("DisplayName".into(), label(column.display));
        map.insert("Description".into(), label(column.description));
        map.insert("RequiredLevel".into(), json!({ "Value": "None" }));
        if primary_name {
            map.insert("IsPrimaryName".into(), json!(true));
        }
    }
    body
}

/// The `EntityMetadata` body of a table (with its primary name column).
#[must_use]
pub fn entity_body(table: &Table) -> Value {
    json!({
        "@odata.type": "Microsoft.Dynamics.CRM.EntityMetadata",
        "SchemaName": table.logical_name,
        "EntitySetName": table.entity_set,
        "DisplayName": label(table.display),
        "DisplayCollectionName": label(table.display_plural),
        "Description": label(table.description),
        "OwnershipType": "OrganizationOwned",
        "IsActivity": false,
        "HasActivities": false,
        "HasNotes": false,
        "Attributes": [attribute_body(&table.primary_name, true)],
    })
}

/// The `OneToManyRelationshipMetadata` body of a lookup.
#[must_use]
pub fn lookup_body(lookup: &Lookup) -> Value {
    json!({
        "@odata.type": "Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata",
        "SchemaName": lookup.relationship,
        "ReferencedEntity": lookup.referenced_table,
        "ReferencedAttribute": format!("{}id", lookup.referenced_table),
        "ReferencingEntity": lookup.referencing_table,
        "ReferencingEntityNavigationPropertyName": lookup.column,
        "ReferencedEntityNavigationPropertyName": lookup.relationship,
        "CascadeConfiguration": {
            "Assign": "NoCascade", "Delete": "RemoveLink", "Merge": "NoCascade",
            "Reparent": "NoCascade", "Share": "NoCascade", "Unshare": "NoCascade"
        },
        "Lookup": {
            "@odata.type": "Microsoft.Dynamics.CRM.LookupAttributeMetadata",
            "AttributeType": "Lookup",
            "AttributeTypeName": { "Value": "LookupType" },
            "SchemaName": lookup.column,
            "DisplayName": label(lookup.display),
            "Description": label("The Mailchimp audience this record belongs to (set by audience-sync)."),
            "RequiredLevel": { "Value": "None" }
        }
    })
}

/// The `ManyToManyRelationshipMetadata` body of a tag relationship.
#[must_use]
pub fn many_to_many_body(m: &ManyToMany) -> Value {
    let menu = |text: &str| json!({ "Behavior": "UseLabel", "Group": "Details", "Label": label(text), "Order": 10000 });
    let other = if m.entity2 == "lead" {
        "Leads"
    } else {
        "Contacts"
    };
    json!({
        "@odata.type": "Microsoft.Dynamics.CRM.ManyToManyRelationshipMetadata",
        "SchemaName": m.schema_name,
        "IntersectEntityName": m.schema_name,
        "Entity1LogicalName": m.entity1,
        "Entity2LogicalName": m.entity2,
        "Entity1NavigationPropertyName": m.schema_name,
        "Entity2NavigationPropertyName": m.schema_name,
        "Entity1AssociatedMenuConfiguration": menu(other),
        "Entity2AssociatedMenuConfiguration": menu("Mailchimp Tags"),
    })
}

#[derive(Deserialize)]
struct AttributeName {
    #[serde(rename = "LogicalName")]
    logical_name: String,
}

#[derive(Deserialize)]
struct Collection<T> {
    value: Vec<T>,
}

impl Client {
    /// A table's metadata; `None` when it does not exist.
    ///
    /// # Errors
    /// Any failure but "not found".
    pub async fn table_info(&self, logical_name: &str) -> Result<Option<TableInfo>, Error> {
        let path = format!(
            "EntityDefinitions(LogicalName='{logical_name}')?$select=LogicalName,EntitySetName,PrimaryIdAttribute"
        );
        match self.get_json::<TableInfo>(&path).await {
            Ok(info) => Ok(Some(info)),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The logical names of a table's columns.
    ///
    /// # Errors
    /// Any failure.
    pub async fn column_names(&self, logical_name: &str) -> Result<BTreeSet<String>, Error> {
        let path = format!(
            "EntityDefinitions(LogicalName='{logical_name}')/Attributes?$select=LogicalName"
        );
        let page: Collection<AttributeName> = self.get_json(&path).await?;
        Ok(page.value.into_iter().map(|a| a.logical_name).collect())
    }

    /// Whether a relationship exists.
    ///
    /// # Errors
    /// Any failure but "not found".
    pub async fn relationship_exists(&self, schema_name: &str) -> Result<bool, Error> {
        let path =
            format!("RelationshipDefinitions(SchemaName='{schema_name}')?$select=SchemaName");
        match self.get_json::<Value>(&path).await {
            Ok(_) => Ok(true),
            Err(err) if err.is_not_found() => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Read what the environment has of `schema`.
    ///
    /// # Errors
    /// Any failure.
    pub async fn observe_schema(&self, schema: &Schema) -> Result<Observed, Error> {
        let mut observed = Observed::default();
        let names: Vec<&str> = schema
            .tables
            .iter()
            .map(|t| t.logical_name.as_str())
            .chain(SYSTEM_TABLES)
            .collect();
        for name in names {
            if let Some(info) = self.table_info(name).await? {
                observed
                    .columns
                    .insert(name.to_owned(), self.column_names(name).await?);
                observed.tables.insert(name.to_owned(), info);
            }
        }
        for m in &schema.many_to_many {
            if self.relationship_exists(&m.schema_name).await? {
                observed.relationships.insert(m.schema_name.clone());
            }
        }
        Ok(observed)
    }

    /// Create one missing item in `solution` (`MSCRM.SolutionUniqueName`; the Default Solution
    /// only when `None`).
    ///
    /// # Errors
    /// The service refused.
    pub async fn create_metadata(&self, step: &Step, solution: Option<&str>) -> Result<(), Error> {
        let (path, body) = match step {
            Step::CreateTable(t) => ("EntityDefinitions".to_owned(), entity_body(t)),
            Step::CreateColumn { table, column } => (
                format!("EntityDefinitions(LogicalName='{table}')/Attributes"),
                attribute_body(column, false),
            ),
            Step::CreateLookup(l) => ("RelationshipDefinitions".to_owned(), lookup_body(l)),
            Step::CreateManyToMany(m) => {
                ("RelationshipDefinitions".to_owned(), many_to_many_body(m))
            }
        };
        // Creating metadata twice fails rather than duplicates, so a retry is safe.
        let mut req = Req::new(Method::POST, self.url(&path), Idempotency::Idempotent).json(&body);
        if let Some(solution) = solution {
            req = req.header(super::solution::SOLUTION_HEADER, solution);
        }
        self.send_ok(&req).await.map(|_| ())
    }

    /// The calling user's id (`WhoAmI`).
    ///
    /// # Errors
    /// Any failure.
    pub async fn who_am_i(&self) -> Result<Uuid, Error> {
        let answer: Row = self.get_json("WhoAmI").await?;
        super::records::guid(&answer, "UserId").ok_or_else(|| Error::Response {
            method: "GET".to_owned(),
            path: "WhoAmI".to_owned(),
            message: "no `UserId` in the answer".to_owned(),
        })
    }
}

/// One finding of `crm check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What was checked.
    pub what: String,
    /// `None` when it is fine, else the reason.
    pub problem: Option<String>,
    /// Something to know that is not a failure (e.g. why a check could not be made).
    pub note: Option<String>,
}

impl Finding {
    fn new(what: impl Into<String>, problem: Option<String>) -> Self {
        Self {
            what: what.into(),
            problem,
            note: None,
        }
    }
}

/// The rights the tool needs on records of each table it writes: read them, change them, create
/// them (contacts and leads), and link them (tags, list membership).
pub const REQUIRED_RIGHTS: [(&str, &str, &[&str]); 3] = [
    (
        "contacts",
        "contactid",
        &[
            "ReadAccess",
            "WriteAccess",
            "CreateAccess",
            "AppendAccess",
            "AppendToAccess",
        ],
    ),
    (
        "leads",
        "leadid",
        &[
            "ReadAccess",
            "WriteAccess",
            "CreateAccess",
            "AppendAccess",
            "AppendToAccess",
        ],
    ),
    (
        "lists",
        "listid",
        &["ReadAccess", "WriteAccess", "AppendToAccess"],
    ),
];

/// The rights of `required` missing from a `RetrievePrincipalAccess` answer such as
/// `"ReadAccess, WriteAccess, AppendAccess"` (pure).
#[must_use]
pub fn missing_rights<'a>(access_rights: &str, required: &[&'a str]) -> Vec<&'a str> {
    let held: BTreeSet<&str> = access_rights
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect();
    required
        .iter()
        .copied()
        .filter(|r| !held.contains(r))
        .collect()
}

/// Probe what the application user can do: read lists, contacts, leads and list members; hold
/// the rights the tool needs on a contact, a lead and a list (`RetrievePrincipalAccess` on the
/// first record of each); and create and delete a record in the tool's Sync Run table (when it
/// exists).
///
/// # Errors
/// Only when the service cannot be reached at all; refusals are findings.
pub async fn probe_access(
    client: &Client,
    schema: &Schema,
    observed: &Observed,
    user: Uuid,
) -> Result<Vec<Finding>, Error> {
    let mut findings = Vec::new();
    let mut samples: BTreeMap<&str, Uuid> = BTreeMap::new();
    for (what, set, id_column) in [
        ("read marketing lists", "lists", "listid"),
        ("read contacts", "contacts", "contactid"),
        ("read leads", "leads", "leadid"),
        ("read list members", "listmembers", "listmemberid"),
    ] {
        let query = Query::new(set).select([id_column]).top(1);
        let problem = match client.get_json::<Value>(&query.to_relative_url()?).await {
            Ok(page) => {
                if let Some(id) = page["value"][0][id_column]
                    .as_str()
                    .and_then(|s| Uuid::parse_str(s).ok())
                {
                    samples.insert(set, id);
                }
                None
            }
            Err(err @ Error::Transport { .. }) => return Err(err),
            Err(err) => Some(err.to_string()),
        };
        findings.push(Finding::new(what, problem));
    }
    for (set, _, required) in REQUIRED_RIGHTS {
        let what = format!("hold {} on {set}", required.join(", "));
        let Some(sample) = samples.get(set) else {
            let mut finding = Finding::new(what, None);
            finding.note = Some(format!(
                "not checked: no record in `{set}` to check against"
            ));
            findings.push(finding);
            continue;
        };
        let target = query_encode(&format!("{{'@odata.id':'{set}({sample})'}}"));
        let path = format!(
            "systemusers({user})/Microsoft.Dynamics.CRM.RetrievePrincipalAccess(Target=@p1)?@p1={target}"
        );
        let mut finding = Finding::new(what, None);
        match client.get_json::<Value>(&path).await {
            Ok(answer) => {
                let rights = answer["AccessRights"].as_str().unwrap_or_default();
                let missing = missing_rights(rights, required);
                if !missing.is_empty() {
                    finding.problem = Some(format!(
                        "the application user lacks {} (it has `{rights}`)",
                        missing.join(", ")
                    ));
                }
            }
            Err(err @ Error::Transport { .. }) => return Err(err),
            Err(err @ Error::Api { status: 403, .. }) => finding.problem = Some(err.to_string()),
            Err(err) => finding.note = Some(format!("not checked: {err}")),
        }
        findings.push(finding);
    }
    let table = schema.sync_run();
    let what = format!("create and delete a `{}` record", table.logical_name);
    if observed.tables.contains_key(&table.logical_name) {
        let id = Uuid::new_v4();
        let body = json!({
            table.primary_id.clone(): id,
            sync_run::NAME: "audience-sync crm check probe",
        });
        let problem = match client.create(&table.entity_set, &body).await {
            Ok(_) => match client.delete(&table.entity_set, id).await {
                Ok(_) => None,
                Err(err) => Some(format!("created, but cannot delete: {err}")),
            },
            Err(err @ Error::Transport { .. }) => return Err(err),
            Err(err) => Some(err.to_string()),
        };
        findings.push(Finding::new(what, problem));
    } else {
        findings.push(Finding::new(
            what,
            Some("the table does not exist yet (run `audience-sync crm bootstrap`)".to_owned()),
        ));
    }
    Ok(findings)
}

fn query_encode(value: &str) -> String {
    super::query::encode(value)
}

/// What `crm bootstrap` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapReport {
    /// The publisher and solution: what was missing (and, unless a dry run, is now created).
    pub solution: Prepared,
    /// What was missing (and, unless a dry run, is now created), and what cannot be fixed.
    pub plan: Plan,
    /// Whether it only planned.
    pub dry_run: bool,
}

/// Find or create the publisher and solution, then observe, plan, and (unless `dry_run`) create
/// every missing item in order in that solution, calling `on_created` after each one.
///
/// # Errors
/// Metadata could not be read, or a creation was refused (the items before it stay created).
pub async fn bootstrap(
    client: &Client,
    schema: &Schema,
    dry_run: bool,
    on_created: &mut (dyn FnMut(&Step) + Send),
) -> Result<BootstrapReport, Error> {
    let solution = client
        .prepare_solution(&Target::for_schema(schema), dry_run)
        .await?;
    let observed = client.observe_schema(schema).await?;
    let plan = plan(schema, &observed);
    if !dry_run {
        for step in &plan.steps {
            client
                .create_metadata(step, Some(&solution.solution))
                .await?;
            on_created(step);
        }
    }
    Ok(BootstrapReport {
        solution,
        plan,
        dry_run,
    })
}

/// What `crm check` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The application user.
    pub user: Uuid,
    /// What is missing, and what bootstrap cannot fix.
    pub plan: Plan,
    /// What the user can and cannot do.
    pub findings: Vec<Finding>,
    /// The solutions holding each existing tool table (by logical name), `Default` included.
    pub solutions: BTreeMap<String, Vec<String>>,
}

impl CheckReport {
    /// Nothing missing, nothing refused.
    #[must_use]
    pub fn healthy(&self) -> bool {
        self.plan.steps.is_empty()
            && self.plan.problems.is_empty()
            && self.findings.iter().all(|f| f.problem.is_none())
    }
}

/// Sign in, ask `WhoAmI`, observe the schema and probe access.
///
/// # Errors
/// Sign-in failed or Dataverse could not be reached; refusals of probes are findings.
pub async fn check(client: &Client, schema: &Schema) -> Result<CheckReport, Error> {
    client.authenticate().await?;
    let user = client.who_am_i().await?;
    let observed = client.observe_schema(schema).await?;
    let plan = plan(schema, &observed);
    let findings = probe_access(client, schema, &observed, user).await?;
    let mut solutions = BTreeMap::new();
    for table in &schema.tables {
        if observed.tables.contains_key(&table.logical_name) {
            let holding = client.solutions_holding(&table.logical_name).await?;
            solutions.insert(table.logical_name.clone(), holding);
        }
    }
    Ok(CheckReport {
        user,
        plan,
        findings,
        solutions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn everything(schema: &Schema) -> Observed {
        let mut observed = Observed::default();
        for t in &schema.tables {
            observed.tables.insert(
                t.logical_name.clone(),
                TableInfo {
                    logical_name: t.logical_name.clone(),
                    entity_set: Some(t.entity_set.clone()),
                    primary_id: Some(t.primary_id.clone()),
                },
            );
            let mut cols: BTreeSet<String> =
                t.columns.iter().map(|c| c.logical_name.clone()).collect();
            cols.insert(t.primary_name.logical_name.clone());
            observed.columns.insert(t.logical_name.clone(), cols);
        }
        for system in SYSTEM_TABLES {
            observed.tables.insert(
                system.to_owned(),
                TableInfo {
                    logical_name: system.to_owned(),
                    entity_set: None,
                    primary_id: None,
                },
            );
            observed.columns.insert(system.to_owned(), BTreeSet::new());
        }
        for e in &schema.extra_columns {
            observed
                .columns
                .get_mut(&e.table)
                .unwrap()
                .insert(e.column.logical_name.clone());
        }
        for l in &schema.lookups {
            observed
                .columns
                .get_mut(&l.referencing_table)
                .unwrap()
                .insert(l.column.clone());
        }
        for m in &schema.many_to_many {
            observed.relationships.insert(m.schema_name.clone());
        }
        observed
    }

    #[test]
    fn a_complete_environment_needs_nothing() {
        let schema = Schema::default();
        let p = plan(&schema, &everything(&schema));
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn an_empty_environment_needs_everything_in_order() {
        let schema = Schema::default();
        let mut observed = everything(&schema);
        for t in &schema.tables {
            observed.tables.remove(&t.logical_name);
            observed.columns.remove(&t.logical_name);
        }
        for s in SYSTEM_TABLES {
            observed.columns.insert(s.to_owned(), BTreeSet::new());
        }
        observed.relationships.clear();
        let p = plan(&schema, &observed);
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert!(matches!(&p.steps[0], Step::CreateTable(t) if t.logical_name == "mcsync_audience"));
        let tables = p
            .steps
            .iter()
            .filter(|s| matches!(s, Step::CreateTable(_)))
            .count();
        let lookups = p
            .steps
            .iter()
            .filter(|s| matches!(s, Step::CreateLookup(_)))
            .count();
        let nn = p
            .steps
            .iter()
            .filter(|s| matches!(s, Step::CreateManyToMany(_)))
            .count();
        assert_eq!((tables, lookups, nn), (3, 3, 2));
        let columns = p
            .steps
            .iter()
            .filter(|s| matches!(s, Step::CreateColumn { .. }))
            .count();
        let own: usize = schema.tables.iter().map(|t| t.columns.len()).sum();
        assert_eq!(columns, own + schema.extra_columns.len());
        let last_table = p
            .steps
            .iter()
            .rposition(|s| matches!(s, Step::CreateTable(_)))
            .unwrap();
        let first_lookup = p
            .steps
            .iter()
            .position(|s| matches!(s, Step::CreateLookup(_)))
            .unwrap();
        assert!(last_table < first_lookup);
    }

    #[test]
    fn a_missing_list_table_is_a_problem_not_a_step() {
        let schema = Schema::default();
        let mut observed = everything(&schema);
        observed.tables.remove("list");
        observed.columns.remove("list");
        let p = plan(&schema, &observed);
        assert!(p.steps.is_empty(), "{:?}", p.steps);
        assert!(p.problems[0].contains("`list`"), "{:?}", p.problems);
    }

    #[test]
    fn missing_rights_are_named() {
        let answer =
            "ReadAccess, WriteAccess, AppendAccess, AppendToAccess, CreateAccess, DeleteAccess";
        assert!(missing_rights(answer, REQUIRED_RIGHTS[0].2).is_empty());
        assert_eq!(
            missing_rights("ReadAccess", REQUIRED_RIGHTS[2].2),
            vec!["WriteAccess", "AppendToAccess"]
        );
        assert_eq!(missing_rights("None", &["ReadAccess"]), vec!["ReadAccess"]);
    }

    #[test]
    fn bodies_carry_the_metadata_types() {
        let schema = Schema::default();
        let entity = entity_body(schema.audience());
        assert_eq!(entity["Attributes"][0]["IsPrimaryName"], true);
        assert_eq!(entity["EntitySetName"], "mcsync_audiences");
        let lookup = lookup_body(&schema.lookups[2]);
        assert_eq!(lookup["ReferencingEntity"], "list");
        assert_eq!(lookup["Lookup"]["SchemaName"], "mcsync_audienceid");
        let nn = many_to_many_body(&schema.many_to_many[0]);
        assert_eq!(nn["Entity2LogicalName"], "contact");
        assert_eq!(
            Step::CreateManyToMany(schema.many_to_many[0].clone()).to_string(),
            "many-to-many relationship `mcsync_tag_contact` (`mcsync_tag` ↔ `contact`)"
        );
    }
}
