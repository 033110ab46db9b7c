//! Where the state lives: a local SQLite file (the default, `sqlite.rs`) or one object in S3
//! shared by a team and its CI (`s3.rs`). Both give the commands the same store: rows
//! written as work happens, lineage and serial, a lock naming its holder.
//!
//! The S3 store keeps the state in memory and writes the whole document at each durable
//! write, conditional on the version it last wrote or read (`If-Match`), so a write never
//! silently replaces another writer's. Writes are grouped: every change waiting when a write
//! starts goes out in it, so many resources finishing at once cost one request, and a
//! resource's result is carried by the next intent instead of adding a round trip of its own.

use crate::base::addr::ResourceAddr;
use crate::state::{Document, LocalStore, StateError, StateResource, StateSnapshot};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a lock on S3 stays valid without being renewed, unless the spec says otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// Where a state is.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    Local(PathBuf),
    S3(S3Location),
}

#[derive(Debug, Clone, PartialEq)]
pub struct S3Location {
    pub bucket: String,
    pub key: String,
    /// The bucket's region; default: the spec's, then the credential chain's.
    pub region: Option<String>,
    pub lease: Duration,
    /// Path-style requests (`endpoint/bucket/key`); default: on when an endpoint URL is set
    /// (`AWS_ENDPOINT_URL[_S3]`), as S3-compatible stores and emulators need.
    pub force_path_style: Option<bool>,
}

impl S3Location {
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

impl Location {
    /// `--state` / `EKSNET_STATE`: `s3://BUCKET/KEY` or a file path.
    pub fn parse_flag(s: &str) -> Result<Location, String> {
        let Some(rest) = s.strip_prefix("s3://") else {
            return Ok(Location::Local(PathBuf::from(s)));
        };
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if let Some(e) = crate::validate::constraints::s3_bucket_name(bucket)
            .or_else(|| crate::validate::constraints::s3_state_key(key))
        {
            return Err(format!("state `{s}`: {e}"));
        }
        Ok(Location::S3(S3Location {
            bucket: bucket.to_string(),
            key: key.to_string(),
            region: None,
            lease: DEFAULT_LEASE,
            force_path_style: None,
        }))
    }

    /// As the user writes it: the path, or `s3://bucket/key`.
    pub fn describe(&self) -> String {
        match self {
            Location::Local(p) => p.display().to_string(),
            Location::S3(s) => s.url(),
        }
    }

    /// The path errors name; for S3 the URL (shown as it is).
    pub fn as_path(&self) -> PathBuf {
        PathBuf::from(self.describe())
    }
}

/// How soon a write must be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Stored before the call returns: an intent, written before the request it announces.
    Now,
    /// Stored with the next durable write, or on its own within a second, and always before
    /// the command ends. A crash before then leaves the row as its intent said, which the next
    /// refresh resolves as it resolves any crash between a request and its record.
    Soon,
}

/// A state, opened. Cheap to clone: the clones share the store.
#[derive(Clone)]
pub enum StateStore {
    Local(Arc<Mutex<LocalStore>>),
    S3(super::s3::S3Store),
}

impl StateStore {
    /// Opens the state, creating a local file if there is none (S3: the object is made by
    /// the first write).
    pub async fn open(loc: &Location, region: Option<&str>) -> Result<StateStore, StateError> {
        match loc {
            Location::Local(p) => Ok(StateStore::Local(Arc::new(Mutex::new(LocalStore::open(
                p,
            )?)))),
            Location::S3(s) => Ok(StateStore::S3(super::s3::S3Store::open(s, region).await?)),
        }
    }

    /// The state if it exists; `None` if it has never been written (a plan never creates one).
    pub async fn open_existing(
        loc: &Location,
        region: Option<&str>,
    ) -> Result<Option<StateStore>, StateError> {
        match loc {
            Location::Local(p) if !p.exists() => Ok(None),
            Location::Local(_) => Ok(Some(Self::open(loc, region).await?)),
            Location::S3(s) => {
                let store = super::s3::S3Store::open(s, region).await?;
                Ok(store.exists().then_some(StateStore::S3(store)))
            }
        }
    }

    fn local(l: &Arc<Mutex<LocalStore>>) -> std::sync::MutexGuard<'_, LocalStore> {
        l.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn location(&self) -> String {
        match self {
            StateStore::Local(l) => Self::local(l).path().display().to_string(),
            StateStore::S3(s) => s.url(),
        }
    }

