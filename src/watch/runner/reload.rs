//! The reconcile loop's config reload: a change notice re-reads the file; a valid new config
//! goes into force (every binding due), an invalid one is shown until fixed while the last good
//! config stays in force.

use std::sync::Arc;

use chrono::Utc;

use super::super::metrics::Reload;
use super::super::shared::lock;
use super::super::status::{ConfigError, Trigger};
use super::Loop;
use crate::config;

/// The status lines of a config that cannot be used.
fn describe_config_error(err: &config::Error) -> (String, Vec<config::Diagnostic>) {
    match err {
        config::Error::Invalid { path, diagnostics } => {
            let text = config::render_diagnostics(&path.display().to_string(), diagnostics);
            (text.trim_end().to_owned(), diagnostics.clone())
        }
        other => (crate::output::error_chain(other), Vec::new()),
    }
}

impl Loop {
    /// Re-read the config file after a change notice.
    pub(super) fn reload(&mut self) {
        let path = self.settings.path.clone();
        match config::load(&path) {
            Ok(loaded) if loaded.digest == self.config.digest => {
                let mut status = lock(&self.shared.status);
                if status.config.error.take().is_some() {
                    tracing::info!(path = %path.display(), "config file is valid again (the config in force)");
                }
                status.config.valid = true;
                drop(status);
                self.shared.metrics.set_config_valid(true);
            }
            Ok(loaded) => {
                for warning in &loaded.warnings {
                    tracing::warn!(
                        "{}:{}:{}: warning: {}",
                        path.display(),
                        warning.line,
                        warning.column,
                        warning.message
                    );
                }
                tracing::info!(path = %path.display(), digest = %loaded.digest, "config changed: reconciling every binding");
                let loaded = Arc::new(loaded);
                let now = Utc::now();
                {
                    let mut status = lock(&self.shared.status);
                    status.config.digest = Some(loaded.digest.clone());
                    status.config.loaded_at = Some(now);
                    status.config.valid = true;
                    status.config.error = None;
                }
                *lock(&self.shared.current) = loaded.clone();
                self.config = loaded;
                self.shared
                    .metrics
                    .record_reload(Reload::Applied, now.timestamp_millis() as f64 / 1000.0);
                self.sync_slots(Trigger::Config);
            }
            Err(err) => {
                let (message, diagnostics) = describe_config_error(&err);
                tracing::error!(
                    "config change rejected, the last good config stays in force:\n{message}"
                );
                let now = Utc::now();
                let mut status = lock(&self.shared.status);
                let since = status
                    .config
                    .error
                    .as_ref()
                    .map_or(now, |previous| previous.since);
                status.config.valid = false;
                status.config.error = Some(ConfigError {
                    since,
                    message,
                    diagnostics,
                });
                drop(status);
                self.shared
                    .metrics
                    .record_reload(Reload::Rejected, now.timestamp_millis() as f64 / 1000.0);
            }
        }
    }
}
