//! The standard columns of `contact` and `lead` that people map marketing data onto, with the
//! types, lengths, formats, ranges and choice values Microsoft documents, plus what a column
//! says beyond its [`AttrType`] ([`Details`]: `Format`, `DateTimeBehavior`, option labels,
//! `MinValue`/`MaxValue`), custom columns of any type for seeds ([`SeedColumn`]), and the
//! checks a write meets after the OData reader has converted its literal ([`validate`]).
//!
//! Sources:
//! - Contact: MicrosoftDocs/powerapps-docs `developer/data-platform/reference/entities/contact.md`
//!   (`firstname`/`lastname`/`middlename` String 50, `telephone1..3`/`mobilephone` 50 `Phone`,
//!   `emailaddress1..3` 100 `Email`, `jobtitle` 100, `websiteurl` 200 `Url`, `address1_line1..3`
//!   250, `address1_city`/`address1_country` 80, `address1_stateorprovince`/`address1_county` 50,
//!   `address1_postalcode` 20, `description` Memo 2000 `TextArea`, `birthdate` DateTime with
//!   `DateTimeBehavior` and `Format` `DateOnly`, `lastusedincampaign` `UserLocal` with `Format`
//!   `DateOnly`, `numberofchildren` Integer 0..=1,000,000,000, `gendercode` 1 Male 2 Female,
//!   `familystatuscode` 1 Single 2 Married 3 Divorced 4 Widowed, `preferredcontactmethodcode`
//!   1 Any 2 Email 3 Phone 4 Fax 5 Mail, `donot*` Booleans labelled Do Not Allow / Allow,
//!   `statecode` 0 Active 1 Inactive, `statuscode` 1 Active 2 Inactive).
//! - Lead: MicrosoftDocs/dynamics-365-customer-engagement `ce/developer/reference/entities/lead.md`
//!   (`subject` 300, `companyname` 100, `mobilephone` 20, `leadsourcecode` 1..10 Advertisement …
//!   Other, `industrycode` 1..33 Accounting … Wholesale, `leadqualitycode` 1 Hot 2 Warm 3 Cold,
//!   `numberofemployees` 0..=1,000,000, `statecode` 0 Open 1 Qualified 2 Disqualified,
//!   `statuscode` 1 New … 7 Canceled), lengths also in the fact sheet (`docs/dataverse.md` §4, §11).
//! - Refusals (fact sheet §11): a literal of the wrong type is refused by the OData reader with
//!   400 `0x80048d19` "Error identified in Payload provided by the user for Entity :'contacts' …
//!   Cannot convert the literal '…' to the expected type 'Edm.Boolean'" (mautic/mautic#4467,
//!   MarcusRisanger/Dataverse-API#30); a date-only column is `Edm.Date` in the CSDL, so a value
//!   with a time is a literal of the wrong type too; over-length text, a choice value not in the
//!   option set and a whole number out of range are validation errors, 400 `0x80044331`.
//! - A plug-in that throws `InvalidPluginExecutionException` fails the write with its message,
//!   400 `0x80040265` (fact sheet §7, §11): [`PluginRefusal`] stands in for one.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::errors::DvError;
use super::meta::{AttrType, AttributeMeta, EntityMeta};
use super::value::Val;

/// What a column says beyond its type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Details {
    /// `Format` (`Text`, `Email`, `Phone`, `Url`, `TextArea`, `DateOnly`, `DateAndTime`, `None`).
    #[serde(default)]
    pub format: Option<String>,
    /// `DateTimeBehavior` of a date column (`UserLocal`, `DateOnly`, `TimeZoneIndependent`).
    #[serde(default)]
    pub behavior: Option<String>,
    /// Option labels by value (choices, state, status; Yes/No as 1 and 0).
    #[serde(default)]
    pub options: Vec<(i64, String)>,
    /// `MinValue` of a whole number.
    #[serde(default)]
    pub min: Option<i64>,
    /// `MaxValue` of a whole number.
    #[serde(default)]
    pub max: Option<i64>,
}

