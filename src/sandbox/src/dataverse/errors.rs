//! The errors the emulated Web API answers with, in Dataverse's shape:
//! `{"error":{"code":"0x8004...","message":"..."}}` with the status the real service uses.
//! Codes come from the fact sheet (`docs/dataverse.md` §7) and the Web API docs.

use serde_json::{Value, json};

/// One error answer.
#[derive(Debug, Clone, PartialEq)]
pub struct DvError {
    /// HTTP status.
    pub status: u16,
    /// `error.code` (hex or empty).
    pub code: String,
    /// `error.message`.
    pub message: String,
}

impl DvError {
    /// Any error.
    #[must_use]
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// 400 for a malformed request or an unsupported query (OData errors carry code `0x0`).
    #[must_use]
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "0x0", message)
    }

    /// 400 validation error.
    #[must_use]
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(400, "0x80044331", message)
    }

    /// 400 from the OData reader: a literal of the wrong type in a write body, as the real
    /// service words it (`docs/dataverse.md` §11: mautic/mautic#4467, MarcusRisanger/Dataverse-API#30).
    #[must_use]
    pub fn payload(entity_set: &str, inner: &str) -> Self {
        Self::new(
            400,
            "0x80048d19",
            format!(
                "Error identified in Payload provided by the user for Entity :'{entity_set}', For more information on this error please follow this help link https://go.microsoft.com/fwlink/?linkid=2195293  ---->  InnerException : Microsoft.OData.ODataException: {inner}"
            ),
        )
    }

    /// 404: the record does not exist.
    #[must_use]
    pub fn not_found(entity: &str, id: &uuid::Uuid) -> Self {
        Self::new(
            404,
            "0x80040217",
            format!("{entity} With Id = {id} Does Not Exist"),
        )
    }

    /// 404: no such resource (unknown entity set, property or path).
    #[must_use]
    pub fn no_resource(path: &str) -> Self {
        Self::new(
            404,
            "0x8006088a",
            format!("Resource not found for the segment '{path}'."),
        )
    }

    /// 412 duplicate key on create.
    #[must_use]
    pub fn duplicate() -> Self {
        Self::new(
            412,
            "0x80040237",
            "A record with matching key values already exists.",
        )
    }

    /// 412 on a failed `If-Match`.
    #[must_use]
    pub fn version_mismatch() -> Self {
        Self::new(
            412,
            "0x80060882",
            "The version of the existing record doesn't match the RowVersion property provided.",
        )
    }

    /// An unknown property in a body or a query.
    #[must_use]
    pub fn unknown_property(entity: &str, name: &str) -> Self {
        Self::new(
            400,
            "0x80060888",
            format!(
                "Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{entity}'."
            ),
        )
    }

    /// The JSON body.
    #[must_use]
    pub fn body(&self) -> Value {
        json!({"error": {"code": self.code, "message": self.message}})
    }
}
