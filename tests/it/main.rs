//! Integration tests: the CLI and the library against the sandbox over HTTP.

mod cli;
mod common;
mod config_catalogue;
mod examples;
mod schema;
mod watch;
