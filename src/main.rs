//! The `audience-sync` binary: parse the command line, set up logging, run, map to an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    audience_sync::main_entry(std::env::args_os())
}
