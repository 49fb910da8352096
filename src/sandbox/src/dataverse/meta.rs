//! Table metadata of the emulated environment: tables (`EntityDefinitions`), their columns
//! (`Attributes`), alternate keys and relationships (`RelationshipDefinitions`), with the
//! standard tables the tool touches (`contact`, `lead`, `account`, `list`, `listmember`,
//! `sdkmessage`, `sdkmessagefilter`, `systemuser`; the columns of contact and lead people map
//! onto come from [`super::columns`]); the tool's own schema comes from [`super::tool_schema`].
//!
//! Invariants: attribute positions in [`EntityMeta::attributes`] never change once assigned
//! (records store values by position); logical names are lower case; every table has exactly one
//! `Uniqueidentifier` primary id column plus `createdon`, `modifiedon` and `versionnumber`.

use std::collections::HashMap;

use uuid::Uuid;

/// The type of a column, as the metadata names it (`AttributeType`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AttrType {
    /// The primary key or another GUID column.
    Uniqueidentifier,
    /// Single line of text, with its maximum length.
    String(u32),
    /// Multiple lines of text, with its maximum length.
    Memo(u32),
    /// Whole number.
    Integer,
    /// Big integer (`versionnumber`).
    BigInt,
    /// Yes/no.
    Boolean,
    /// Choice, with its allowed values.
    Picklist(Vec<i64>),
    /// `statecode`, with its allowed values.
    State(Vec<i64>),
    /// `statuscode`, with its allowed values.
    Status(Vec<i64>),
    /// Date and time (ISO 8601 text, UTC): `DateTimeBehavior` `UserLocal` or
    /// `TimeZoneIndependent`, `Edm.DateTimeOffset` (the `Format` may still be `DateOnly`).
    DateTime,
    /// Date only (`DateTimeBehavior` `DateOnly`): `Edm.Date`, written and read as `YYYY-MM-DD`.
    Date,
    /// Decimal number.
    Decimal,
    /// A reference to a row of one of these tables.
    Lookup(Vec<String>),
}

impl AttrType {
    /// The `AttributeType` name.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            AttrType::Uniqueidentifier => "Uniqueidentifier",
            AttrType::String(_) => "String",
            AttrType::Memo(_) => "Memo",
            AttrType::Integer => "Integer",
            AttrType::BigInt => "BigInt",
            AttrType::Boolean => "Boolean",
            AttrType::Picklist(_) => "Picklist",
            AttrType::State(_) => "State",
            AttrType::Status(_) => "Status",
            AttrType::DateTime | AttrType::Date => "DateTime",
            AttrType::Decimal => "Decimal",
            AttrType::Lookup(targets) if targets.len() > 1 => "Customer",
            AttrType::Lookup(_) => "Lookup",
        }
    }

    /// The metadata's `@odata.type` for this column.
    #[must_use]
    pub fn odata_type(&self) -> &'static str {
        match self {
            AttrType::Uniqueidentifier => {
                "#Microsoft.Dynamics.CRM.UniqueIdentifierAttributeMetadata"
            }
            AttrType::String(_) => "#Microsoft.Dynamics.CRM.StringAttributeMetadata",
            AttrType::Memo(_) => "#Microsoft.Dynamics.CRM.MemoAttributeMetadata",
            AttrType::Integer => "#Microsoft.Dynamics.CRM.IntegerAttributeMetadata",
            AttrType::BigInt => "#Microsoft.Dynamics.CRM.BigIntAttributeMetadata",
            AttrType::Boolean => "#Microsoft.Dynamics.CRM.BooleanAttributeMetadata",
            AttrType::Picklist(_) => "#Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
            AttrType::State(_) => "#Microsoft.Dynamics.CRM.StateAttributeMetadata",
            AttrType::Status(_) => "#Microsoft.Dynamics.CRM.StatusAttributeMetadata",
            AttrType::DateTime | AttrType::Date => {
                "#Microsoft.Dynamics.CRM.DateTimeAttributeMetadata"
            }
            AttrType::Decimal => "#Microsoft.Dynamics.CRM.DecimalAttributeMetadata",
            AttrType::Lookup(_) => "#Microsoft.Dynamics.CRM.LookupAttributeMetadata",
        }
    }

    /// The Edm type name used in errors and CSDL.
    #[must_use]
    pub fn edm(&self) -> &'static str {
        match self {
            AttrType::Uniqueidentifier | AttrType::Lookup(_) => "Edm.Guid",
            AttrType::String(_) | AttrType::Memo(_) => "Edm.String",
            AttrType::Integer
            | AttrType::Picklist(_)
            | AttrType::State(_)
            | AttrType::Status(_) => "Edm.Int32",
            AttrType::BigInt => "Edm.Int64",
            AttrType::Boolean => "Edm.Boolean",
            AttrType::DateTime => "Edm.DateTimeOffset",
            AttrType::Date => "Edm.Date",
            AttrType::Decimal => "Edm.Decimal",
        }
    }
}

