//! Integration tests: the CLI and the library against the sandbox over HTTP.
mod dataverse;
mod dataverse_emulator;
