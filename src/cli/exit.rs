//! How a command ends: an exit status, or a failure with its message.

use std::process::ExitCode;

/// The exit statuses eksnet documents (docs/cli.md). Usage errors are `Error`, not
/// clap's 2: 2 means "changes present" for `plan --detailed-exitcode`, and a typo must never
/// read as that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Done; for `plan --detailed-exitcode`, also "no changes".
    Success = 0,
    /// An error of the user's or of AWS's alike (as Terraform), an invalid spec, a failed or
    /// cancelled apply.
    Error = 1,
    /// `plan --detailed-exitcode`: the plan has changes.
    Changes = 2,
    /// `verify`: custom networking has problems.
    Problems = 3,
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status as u8)
    }
}

/// An error at the CLI edge; it ends the command with `ExitStatus::Error`.
#[derive(Debug)]
pub struct Failure(pub String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}
