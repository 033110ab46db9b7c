//! `eksnet roll`: not built yet.

use crate::cli::args::RollArgs;
use crate::cli::exit::{ExitStatus, Failure};

pub async fn run(_args: RollArgs) -> Result<ExitStatus, Failure> {
    Err(Failure::Message("`eksnet roll` is not built yet".into()))
}