    pub fn snapshot(&self) -> Result<StateSnapshot, StateError> {
        match self {
            StateStore::Local(l) => Self::local(l).snapshot(),
            StateStore::S3(s) => Ok(s.snapshot()),
        }
    }

    pub fn lineage(&self) -> Result<String, StateError> {
        Ok(self.snapshot_meta()?.0)
    }

    pub fn serial(&self) -> Result<i64, StateError> {
        Ok(self.snapshot_meta()?.1)
    }

    fn snapshot_meta(&self) -> Result<(String, i64), StateError> {
        match self {
            StateStore::Local(l) => {
                let l = Self::local(l);
                Ok((l.lineage()?, l.serial()?))
            }
            StateStore::S3(s) => Ok(s.meta()),
        }
    }

    pub async fn put(
        &self,
        addr: &ResourceAddr,
        r: &StateResource,
        durability: Durability,
    ) -> Result<(), StateError> {
        match self {
            StateStore::Local(l) => Self::local(l).put(addr, r),
            StateStore::S3(s) => s.put(addr, Some(r.clone()), durability).await,
        }
    }

    /// The progress records of long operations (a `roll`), by key.
    pub fn records(
        &self,
    ) -> Result<std::collections::BTreeMap<String, serde_json::Value>, StateError> {
        match self {
            StateStore::Local(l) => Self::local(l).records(),
            StateStore::S3(s) => Ok(s.records()),
        }
    }

    /// Sets (`Some`) or removes (`None`) one progress record; stored when this returns.
    pub async fn put_record(
        &self,
        key: &str,
        value: Option<serde_json::Value>,
    ) -> Result<(), StateError> {
        match self {
            StateStore::Local(l) => Self::local(l).put_record(key, value.as_ref()),
            StateStore::S3(s) => s.put_record(key, value).await,
        }
    }

    pub async fn remove(
        &self,
        addr: &ResourceAddr,
        durability: Durability,
    ) -> Result<(), StateError> {
        match self {
            StateStore::Local(l) => Self::local(l).remove(addr),
            StateStore::S3(s) => s.put(addr, None, durability).await,
        }
    }

    /// Confirms that the state read with the lock is still the stored one (S3, see
    /// `S3Store::lock_and_load`); the local store reads under its lock.
    pub async fn verified(&self) -> Result<(), StateError> {
        match self {
            StateStore::Local(_) => Ok(()),
            StateStore::S3(s) => s.verified().await,
        }
    }

    /// Stores every write still waiting (S3); the local store has none.
    pub async fn flush(&self) -> Result<(), StateError> {
        match self {
            StateStore::Local(_) => Ok(()),
            StateStore::S3(s) => s.flush().await,
        }
    }

    /// Replaces the whole state (push, migrate): lineage, serial and rows as `doc` has them.
    pub async fn replace_all(&self, doc: &Document) -> Result<(), StateError> {
        match self {
            StateStore::Local(l) => Self::local(l).replace_all(doc),
            StateStore::S3(s) => s.replace_all(doc).await,
        }
    }

    /// Takes the lock for `command`, or names who holds it.
    pub async fn lock(&self, command: &str) -> Result<String, StateError> {
        match self {
            StateStore::Local(l) => Self::local(l).lock(command),
            StateStore::S3(s) => s.lock(command).await,
        }
    }

    /// Opens the state and takes its lock; a shared state is read once the lock is held, so
    /// that what the command plans from is what the last holder left.
    pub async fn open_locked(
        loc: &Location,
        region: Option<&str>,
        command: &str,
    ) -> Result<(StateStore, String), StateError> {
        match loc {
            Location::Local(_) => {
                let store = Self::open(loc, region).await?;
                let id = store.lock(command).await?;
                Ok((store, id))
            }
            Location::S3(s) => {
                let store = super::s3::S3Store::connect(s, region).await?;
                let id = store.lock_and_load(command).await?;
                Ok((StateStore::S3(store), id))
            }
        }
    }

    /// Releases our lock; a lock that is not (or no longer) ours is left alone.
    pub async fn unlock(&self, lock_id: &str) -> Result<(), StateError> {
        match self {
            StateStore::Local(l) => Self::local(l).unlock(lock_id),
            StateStore::S3(s) => s.unlock(lock_id).await,
        }
    }

