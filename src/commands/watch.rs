//! `audience-sync watch`: run [`crate::watch`] with the real reconciler
//! ([`crate::watch::LiveReconciler`]: one binding through [`crate::sync`] on a schedule), and map
//! how it ended to an exit code.

use std::sync::Arc;

use crate::cli::{WatchArgs, WatchMode};
use crate::exit::ExitStatus;
use crate::output::Context;
use crate::watch::{self, LiveReconciler, Mode, Outcome, Reconciler};

pub(super) async fn run(args: WatchArgs, _ctx: &Context) -> anyhow::Result<ExitStatus> {
    serve(
        &args,
        Arc::new(
            LiveReconciler::new()
                .with_lease_term(args.lease_term)
                .with_lock_wait(if args.once {
                    args.lock_timeout
                } else {
                    std::time::Duration::ZERO
                }),
        ),
    )
    .await
}

/// Options from the command line (signal handlers on). The token is read from the variable
/// `--token-env` names.
fn options(args: &WatchArgs) -> Result<watch::Options, watch::Error> {
    let token = args
        .token_env
        .as_deref()
        .map(watch::Options::token_from_env)
        .transpose()?;
    Ok(watch::Options {
        mode: match args.mode {
            WatchMode::Apply => Mode::Apply,
            WatchMode::Report => Mode::Report,
        },
        interval: args.interval,
        retry_interval: args.retry_interval,
        listen: (!args.once).then_some(args.listen),
        once: args.once,
        max_parallel: usize::from(args.max_parallel),
        watch_config: !args.once,
        token,
        signals: true,
        ..watch::Options::new(args.config.clone())
    })
}

async fn serve(args: &WatchArgs, reconciler: Arc<dyn Reconciler>) -> anyhow::Result<ExitStatus> {
    match watch::run(options(args)?, reconciler).await {
        Ok(Outcome::Success) => Ok(ExitStatus::Success),
        Ok(Outcome::Failure) => Ok(ExitStatus::Failure),
        Err(watch::Error::Config {
            source: crate::config::Error::Invalid { path, diagnostics },
            ..
        }) => {
            eprint!(
                "{}",
                crate::config::render_diagnostics(&path.display().to_string(), &diagnostics)
            );
            Ok(ExitStatus::Failure)
        }
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};

    fn watch_args(extra: &[&str]) -> WatchArgs {
        let mut argv = vec!["audience-sync", "watch", "sync.yaml"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).map(|cli| cli.command) {
            Ok(Command::Watch(args)) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn command_line_maps_to_options() {
        let options = options(&watch_args(&[
            "--interval",
            "5m",
            "--retry-interval",
            "10s",
            "--mode",
            "report",
            "--listen",
            "0.0.0.0:9000",
            "--max-parallel",
            "1",
        ]))
        .unwrap();
        assert_eq!(options.interval, Duration::from_secs(300));
        assert_eq!(options.retry_interval, Duration::from_secs(10));
        assert_eq!(options.mode, Mode::Report);
        assert_eq!(options.listen, Some("0.0.0.0:9000".parse().unwrap()));
        assert!(options.signals && options.watch_config && !options.once);
        assert!(options.token.is_none());
        assert_eq!(options.max_parallel, 1);

        let once = super::options(&watch_args(&["--once"])).unwrap();
        assert!(once.once && once.listen.is_none() && !once.watch_config);
    }

    #[test]
    fn an_unset_token_variable_is_an_error_not_an_open_server() {
        let err = options(&watch_args(&[
            "--token-env",
            "AUDIENCE_SYNC_TEST_TOKEN_THAT_IS_NEVER_SET",
        ]))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable `AUDIENCE_SYNC_TEST_TOKEN_THAT_IS_NEVER_SET` (named by `--token-env`) is not set or empty"
        );
    }
}
