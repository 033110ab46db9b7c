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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateError;

    fn locked_by_someone(path: &Path) -> bool {
        let mut other = StateStore::open(path).expect("open");
        match other.lock("probe") {
            Ok(id) => {
                other.unlock(&id).expect("unlock probe");
                false
            }
            Err(StateError::Locked { .. }) => true,
            Err(e) => panic!("unexpected: {e}"),
        }
    }

    #[test]
    fn release_unlocks_through_the_commands_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        let (mut store, guard) = lock(&path, "eksnet apply").expect("lock");
        assert!(locked_by_someone(&path));
        guard.release(&mut store).expect("release");
        assert!(!locked_by_someone(&path));
    }

    #[test]
    fn leaving_early_unlocks_when_the_guard_drops() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        let command = || -> Result<(), Failure> {
            let (_store, _guard) = lock(&path, "eksnet apply")?;
            Err(Failure("refresh failed".into()))
        };
        assert!(command().is_err());
        assert!(!locked_by_someone(&path));
    }

    #[test]
    fn a_second_lock_is_refused_while_a_guard_lives() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        let (_store, _guard) = lock(&path, "eksnet apply").expect("lock");
        let second = lock(&path, "eksnet destroy");
        assert!(second.is_err());
        drop(second);
        // The refused attempt must not have released the first holder's lock.
        assert!(locked_by_someone(&path));
    }
}
