//! The Dataverse (Dynamics 365) Web API client: token, OData queries and paging, `$batch`,
//! bulk actions, marketing lists, contacts and leads, the tool's own tables, and the schema
//! that `crm bootstrap` creates.

pub mod auth;
pub mod batch;
pub mod client;
pub mod error;
pub mod lists;
pub mod metadata;
pub mod people;
pub mod query;
pub mod records;
pub mod schema;
pub mod tables;
pub mod tag_links;

pub use client::{Builder, Client};
pub use error::Error;
