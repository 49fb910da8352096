//! Serve the sandbox (both emulators) until interrupted and print its `KEY=value` lines, for the
//! conformance scripts that drive real Dataverse clients against the emulator.
//!
//! Usage: `cargo run --example dataverse_sandbox [SEED.json|SEED.yaml]`. The first line printed
//! is `SANDBOX_URL=http://127.0.0.1:PORT`, then the `DATAVERSE_*` (and Mailchimp) lines, then
//! `READY`. It stops on Ctrl-C or when stdin closes (so a parent script that dies stops it).

use std::path::PathBuf;

use api_sandbox::{Options, Sandbox, Seed};
use tokio::io::AsyncReadExt;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seed = match std::env::args_os().nth(1).map(PathBuf::from) {
        Some(path) => Seed::from_file(&path)?,
        None => Seed::default(),
    };
    let sandbox = Sandbox::start(Options {
        seed,
        ..audience_sync::commands::sandbox::options()
    })
    .await?;
    println!("SANDBOX_URL={}", sandbox.base_url());
    for (key, value) in sandbox.env() {
        println!("{key}={value}");
    }
    println!("READY");
    let stdin_closed = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0_u8; 256];
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = stdin_closed => {}
    }
    sandbox.shutdown().await;
    Ok(())
}
