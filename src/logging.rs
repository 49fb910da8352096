//! Logging: `tracing` to stderr only (stdout carries the command's output), as text or JSON.
//! `--log-level` sets the default directive; `RUST_LOG` overrides it when set.

use tracing_subscriber::EnvFilter;

use crate::cli::{LogFormat, LogLevel};

/// Install the global subscriber. Calling it twice (tests) is harmless: the second call is ignored.
pub fn init(level: LogLevel, format: LogFormat, color: bool) {
    let directive = match level {
        LogLevel::Error => "audience_sync=error",
        LogLevel::Warn => "audience_sync=warn",
        LogLevel::Info => "audience_sync=info",
        LogLevel::Debug => "audience_sync=debug",
        LogLevel::Trace => "audience_sync=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directive));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(color).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