/// One standard column, as its table reference describes it.
enum Spec {
    /// Single line of text: max length and `Format`.
    Text(u32, &'static str),
    /// Multiple lines of text (`TextArea`).
    Memo(u32),
    /// Yes/No with its (true, false) labels.
    Flag(&'static str, &'static str),
    /// Whole number with its range.
    Whole(i64, i64),
    /// Choice with its options.
    Choice(&'static [(i64, &'static str)]),
    /// `DateTimeBehavior` `DateOnly` (`Edm.Date`).
    DateOnly,
    /// `DateTimeBehavior` `UserLocal`, `Format` `DateOnly` (`Edm.DateTimeOffset`).
    LocalDate,
}

const DO_NOT: Spec = Spec::Flag("Do Not Allow", "Allow");
const CONTACT_METHODS: &[(i64, &str)] = &[
    (1, "Any"),
    (2, "Email"),
    (3, "Phone"),
    (4, "Fax"),
    (5, "Mail"),
];
const GENDERS: &[(i64, &str)] = &[(1, "Male"), (2, "Female")];
const FAMILY_STATUSES: &[(i64, &str)] = &[
    (1, "Single"),
    (2, "Married"),
    (3, "Divorced"),
    (4, "Widowed"),
];
const LEAD_SOURCES: &[(i64, &str)] = &[
    (1, "Advertisement"),
    (2, "Employee Referral"),
    (3, "External Referral"),
    (4, "Partner"),
    (5, "Public Relations"),
    (6, "Seminar"),
    (7, "Trade Show"),
    (8, "Web"),
    (9, "Word of Mouth"),
    (10, "Other"),
];
const INDUSTRIES: &[(i64, &str)] = &[
    (1, "Accounting"),
    (2, "Agriculture and Non-petrol Natural Resource Extraction"),
    (3, "Broadcasting Printing and Publishing"),
    (4, "Brokers"),
    (5, "Building Supply Retail"),
    (6, "Business Services"),
    (7, "Consulting"),
    (8, "Consumer Services"),
    (9, "Design, Direction and Creative Management"),
    (10, "Distributors, Dispatchers and Processors"),
    (11, "Doctor's Offices and Clinics"),
    (12, "Durable Manufacturing"),
    (13, "Eating and Drinking Places"),
    (14, "Entertainment Retail"),
    (15, "Equipment Rental and Leasing"),
    (16, "Financial"),
    (17, "Food and Tobacco Processing"),
    (18, "Inbound Capital Intensive Processing"),
    (19, "Inbound Repair and Services"),
    (20, "Insurance"),
    (21, "Legal Services"),
    (22, "Non-Durable Merchandise Retail"),
    (23, "Outbound Consumer Service"),
    (24, "Petrochemical Extraction and Distribution"),
    (25, "Service Retail"),
    (26, "SIG Affiliations"),
    (27, "Social Services"),
    (28, "Special Outbound Trade Contractors"),
    (29, "Specialty Realty"),
    (30, "Transportation"),
    (31, "Utility Creation and Distribution"),
    (32, "Vehicle Retail"),
    (33, "Wholesale"),
];
const QUALITIES: &[(i64, &str)] = &[(1, "Hot"), (2, "Warm"), (3, "Cold")];

/// Columns contact and lead share.
const SHARED: &[(&str, Spec)] = &[
    ("firstname", Spec::Text(50, "Text")),
    ("lastname", Spec::Text(50, "Text")),
    ("middlename", Spec::Text(50, "Text")),
    ("jobtitle", Spec::Text(100, "Text")),
    ("salutation", Spec::Text(100, "Text")),
    ("emailaddress1", Spec::Text(100, "Email")),
    ("emailaddress2", Spec::Text(100, "Email")),
    ("emailaddress3", Spec::Text(100, "Email")),
    ("telephone1", Spec::Text(50, "Phone")),
    ("telephone2", Spec::Text(50, "Phone")),
    ("telephone3", Spec::Text(50, "Phone")),
    ("fax", Spec::Text(50, "Text")),
    ("websiteurl", Spec::Text(200, "Url")),
    ("address1_line1", Spec::Text(250, "Text")),
    ("address1_line2", Spec::Text(250, "Text")),
    ("address1_line3", Spec::Text(250, "Text")),
    ("address1_city", Spec::Text(80, "Text")),
    ("address1_county", Spec::Text(50, "Text")),
    ("address1_stateorprovince", Spec::Text(50, "Text")),
    ("address1_postalcode", Spec::Text(20, "Text")),
    ("address1_country", Spec::Text(80, "Text")),
    ("description", Spec::Memo(2000)),
    ("donotbulkemail", DO_NOT),
    ("donotemail", DO_NOT),
    ("donotphone", DO_NOT),
    ("donotfax", DO_NOT),
    ("donotpostalmail", DO_NOT),
    ("donotsendmm", Spec::Flag("Do Not Send", "Send")),
    ("preferredcontactmethodcode", Spec::Choice(CONTACT_METHODS)),
    ("lastusedincampaign", Spec::LocalDate),
];

