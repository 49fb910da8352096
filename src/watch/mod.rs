//! `watch`: the reconciler as a server.
//!
//! [`start`] loads the config (a config that is invalid at start is an error, as Prometheus
//! does; an invalid *edit* later keeps the last good config in force), then runs:
//! - the reconcile loop (`runner.rs`): every binding that is not suspended at start, on each
//!   (debounced) change of the config file ([`config_watch`]), every interval with jitter, and
//!   retries with backoff ([`schedule`]);
//! - the HTTP server (`server.rs`): `/healthz`, `/readyz`, `/status`, `/metrics` ([`metrics`]),
//!   `POST /reconcile`;
//! - the signal handlers (`signals.rs`): SIGTERM/SIGINT stop, SIGHUP reconciles now.
//!
//! The work itself is behind the [`Reconciler`] trait: the loop decides *when*, the reconciler
//! *how* ([`live`] is the real one: observe, plan, apply under the lease). `--once` runs every binding once without server or file watch, and says whether
//! anything failed.
//!
//! # Guarantees
//! - Shutdown (a stop signal, or [`Running::shutdown`]) starts no new run, gives running ones
//!   `shutdown_grace`, then cancels them and gives them `cancel_grace`; [`Running::wait`] then
//!   returns [`Outcome::Success`] (the command maps it to an exit code).
//! - The bearer token, when set, is required by `/status`, `/metrics` and `/reconcile`, and is
//!   never logged.

pub mod config_watch;
pub mod live;
pub mod metrics;
pub mod reconciler;
mod runner;
pub mod schedule;
mod server;
mod shared;
mod signals;
pub mod status;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use secrecy::SecretString;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use live::LiveReconciler;
pub use reconciler::{ApiCalls, Holder, Mode, Reconciler, RunError, RunOutcome};

/// How a `watch` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Shut down as asked, or (`once`) every binding ran without failure.
    Success,
    /// `once` saw a run fail, or the loop itself died.
    Failure,
}

/// `watch` failures that stop it from starting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config cannot be used at start (see [`crate::config::render_diagnostics`]).
    #[error("cannot start with config `{path}`")]
    Config {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: crate::config::Error,
    },
    /// A setting is out of range.
    #[error("`{setting}` must be longer than zero")]
    ZeroDuration {
        /// The setting.
        setting: &'static str,
    },
    /// The token variable named by `--token-env` is unset or empty.
    #[error("environment variable `{name}` (named by `--token-env`) is not set or empty")]
    TokenEnv {
        /// The variable.
        name: String,
    },
    /// The status server cannot listen.
    #[error("cannot listen on `{addr}`")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The config file cannot be watched.
    #[error("cannot watch the config file for changes")]
    Watch(#[source] config_watch::Error),
    /// The signal handlers cannot be installed.
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
}

/// Everything `watch` needs to know.
#[derive(Debug, Clone)]
pub struct Options {
    /// The config file.
    pub config: PathBuf,
    /// Apply, or only report drift.
    pub mode: Mode,
    /// Time between runs of a healthy binding.
    pub interval: Duration,
    /// First wait after a failure (doubles up to `interval`; resets on success).
    pub retry_interval: Duration,
    /// Spread of each wait (fraction, `0.1` = ±10 %).
    pub jitter: f64,
    /// Where the HTTP server listens (`None`: no server).
    pub listen: Option<SocketAddr>,
    /// Run every binding once and return (no server, no file watch).
    pub once: bool,
    /// Bearer token for `/status`, `/metrics` and `/reconcile`.
    pub token: Option<SecretString>,
    /// Watch the config file for changes.
    pub watch_config: bool,
    /// Quiet time that ends a burst of file events.
    pub debounce: Duration,
    /// Bindings reconciled at once (the clients' own limits still apply inside each run).
    pub max_parallel: usize,
    /// At shutdown, how long running passes may take to finish.
    pub shutdown_grace: Duration,
    /// Then, after their cancellation, how long they may take to return.
    pub cancel_grace: Duration,
    /// How long a `/readyz` probe result is reused.
    pub probe_ttl: Duration,
    /// How long a probe may take.
    pub probe_timeout: Duration,
    /// Install SIGTERM/SIGINT/SIGHUP handlers (the binary does; tests and embedders may not).
    pub signals: bool,
}