/// One column.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AttributeMeta {
    /// Lower-case logical name.
    pub logical_name: String,
    /// Schema name as created.
    pub schema_name: String,
    /// Type.
    pub kind: AttrType,
    /// `MetadataId`.
    pub metadata_id: Uuid,
    /// Created through the metadata API (or part of the tool's schema).
    pub is_custom: bool,
    /// Written only by the service (`versionnumber`, `createdon`, ...).
    pub read_only: bool,
    /// `RequiredLevel` is `SystemRequired`.
    pub system_required: bool,
    /// The display label.
    pub display_name: String,
    /// Type details beyond [`AttrType`] (format, option labels, ranges).
    #[serde(default)]
    pub details: super::columns::Details,
}

/// An alternate key.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct KeyMeta {
    /// Logical name.
    pub logical_name: String,
    /// Schema name.
    pub schema_name: String,
    /// The key's columns.
    pub attributes: Vec<String>,
    /// `MetadataId`.
    pub metadata_id: Uuid,
}

/// One table.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EntityMeta {
    /// Lower-case logical name (`contact`).
    pub logical_name: String,
    /// Schema name (`Contact`).
    pub schema_name: String,
    /// Entity set name (`contacts`).
    pub entity_set: String,
    /// Primary id column (`contactid`).
    pub primary_id: String,
    /// Primary name column (`fullname`), if any.
    pub primary_name: Option<String>,
    /// `ObjectTypeCode`.
    pub object_type_code: i64,
    /// `MetadataId`.
    pub metadata_id: Uuid,
    /// Created through the metadata API (or part of the tool's schema).
    pub is_custom: bool,
    /// `OwnershipType`.
    pub ownership: String,
    /// Display label.
    pub display_name: String,
    /// Plural display label.
    pub display_collection_name: String,
    /// Whether `CreateMultiple`/`UpdateMultiple`/`UpsertMultiple` are available.
    pub bulk: bool,
    /// Whether the table is an intersect table (rows only through associate).
    pub is_intersect: bool,
    /// Columns; positions are stable.
    pub attributes: Vec<AttributeMeta>,
    /// Alternate keys.
    pub keys: Vec<KeyMeta>,
    #[serde(skip)]
    index: HashMap<String, u16>,
}

impl EntityMeta {
    /// A table with its primary id and the system columns.
    #[must_use]
    pub fn new(logical_name: &str, schema_name: &str, entity_set: &str, code: i64) -> Self {
        let primary_id = format!("{logical_name}id");
        let mut meta = Self {
            logical_name: logical_name.to_owned(),
            schema_name: schema_name.to_owned(),
            entity_set: entity_set.to_owned(),
            primary_id: primary_id.clone(),
            primary_name: None,
            object_type_code: code,
            metadata_id: name_uuid("entity", logical_name),
            is_custom: false,
            ownership: "UserOwned".to_owned(),
            display_name: schema_name.to_owned(),
            display_collection_name: entity_set.to_owned(),
            bulk: false,
            is_intersect: false,
            attributes: Vec::new(),
            keys: Vec::new(),
            index: HashMap::new(),
        };
        meta.add(&primary_id, AttrType::Uniqueidentifier);
        meta.add_read_only("createdon", AttrType::DateTime);
        meta.add_read_only("modifiedon", AttrType::DateTime);
        meta.add_read_only("versionnumber", AttrType::BigInt);
        meta
    }

