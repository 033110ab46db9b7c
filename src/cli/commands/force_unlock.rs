//! `eksnet force-unlock LOCK_ID`: frees a lock left by a command that died, on this machine
//! or another (a shared state's lock is an object beside it, removable from anywhere).

use crate::cli::args::ForceUnlockArgs;
use crate::cli::exit::{ExitStatus, Failure};
use crate::cli::{output, session};
use crate::state::{Location, StateStore};

pub async fn run(args: ForceUnlockArgs) -> Result<ExitStatus, Failure> {
    // A run killed right after taking an S3 lock has written no state object yet: its lock
    // is freed all the same. A local lock lives inside the file, which must exist.
    let store = match session::state_args_location(&args.state)? {
        (loc @ Location::S3(_), region) => StateStore::open(&loc, region.as_deref()).await?,
        _ => session::existing_state(&args.state).await?,
    };
    store.force_unlock(&args.lock_id).await?;
    output::info(format!(
        "Lock {} on {} released.",
        args.lock_id,
        store.location()
    ));
    Ok(ExitStatus::Success)
}
