//! `eksnet force-unlock LOCK_ID`: frees a lock left by a command that died.

use crate::cli::args::ForceUnlockArgs;
use crate::cli::exit::{ExitStatus, Failure};
use crate::cli::{output, session};
use crate::state::StateStore;

pub fn run(args: ForceUnlockArgs) -> Result<ExitStatus, Failure> {
    let path = session::existing_state(args.state)?;
    StateStore::open(&path)?.force_unlock(&args.lock_id)?;
    output::info(format!(
        "Lock {} on {} released.",
        args.lock_id,
        path.display()
    ));
    Ok(ExitStatus::Success)
}