/// Columns only contact has (or has with other values).
const CONTACT: &[(&str, Spec)] = &[
    ("mobilephone", Spec::Text(50, "Phone")),
    ("nickname", Spec::Text(100, "Text")),
    ("department", Spec::Text(100, "Text")),
    ("spousesname", Spec::Text(100, "Text")),
    ("suffix", Spec::Text(10, "Text")),
    ("birthdate", Spec::DateOnly),
    ("anniversary", Spec::DateOnly),
    ("gendercode", Spec::Choice(GENDERS)),
    ("familystatuscode", Spec::Choice(FAMILY_STATUSES)),
    ("numberofchildren", Spec::Whole(0, 1_000_000_000)),
    ("leadsourcecode", Spec::Choice(&[(1, "Default Value")])),
    ("donotbulkpostalmail", Spec::Flag("Yes", "No")),
];

/// Columns only lead has (or has with other values).
const LEAD: &[(&str, Spec)] = &[
    ("mobilephone", Spec::Text(20, "Phone")),
    ("subject", Spec::Text(300, "Text")),
    ("companyname", Spec::Text(100, "Text")),
    ("leadsourcecode", Spec::Choice(LEAD_SOURCES)),
    ("industrycode", Spec::Choice(INDUSTRIES)),
    ("leadqualitycode", Spec::Choice(QUALITIES)),
    ("numberofemployees", Spec::Whole(0, 1_000_000)),
    ("estimatedclosedate", Spec::DateOnly),
];

/// Option values with their labels.
type Options = &'static [(i64, &'static str)];

fn options(pairs: &[(i64, &str)]) -> Vec<(i64, String)> {
    pairs.iter().map(|(v, l)| (*v, (*l).to_owned())).collect()
}

fn type_of(spec: &Spec) -> (AttrType, Details) {
    let mut details = Details::default();
    let kind = match spec {
        Spec::Text(max, format) => {
            details.format = Some((*format).to_owned());
            AttrType::String(*max)
        }
        Spec::Memo(max) => {
            details.format = Some("TextArea".to_owned());
            AttrType::Memo(*max)
        }
        Spec::Flag(yes, no) => {
            details.options = options(&[(1, yes), (0, no)]);
            AttrType::Boolean
        }
        Spec::Whole(min, max) => {
            details.format = Some("None".to_owned());
            details.min = Some(*min);
            details.max = Some(*max);
            AttrType::Integer
        }
        Spec::Choice(pairs) => {
            details.options = options(pairs);
            AttrType::Picklist(pairs.iter().map(|(v, _)| *v).collect())
        }
        Spec::DateOnly => {
            details.format = Some("DateOnly".to_owned());
            details.behavior = Some("DateOnly".to_owned());
            AttrType::Date
        }
        Spec::LocalDate => {
            details.format = Some("DateOnly".to_owned());
            details.behavior = Some("UserLocal".to_owned());
            AttrType::DateTime
        }
    };
    (kind, details)
}

fn add(meta: &mut EntityMeta, name: &str, kind: AttrType, details: Details) {
    let pos = meta.add(name, kind);
    if let Some(attr) = meta.attributes.get_mut(usize::from(pos)) {
        attr.details = details;
    }
}

/// Add the documented standard columns of `contact` (or `lead`) to a table.
pub fn add_standard(meta: &mut EntityMeta, lead: bool) {
    let own = if lead { LEAD } else { CONTACT };
    for (name, spec) in SHARED.iter().chain(own) {
        let (kind, details) = type_of(spec);
        add(meta, name, kind, details);
    }
}

