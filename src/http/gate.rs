//! The write gate: a run that holds a lease does its writes inside [`guarded`], and once the
//! lease is lost every request of that task is refused before it is sent ([`check`]) and no
//! request is retried ([`open`]). The gate is task-local, so only the task doing the run's
//! writes is stopped (the heartbeat and other bindings' runs are not).
//!
//! The lease's own requests run inside [`priority`]: they skip the client's parallelism
//! limiter, so a renewal never queues behind the run's long `$batch` writes.

use std::future::Future;
use std::sync::Arc;

tokio::task_local! {
    static GATE: Gate;
    static PRIORITY: ();
}

/// Run `work` with its requests ahead of the parallelism limiter (see the module doc).
pub async fn priority<F: Future>(work: F) -> F::Output {
    PRIORITY.scope((), work).await
}

/// Whether the current task's requests skip the parallelism limiter.
#[must_use]
pub fn is_priority() -> bool {
    PRIORITY.try_with(|()| ()).is_ok()
}

/// Whether writes may still go out: `None` while they may, else why not.
#[derive(Clone)]
pub struct Gate(Arc<dyn Fn() -> Option<String> + Send + Sync>);

impl Gate {
    /// A gate that asks `closed` before every request.
    pub fn new(closed: impl Fn() -> Option<String> + Send + Sync + 'static) -> Self {
        Self(Arc::new(closed))
    }
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Gate").field(&(self.0)()).finish()
    }
}

/// Run `work` with `gate` in force for every request it sends.
pub async fn guarded<F: Future>(gate: Gate, work: F) -> F::Output {
    GATE.scope(gate, work).await
}

/// `Err(reason)` when the current task runs under a closed gate.
///
/// # Errors
/// The gate is closed: the reason (e.g. the lease was lost).
pub fn check() -> Result<(), String> {
    match GATE.try_with(|gate| (gate.0)()) {
        Ok(Some(reason)) => Err(reason),
        _ => Ok(()),
    }
}

/// Whether the current task may send (another try of) a request.
#[must_use]
pub fn open() -> bool {
    check().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn a_closed_gate_refuses_only_inside_its_scope() {
        let lost = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&lost);
        let gate = Gate::new(move || flag.load(Ordering::SeqCst).then(|| "lost".to_owned()));
        guarded(gate, async {
            assert_eq!(check(), Ok(()));
            lost.store(true, Ordering::SeqCst);
            assert_eq!(check(), Err("lost".to_owned()));
            assert!(!open());
        })
        .await;
        assert_eq!(check(), Ok(()), "outside the scope nothing is gated");
    }
}
