//! What the loop and the HTTP server share: the status document, the metrics, the config in
//! force, the command channel into the loop, and the cached readiness probe.
//!
//! Locks are std mutexes held only to copy or update a field, never across an `.await`
//! (the probe cache, which is held across the probe, is a tokio mutex).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use secrecy::SecretString;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
use super::reconciler::Reconciler;
use super::status::Status;
use crate::config::Loaded;

/// A request to the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Reconcile now: one binding, or every binding that is not suspended.
    Reconcile {
        /// The binding, or all.
        binding: Option<String>,
    },
}

/// The cached answer of the last probe.
#[derive(Debug, Default)]
pub struct ProbeCache {
    last: Option<(Instant, String, Result<(), String>)>,
}

/// State shared by the loop and the server.
pub struct Shared {
    /// The `/status` document.
    pub status: Mutex<Status>,
    /// The `/metrics` registry.
    pub metrics: Metrics,
    /// The config in force (the last good one).
    pub current: Mutex<Arc<Loaded>>,
    /// Into the loop.
    pub commands: mpsc::Sender<Command>,
    /// Bearer token for `/status`, `/metrics` and `/reconcile`.
    pub token: Option<SecretString>,
    /// Does the work (and the probe).
    pub reconciler: Arc<dyn Reconciler>,
    /// Cancelled when shutdown begins.
    pub shutdown: CancellationToken,
    /// How long a probe result is reused.
    pub probe_ttl: Duration,
    /// How long a probe may take.
    pub probe_timeout: Duration,
    probe: tokio::sync::Mutex<ProbeCache>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

/// Lock a std mutex, recovering the data of a poisoned one (a panicking holder cannot leave
/// these documents half-written in a way worse than stale).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Shared {
    /// Assemble the shared state.
    #[allow(clippy::too_many_arguments)] // plain constructor of a plain struct
    pub fn new(
        status: Status,
        metrics: Metrics,
        current: Arc<Loaded>,
        commands: mpsc::Sender<Command>,
        token: Option<SecretString>,
        reconciler: Arc<dyn Reconciler>,
        shutdown: CancellationToken,
        probe_ttl: Duration,
        probe_timeout: Duration,
    ) -> Self {
        Self {
            status: Mutex::new(status),
            metrics,
            current: Mutex::new(current),
            commands,
            token,
            reconciler,
            shutdown,
            probe_ttl,
            probe_timeout,
            probe: tokio::sync::Mutex::new(ProbeCache::default()),
        }
    }

    /// The config in force.
    pub fn current(&self) -> Arc<Loaded> {
        lock(&self.current).clone()
    }

    /// Probe both APIs with the config in force, reusing a result younger than `probe_ttl` for
    /// the same config. Concurrent callers wait for one probe.
    pub async fn probe(&self) -> Result<(), String> {
        let config = self.current();
        let mut cache = self.probe.lock().await;
        if let Some((at, digest, result)) = &cache.last {
            if at.elapsed() < self.probe_ttl && *digest == config.digest {
                return result.clone();
            }
        }
        let digest = config.digest.clone();
        let result =
            match tokio::time::timeout(self.probe_timeout, self.reconciler.probe(config)).await {
                Ok(result) => result,
                Err(_) => Err(format!(
                    "no answer within {} s",
                    self.probe_timeout.as_secs_f64()
                )),
            };
        cache.last = Some((Instant::now(), digest, result.clone()));
        result
    }
}
