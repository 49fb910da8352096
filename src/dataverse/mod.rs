//! The Dataverse (Dynamics 365) Web API client: token, OData queries and paging, `$batch`,
//! bulk actions, marketing lists, contacts and leads, the tool's own tables, and the schema
//! that `crm bootstrap` creates.
//!
//! - [`client`]: connection, headers, token, parallelism, retries; [`auth`]: the token.
//! - [`query`]: `$select`/`$filter` building; [`records`]: paging, writes, `$batch`, bulk actions;
//!   [`rows`]: typed rows read straight from a page's body.
//! - [`batch`]: the `$batch` wire format (pure).
//! - [`lists`], [`people`]: marketing lists and membership; contacts and leads.
//! - [`schema`]: the tool's CRM schema (one definition); [`tables`]: its Audience, Tag and Sync
//!   Run records and the lease; [`tag_links`]: Tag ↔ Contact/Lead links (and why they are N:N).
//! - [`metadata`]: `crm bootstrap` and `crm check`; [`columns`]: column types of mapped columns.
//!
//! ```no_run
//! # async fn demo() -> Result<(), audience_sync::dataverse::Error> {
//! use audience_sync::dataverse::Client;
//! use audience_sync::domain::MemberType;
//! use futures::TryStreamExt;
//! let client = Client::builder()
//!     .url("https://contoso.crm.dynamics.com")
//!     .tenant_id("00000000-0000-0000-0000-000000000001")
//!     .client_id("00000000-0000-0000-0000-000000000002")
//!     .client_secret(std::env::var("DATAVERSE_CLIENT_SECRET").unwrap_or_default().into())
//!     .build()?;
//! let mut pages = std::pin::pin!(client.all_people(MemberType::Contact, &["emailaddress1"]));
//! while let Some(page) = pages.try_next().await? {
//!     println!("{} contacts", page.len());
//! }
//! # Ok(()) }
//! ```

pub mod auth;
pub mod batch;
pub mod client;
pub mod columns;
pub mod error;
pub mod lists;
pub mod metadata;
pub mod people;
pub mod query;
pub mod records;
pub mod rows;
pub mod schema;
pub mod solution;
pub mod tables;
pub mod tag_links;

pub use client::{Builder, Client};
pub use error::Error;
