//! `audience-sync watch`: run [`crate::watch`] with the real reconciler
//! ([`crate::watch::LiveReconciler`]: observe, plan, apply under the binding's lease).

use std::sync::Arc;

use crate::cli::WatchArgs;
use crate::exit::ExitStatus;
use crate::output::Context;
use crate::watch::{self, LiveReconciler, Reconciler};

pub(super) async fn run(args: WatchArgs, _ctx: &Context) -> anyhow::Result<ExitStatus> {
    serve(
        &args,
        Arc::new(LiveReconciler::new().with_lease_term(args.lease_term)),
    )
    .await
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
