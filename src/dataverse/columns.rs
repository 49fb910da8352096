//! Column types of contacts and leads as the attribute metadata describes them: read once per
//! table and column and cached for the run ([`ColumnCatalog`]), so the plan converts every member
//! value to what the column takes (see `plan::convert`).
//!
//! Sources (Power Apps "Query table definitions using the Web API", PD
//! `webapi/query-metadata-web-api.md`): `GET EntityDefinitions(LogicalName='contact')/
//! Attributes(LogicalName='firstname')` answers the derived metadata type with `AttributeType`,
//! `MaxLength`, `Format`/`DateTimeBehavior`, `Precision`, `MinValue`/`MaxValue`, `Targets`; the
//! options of a choice come with the cast `…/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?
//! $expand=OptionSet` (labels per language). A lookup is written as `<navigation property>@odata.bind`,
//! the navigation property being the relationship's `ReferencingEntityNavigationPropertyName`
//! (`EntityDefinitions(…)/ManyToOneRelationships`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::client::Client;
use super::error::Error;

/// One option of a choice column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChoiceOption {
    /// The stored value.
    pub value: i64,
    /// Its labels, in every language the metadata gives.
    pub labels: Vec<String>,
}

/// What a column takes, as far as writing a member value into it is concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnType {
    /// Single or multiple lines of text (`String`, `Memo`), at most `max_len` characters.
    Text {
        /// `MaxLength`.
        max_len: u32,
    },
    /// Yes/No (`Boolean`).
    Boolean,
    /// Whole number (`Integer`, `BigInt`) within `min..=max`.
    Integer {
        /// `MinValue`.
        min: i64,
        /// `MaxValue`.
        max: i64,
    },
    /// Decimal, floating point or currency, stored rounded to `precision` digits.
    Decimal {
        /// `Precision`.
        precision: u32,
    },
    /// Choice (`Picklist`, `State`, `Status`).
    Choice {
        /// The options.
        options: Vec<ChoiceOption>,
    },
    /// `DateTime` with `Format` `DateOnly`: written and read as `YYYY-MM-DD`.
    DateOnly,
    /// `DateTime` with date and time: written and read in UTC (`…Z`).
    DateTime,
    /// A lookup to one table.
    Lookup {
        /// The navigation property to write it with (`<nav>@odata.bind`).
        navigation: String,
        /// The entity set of the table it points at.
        target_set: String,
    },
    /// A type the tool does not write (multi-select choices, images, polymorphic lookups, …).
    Unsupported {
        /// `AttributeType` (and why, where it is not obvious).
        what: String,
    },
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text { max_len } => write!(f, "text (at most {max_len} characters)"),
            Self::Boolean => f.write_str("Yes/No"),
            Self::Integer { .. } => f.write_str("whole number"),
            Self::Decimal { .. } => f.write_str("decimal number"),
            Self::Choice { .. } => f.write_str("choice"),
            Self::DateOnly => f.write_str("date only"),
            Self::DateTime => f.write_str("date and time"),
            Self::Lookup { .. } => f.write_str("lookup"),
            Self::Unsupported { what } => write!(f, "{what} (not supported)"),
        }
    }
}

/// The attribute metadata of one column, as read (before lookups are resolved).
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    /// The type, lookups without their navigation property yet.
    pub column_type: ColumnType,
    /// `AttributeType`.
    pub attribute_type: String,
    /// Lookup targets (logical names).
    pub targets: Vec<String>,
    /// Whether the column can be written at all (`IsValidForUpdate`).
    pub writable: bool,
}

