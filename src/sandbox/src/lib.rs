//! Faithful local emulators of the Mailchimp Marketing API v3 and the Dataverse Web API, served
//! by one axum listener under their real path prefixes: Mailchimp under `/3.0`, Dataverse under
//! `/api/data/v9.2`, the Entra ID token endpoint under `/{tenant}/oauth2/v2.0/token`.
//! Sandbox-only paths (request counters, fault settings) live under `/_sandbox/`.
//!
//! They serve the new user (`demo`, `sandbox`), the tests (every client test talks HTTP to them)
//! and the benchmarks (generated audiences, request counters).
//!
//! This package imports nothing of the client it judges: its member statuses, seed formats and
//! schemas are its own, written from the services' documentation, so a mistake cannot hide on
//! both sides at once. The one thing it takes from outside is the custom schema the Dataverse
//! seed's `bootstrapped` mode installs ([`Options::tool_schema`]), as a value.
//!
//! Both halves use the same words: `routes`, `model` / `store`, `render`, `errors`, `seed`; fault
//! injection is shared ([`faults`]).

pub mod dataverse;
pub mod faults;
pub mod mailchimp;
mod seed;

pub use seed::{GenerateSpec, Seed};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Sandbox failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound.
    #[error("cannot listen on `{addr}`")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The seed file could not be read.
    #[error("cannot read seed file `{path}`")]
    ReadSeed {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The seed file is not valid.
    #[error("seed file `{path}` is invalid: {message}")]
    InvalidSeed { path: PathBuf, message: String },
    /// `--generate` is not of the form `members=N,tags=T,seed=S[,audiences=K]`.
    #[error("invalid --generate `{spec}`: {message}")]
    InvalidGenerate { spec: String, message: String },
    /// The state directory could not be read or written.
    #[error("sandbox state in `{path}`: {message}")]
    State { path: PathBuf, message: String },
}

/// How to start a sandbox.
#[derive(Debug, Default)]
pub struct Options {
    /// Where to listen (port 0 picks a free port). Default `127.0.0.1:0`.
    pub listen: Option<SocketAddr>,
    /// Explicit data.
    pub seed: Seed,
    /// Generated data, added to the seed.
    pub generate: Option<GenerateSpec>,
    /// Keep the data here between runs (loaded at start when present, saved on change).
    pub state_dir: Option<PathBuf>,
    /// The custom schema the Dataverse seed's `bootstrapped` mode installs (the schema a
    /// client's bootstrap would create); required when that mode is asked for.
    pub tool_schema: Option<dataverse::ToolSchema>,
}

/// A running sandbox. Dropping it stops the server.
pub struct Sandbox {
    addr: SocketAddr,
    /// The Mailchimp half's state (tests inspect and change it directly).
    pub mailchimp: Arc<mailchimp::State>,
    /// The Dataverse half's state.
    pub dataverse: Arc<dataverse::State>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Sandbox {
    /// Build both halves and start serving.
    ///
    /// # Errors
    /// The address cannot be bound, or the state directory cannot be read.
    pub async fn start(options: Options) -> Result<Self, Error> {
        let mailchimp = Arc::new(mailchimp::State::new(
            &options.seed.mailchimp,
            options.generate,
            options.state_dir.as_deref(),
        )?);
        let dataverse = Arc::new(dataverse::State::new(
            &options.seed.dataverse,
            options.tool_schema.as_ref(),
            options.generate,
            options.state_dir.as_deref(),
        )?);
        let addr = options
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        let base_url = format!("http://{addr}");
        mailchimp.set_base_url(&base_url);
        dataverse.set_base_url(&base_url);
        let app = axum::Router::new()
            .merge(mailchimp::router(Arc::clone(&mailchimp)))
            .merge(dataverse::router(Arc::clone(&dataverse)));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(err) = serve.await {
                tracing::error!(error = %err, "sandbox server stopped");
            }
        });
        Ok(Self {
            addr,
            mailchimp,
            dataverse,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The address it listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything a config or script needs, as `KEY=value` pairs (the lines `sandbox` prints).
    #[must_use]
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = self.mailchimp.env(&self.base_url());
        env.extend(self.dataverse.env(&self.base_url()));
        env
    }

    /// Stop serving and wait for the server task to end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
