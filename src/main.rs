//! The `audience-sync` binary: parse the command line, set up logging, run, map to an exit code.
//!
//! Memory comes from mimalloc: a plan reads and frees millions of small strings (JSON pages,
//! member rows, changes), where glibc's allocator spent about 40% of the client's CPU
//! (`malloc_consolidate`, `unlink_chunk`; issue 17's profile).

use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    audience_sync::main_entry(std::env::args_os())
}