fn int_of(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

/// Labels of a `Label` object: the user's and every localized one.
fn labels_of(label: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(l) = label
        .pointer("/UserLocalizedLabel/Label")
        .and_then(Value::as_str)
    {
        out.push(l.to_owned());
    }
    if let Some(all) = label.get("LocalizedLabels").and_then(Value::as_array) {
        for l in all
            .iter()
            .filter_map(|l| l.get("Label").and_then(Value::as_str))
        {
            if !out.iter().any(|o| o == l) {
                out.push(l.to_owned());
            }
        }
    }
    out
}

/// The options of an `OptionSet` (expanded on a choice's cast).
#[must_use]
pub fn options_of(option_set: &Value) -> Vec<ChoiceOption> {
    option_set
        .get("Options")
        .and_then(Value::as_array)
        .map(|options| {
            options
                .iter()
                .filter_map(|o| {
                    Some(ChoiceOption {
                        value: int_of(o, "Value")?,
                        labels: o.get("Label").map(labels_of).unwrap_or_default(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Read one attribute's metadata (pure). Choices get their options from `option_set` (the
/// expanded cast), `None` when it was not read.
#[must_use]
pub fn parse_attribute(meta: &Value, option_set: Option<&Value>) -> Attribute {
    let attribute_type = meta
        .get("AttributeType")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let format = meta
        .get("Format")
        .and_then(Value::as_str)
        .or_else(|| meta.pointer("/FormatName/Value").and_then(Value::as_str))
        .unwrap_or("");
    let targets: Vec<String> = meta
        .get("Targets")
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let column_type = match attribute_type.as_str() {
        "String" | "Memo" => ColumnType::Text {
            max_len: int_of(meta, "MaxLength")
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(if attribute_type == "Memo" { 2000 } else { 100 }),
        },
        "Boolean" => ColumnType::Boolean,
        "Integer" => ColumnType::Integer {
            min: int_of(meta, "MinValue").unwrap_or(i64::from(i32::MIN)),
            max: int_of(meta, "MaxValue").unwrap_or(i64::from(i32::MAX)),
        },
        "BigInt" => ColumnType::Integer {
            min: int_of(meta, "MinValue").unwrap_or(i64::MIN),
            max: int_of(meta, "MaxValue").unwrap_or(i64::MAX),
        },
        "Decimal" | "Double" | "Money" => ColumnType::Decimal {
            precision: int_of(meta, "Precision")
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(2),
        },
        "Picklist" | "State" | "Status" => ColumnType::Choice {
            options: option_set
                .or_else(|| meta.get("OptionSet"))
                .map(options_of)
                .unwrap_or_default(),
        },
        "DateTime" if format.eq_ignore_ascii_case("DateOnly") => ColumnType::DateOnly,
        "DateTime" => ColumnType::DateTime,
        "Lookup" | "Owner" | "Customer" if targets.len() == 1 => ColumnType::Lookup {
            navigation: String::new(),
            target_set: String::new(),
        },
        "Lookup" | "Owner" | "Customer" => ColumnType::Unsupported {
            what: format!("{attribute_type} to {} tables", targets.len()),
        },
        other => ColumnType::Unsupported {
            what: if other.is_empty() {
                "unknown type".to_owned()
            } else {
                other.to_owned()
            },
        },
    };
    Attribute {
        column_type,
        attribute_type,
        targets,
        writable: meta
            .get("IsValidForUpdate")
            .and_then(Value::as_bool)
            .unwrap_or(true),
    }
}

/// What the metadata says about a mapped column.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnInfo {
    /// It exists, with this type; `writable` false for read-only columns.
    Found {
        /// Its type.
        column_type: ColumnType,
        /// `IsValidForUpdate`.
        writable: bool,
    },
    /// The table has no such column.
    Missing,
}

impl ColumnInfo {
    /// The type, when the column exists.
    #[must_use]
    pub fn column_type(&self) -> Option<&ColumnType> {
        match self {
            Self::Found { column_type, .. } => Some(column_type),
            Self::Missing => None,
        }
    }
}

impl Client {
    /// The metadata of `table.column`; [`ColumnInfo::Missing`] when there is no such column.
    ///
    /// # Errors
    /// Any failure but "not found".
    pub async fn column_info(&self, table: &str, column: &str) -> Result<ColumnInfo, Error> {
        let base =
            format!("EntityDefinitions(LogicalName='{table}')/Attributes(LogicalName='{column}')");
        let meta: Value = match self.get_json(&base).await {
            Ok(v) => v,
            Err(err) if err.is_not_found() => return Ok(ColumnInfo::Missing),
            Err(err) => return Err(err),
        };
        let cast = match meta.get("AttributeType").and_then(Value::as_str) {
            Some("Picklist") => Some("PicklistAttributeMetadata"),
            Some("State") => Some("StateAttributeMetadata"),
            Some("Status") => Some("StatusAttributeMetadata"),
            _ => None,
        };
        let option_set = match cast {
            Some(cast) => {
                let path = format!(
                    "{base}/Microsoft.Dynamics.CRM.{cast}?$select=LogicalName&$expand=OptionSet"
                );
                let v: Value = self.get_json(&path).await?;
                v.get("OptionSet").cloned()
            }
            None => None,
        };
        let mut attribute = parse_attribute(&meta, option_set.as_ref());
        if let ColumnType::Lookup { .. } = attribute.column_type {
            attribute.column_type = self.lookup_type(table, column, &attribute.targets).await?;
        }
        Ok(ColumnInfo::Found {
            column_type: attribute.column_type,
            writable: attribute.writable,
        })
    }

    /// A single-target lookup's navigation property and target entity set.
    async fn lookup_type(
        &self,
        table: &str,
        column: &str,
        targets: &[String],
    ) -> Result<ColumnType, Error> {
        let path = format!(
            "EntityDefinitions(LogicalName='{table}')/ManyToOneRelationships?$select=ReferencingEntityNavigationPropertyName,ReferencedEntity&$filter=ReferencingAttribute eq '{column}'"
        );
        let answer: Value = self.get_json(&path).await?;
        let navigation = answer
            .pointer("/value/0/ReferencingEntityNavigationPropertyName")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let target = targets.first().map(String::as_str).unwrap_or_default();
        let target_set = match self.table_info(target).await? {
            Some(info) => info.entity_set,
            None => None,
        };
        Ok(match (navigation, target_set) {
            (Some(navigation), Some(target_set)) => ColumnType::Lookup {
                navigation,
                target_set,
            },
            _ => ColumnType::Unsupported {
                what: "Lookup without a readable relationship".to_owned(),
            },
        })
    }
}

/// Column metadata read during a run, by table and column: each column is asked once.
#[derive(Debug, Clone, Default)]
pub struct ColumnCatalog {
    known: Arc<Mutex<HashMap<(String, String), ColumnInfo>>>,
}

impl ColumnCatalog {
    /// The metadata of `columns` of `table`, reading only what this catalog has not seen.
    ///
    /// # Errors
    /// Metadata could not be read.
    pub async fn columns(
        &self,
        client: &Client,
        table: &str,
        columns: &[&str],
    ) -> Result<BTreeMap<String, ColumnInfo>, Error> {
        let mut out = BTreeMap::new();
        for &column in columns {
            let key = (table.to_owned(), column.to_owned());
            let cached = self
                .known
                .lock()
                .ok()
                .and_then(|known| known.get(&key).cloned());
            let info = match cached {
                Some(info) => info,
                None => {
                    let info = client.column_info(table, column).await?;
                    if let Ok(mut known) = self.known.lock() {
                        known.insert(key, info.clone());
                    }
                    info
                }
            };
            out.insert(column.to_owned(), info);
        }
        Ok(out)
    }

    /// Forget what was read (a new run reads the schema again).
    pub fn clear(&self) {
        if let Ok(mut known) = self.known.lock() {
            known.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn metadata_of_each_kind_reads_as_its_type() {
        let text = json!({"AttributeType": "String", "MaxLength": 50, "IsValidForUpdate": true});
        assert_eq!(
            parse_attribute(&text, None).column_type,
            ColumnType::Text { max_len: 50 }
        );
        let date = json!({"AttributeType": "DateTime", "Format": "DateOnly"});
        assert_eq!(
            parse_attribute(&date, None).column_type,
            ColumnType::DateOnly
        );
        let stamp = json!({"AttributeType": "DateTime", "Format": "DateAndTime"});
        assert_eq!(
            parse_attribute(&stamp, None).column_type,
            ColumnType::DateTime
        );
        let money = json!({"AttributeType": "Money", "Precision": 4});
        assert_eq!(
            parse_attribute(&money, None).column_type,
            ColumnType::Decimal { precision: 4 }
        );
        let multi = json!({"AttributeType": "Virtual"});
        assert!(matches!(
            parse_attribute(&multi, None).column_type,
            ColumnType::Unsupported { .. }
        ));
        let computed =
            json!({"AttributeType": "String", "MaxLength": 160, "IsValidForUpdate": false});
        assert!(!parse_attribute(&computed, None).writable);
    }

    #[test]
    fn choice_options_carry_every_label() {
        let meta = json!({"AttributeType": "Picklist"});
        let set = json!({"Options": [
            {"Value": 1, "Label": {"UserLocalizedLabel": {"Label": "Male"},
                "LocalizedLabels": [{"Label": "Male", "LanguageCode": 1033}, {"Label": "Männlich", "LanguageCode": 1031}]}},
            {"Value": 2, "Label": {"UserLocalizedLabel": {"Label": "Female"}, "LocalizedLabels": []}}
        ]});
        let ColumnType::Choice { options } = parse_attribute(&meta, Some(&set)).column_type else {
            panic!("not a choice");
        };
        assert_eq!(options.len(), 2);
        assert_eq!(options[0].labels, vec!["Male", "Männlich"]);
        assert_eq!(options[1].value, 2);
    }

    #[test]
    fn lookups_to_several_tables_are_not_written() {
        let meta = json!({"AttributeType": "Customer", "Targets": ["account", "contact"]});
        assert!(matches!(
            parse_attribute(&meta, None).column_type,
            ColumnType::Unsupported { .. }
        ));
        let single = json!({"AttributeType": "Lookup", "Targets": ["account"]});
        assert!(matches!(
            parse_attribute(&single, None).column_type,
            ColumnType::Lookup { .. }
        ));
    }
}
