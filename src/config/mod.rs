//! The config file: its model, loading with line:column, validation, and the JSON schema.
//!
//! [`load`] reads and validates a file (all errors at once, each with `file:line:column`) and
//! resolves bindings; `${VAR}` references in the connection settings are resolved only when a
//! command connects ([`Loaded::mailchimp`], [`Loaded::dataverse`]), so that `validate` (without `--check-env`)
//! and `plan` of a saved file never need secrets they do not use.

pub mod binding;
pub mod column_kinds;
pub mod env;
pub mod model;
pub mod schema;
pub mod starter;
pub mod template;
pub mod validate;
pub mod yaml;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use sha2::{Digest, Sha256};

pub use binding::{
    AudienceSelector, Binding, FieldMapping, ListSelector, ListTarget, Names, RemovalLimit,
    TagRules, resolve, resolve_names,
};
pub use model::*;
pub use validate::{Diagnostic, Severity};

/// Config failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read config `{path}`")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file has errors (see `diagnostics`, printed by [`render_diagnostics`]).
    #[error("config `{path}` is invalid ({count} error{s})", count = error_count(diagnostics), s = if error_count(diagnostics) == 1 { "" } else { "s" })]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every error and warning found.
        diagnostics: Vec<Diagnostic>,
    },
    /// A `${VAR}` reference names a variable that is not set.
    #[error(
        "{file}:{line}:{column}: environment variable `{name}` is not set (needed by `{setting}`)"
    )]
    MissingEnv {
        /// The file.
        file: String,
        /// Line of the setting.
        line: usize,
        /// Column of the setting.
        column: usize,
        /// The setting (`mailchimp.api_key`).
        setting: String,
        /// The variable.
        name: String,
    },
}

fn error_count(diagnostics: &[Diagnostic]) -> usize {
    diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count()
}

/// A loaded, valid config.
#[derive(Debug)]
pub struct Loaded {
    /// Where it was read from.
    pub path: PathBuf,
    /// The file as written.
    pub config: Config,
    /// Bindings with defaults applied.
    pub bindings: Vec<Binding>,
    /// CRM schema names with defaults applied.
    pub names: Names,
    /// Warnings found while validating.
    pub warnings: Vec<Diagnostic>,
    /// SHA-256 of the file's bytes (saved plans refer to it).
    pub digest: String,
    positions: yaml::Positions,
}

/// The Mailchimp connection, secrets resolved.
#[derive(Debug, Clone)]
pub struct MailchimpSettings {
    /// The API key.
    pub api_key: SecretString,
    /// The API root override.
    pub base_url: Option<String>,
    /// Simultaneous requests at most (`mailchimp.max_connections`; the client's default when unset).
    pub max_connections: Option<usize>,
}

/// The Dataverse connection, secrets resolved: the client's own settings.
pub use crate::dataverse::client::Settings as DataverseSettings;

/// Read and validate a config file (without requiring its `${VAR}`s to be set).
///
/// # Errors
/// The file cannot be read, or it has errors.
pub fn load(path: &Path) -> Result<Loaded, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let checked = validate::check_bytes(
        &bytes,
        &validate::CheckOptions {
            check_env: false,
            lookup: &env::process_env,
        },
    );
    finish_load(path, &bytes, checked)
}

/// Validate a config held in memory; `path` is only used in messages.
///
/// # Errors
/// The text has errors.
pub fn load_str(path: &Path, text: &str) -> Result<Loaded, Error> {
    let checked = validate::check(
        text,
        &validate::CheckOptions {
            check_env: false,
            lookup: &env::process_env,
        },
    );
    finish_load(path, text.as_bytes(), checked)
}

fn finish_load(path: &Path, bytes: &[u8], checked: validate::Checked) -> Result<Loaded, Error> {
    let has_errors = checked.has_errors();
    match checked.config {
        Some(config) if !has_errors => {
            let bindings = resolve(&config);
            let names = resolve_names(config.dataverse.names.as_ref());
            Ok(Loaded {
                path: path.to_owned(),
                bindings,
                names,
                config,
                warnings: checked.diagnostics,
                digest: hex::encode(Sha256::digest(bytes)),
                positions: checked.positions,
            })
        }
        _ => Err(Error::Invalid {
            path: path.to_owned(),
            diagnostics: checked.diagnostics,
        }),
    }
}

