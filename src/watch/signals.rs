//! Process signals: SIGTERM and SIGINT stop the loop, SIGHUP asks for a pass now.
//!
//! The first SIGTERM or SIGINT cancels `shutdown`: no new run starts, the running ones get the
//! grace period to finish. A second one cancels `cut` at once: running passes are told to stop
//! (their cancellation token fires) and the process exits as soon as they return. Either way
//! the loop bounds the wait, so the process always exits.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::shared::Command;

/// Install the handlers and spawn the task that serves them (abort it when the loop is over).
///
/// # Errors
/// A handler cannot be installed.
pub fn spawn(
    shutdown: CancellationToken,
    cut: CancellationToken,
    commands: mpsc::Sender<Command>,
) -> std::io::Result<JoinHandle<()>> {
    imp::spawn(shutdown, cut, commands)
}

#[cfg(unix)]
mod imp {
    use tokio::signal::unix::{SignalKind, signal};

    use super::*;

    pub(super) fn spawn(
        shutdown: CancellationToken,
        cut: CancellationToken,
        commands: mpsc::Sender<Command>,
    ) -> std::io::Result<JoinHandle<()>> {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        Ok(tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    Some(()) = term.recv() => "SIGTERM",
                    Some(()) = int.recv() => "SIGINT",
                    Some(()) = hup.recv() => {
                        tracing::info!("SIGHUP: reconciling every binding now");
                        let _ = commands.try_send(Command::Reconcile { binding: None });
                        continue;
                    }
                    else => return,
                };
                if shutdown.is_cancelled() {
                    tracing::warn!(
                        signal = name,
                        "second stop signal: cutting the running passes"
                    );
                    cut.cancel();
                } else {
                    tracing::info!(
                        signal = name,
                        "stop signal: finishing the running passes, starting no new ones"
                    );
                    shutdown.cancel();
                }
            }
        }))
    }
}

#[cfg(not(unix))]
mod imp {
    use super::*;

    pub(super) fn spawn(
        shutdown: CancellationToken,
        cut: CancellationToken,
        _commands: mpsc::Sender<Command>,
    ) -> std::io::Result<JoinHandle<()>> {
        Ok(tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                if shutdown.is_cancelled() {
                    cut.cancel();
                } else {
                    shutdown.cancel();
                }
            }
        }))
    }
}