/// Label the state and status options of `contact` (or `lead`), once they exist.
pub fn label_states(meta: &mut EntityMeta, lead: bool) {
    let (states, statuses): (Options, Options) = if lead {
        (
            &[(0, "Open"), (1, "Qualified"), (2, "Disqualified")],
            &[
                (1, "New"),
                (2, "Contacted"),
                (3, "Qualified"),
                (4, "Lost"),
                (5, "Cannot Contact"),
                (6, "No Longer Interested"),
                (7, "Canceled"),
            ],
        )
    } else {
        (
            &[(0, "Active"), (1, "Inactive")],
            &[(1, "Active"), (2, "Inactive")],
        )
    };
    for (name, pairs) in [("statecode", states), ("statuscode", statuses)] {
        if let Some(pos) = meta.position(name)
            && let Some(attr) = meta.attributes.get_mut(usize::from(pos))
        {
            attr.details.options = options(pairs);
        }
    }
}

/// Fill what a create leaves unset with the column's default: the documented Yes/No columns
/// (`donot*`, `DefaultValue` 0 in the table references) start as `false`, never null.
pub fn fill_defaults(meta: &EntityMeta, row: &mut super::store::Row) {
    for (pos, attr) in meta.attributes.iter().enumerate() {
        let Ok(pos) = u16::try_from(pos) else {
            continue;
        };
        if matches!(attr.kind, AttrType::Boolean)
            && !attr.details.options.is_empty()
            && row.get(pos).is_null()
        {
            row.set(pos, Val::Bool(false));
        }
    }
}

/// The label of an option value, in the metadata's `Label` shape.
#[must_use]
pub fn option_label(attr: &AttributeMeta, value: i64) -> Option<&str> {
    attr.details
        .options
        .iter()
        .find(|(v, _)| *v == value)
        .map(|(_, l)| l.as_str())
}

/// Checks after the literal was read: whole numbers within `MinValue..=MaxValue`.
///
/// # Errors
/// 400 `0x80044331` for a value out of range.
pub fn validate(attr: &AttributeMeta, table: &str, val: &Val) -> Result<(), DvError> {
    if let Val::Int(n) = val
        && matches!(attr.kind, AttrType::Integer | AttrType::BigInt)
    {
        let below = attr.details.min.is_some_and(|min| *n < min);
        let above = attr.details.max.is_some_and(|max| *n > max);
        if below || above {
            return Err(DvError::validation(format!(
                "A validation error occurred. The value {n} of '{}' on record of type '{table}' is outside the valid range. Accepted Values: {}..{}",
                attr.logical_name,
                attr.details.min.unwrap_or(i64::from(i32::MIN)),
                attr.details.max.unwrap_or(i64::from(i32::MAX)),
            )));
        }
    }
    Ok(())
}

/// A custom column's type in a seed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SeedKind {
    /// Single line of text.
    String {
        /// `MaxLength`.
        max_len: u32,
    },
    /// Multiple lines of text.
    Memo {
        /// `MaxLength`.
        max_len: u32,
    },
    /// Yes/No.
    Boolean,
    /// Whole number, optionally with a range.
    Integer {
        /// `MinValue`.
        #[serde(default)]
        min: Option<i64>,
        /// `MaxValue`.
        #[serde(default)]
        max: Option<i64>,
    },
    /// Decimal number.
    Decimal,
    /// Choice with `{value, label}` options.
    Choice {
        /// The options.
        options: Vec<SeedOption>,
    },
    /// Date only (`DateTimeBehavior` `DateOnly`).
    Date,
    /// Date and time (`UserLocal`).
    DateTime,
}

/// One option of a seeded choice column.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedOption {
    /// The value.
    pub value: i64,
    /// Its label.
    pub label: String,
}

/// A custom column a seed adds to a table (`columns: [{table, name, kind}]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedColumn {
    /// The table's logical name.
    pub table: String,
    /// The column's logical name (with a customization prefix, as a custom column has).
    pub name: String,
    /// Its type.
    pub kind: SeedKind,
}

