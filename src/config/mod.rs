//! The config file: its model, loading with line:column, validation, and the JSON schema.

pub mod model;
pub mod yaml;

pub use model::*;
