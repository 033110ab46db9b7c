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

/// An error at the CLI edge; it ends the command with `ExitStatus::Error`. Errors of the
/// engine keep their type and their sources (`std::error::Error::source`); the message shown
/// is their own.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// What the CLI itself has to say: a usage mistake, a missing state, the spec's errors
    /// (already listed on stderr, summed up here).
    #[error("{0}")]
    Message(String),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Aws(#[from] crate::cloud::aws::AwsError),
    #[error(transparent)]
    Refresh(#[from] crate::engine::refresh::RefreshError),
    #[error(transparent)]
    Resource(#[from] crate::resources::ResourceError),
    #[error(transparent)]
    Kube(#[from] crate::cloud::kube::KubeError),
    #[error(transparent)]
    Apply(#[from] crate::apply::ApplyError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A blocking task (the confirmation prompt) did not finish.
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
}

impl From<crate::nodes::roll::RollError> for Failure {
    fn from(e: crate::nodes::roll::RollError) -> Failure {
        use crate::nodes::roll::RollError;
        match e {
            RollError::Resource(e) => e.into(),
            RollError::State(e) => e.into(),
            RollError::Refused(m) | RollError::Node(m) => Failure::Message(m),
        }
    }
}