    /// Rebuild the name → position map (after loading a snapshot).
    pub fn reindex(&mut self) {
        self.index = self
            .attributes
            .iter()
            .enumerate()
            .map(|(i, a)| (a.logical_name.clone(), u16::try_from(i).unwrap_or(u16::MAX)))
            .collect();
    }

    /// Add a column (no-op when it exists). Returns its position.
    pub fn add(&mut self, logical_name: &str, kind: AttrType) -> u16 {
        self.add_attribute(AttributeMeta {
            logical_name: logical_name.to_owned(),
            schema_name: logical_name.to_owned(),
            kind,
            metadata_id: name_uuid(&self.logical_name, logical_name),
            is_custom: logical_name.contains('_') && !logical_name.starts_with("address"),
            read_only: false,
            system_required: false,
            display_name: logical_name.to_owned(),
            details: super::columns::Details::default(),
        })
    }

    fn add_read_only(&mut self, logical_name: &str, kind: AttrType) {
        let pos = self.add(logical_name, kind);
        if let Some(attr) = self.attributes.get_mut(usize::from(pos)) {
            attr.read_only = true;
            attr.is_custom = false;
        }
    }

    /// Add a fully described column (no-op when the logical name exists). Returns its position.
    pub fn add_attribute(&mut self, attr: AttributeMeta) -> u16 {
        if let Some(pos) = self.index.get(&attr.logical_name) {
            return *pos;
        }
        let pos = u16::try_from(self.attributes.len()).unwrap_or(u16::MAX);
        self.index.insert(attr.logical_name.clone(), pos);
        self.attributes.push(attr);
        pos
    }

    /// The position of a column.
    #[must_use]
    pub fn position(&self, logical_name: &str) -> Option<u16> {
        self.index.get(logical_name).copied()
    }

    /// A column by logical name.
    #[must_use]
    pub fn attribute(&self, logical_name: &str) -> Option<&AttributeMeta> {
        self.position(logical_name)
            .and_then(|pos| self.attributes.get(usize::from(pos)))
    }

    /// A column by position.
    #[must_use]
    pub fn attribute_at(&self, pos: u16) -> Option<&AttributeMeta> {
        self.attributes.get(usize::from(pos))
    }

    /// The position of the primary id column.
    #[must_use]
    pub fn primary_id_pos(&self) -> u16 {
        self.position(&self.primary_id).unwrap_or(0)
    }

    /// The `Microsoft.Dynamics.CRM.<logical>` type name.
    #[must_use]
    pub fn type_name(&self) -> String {
        format!("Microsoft.Dynamics.CRM.{}", self.logical_name)
    }
}

/// A many-to-one lookup relationship (one `list` has many `mcsync_tag`s...).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OneToMany {
    /// Schema name.
    pub schema_name: String,
    /// The table referred to.
    pub referenced_entity: String,
    /// Its primary id.
    pub referenced_attribute: String,
    /// The table with the lookup column.
    pub referencing_entity: String,
    /// The lookup column.
    pub referencing_attribute: String,
    /// Single-valued navigation property on the referencing table.
    pub referencing_nav: String,
    /// Collection navigation property on the referenced table.
    pub referenced_nav: String,
    /// `MetadataId`.
    pub metadata_id: Uuid,
    /// Custom.
    pub is_custom: bool,
}

/// A many-to-many relationship.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ManyToMany {
    /// Schema name, also the navigation property on both sides.
    pub schema_name: String,
    /// First table.
    pub entity1: String,
    /// Second table.
    pub entity2: String,
    /// The first table's primary id, as the intersect column.
    pub entity1_attribute: String,
    /// The second table's primary id, as the intersect column.
    pub entity2_attribute: String,
    /// Intersect entity name.
    pub intersect_entity: String,
    /// Navigation property on entity1 (collection of entity2).
    pub entity1_nav: String,
    /// Navigation property on entity2 (collection of entity1).
    pub entity2_nav: String,
    /// `MetadataId`.
    pub metadata_id: Uuid,
    /// Custom.
    pub is_custom: bool,
    /// Backed by `listmember` rows (list relationships) rather than a plain link set.
    pub list_backed: bool,
}

/// A deterministic metadata id for a name.
#[must_use]
pub fn name_uuid(scope: &str, name: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("dataverse:{scope}:{name}").as_bytes(),
    )
}

