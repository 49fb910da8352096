//! Both API clients, built from a loaded config (`${VAR}`s resolved only here, when a command
//! connects), and the Mailchimp-only connection of the commands that need no full config
//! (`audiences`, `init`): from a config's `mailchimp` section or from `MAILCHIMP_API_KEY` /
//! `MAILCHIMP_BASE_URL`.

use std::path::{Path, PathBuf};

use secrecy::SecretString;

use crate::config;
use crate::dataverse::columns::ColumnCatalog;
use crate::dataverse::tables::ToolTables;
use crate::{dataverse, mailchimp};

/// Why the clients cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config's connection settings cannot be used (an unset `${VAR}`).
    #[error(transparent)]
    Config(#[from] config::Error),
    /// The Mailchimp settings are refused (a key without a data centre, a bad URL).
    #[error("cannot connect to Mailchimp")]
    Mailchimp(#[source] Box<mailchimp::Error>),
    /// The Dataverse settings are refused.
    #[error("cannot connect to the CRM")]
    Dataverse(#[from] dataverse::Error),
    /// The config file named for the Mailchimp connection cannot be read.
    #[error("cannot read config `{path}`")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not YAML.
    #[error("config `{path}` is not valid YAML")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// Where and why.
        #[source]
        source: config::yaml::SyntaxError,
    },
    /// The config file has no `mailchimp` section.
    #[error("config `{path}` has no `mailchimp` section")]
    NoSection {
        /// The file.
        path: PathBuf,
    },
    /// The `mailchimp` section does not have the config's shape.
    #[error("the `mailchimp` section of `{path}` is invalid")]
    Section {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A `${VAR}` of the `mailchimp` section is not set.
    #[error("{setting} refers to `${{{name}}}`, which is not set")]
    Unset {
        /// The setting (`` `mailchimp.api_key` ``).
        setting: &'static str,
        /// The variable.
        name: String,
    },
}

impl From<mailchimp::Error> for Error {
    fn from(err: mailchimp::Error) -> Self {
        Self::Mailchimp(Box::new(err))
    }
}

/// The clients a binding is observed and applied with.
#[derive(Clone)]
pub struct Clients {
    /// Mailchimp.
    pub mailchimp: mailchimp::Client,
    /// Dataverse.
    pub dataverse: dataverse::Client,
    /// The tool's own CRM tables.
    pub tables: ToolTables,
    /// Column metadata of mapped columns, read once per run.
    pub columns: ColumnCatalog,
}

impl Clients {
    /// Build both clients from a loaded config (resolving its `${VAR}`s).
    ///
    /// # Errors
    /// A variable is not set, or a setting cannot be used.
    pub fn connect(loaded: &config::Loaded) -> Result<Self, Error> {
        let mc = loaded.mailchimp()?;
        let mailchimp = mailchimp::Client::builder()
            .api_key(mc.api_key)
            .base_url(mc.base_url)
            .max_concurrency(mc.max_connections.unwrap_or(mailchimp::DEFAULT_CONNECTIONS))
            .build()?;
        let dataverse = dataverse::Client::from_settings(loaded.dataverse()?)?;
        let tables = ToolTables::new(
            dataverse.clone(),
            dataverse::schema::Schema::new(&loaded.names),
        );
        Ok(Self {
            mailchimp,
            dataverse,
            tables,
            columns: ColumnCatalog::default(),
        })
    }

    /// Check that both services answer with these credentials (one cheap request each, at the
    /// same time). The reason names the service; it carries no secret.
    ///
    /// # Errors
    /// The first service that did not answer, with its reason.
    pub async fn probe(&self) -> Result<(), String> {
        let (mailchimp, dataverse) =
            futures::join!(self.mailchimp.ping(), self.dataverse.who_am_i());
        mailchimp.map_err(|err| format!("Mailchimp: {}", crate::output::error_chain(&err)))?;
        dataverse.map_err(|err| format!("Dataverse: {}", crate::output::error_chain(&err)))?;
        Ok(())
    }
}

/// A Mailchimp client from the `mailchimp` section of the config at `config` (read without
/// validating the rest of the file), or, without a config, from `MAILCHIMP_API_KEY` and
/// `MAILCHIMP_BASE_URL`.
///
/// # Errors
/// The file cannot be read or has no usable `mailchimp` section, a `${VAR}` is not set, or the
/// client refuses the settings.
pub fn mailchimp_only(config: Option<&Path>) -> Result<mailchimp::Client, Error> {
    let mut budget = mailchimp::DEFAULT_CONNECTIONS;
    let (key, base_url) = match config {
        Some(path) => {
            let section = mailchimp_section(path)?;
            budget = section.max_connections.map_or(budget, usize::from);
            let key = expand(&section.api_key, "`mailchimp.api_key`")?;
            let base = section
                .base_url
                .as_deref()
                .map(|u| expand(u, "`mailchimp.base_url`"))
                .transpose()?;
            (key, base)
        }
        None => {
            let key = std::env::var("MAILCHIMP_API_KEY").unwrap_or_default();
            let base = std::env::var("MAILCHIMP_BASE_URL").ok();
            (key, base)
        }
    };
    Ok(mailchimp::Client::builder()
        .api_key(SecretString::from(key))
        .base_url(base_url)
        .max_concurrency(budget)
        .build()?)
}

fn mailchimp_section(path: &Path) -> Result<config::MailchimpConfig, Error> {
    let path_buf = || path.to_owned();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path_buf(),
        source,
    })?;
    let value = config::yaml::parse_value(&text).map_err(|source| Error::Yaml {
        path: path_buf(),
        source,
    })?;
    let section = value
        .get("mailchimp")
        .cloned()
        .ok_or_else(|| Error::NoSection { path: path_buf() })?;
    serde_json::from_value(section).map_err(|source| Error::Section {
        path: path_buf(),
        source,
    })
}

/// Expand `${VAR}` references from the environment.
fn expand(text: &str, setting: &'static str) -> Result<String, Error> {
    config::env::expand(text, &config::env::process_env).map_err(|missing| Error::Unset {
        setting,
        name: missing.name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_expand_and_unset_ones_are_named() {
        let path = std::env::var("PATH").unwrap_or_default();
        assert_eq!(expand("${PATH}", "x").unwrap(), path);
        let err = expand("${AUDIENCE_SYNC_SURELY_UNSET_VAR}", "`mailchimp.api_key`").unwrap_err();
        assert!(err.to_string().contains("AUDIENCE_SYNC_SURELY_UNSET_VAR"));
    }
}