impl Loaded {
    fn expand(&self, pointer: &str, value: &str) -> Result<String, Error> {
        env::expand(value, &env::process_env).map_err(|missing| {
            let pos = self.positions.value(pointer);
            Error::MissingEnv {
                file: self.path.display().to_string(),
                line: pos.line,
                column: pos.column,
                setting: pointer.trim_start_matches('/').replace('/', "."),
                name: missing.name,
            }
        })
    }

    /// The Mailchimp connection, with `${VAR}`s resolved from the environment.
    ///
    /// # Errors
    /// A referenced variable is not set.
    pub fn mailchimp(&self) -> Result<MailchimpSettings, Error> {
        let mc = &self.config.mailchimp;
        Ok(MailchimpSettings {
            api_key: SecretString::from(self.expand("/mailchimp/api_key", &mc.api_key)?),
            base_url: mc
                .base_url
                .as_deref()
                .map(|u| self.expand("/mailchimp/base_url", u))
                .transpose()?,
            max_connections: mc.max_connections.map(usize::from),
        })
    }

    /// The Dataverse connection, with `${VAR}`s resolved from the environment.
    ///
    /// # Errors
    /// A referenced variable is not set.
    pub fn dataverse(&self) -> Result<DataverseSettings, Error> {
        let dv = &self.config.dataverse;
        Ok(DataverseSettings {
            url: self.expand("/dataverse/url", &dv.url)?,
            tenant_id: self.expand("/dataverse/tenant_id", &dv.tenant_id)?,
            client_id: self.expand("/dataverse/client_id", &dv.client_id)?,
            client_secret: SecretString::from(
                self.expand("/dataverse/client_secret", &dv.client_secret)?,
            ),
            token_url: dv
                .token_url
                .as_deref()
                .map(|u| self.expand("/dataverse/token_url", u))
                .transpose()?,
            api_version: dv.api_version.clone().unwrap_or_else(|| "v9.2".to_owned()),
        })
    }

    /// Where binding `index` maps member field `source`: `file:line:column` of its key in the
    /// binding's `fields.map`, else in `defaults.fields.map`; `None` for a built-in mapping.
    #[must_use]
    pub fn mapping_position(&self, index: usize, source: &str) -> Option<String> {
        let in_map = |fields: Option<&model::FieldsConfig>| {
            fields
                .and_then(|f| f.map.as_ref())
                .is_some_and(|m| m.contains_key(source))
        };
        let binding = self.config.bindings.get(index)?;
        let pointer = if in_map(binding.fields.as_ref()) {
            format!("/bindings/{index}/fields/map/{}", yaml::escape(source))
        } else if in_map(
            self.config
                .defaults
                .as_ref()
                .and_then(|d| d.fields.as_ref()),
        ) {
            format!("/defaults/fields/map/{}", yaml::escape(source))
        } else {
            return None;
        };
        let pos = self.positions.key(&pointer);
        Some(format!(
            "{}:{}:{}",
            self.path.display(),
            pos.line,
            pos.column
        ))
    }

    /// The bindings named (all when `only` is empty).
    ///
    /// # Errors
    /// A name that no binding has, with the names there are.
    pub fn select_bindings(&self, only: &[String]) -> Result<Vec<&Binding>, String> {
        if only.is_empty() {
            return Ok(self.bindings.iter().collect());
        }
        let names: Vec<String> = self.bindings.iter().map(|b| b.name.clone()).collect();
        only.iter()
            .map(|name| {
                self.bindings
                    .iter()
                    .find(|b| &b.name == name)
                    .ok_or_else(|| {
                        let hint = validate::closest(name, &names)
                            .map(|s| format!("; did you mean `{s}`?"))
                            .unwrap_or_default();
                        format!(
                            "no binding is named `{name}`{hint} (bindings: {})",
                            names.join(", ")
                        )
                    })
            })
            .collect()
    }
}

/// Diagnostics as a compiler prints them: `file:line:column: error: message` and an indented
/// `help:` line.
#[must_use]
pub fn render_diagnostics(file: &str, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        let severity = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(
            out,
            "{file}:{}:{}: {severity}: {}",
            d.line, d.column, d.message
        );
        if let Some(help) = &d.help {
            let _ = writeln!(out, "  help: {help}");
        }
    }
    out
}
