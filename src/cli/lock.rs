//! The state lock of one command. Every command releases it itself, on success, on an error
//! and on Ctrl-C or SIGTERM (see `session::interruptible`), after storing what is still
//! waiting to be stored. Only a crash of the process leaves it behind: a local lock names a
//! process that no longer exists, a lock on S3 stops being renewed and its lease runs out;
//! `force-unlock` frees either.

use super::exit::Failure;
use crate::state::{Location, StateStore};

pub struct LockGuard {
    store: StateStore,
    lock_id: String,
    released: bool,
}

/// Opens the state at `loc` (a local file is created) and locks it for `command`.
pub async fn lock(
    loc: &Location,
    region: Option<&str>,
    command: &str,
) -> Result<(StateStore, LockGuard), Failure> {
    let (store, lock_id) = StateStore::open_locked(loc, region, command).await?;
    let guard = LockGuard {
        store: store.clone(),
        lock_id,
        released: false,
    };
    Ok((store, guard))
}

impl LockGuard {
    /// Stores what is waiting, then releases the lock, whichever fails: a failure to store
    /// is the command's error, not a reason to keep others out.
    pub async fn release(mut self) -> Result<(), Failure> {
        self.released = true;
        let flushed = self.store.flush().await;
        let unlocked = self.store.unlock(&self.lock_id).await;
        flushed?;
        unlocked?;
        Ok(())
    }

    /// Runs `work` (which may fail or be interrupted), then releases the lock; the work's
    /// error comes first, a failure to release after it is secondary.
    pub async fn around<T>(
        self,
        work: impl std::future::Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        let outcome = super::session::interruptible(work).await;
        let released = self.release().await;
        let value = outcome?;
        released?;
        Ok(value)
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // Only a panic gets here. A local lock can still be removed without waiting; a lock
        // on S3 needs a request, and its lease will run out instead.
        if let StateStore::Local(_) = &self.store {
            let store = self.store.clone();
            let id = self.lock_id.clone();
            let _ = futures::executor::block_on(store.unlock(&id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateError;
    use std::path::Path;

    async fn locked_by_someone(path: &Path) -> bool {
        let other = StateStore::open(&Location::Local(path.into()), None)
            .await
            .expect("open");
        match other.lock("probe").await {
            Ok(id) => {
                other.unlock(&id).await.expect("unlock probe");
                false
            }
            Err(StateError::Locked { .. }) => true,
            Err(e) => panic!("unexpected: {e}"),
        }
    }

    #[tokio::test]
    async fn release_unlocks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        let (_store, guard) = lock(&Location::Local(path.clone()), None, "eksnet apply")
            .await
            .expect("lock");
        assert!(locked_by_someone(&path).await);
        guard.release().await.expect("release");
        assert!(!locked_by_someone(&path).await);
    }

    #[tokio::test]
    async fn a_failed_command_unlocks_around_its_work() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        let (_store, guard) = lock(&Location::Local(path.clone()), None, "eksnet apply")
            .await
            .expect("lock");
        let r: Result<(), Failure> = guard
            .around(async { Err(Failure::Message("refresh failed".into())) })
            .await;
        assert!(r.is_err());
        assert!(!locked_by_someone(&path).await);
    }

    #[tokio::test]
    async fn a_second_lock_is_refused_while_a_guard_lives() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        let loc = Location::Local(path.clone());
        let (_store, _guard) = lock(&loc, None, "eksnet apply").await.expect("lock");
        let second = lock(&loc, None, "eksnet destroy").await;
        assert!(second.is_err());
        drop(second);
        // The refused attempt must not have released the first holder's lock.
        assert!(locked_by_someone(&path).await);
    }
}