impl SeedColumn {
    /// Add this column to its table's metadata.
    pub fn install(&self, meta: &mut EntityMeta) {
        let mut details = Details::default();
        let kind = match &self.kind {
            SeedKind::String { max_len } => {
                details.format = Some("Text".to_owned());
                AttrType::String(*max_len)
            }
            SeedKind::Memo { max_len } => {
                details.format = Some("TextArea".to_owned());
                AttrType::Memo(*max_len)
            }
            SeedKind::Boolean => {
                details.options = options(&[(1, "Yes"), (0, "No")]);
                AttrType::Boolean
            }
            SeedKind::Integer { min, max } => {
                details.format = Some("None".to_owned());
                details.min = *min;
                details.max = *max;
                AttrType::Integer
            }
            SeedKind::Decimal => AttrType::Decimal,
            SeedKind::Choice { options } => {
                details.options = options.iter().map(|o| (o.value, o.label.clone())).collect();
                AttrType::Picklist(options.iter().map(|o| o.value).collect())
            }
            SeedKind::Date => return self.install_spec(meta, &Spec::DateOnly),
            SeedKind::DateTime => {
                details.format = Some("DateAndTime".to_owned());
                details.behavior = Some("UserLocal".to_owned());
                AttrType::DateTime
            }
        };
        add(meta, &self.name, kind, details);
        self.mark_custom(meta);
    }

    fn install_spec(&self, meta: &mut EntityMeta, spec: &Spec) {
        let (kind, details) = type_of(spec);
        add(meta, &self.name, kind, details);
        self.mark_custom(meta);
    }

    fn mark_custom(&self, meta: &mut EntityMeta) {
        if let Some(pos) = meta.position(&self.name)
            && let Some(attr) = meta.attributes.get_mut(usize::from(pos))
        {
            attr.is_custom = true;
        }
    }
}

/// A stand-in for a synchronous plug-in that refuses a write: when a create or update of
/// `table` sets `column` to `value`, the write fails with 400 `0x80040265` and `message`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginRefusal {
    /// The table's logical name.
    pub table: String,
    /// The column whose value triggers it.
    pub column: String,
    /// The value (text compared case-insensitively, as the store compares).
    pub value: Value,
    /// The plug-in's message.
    pub message: String,
}

impl PluginRefusal {
    /// The refusal, when this write triggers it.
    #[must_use]
    pub fn check(&self, table: &str, column: &str, val: &Val) -> Option<DvError> {
        if self.table != table || self.column != column {
            return None;
        }
        let wanted = match &self.value {
            Value::String(s) => Val::Str(s.as_str().into()),
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => n.as_i64().map_or(Val::Null, Val::Int),
            _ => Val::Null,
        };
        val.equals(&wanted)
            .then(|| DvError::new(400, "0x80040265", self.message.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_and_lead_get_their_documented_columns() {
        let mut contact = EntityMeta::new("contact", "Contact", "contacts", 2);
        add_standard(&mut contact, false);
        let first = contact.attribute("firstname").expect("firstname");
        assert_eq!(first.kind, AttrType::String(50));
        let birth = contact.attribute("birthdate").expect("birthdate");
        assert_eq!(birth.kind, AttrType::Date);
        let gender = contact.attribute("gendercode").expect("gendercode");
        assert_eq!(option_label(gender, 2), Some("Female"));
        let mut lead = EntityMeta::new("lead", "Lead", "leads", 4);
        add_standard(&mut lead, true);
        assert_eq!(
            lead.attribute("mobilephone").map(|a| a.kind.clone()),
            Some(AttrType::String(20))
        );
        assert!(lead.attribute("birthdate").is_none());
    }

    #[test]
    fn whole_numbers_outside_their_range_are_refused() {
        let mut contact = EntityMeta::new("contact", "Contact", "contacts", 2);
        add_standard(&mut contact, false);
        let children = contact.attribute("numberofchildren").expect("column");
        assert!(validate(children, "contact", &Val::Int(3)).is_ok());
        let err = validate(children, "contact", &Val::Int(-1)).expect_err("refused");
        assert_eq!(err.code, "0x80044331");
    }
}
