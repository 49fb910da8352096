//! Publishers, solutions and solution components of the Dataverse emulator: the `publishers`,
//! `solutions` and `solutioncomponents` entity sets, the environment's default publisher and
//! Default Solution, which solution a metadata write lands in, and the refusal of a schema name
//! whose customization prefix belongs to no publisher.
//!
//! # How the real service behaves (sources)
//! - "SchemaName … You should include the customization prefix that matches the solution
//!   publisher"; `MSCRM.SolutionUniqueName: <solution>` on a metadata write puts the new
//!   component in that solution, else it lands in the Default Solution only (PD
//!   `webapi/create-update-entity-definitions-using-web-api.md`; docs/dataverse.md §2, §11).
//! - Publishers are the `publishers` entity set (`uniquename`, `friendlyname`,
//!   `customizationprefix` 2–8 letters, `customizationoptionvalueprefix` 10000–99999); solutions
//!   are `solutions` (`uniquename`, `friendlyname`, `version`, `ismanaged`, lookup
//!   `publisherid`); `solutioncomponents` rows carry `objectid` (the component's MetadataId),
//!   `componenttype` (1 Entity, 2 Attribute, 10 Relationship) and lookup `solutionid` (PD
//!   `reference/entities/publisher.md`, `solution.md`, `solutioncomponent.md`).
//! - Every environment has a default publisher (prefix `new`, option prefix 10000) and the
//!   Default Solution (`uniquename` `Default`) that holds every component.
//! - The published error-code reference names no code for "no publisher has this prefix" or
//!   "no such solution", so those answers carry an empty `code` (Dataverse's often is empty:
//!   PD `webapi/compose-http-requests-handle-errors.md`) and say what is wrong.

use uuid::Uuid;

use super::errors::DvError;
use super::meta::{self, AttrType, EntityMeta, OneToMany};
use super::routes::ApiRequest;
use super::store::Store;
use super::value::Val;

/// The Default Solution's unique name.
pub const DEFAULT_SOLUTION: &str = "Default";

/// `componenttype` of a table.
pub const ENTITY: i64 = 1;
/// `componenttype` of a column.
pub const ATTRIBUTE: i64 = 2;
/// `componenttype` of a relationship.
pub const RELATIONSHIP: i64 = 10;

/// The header naming the solution of a metadata write.
pub const SOLUTION_HEADER: &str = "MSCRM.SolutionUniqueName";

/// The three tables.
#[must_use]
pub fn entities() -> Vec<EntityMeta> {
    let mut publisher = EntityMeta::new("publisher", "Publisher", "publishers", 7101);
    publisher.add("uniquename", AttrType::String(256));
    publisher.add("friendlyname", AttrType::String(256));
    publisher.primary_name = Some("friendlyname".to_owned());
    publisher.add("customizationprefix", AttrType::String(8));
    publisher.add("customizationoptionvalueprefix", AttrType::Integer);
    publisher.add("description", AttrType::Memo(2000));
    publisher.ownership = "OrganizationOwned".to_owned();

    let mut solution = EntityMeta::new("solution", "Solution", "solutions", 7100);
    solution.add("uniquename", AttrType::String(65));
    solution.add("friendlyname", AttrType::String(256));
    solution.primary_name = Some("friendlyname".to_owned());
    solution.add("version", AttrType::String(256));
    solution.add("ismanaged", AttrType::Boolean);
    solution.add("description", AttrType::Memo(2000));
    solution.add(
        "publisherid",
        AttrType::Lookup(vec!["publisher".to_owned()]),
    );
    solution.ownership = "OrganizationOwned".to_owned();

    let mut component = EntityMeta::new(
        "solutioncomponent",
        "SolutionComponent",
        "solutioncomponents",
        7103,
    );
    component.add("objectid", AttrType::Uniqueidentifier);
    component.add("componenttype", AttrType::Picklist(vec![1, 2, 10]));
    component.add("solutionid", AttrType::Lookup(vec!["solution".to_owned()]));
    component.ownership = "None".to_owned();
    vec![publisher, solution, component]
}

/// The lookups of the three tables.
#[must_use]
pub fn one_to_many() -> Vec<OneToMany> {
    vec![
        meta::lookup_rel(
            "publisher_solution",
            "publisher",
            "solution",
            "publisherid",
            "publisherid",
        ),
        meta::lookup_rel(
            "solution_solutioncomponent",
            "solution",
            "solutioncomponent",
            "solutionid",
            "solutionid",
        ),
    ]
}