impl Options {
    /// Defaults for the config at `config`: apply mode, 15 min interval, 30 s retry, ±10 %
    /// jitter, server on `127.0.0.1:9464`, file watch with a 300 ms debounce, 2 bindings at
    /// once, 15 s + 10 s shutdown (within Kubernetes' default 30 s grace period), probes cached
    /// 10 s with a 5 s timeout, no signal handlers.
    #[must_use]
    pub fn new(config: PathBuf) -> Self {
        Self {
            config,
            mode: Mode::Apply,
            interval: Duration::from_secs(15 * 60),
            retry_interval: Duration::from_secs(30),
            jitter: 0.1,
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            once: false,
            token: None,
            watch_config: true,
            debounce: Duration::from_millis(300),
            max_parallel: 2,
            shutdown_grace: Duration::from_secs(15),
            cancel_grace: Duration::from_secs(10),
            probe_ttl: Duration::from_secs(10),
            probe_timeout: Duration::from_secs(5),
            signals: false,
        }
    }

    /// The bearer token from the environment variable `name` (`--token-env`).
    ///
    /// # Errors
    /// The variable is unset or empty: an error, not a server open to anyone.
    pub fn token_from_env(name: &str) -> Result<SecretString, Error> {
        match std::env::var(name) {
            Ok(value) if !value.trim().is_empty() => {
                Ok(SecretString::from(value.trim().to_owned()))
            }
            _ => Err(Error::TokenEnv {
                name: name.to_owned(),
            }),
        }
    }

    fn check(&self) -> Result<(), Error> {
        if self.interval.is_zero() {
            return Err(Error::ZeroDuration {
                setting: "--interval",
            });
        }
        if self.retry_interval.is_zero() {
            return Err(Error::ZeroDuration {
                setting: "--retry-interval",
            });
        }
        Ok(())
    }
}

/// A started `watch`.
#[derive(Debug)]
pub struct Running {
    addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    loop_task: JoinHandle<Outcome>,
    server_task: Option<JoinHandle<()>>,
    server_stop: CancellationToken,
    signal_task: Option<JoinHandle<()>>,
    _watch: Option<config_watch::ConfigWatch>,
}

impl Running {
    /// Where the HTTP server listens (the real port when `listen` had port 0).
    #[must_use]
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// Ask for shutdown, as SIGTERM does.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Wait until the loop is over (shutdown, or every binding ran once with `once`), then stop
    /// the server. Success unless `once` saw a failure, or the loop itself died.
    pub async fn wait(mut self) -> Outcome {
        let status = match (&mut self.loop_task).await {
            Ok(status) => status,
            Err(err) => {
                tracing::error!(error = %err, "the reconcile loop died");
                Outcome::Failure
            }
        };
        self.server_stop.cancel();
        if let Some(server) = self.server_task.take() {
            if tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .is_err()
            {
                tracing::warn!("the status server did not stop within 5 s");
            }
        }
        if let Some(signals) = self.signal_task.take() {
            signals.abort();
        }
        tracing::info!("watch stopped");
        status
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.server_stop.cancel();
        if let Some(signals) = &self.signal_task {
            signals.abort();
        }
    }
}