    /// Frees the lock with this id, whoever holds it.
    pub async fn force_unlock(&self, lock_id: &str) -> Result<(), StateError> {
        match self {
            StateStore::Local(l) => Self::local(l).force_unlock(lock_id),
            StateStore::S3(s) => s.force_unlock(lock_id).await,
        }
    }

    /// The stored versions, newest first (S3 with bucket versioning).
    pub async fn history(&self) -> Result<Vec<super::s3::Version>, StateError> {
        match self {
            StateStore::Local(l) => Err(StateError::Unsupported {
                path: Self::local(l).path().to_path_buf(),
                message: "a local state keeps no history; the S3 backend with bucket versioning does (docs/state.md)".into(),
            }),
            StateStore::S3(s) => s.history().await,
        }
    }

    /// The state as it was at `serial` (S3 with bucket versioning).
    pub async fn at_serial(&self, serial: i64) -> Result<Document, StateError> {
        match self {
            StateStore::Local(l) => Err(StateError::Unsupported {
                path: Self::local(l).path().to_path_buf(),
                message: "a local state keeps no earlier versions; the S3 backend with bucket versioning does (docs/state.md)".into(),
            }),
            StateStore::S3(s) => s.at_serial(serial).await,
        }
    }
}

/// The default local state of a spec: `state/<spec file stem>.db` under the current directory.
pub fn default_local(spec: &Path) -> Location {
    Location::Local(crate::state::default_path(spec))
}

/// Where a spec's state is: `explicit` (`--state`, `EKSNET_STATE`), else the spec's
/// `[state]`, else `state/<spec stem>.db`. A `--state s3://…` keeps the `[state]` table's
/// region, lease and addressing when the spec has one.
pub fn resolve(
    spec_path: &Path,
    config: Option<&crate::spec::StateConfig>,
    explicit: Option<&str>,
) -> Result<Location, String> {
    use crate::spec::StateConfig;
    let configured = match config {
        None | Some(StateConfig::Local { path: None }) => default_local(spec_path),
        Some(StateConfig::Local { path: Some(p) }) => {
            let dir = spec_path.parent().unwrap_or(Path::new(""));
            Location::Local(dir.join(p))
        }
        Some(StateConfig::S3 {
            bucket,
            key,
            region,
            lease_seconds,
            force_path_style,
        }) => Location::S3(S3Location {
            bucket: bucket.clone(),
            key: key.clone(),
            region: region.clone(),
            lease: lease_seconds
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_LEASE),
            force_path_style: *force_path_style,
        }),
    };
    let Some(flag) = explicit.filter(|f| !f.is_empty()) else {
        return Ok(configured);
    };
    let mut loc = Location::parse_flag(flag)?;
    if let (Location::S3(given), Location::S3(spec)) = (&mut loc, &configured) {
        given.region = spec.region.clone();
        given.lease = spec.lease;
        given.force_path_style = spec.force_path_style;
    }
    Ok(loc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::StateConfig;

    #[test]
    fn the_flag_wins_and_keeps_the_specs_bucket_settings() {
        let spec = Path::new("clusters/prod.toml");
        let s3 = StateConfig::S3 {
            bucket: "team-state".into(),
            key: "prod.json".into(),
            region: Some("eu-west-1".into()),
            lease_seconds: Some(30),
            force_path_style: None,
        };
        assert_eq!(
            resolve(spec, None, None).unwrap(),
            Location::Local(PathBuf::from("state/prod.db"))
        );
        assert_eq!(
            resolve(
                spec,
                Some(&StateConfig::Local {
                    path: Some("x.db".into())
                }),
                None
            )
            .unwrap(),
            Location::Local(PathBuf::from("clusters/x.db"))
        );
        let Location::S3(l) = resolve(spec, Some(&s3), Some("s3://other-bucket/a/b.json")).unwrap()
        else {
            panic!("expected S3");
        };
        assert_eq!(
            (l.bucket.as_str(), l.key.as_str()),
            ("other-bucket", "a/b.json")
        );
        assert_eq!(l.region.as_deref(), Some("eu-west-1"));
        assert_eq!(l.lease, Duration::from_secs(30));
        assert_eq!(
            resolve(spec, Some(&s3), Some("other.db")).unwrap(),
            Location::Local(PathBuf::from("other.db"))
        );
        assert!(Location::parse_flag("s3://Bad_Bucket/k").is_err());
        assert!(Location::parse_flag("s3://good-bucket/").is_err());
        assert!(Location::parse_flag("s3://good-bucket").is_err());
    }
}
