//! `audience-sync watch`: run [`crate::watch`] with the real reconciler.
//!
//! Until `plan` and `apply` exist there is no reconciler, and the command says it is not
//! implemented rather than run a fake one. Wiring the real one is [`reconciler`] returning it.

use std::sync::Arc;

use crate::cli::WatchArgs;
use crate::exit::ExitStatus;
use crate::output::Context;
use crate::watch::{self, Reconciler};

/// The reconciler the binary runs: `None` until plan and apply provide one.
fn reconciler() -> Option<Arc<dyn Reconciler>> {
    None
}

pub(super) async fn run(args: WatchArgs, _ctx: &Context) -> anyhow::Result<ExitStatus> {
    let Some(reconciler) = reconciler() else {
        return super::not_implemented("watch");
    };
    serve(&args, reconciler).await
}

async fn serve(args: &WatchArgs, reconciler: Arc<dyn Reconciler>) -> anyhow::Result<ExitStatus> {
    let options = watch::Options::from_args(args)?;
    match watch::run(options, reconciler).await {
        Ok(status) => Ok(status),
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
