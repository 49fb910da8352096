//! Process signals: SIGTERM and SIGINT stop the loop, SIGHUP asks for a pass now.
//!
//! The first SIGTERM or SIGINT cancels `shutdown`: no new run starts, the running ones get the
//! grace period to finish. A second one cancels `cut` at once: running passes are told to stop
//! (their cancellation token fires) and the process exits as soon as they return. Either way
//! the loop bounds the wait, so the process always exits.
//!
//! The OS side ([`spawn`]) only forwards signals into [`handle`], which holds the logic and is
//! tested with a channel instead of real signals (a test process must not trap its own SIGINT).

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::shared::Command;

/// A signal the loop reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM.
    Terminate,
    /// SIGINT.
    Interrupt,
    /// SIGHUP.
    Hangup,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Self::Terminate => "SIGTERM",
            Self::Interrupt => "SIGINT",
            Self::Hangup => "SIGHUP",
        }
    }
}

/// React to each signal until the channel closes.
pub async fn handle(
    mut signals: mpsc::Receiver<Signal>,
    shutdown: CancellationToken,
    cut: CancellationToken,
    commands: mpsc::Sender<Command>,
) {
    while let Some(signal) = signals.recv().await {
        match signal {
            Signal::Hangup => {
                tracing::info!("SIGHUP: reconciling every binding now");
                // Full means passes are already queued: nothing is lost.
                let _ = commands.try_send(Command::Reconcile { binding: None });
            }
            Signal::Terminate | Signal::Interrupt if shutdown.is_cancelled() => {
                tracing::warn!(
                    signal = signal.name(),
                    "second stop signal: cutting the running passes"
                );
                cut.cancel();
            }
            Signal::Terminate | Signal::Interrupt => {
                tracing::info!(
                    signal = signal.name(),
                    "stop signal: finishing the running passes, starting no new ones"
                );
                shutdown.cancel();
            }
        }
    }
}

/// Install the handlers and spawn the task that serves them (abort it when the loop is over).
///
/// # Errors
/// A handler cannot be installed.
pub fn spawn(
    shutdown: CancellationToken,
    cut: CancellationToken,
    commands: mpsc::Sender<Command>,
) -> std::io::Result<JoinHandle<()>> {
    let (tx, rx) = mpsc::channel(4);
    let forward = imp::forward(tx)?;
    Ok(tokio::spawn(async move {
        let forwarder = tokio::spawn(forward);
        handle(rx, shutdown, cut, commands).await;
        forwarder.abort();
    }))
}

#[cfg(unix)]
mod imp {
    use std::future::Future;

    use tokio::signal::unix::{SignalKind, signal};
    use tokio::sync::mpsc;

    use super::Signal;

    /// A future forwarding SIGTERM, SIGINT and SIGHUP (handlers installed now).
    pub(super) fn forward(
        tx: mpsc::Sender<Signal>,
    ) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        Ok(async move {
            loop {
                let signal = tokio::select! {
                    Some(()) = term.recv() => Signal::Terminate,
                    Some(()) = int.recv() => Signal::Interrupt,
                    Some(()) = hup.recv() => Signal::Hangup,
                    else => return,
                };
                if tx.send(signal).await.is_err() {
                    return;
                }
            }
        })
    }
}

#[cfg(not(unix))]
mod imp {
    use std::future::Future;

    use tokio::sync::mpsc;

    use super::Signal;

    /// A future forwarding Ctrl-C as SIGINT.
    pub(super) fn forward(
        tx: mpsc::Sender<Signal>,
    ) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
        Ok(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                if tx.send(Signal::Interrupt).await.is_err() {
                    return;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hup_reconciles_first_stop_drains_second_stop_cuts() {
        let (tx, rx) = mpsc::channel(4);
        let (commands_tx, mut commands) = mpsc::channel(4);
        let shutdown = CancellationToken::new();
        let cut = CancellationToken::new();
        let task = tokio::spawn(handle(rx, shutdown.clone(), cut.clone(), commands_tx));

        tx.send(Signal::Hangup).await.unwrap();
        assert_eq!(
            commands.recv().await,
            Some(Command::Reconcile { binding: None })
        );
        assert!(!shutdown.is_cancelled());

        tx.send(Signal::Terminate).await.unwrap();
        shutdown.cancelled().await;
        assert!(!cut.is_cancelled(), "the first stop lets passes finish");

        tx.send(Signal::Interrupt).await.unwrap();
        cut.cancelled().await;

        drop(tx);
        task.await.unwrap();
    }
}
