//! `eksnet init`: not built yet.

use crate::cli::args::InitArgs;
use crate::cli::exit::{ExitStatus, Failure};

pub async fn run(_args: InitArgs) -> Result<ExitStatus, Failure> {
    Err(Failure::Message("`eksnet init` is not built yet".into()))
}