/// Seed the default publisher and the Default Solution.
pub fn seed_defaults(store: &mut Store) {
    let publisher = add_publisher(
        store,
        "DefaultPublisher",
        "Default Publisher",
        "new",
        10_000,
    );
    add_solution(store, DEFAULT_SOLUTION, "Default Solution", publisher);
}

/// Insert a publisher (idempotent by unique name); returns its id.
pub fn add_publisher(
    store: &mut Store,
    unique: &str,
    friendly: &str,
    prefix: &str,
    option_prefix: i64,
) -> Uuid {
    let id = meta::name_uuid("publisher", unique);
    let _ = store.insert_raw(
        "publisher",
        id,
        &[
            ("uniquename", Val::Str(unique.into())),
            ("friendlyname", Val::Str(friendly.into())),
            ("customizationprefix", Val::Str(prefix.into())),
            ("customizationoptionvalueprefix", Val::Int(option_prefix)),
        ],
    );
    id
}

/// Insert a solution of `publisher` (idempotent by unique name); returns its id.
pub fn add_solution(store: &mut Store, unique: &str, friendly: &str, publisher: Uuid) -> Uuid {
    let id = meta::name_uuid("solution", unique);
    let _ = store.insert_raw(
        "solution",
        id,
        &[
            ("uniquename", Val::Str(unique.into())),
            ("friendlyname", Val::Str(friendly.into())),
            ("version", Val::Str("1.0.0.0".into())),
            ("ismanaged", Val::Bool(false)),
            ("publisherid", Val::Guid(publisher)),
        ],
    );
    id
}

fn rows_where<'a>(
    store: &'a Store,
    table: &str,
    column: &str,
    value: &str,
) -> Vec<(Uuid, &'a super::store::Row)> {
    let Some(t) = store.table(table) else {
        return Vec::new();
    };
    let Some(pos) = t.meta.position(column) else {
        return Vec::new();
    };
    t.rows
        .iter()
        .filter(|(_, row)| matches!(row.get(pos), Val::Str(s) if s.eq_ignore_ascii_case(value)))
        .map(|(id, row)| (*id, row))
        .collect()
}

/// Refuse a schema name whose customization prefix (the part before the first `_`) belongs to
/// no publisher of the environment.
///
/// # Errors
/// 400 naming the prefix.
pub fn check_publisher_prefix(store: &Store, schema_name: &str) -> Result<(), DvError> {
    let prefix = schema_name.split_once('_').map_or("", |(p, _)| p);
    if rows_where(store, "publisher", "customizationprefix", prefix).is_empty() {
        return Err(DvError::new(
            400,
            "",
            format!(
                "The schema name {schema_name} is not valid: no publisher in this organization has the customization prefix '{prefix}'. Create a publisher with this prefix and a solution of it, and send MSCRM.SolutionUniqueName."
            ),
        ));
    }
    Ok(())
}

/// The solution a metadata write lands in: the one `MSCRM.SolutionUniqueName` names, else the
/// Default Solution.
///
/// # Errors
/// 404 when the named solution does not exist.
pub fn target_solution(store: &Store, req: &ApiRequest) -> Result<Option<Uuid>, DvError> {
    let name = req.header(SOLUTION_HEADER).unwrap_or(DEFAULT_SOLUTION);
    match rows_where(store, "solution", "uniquename", name).first() {
        Some((id, _)) => Ok(Some(*id)),
        None if name == DEFAULT_SOLUTION => Ok(None),
        None => Err(DvError::new(
            404,
            "",
            format!("The solution with unique name '{name}' does not exist."),
        )),
    }
}

/// Record a new component in `solution` (and in the Default Solution, which holds everything).
pub fn add_component(store: &mut Store, solution: Option<Uuid>, object: Uuid, kind: i64) {
    let default = rows_where(store, "solution", "uniquename", DEFAULT_SOLUTION)
        .first()
        .map(|(id, _)| *id);
    for holder in [solution, default].into_iter().flatten() {
        let id = meta::name_uuid("solutioncomponent", &format!("{holder}:{object}"));
        let _ = store.insert_raw(
            "solutioncomponent",
            id,
            &[
                ("objectid", Val::Guid(object)),
                ("componenttype", Val::Int(kind)),
                ("solutionid", Val::Guid(holder)),
            ],
        );
    }
}