/// Load the config, start the loop, the server, the file watch and the signal handlers.
///
/// # Errors
/// Options out of range, a config that cannot be used, an address that cannot be bound, a file
/// that cannot be watched, signal handlers that cannot be installed.
pub async fn start(options: Options, reconciler: Arc<dyn Reconciler>) -> Result<Running, Error> {
    options.check()?;
    let loaded = crate::config::load(&options.config).map_err(|source| Error::Config {
        path: options.config.clone(),
        source,
    })?;
    for warning in &loaded.warnings {
        tracing::warn!(
            "{}:{}:{}: warning: {}",
            options.config.display(),
            warning.line,
            warning.column,
            warning.message
        );
    }
    let loaded = Arc::new(loaded);

    let now = Utc::now();
    let mut document = status::Status::new(options.config.display().to_string(), options.mode);
    document.config.digest = Some(loaded.digest.clone());
    document.config.loaded_at = Some(now);
    document.config.valid = true;
    let metrics = metrics::Metrics::new(options.mode);
    metrics.record_reload(
        metrics::Reload::Applied,
        now.timestamp_millis() as f64 / 1000.0,
    );

    let shutdown = CancellationToken::new();
    let cut = CancellationToken::new();
    let (commands_tx, commands_rx) = mpsc::channel(16);
    let shared = Arc::new(shared::Shared::new(
        document,
        metrics,
        loaded.clone(),
        commands_tx.clone(),
        options.token.clone(),
        reconciler,
        shutdown.clone(),
        options.probe_ttl,
        options.probe_timeout,
    ));

    let (watch, changes) = if options.watch_config && !options.once {
        let (watch, changes) =
            config_watch::watch(&options.config, options.debounce).map_err(Error::Watch)?;
        (Some(watch), Some(changes))
    } else {
        (None, None)
    };

    let server_stop = CancellationToken::new();
    let (addr, server_task) = match options.listen.filter(|_| !options.once) {
        Some(listen) => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|source| Error::Listen {
                    addr: listen,
                    source,
                })?;
            let addr = listener.local_addr().map_err(|source| Error::Listen {
                addr: listen,
                source,
            })?;
            if !addr.ip().is_loopback() && options.token.is_none() {
                tracing::warn!(%addr, "status server listens beyond loopback without a bearer token (--token-env)");
            }
            tracing::info!(%addr, "status server listening");
            let router = server::router(shared.clone());
            let stop = server_stop.clone();
            let task = tokio::spawn(async move {
                if let Err(err) = server::serve(listener, router, stop).await {
                    tracing::error!(error = %err, "status server failed");
                }
            });
            (Some(addr), Some(task))
        }
        None => (None, None),
    };

    let signal_task = if options.signals {
        Some(signals::spawn(shutdown.clone(), cut.clone(), commands_tx).map_err(Error::Signals)?)
    } else {
        None
    };

    let settings = runner::Settings {
        path: options.config.clone(),
        mode: options.mode,
        policy: schedule::Policy {
            interval: options.interval,
            retry_interval: options.retry_interval,
            jitter: options.jitter,
        },
        once: options.once,
        max_parallel: options.max_parallel,
        shutdown_grace: options.shutdown_grace,
        cancel_grace: options.cancel_grace,
    };
    let the_loop = runner::Loop::new(
        shared,
        settings,
        loaded,
        commands_rx,
        changes,
        shutdown.clone(),
        cut,
    );
    let loop_task = tokio::spawn(the_loop.run());
    Ok(Running {
        addr,
        shutdown,
        loop_task,
        server_task,
        server_stop,
        signal_task,
        _watch: watch,
    })
}

/// [`start`], then [`Running::wait`].
///
/// # Errors
/// As [`start`].
pub async fn run(options: Options, reconciler: Arc<dyn Reconciler>) -> Result<Outcome, Error> {
    Ok(start(options, reconciler).await?.wait().await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_intervals_are_refused() {
        let mut options = Options::new(PathBuf::from("sync.yaml"));
        options.interval = Duration::ZERO;
        assert!(matches!(
            options.check(),
            Err(Error::ZeroDuration {
                setting: "--interval"
            })
        ));
    }
}
