//! The state lock of one command, released when the guard goes out of scope: on success, on
//! an error, on Ctrl-C or SIGTERM (see `session::interruptible`), whichever path the command
//! took. Only a crash of the process leaves it behind, for `force-unlock`.

use super::exit::Failure;
use crate::state::StateStore;
use std::path::{Path, PathBuf};

pub struct LockGuard {
    path: PathBuf,
    lock_id: String,
    released: bool,
}

/// Opens the state at `path` (creating it) and locks it for `command`.
pub fn lock(path: &Path, command: &str) -> Result<(StateStore, LockGuard), Failure> {
    let mut store = StateStore::open(path)?;
    let lock_id = store.lock(command)?;
    let guard = LockGuard {
        path: path.to_path_buf(),
        lock_id,
        released: false,
    };
    Ok((store, guard))
}

impl LockGuard {
    /// Releases the lock through the command's own store, so that a failure to do so is the
    /// command's error rather than lost.
    pub fn release(mut self, store: &mut StateStore) -> Result<(), Failure> {
        self.released = true;
        store.unlock(&self.lock_id)?;
        Ok(())
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // The command's store went with its work (an error or an interruption); a connection
        // of our own removes the lock. Nothing is left to report a failure to.
        if let Ok(mut store) = StateStore::open(&self.path) {
            let _ = store.unlock(&self.lock_id);
        }
    }
}