/// The tool's default schema names (they mirror `config::model::CrmNames`' defaults).
pub mod tool {
    /// Audience table.
    pub const AUDIENCE: &str = "mcsync_audience";
    /// Tag table.
    pub const TAG: &str = "mcsync_tag";
    /// Sync run table.
    pub const SYNC_RUN: &str = "mcsync_syncrun";
    /// Tag ↔ contact.
    pub const TAG_CONTACT: &str = "mcsync_tag_contact";
    /// Tag ↔ lead.
    pub const TAG_LEAD: &str = "mcsync_tag_lead";
    /// The list's (and tag's, run's) lookup to the audience.
    pub const AUDIENCE_LOOKUP: &str = "mcsync_audienceid";
    /// Mailchimp contact id column on contact and lead.
    pub const MAILCHIMP_ID: &str = "mcsync_mailchimpcontactid";
    /// Subscriber status column on contact and lead.
    pub const STATUS: &str = "mcsync_mailchimpstatus";
}

fn contact_like(meta: &mut EntityMeta, lead: bool) {
    super::columns::add_standard(meta, lead);
    let pos = meta.add("fullname", AttrType::String(160));
    if let Some(attr) = meta.attributes.get_mut(usize::from(pos)) {
        attr.read_only = true;
    }
    meta.primary_name = Some("fullname".to_owned());
    if lead {
        meta.add("statecode", AttrType::State(vec![0, 1, 2]));
        meta.add("statuscode", AttrType::Status(vec![1, 2, 3, 4, 5, 6, 7]));
    } else {
        meta.add("statecode", AttrType::State(vec![0, 1]));
        meta.add("statuscode", AttrType::Status(vec![1, 2]));
        meta.add(
            "parentcustomerid",
            AttrType::Lookup(vec!["account".to_owned(), "contact".to_owned()]),
        );
    }
    super::columns::label_states(meta, lead);
    meta.bulk = true;
}

/// The standard tables of a fresh environment.
#[must_use]
pub fn standard_entities() -> Vec<EntityMeta> {
    let mut account = EntityMeta::new("account", "Account", "accounts", 1);
    account.add("name", AttrType::String(160));
    account.primary_name = Some("name".to_owned());
    for col in ["emailaddress1", "telephone1", "address1_city", "websiteurl"] {
        account.add(col, AttrType::String(100));
    }
    account.add("statecode", AttrType::State(vec![0, 1]));
    account.add("statuscode", AttrType::Status(vec![1, 2]));
    account.bulk = true;

    let mut contact = EntityMeta::new("contact", "Contact", "contacts", 2);
    contact_like(&mut contact, false);
    let mut lead = EntityMeta::new("lead", "Lead", "leads", 4);
    contact_like(&mut lead, true);

    let mut list = EntityMeta::new("list", "List", "lists", 4300);
    list.add("listname", AttrType::String(128));
    list.primary_name = Some("listname".to_owned());
    list.add("type", AttrType::Boolean);
    list.add("createdfromcode", AttrType::Picklist(vec![1, 2, 4]));
    list.add("membertype", AttrType::Integer);
    let pos = list.add("membercount", AttrType::Integer);
    if let Some(attr) = list.attributes.get_mut(usize::from(pos)) {
        attr.read_only = true;
    }
    list.add("lockstatus", AttrType::Boolean);
    list.add("statecode", AttrType::State(vec![0, 1]));
    list.add("statuscode", AttrType::Status(vec![0, 1]));
    list.add("description", AttrType::Memo(2000));
    list.add("purpose", AttrType::String(512));
    list.add("source", AttrType::String(128));
    list.add("query", AttrType::Memo(1_048_576));
    for name in ["listname", "createdfromcode", "type"] {
        if let Some(pos) = list.position(name)
            && let Some(attr) = list.attributes.get_mut(usize::from(pos))
        {
            attr.system_required = true;
        }
    }
    list.bulk = true;

    let mut member = EntityMeta::new("listmember", "ListMember", "listmembers", 4301);
    member.add("listid", AttrType::Lookup(vec!["list".to_owned()]));
    member.add(
        "entityid",
        AttrType::Lookup(vec![
            "account".to_owned(),
            "contact".to_owned(),
            "lead".to_owned(),
        ]),
    );
    member.add("entitytype", AttrType::String(64));
    member.ownership = "None".to_owned();
    member.is_intersect = true;

    let mut message = EntityMeta::new("sdkmessage", "SdkMessage", "sdkmessages", 4606);
    message.add("name", AttrType::String(256));
    message.primary_name = Some("name".to_owned());
    message.ownership = "OrganizationOwned".to_owned();

    let mut filter = EntityMeta::new(
        "sdkmessagefilter",
        "SdkMessageFilter",
        "sdkmessagefilters",
        4607,
    );
    filter.add("primaryobjecttypecode", AttrType::String(64));
    filter.add(
        "sdkmessageid",
        AttrType::Lookup(vec!["sdkmessage".to_owned()]),
    );
    filter.add("isvisible", AttrType::Boolean);
    filter.ownership = "OrganizationOwned".to_owned();

    let mut user = EntityMeta::new("systemuser", "SystemUser", "systemusers", 8);
    user.add("fullname", AttrType::String(200));
    user.primary_name = Some("fullname".to_owned());
    user.add("applicationid", AttrType::Uniqueidentifier);
    user.ownership = "BusinessOwned".to_owned();

    vec![account, contact, lead, list, member, message, filter, user]
}

