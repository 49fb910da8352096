//! Exit codes are part of the interface: 0 success / no changes, 1 error, 2 changes present
//! (only with `--detailed-exitcode`), 64 usage error (clap's default 2 would be confused with
//! "changes present", so usage errors are mapped to sysexits' `EX_USAGE`).

use std::process::ExitCode;

/// How a command ended, decided by the command and turned into a process exit code by `main`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything worked; for `plan --detailed-exitcode`, there are no changes.
    Success,
    /// Something failed: an invalid config, a failed apply, a refused guard, an API error.
    Failure,
    /// `plan --detailed-exitcode` found changes.
    ChangesPresent,
    /// The command line itself was wrong.
    Usage,
}

impl ExitStatus {
    /// The numeric exit code.
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Failure => 1,
            Self::ChangesPresent => 2,
            Self::Usage => 64,
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status.code())
    }
}
