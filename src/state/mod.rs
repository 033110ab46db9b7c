//! The state: what eksnet created. One row per resource, written as each resource is started
//! (intent), finished or deleted — never only at the end — so a crash at any moment leaves a
//! row for every resource AWS may hold. `serial` counts writes; with `lineage` it lets a saved
//! plan detect that the state moved since it was made. This module holds the state's values;
//! the stores sit side by side: `sqlite` (a local file) and `s3` (shared, locked by S3's
//! conditional writes), behind `store::StateStore` and its `Location`.

pub mod s3;
pub mod sqlite;
pub mod store;

pub use sqlite::{default_path, now_rfc3339, LocalStore};
pub use store::{
    default_local, resolve, Durability, Location, S3Location, StateStore, DEFAULT_LEASE,
};

use crate::base::addr::ResourceAddr;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// 1: the first; 2: `resources.prevent_destroy`; 3: `resources.deposed`.
pub const SCHEMA_VERSION: i64 = 3;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// SQLite failed.
    #[error("state `{path}`: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The directory could not be created.
    #[error("cannot create state directory `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not an SQLite database: corrupted, truncated, or another file.
    #[error("state `{path}` is not an eksnet state: {source} (corrupted or truncated, or not a state file at all); restore it from a backup, or give the right file with --state")]
    NotAState {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The state file could not be created or given its owner-only mode.
    #[error("state `{path}`: cannot create it or make it readable by its owner only: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Written by a newer eksnet.
    #[error(
        "state `{path}` has schema version {found}; this eksnet understands up to {SCHEMA_VERSION}"
    )]
    SchemaTooNew { path: PathBuf, found: i64 },
    /// Another command holds the lock.
    /// `note` says what is known of the holder: a process gone (stale), a lease run out.
    #[error("state `{path}` is locked by {holder}{note}\nhint: if that command is gone, run `eksnet force-unlock {lock_id} --state {path}`")]
    Locked {
        path: PathBuf,
        lock_id: String,
        holder: Box<LockInfo>,
        note: String,
    },
    /// The shared state's store (S3) failed or refused a request.
    #[error("state `{path}`: {message}")]
    Remote { path: PathBuf, message: String },
    /// Someone else wrote the shared state since this command read it: nothing of this write
    /// was stored.
    #[error("state `{path}` was changed by another writer since this command read it ({message}); this command's write was refused and nothing of it is stored — run the command again to start from the current state")]
    Conflict { path: PathBuf, message: String },
    /// The lock this command held was taken from it (`force-unlock` elsewhere).
    #[error("state `{path}`: this command's lock {lock_id} was lost ({message}); it stops writing — run the command again")]
    LockLost {
        path: PathBuf,
        lock_id: String,
        message: String,
    },
    /// An operation this state backend does not offer.
    #[error("state `{path}`: {message}")]
    Unsupported { path: PathBuf, message: String },
    /// `force-unlock` was given an id that is not the current lock.
    #[error("state `{path}`: no lock with id {lock_id} (current: {current})")]
    NoSuchLock {
        path: PathBuf,
        lock_id: String,
        current: String,
    },
    /// A stored row could not be decoded.
    #[error("state `{path}`: corrupt row for {address}: {message}")]
    Corrupt {
        path: PathBuf,
        address: String,
        message: String,
    },
}

/// Where a resource is in its life, as far as eksnet knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceStatus {
    /// A create was about to be sent; AWS may or may not hold it (refresh finds out).
    Creating,
    Present,
    /// A delete was sent and may not have finished.
    Deleting,
}

impl ResourceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceStatus::Creating => "creating",
            ResourceStatus::Present => "present",
            ResourceStatus::Deleting => "deleting",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "creating" => Some(ResourceStatus::Creating),
            "present" => Some(ResourceStatus::Present),
            "deleting" => Some(ResourceStatus::Deleting),
            _ => None,
        }
    }
}

/// One resource as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateResource {
    pub status: ResourceStatus,
    pub cloud_id: Option<String>,
    /// The attributes last applied (resolved), or intended for `creating`.
    pub attrs: Value,
    pub outputs: Value,
    pub dependencies: Vec<ResourceAddr>,
    /// The spec's `lifecycle.prevent_destroy` when the row was last written: a block removed
    /// from the spec is still protected by it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prevent_destroy: bool,
    /// Objects this address held before a create-before-destroy replacement, still to be
    /// deleted: written before the replacement's create is sent, removed once each is gone,
    /// so a crash in between never loses one (the next apply or destroy deletes it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deposed: Vec<Deposed>,
}

/// An object replaced by a newer one under the same address, waiting to be deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deposed {
    pub cloud_id: String,
    /// Its attributes and outputs as last recorded, for the delete.
    pub attrs: Value,
    pub outputs: Value,
}

/// An immutable copy of the state, for the planner.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StateSnapshot {
    pub lineage: String,
    pub serial: i64,
    pub resources: BTreeMap<ResourceAddr, StateResource>,
}

/// Version of the [`Document`] layout.
pub const DOCUMENT_FORMAT: u32 = 1;

/// The whole state as one JSON document: what the S3 backend stores as its object, what
/// `state pull` prints and `state push` and `state migrate` write, whatever the backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    pub format: u32,
    pub lineage: String,
    pub serial: i64,
    #[serde(default)]
    pub resources: BTreeMap<ResourceAddr, StateResource>,
    /// Progress of long operations that are not resources (a `roll`'s nodes), by key, so
    /// that a rerun resumes where one stopped; absent when none is under way.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub records: BTreeMap<String, Value>,
}

impl From<StateSnapshot> for Document {
    fn from(s: StateSnapshot) -> Document {
        Document {
            format: DOCUMENT_FORMAT,
            lineage: s.lineage,
            serial: s.serial,
            resources: s.resources,
            records: BTreeMap::new(),
        }
    }
}

impl From<Document> for StateSnapshot {
    fn from(d: Document) -> StateSnapshot {
        StateSnapshot {
            lineage: d.lineage,
            serial: d.serial,
            resources: d.resources,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub command: String,
    pub since: String,
}

impl LockInfo {
    /// This process, running `command`, now.
    pub fn ours(command: &str) -> LockInfo {
        LockInfo {
            user: std::env::var("USER")
                .or_else(|_| std::env::var("USERNAME"))
                .unwrap_or_else(|_| "unknown".into()),
            host: hostname(),
            pid: std::process::id(),
            command: command.to_string(),
            since: now_rfc3339(),
        }
    }
}

impl std::fmt::Display for LockInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` (user {}, host {}, pid {}, since {})",
            self.command, self.user, self.host, self.pid, self.since
        )
    }
}

/// This machine's name, for the lock's holder.
fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}
