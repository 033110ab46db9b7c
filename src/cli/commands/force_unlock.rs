//! `eksnet force-unlock LOCK_ID`: frees a lock left by a command that died, on this machine
//! or another (a shared state's lock is an object beside it, removable from anywhere).

use crate::cli::args::ForceUnlockArgs;
use crate::cli::exit::{ExitStatus, Failure};
use crate::cli::{output, session};

pub async fn run(args: ForceUnlockArgs) -> Result<ExitStatus, Failure> {
    let store = session::existing_state(&args.state).await?;
    store.force_unlock(&args.lock_id).await?;
    output::info(format!(
        "Lock {} on {} released.",
        args.lock_id,
        store.location()
    ));
    Ok(ExitStatus::Success)
}