/// The standard lookup relationships.
#[must_use]
pub fn standard_one_to_many() -> Vec<OneToMany> {
    vec![
        lookup_rel(
            "contact_customer_accounts",
            "account",
            "contact",
            "parentcustomerid",
            "parentcustomerid_account",
        ),
        lookup_rel(
            "contact_customer_contacts",
            "contact",
            "contact",
            "parentcustomerid",
            "parentcustomerid_contact",
        ),
        lookup_rel("listmember_list", "list", "listmember", "listid", "listid"),
        lookup_rel(
            "sdkmessageid_sdkmessagefilter",
            "sdkmessage",
            "sdkmessagefilter",
            "sdkmessageid",
            "sdkmessageid",
        ),
    ]
}

/// A lookup relationship from `referencing.attribute` to `referenced`.
#[must_use]
pub fn lookup_rel(
    schema: &str,
    referenced: &str,
    referencing: &str,
    attribute: &str,
    nav: &str,
) -> OneToMany {
    OneToMany {
        schema_name: schema.to_owned(),
        referenced_entity: referenced.to_owned(),
        referenced_attribute: format!("{referenced}id"),
        referencing_entity: referencing.to_owned(),
        referencing_attribute: attribute.to_owned(),
        referencing_nav: nav.to_owned(),
        referenced_nav: schema.to_owned(),
        metadata_id: name_uuid("relationship", schema),
        is_custom: schema.contains("mcsync"),
    }
}

/// The standard many-to-many relationships (the marketing-list memberships).
#[must_use]
pub fn standard_many_to_many() -> Vec<ManyToMany> {
    ["account", "contact", "lead"]
        .into_iter()
        .map(|other| {
            let mut rel = many_to_many(
                &format!("list{other}_association"),
                "list",
                other,
                "listmember",
            );
            rel.list_backed = true;
            rel.is_custom = false;
            rel
        })
        .collect()
}

/// A many-to-many relationship with the navigation property named as the schema name.
#[must_use]
pub fn many_to_many(schema: &str, entity1: &str, entity2: &str, intersect: &str) -> ManyToMany {
    ManyToMany {
        schema_name: schema.to_owned(),
        entity1: entity1.to_owned(),
        entity2: entity2.to_owned(),
        entity1_attribute: format!("{entity1}id"),
        entity2_attribute: format!("{entity2}id"),
        intersect_entity: intersect.to_owned(),
        entity1_nav: schema.to_owned(),
        entity2_nav: schema.to_owned(),
        metadata_id: name_uuid("relationship", schema),
        is_custom: true,
        list_backed: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_system_columns_and_stable_positions() {
        for mut meta in standard_entities() {
            assert_eq!(meta.primary_id_pos(), 0);
            assert!(meta.attribute("versionnumber").is_some());
            let before = meta.position("createdon");
            meta.add("createdon", AttrType::String(5));
            assert_eq!(meta.position("createdon"), before);
        }
    }
}
