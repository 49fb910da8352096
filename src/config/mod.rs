//! The config file: its model, loading with line:column, validation, and the JSON schema.

pub mod binding;
pub mod model;
pub mod template;
pub mod yaml;

pub use binding::{
    AudienceSelector, Binding, FieldMapping, ListSelector, ListTarget, Names, RemovalLimit,
    TagRules, resolve,
};
pub use model::*;
