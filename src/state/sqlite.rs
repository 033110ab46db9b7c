//! The local state store: one SQLite file per spec (`state/<spec stem>.db` by default), its
//! rows written in one transaction each, its lock a row of its own.

use super::*;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

pub struct LocalStore {
    conn: Connection,
    path: PathBuf,
}

pub fn now_rfc3339() -> String {
    // Seconds since the epoch are enough for ordering and for a human glance.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("unix:{secs}")
}

impl LocalStore {
    /// Opens (creating if needed) the state database at `path`.
    pub fn open(path: &Path) -> Result<LocalStore, StateError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let sq = |source| StateError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        // Two commands creating the same state at once can meet SQLITE_BUSY where the busy
        // handler does not apply (switching to WAL, the first schema write); such an open is
        // simply tried again for a while instead of failing with "database is locked".
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            match Self::try_open(path) {
                Err(StateError::Sqlite { source, .. })
                    if is_busy(&source) && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(50 + fastrand::u64(0..100)));
                }
                Err(StateError::Sqlite { source, .. }) => return Err(sq(source)),
                other => return other,
            }
        }
    }

    fn try_open(path: &Path) -> Result<LocalStore, StateError> {
        let sq = |source: rusqlite::Error| {
            let corrupt = matches!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
            );
            if corrupt {
                StateError::NotAState {
                    path: path.to_path_buf(),
                    source,
                }
            } else {
                StateError::Sqlite {
                    path: path.to_path_buf(),
                    source,
                }
            }
        };
        restrict_to_owner(path).map_err(|source| StateError::File {
            path: path.to_path_buf(),
            source,
        })?;
        let conn = Connection::open(path).map_err(sq)?;
        // Concurrent eksnet processes wait for each other's short transactions instead of
        // failing with SQLITE_BUSY; the lock row, not SQLite, serialises whole commands.
        conn.busy_timeout(Duration::from_secs(10)).map_err(sq)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sq)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sq)?;
        let mut store = LocalStore {
            conn,
            path: path.to_path_buf(),
        };
        store.migrate()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> StateError {
        StateError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn migrate(&mut self) -> Result<(), StateError> {
        let path = self.path.clone();
        let sq = |source| StateError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sq)?;
        // `records` (progress of a `roll`) came without a schema version: an older eksnet
        // ignores the table.
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS records (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
        )
        .map_err(sq)?;
        let version: Option<i64> = tx
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(sq)?
            .and_then(|v| v.parse().ok());
        match version {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StateError::SchemaTooNew {
                    path: path.clone(),
                    found: v,
                })
            }
            Some(v @ (1 | 2)) => {
                if v == 1 {
                    tx.execute_batch(
                        "ALTER TABLE resources ADD COLUMN prevent_destroy INTEGER NOT NULL DEFAULT 0;",
                    )
                    .map_err(sq)?;
                }
                tx.execute_batch(
                    "ALTER TABLE resources ADD COLUMN deposed TEXT NOT NULL DEFAULT '[]';
                     UPDATE meta SET value = '3' WHERE key = 'schema_version';",
                )
                .map_err(sq)?;
            }
            Some(_) => {}
            None => {
                tx.execute_batch(
                    "CREATE TABLE resources (
                        address TEXT PRIMARY KEY,
                        status TEXT NOT NULL,
                        cloud_id TEXT,
                        attrs TEXT NOT NULL,
                        outputs TEXT NOT NULL,
                        dependencies TEXT NOT NULL,
                        updated_at TEXT NOT NULL,
                        prevent_destroy INTEGER NOT NULL DEFAULT 0,
                        deposed TEXT NOT NULL DEFAULT '[]'
                    );
                    CREATE TABLE lock (
                        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
                        lock_id TEXT NOT NULL,
                        info TEXT NOT NULL
                    );",
                )
                .map_err(sq)?;
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1), ('lineage', ?2), ('serial', '0')",
                    params![SCHEMA_VERSION.to_string(), uuid::Uuid::new_v4().to_string()],
                )
                .map_err(sq)?;
            }
        }
        tx.commit().map_err(sq)
    }

    fn meta(&self, key: &str) -> Result<String, StateError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    pub fn lineage(&self) -> Result<String, StateError> {
        self.meta("lineage")
    }

    pub fn serial(&self) -> Result<i64, StateError> {
        Ok(self.meta("serial")?.parse().unwrap_or(0))
    }

    pub fn snapshot(&self) -> Result<StateSnapshot, StateError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT address, status, cloud_id, attrs, outputs, dependencies, prevent_destroy, deposed FROM resources",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, bool>(6)?,
                    r.get::<_, String>(7)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut resources = BTreeMap::new();
        for row in rows {
            let (address, status, cloud_id, attrs, outputs, deps, prevent_destroy, deposed) =
                row.map_err(|e| self.err(e))?;
            let corrupt = |message: String| StateError::Corrupt {
                path: self.path.clone(),
                address: address.clone(),
                message,
            };
            let addr: ResourceAddr = address.parse().map_err(corrupt)?;
            let status = ResourceStatus::parse(&status)
                .ok_or_else(|| corrupt(format!("unknown status `{status}`")))?;
            let attrs = serde_json::from_str(&attrs).map_err(|e| corrupt(e.to_string()))?;
            let outputs = serde_json::from_str(&outputs).map_err(|e| corrupt(e.to_string()))?;
            let dependencies = serde_json::from_str(&deps).map_err(|e| corrupt(e.to_string()))?;
            let deposed = serde_json::from_str(&deposed).map_err(|e| corrupt(e.to_string()))?;
            resources.insert(
                addr,
                StateResource {
                    status,
                    cloud_id,
                    attrs,
                    outputs,
                    dependencies,
                    prevent_destroy,
                    deposed,
                },
            );
        }
        Ok(StateSnapshot {
            lineage: self.lineage()?,
            serial: self.serial()?,
            resources,
        })
    }

    /// Runs `write` and bumps the serial in one immediate transaction: every change to the
    /// resources table moves the serial, which is what makes saved plans detectably stale.
    fn write_bumping_serial(
        &mut self,
        write: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>,
    ) -> Result<(), StateError> {
        let path = self.path.clone();
        let sq = |source| StateError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sq)?;
        write(&tx).map_err(sq)?;
        tx.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'serial'",
            [],
        )
        .map_err(sq)?;
        tx.commit().map_err(sq)
    }

    /// Writes one resource row.
    pub fn put(&mut self, addr: &ResourceAddr, r: &StateResource) -> Result<(), StateError> {
        self.write_bumping_serial(|tx| write_row(tx, addr, r))
    }

    /// The progress records (see [`super::Document::records`]); one that does not parse is
    /// left out (it can only be a newer eksnet's).
    pub fn records(&self) -> Result<BTreeMap<String, serde_json::Value>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT key, value FROM records")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.err(e))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (k, v) = row.map_err(|e| self.err(e))?;
            if let Ok(v) = serde_json::from_str(&v) {
                out.insert(k, v);
            }
        }
        Ok(out)
    }

    /// Sets (`Some`) or removes (`None`) one progress record.
    pub fn put_record(
        &mut self,
        key: &str,
        value: Option<&serde_json::Value>,
    ) -> Result<(), StateError> {
        self.write_bumping_serial(|tx| match value {
            Some(v) => tx
                .execute(
                    "INSERT INTO records (key, value) VALUES (?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    [key, &v.to_string()],
                )
                .map(|_| ()),
            None => tx
                .execute("DELETE FROM records WHERE key = ?1", [key])
                .map(|_| ()),
        })
    }

    pub fn remove(&mut self, addr: &ResourceAddr) -> Result<(), StateError> {
        self.write_bumping_serial(|tx| {
            tx.execute(
                "DELETE FROM resources WHERE address = ?1",
                [addr.to_string()],
            )
            .map(|_| ())
        })
    }

    /// Replaces every row, the lineage and the serial in one transaction (`state push`,
    /// `state migrate`): a reader sees the old state or the new one, never a mix.
    pub fn replace_all(&mut self, doc: &Document) -> Result<(), StateError> {
        let path = self.path.clone();
        let sq = |source| StateError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sq)?;
        tx.execute("DELETE FROM resources", []).map_err(sq)?;
        tx.execute("DELETE FROM records", []).map_err(sq)?;
        for (k, v) in &doc.records {
            tx.execute(
                "INSERT INTO records (key, value) VALUES (?1, ?2)",
                [k, &v.to_string()],
            )
            .map_err(sq)?;
        }
        for (addr, r) in &doc.resources {
            write_row(&tx, addr, r).map_err(sq)?;
        }
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'lineage'",
            [&doc.lineage],
        )
        .map_err(sq)?;
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'serial'",
            [doc.serial.to_string()],
        )
        .map_err(sq)?;
        tx.commit().map_err(sq)
    }

    /// Takes the command lock or names who holds it. The returned id must be passed to
    /// `unlock`.
    pub fn lock(&mut self, command: &str) -> Result<String, StateError> {
        let path = self.path.clone();
        let sq = |source| StateError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sq)?;
        let held: Option<(String, String)> = tx
            .query_row(
                "SELECT lock_id, info FROM lock WHERE singleton = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sq)?;
        if let Some((lock_id, info)) = held {
            let holder: LockInfo = serde_json::from_str(&info).unwrap_or(LockInfo {
                user: "?".into(),
                host: "?".into(),
                pid: 0,
                command: "?".into(),
                since: "?".into(),
            });
            let stale = holder.host == hostname() && !process_alive(holder.pid);
            return Err(StateError::Locked {
                path,
                lock_id,
                holder: Box::new(holder),
                note: if stale {
                    " — the process no longer exists (stale lock)".into()
                } else {
                    String::new()
                },
            });
        }
        let id = uuid::Uuid::new_v4().to_string();
        let info = LockInfo::ours(command);
        tx.execute(
            "INSERT INTO lock (singleton, lock_id, info) VALUES (1, ?1, ?2)",
            params![id, serde_json::to_string(&info).unwrap_or_default()],
        )
        .map_err(sq)?;
        tx.commit().map_err(sq)?;
        Ok(id)
    }

    pub fn unlock(&mut self, lock_id: &str) -> Result<(), StateError> {
        self.conn
            .execute("DELETE FROM lock WHERE lock_id = ?1", [lock_id])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Frees a lock by id (after a crash). Refuses an id that is not the current lock.
    pub fn force_unlock(&mut self, lock_id: &str) -> Result<(), StateError> {
        let current: Option<String> = self
            .conn
            .query_row("SELECT lock_id FROM lock WHERE singleton = 1", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))?;
        match current {
            Some(c) if c == lock_id => self.unlock(lock_id),
            other => Err(StateError::NoSuchLock {
                path: self.path.clone(),
                lock_id: lock_id.to_string(),
                current: other.unwrap_or_else(|| "none".into()),
            }),
        }
    }
}

/// Inserts or replaces one resource row (`put`, `replace_all`).
fn write_row(
    tx: &rusqlite::Transaction<'_>,
    addr: &ResourceAddr,
    r: &StateResource,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO resources (address, status, cloud_id, attrs, outputs, dependencies, updated_at, prevent_destroy, deposed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT(address) DO UPDATE SET status = ?2, cloud_id = ?3, attrs = ?4,
             outputs = ?5, dependencies = ?6, updated_at = ?7, prevent_destroy = ?8, deposed = ?9",
        params![
            addr.to_string(),
            r.status.as_str(),
            r.cloud_id,
            r.attrs.to_string(),
            r.outputs.to_string(),
            serde_json::to_string(&r.dependencies).unwrap_or_else(|_| "[]".into()),
            now_rfc3339(),
            r.prevent_destroy,
            serde_json::to_string(&r.deposed).unwrap_or_else(|_| "[]".into()),
        ],
    )
    .map(|_| ())
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn process_alive(pid: u32) -> bool {
    // /proc exists on Linux; elsewhere we cannot tell, so never call a lock stale.
    if !Path::new("/proc/self").exists() {
        return true;
    }
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Default state path: `state/<spec file stem>.db` under the current directory.
pub fn default_path(spec: &Path) -> PathBuf {
    let stem = spec
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "eksnet".into());
    PathBuf::from("state").join(format!("{stem}.db"))
}

/// The state holds ARNs, ids and the lineage that lets eksnet take resources over: it is the
/// owner's alone (mode 0600), as Terraform's local state is not but should be. A new file is
/// created so, before SQLite opens it (SQLite gives its `-wal` and `-shm` files the same
/// mode); an existing file that others can read is narrowed to 0600.
#[cfg(unix)]
fn restrict_to_owner(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::metadata(path)?;
    if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
        // Only the owner can change the mode; a state another user owns and shares with
        // this one (a team directory) is used as it is.
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {}
            other => other?,
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict_to_owner(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_schema_1_state_gains_prevent_destroy_and_deposed_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("old.db");
        {
            // The schema the first eksnet wrote, with one row in it.
            let c = rusqlite::Connection::open(&p).unwrap();
            c.execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 INSERT INTO meta VALUES ('schema_version', '1'), ('lineage', 'L1'), ('serial', '7');
                 CREATE TABLE resources (address TEXT PRIMARY KEY, status TEXT NOT NULL,
                     cloud_id TEXT, attrs TEXT NOT NULL, outputs TEXT NOT NULL,
                     dependencies TEXT NOT NULL, updated_at TEXT NOT NULL);
                 CREATE TABLE lock (singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
                     lock_id TEXT NOT NULL, info TEXT NOT NULL);
                 INSERT INTO resources VALUES ('vpc.main', 'present', 'vpc-1', '{}', '{}', '[]', 'x');",
            )
            .unwrap();
        }
        let mut s = LocalStore::open(&p).unwrap();
        let a: ResourceAddr = "vpc.main".parse().unwrap();
        let snap = s.snapshot().unwrap();
        assert_eq!((snap.lineage.as_str(), snap.serial), ("L1", 7));
        assert_eq!(snap.resources[&a].cloud_id.as_deref(), Some("vpc-1"));
        assert!(!snap.resources[&a].prevent_destroy);
        assert!(snap.resources[&a].deposed.is_empty());
        let old = Deposed {
            cloud_id: "vpc-0".into(),
            attrs: json!({"cidr_block": "10.0.0.0/16"}),
            outputs: json!({"id": "vpc-0"}),
        };
        let protected = StateResource {
            prevent_destroy: true,
            deposed: vec![old.clone()],
            ..snap.resources[&a].clone()
        };
        s.put(&a, &protected).unwrap();
        drop(s);
        let s = LocalStore::open(&p).unwrap();
        let row = &s.snapshot().unwrap().resources[&a];
        assert!(row.prevent_destroy);
        assert_eq!(row.deposed, vec![old]);
        let version: String = s
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION.to_string());
    }

    #[test]
    fn rows_survive_reopen_and_serial_counts_writes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s/x.db");
        let mut s = LocalStore::open(&p).unwrap();
        let lineage = s.lineage().unwrap();
        let a: ResourceAddr = "subnet.a".parse().unwrap();
        let r = StateResource {
            status: ResourceStatus::Creating,
            cloud_id: None,
            attrs: json!({"cidr_block": "10.0.0.0/24"}),
            outputs: json!({}),
            dependencies: vec!["vpc.main".parse().unwrap()],
            prevent_destroy: true,
            deposed: vec![],
        };
        s.put(&a, &r).unwrap();
        s.put(
            &a,
            &StateResource {
                status: ResourceStatus::Present,
                cloud_id: Some("subnet-1".into()),
                ..r.clone()
            },
        )
        .unwrap();
        drop(s);
        let s = LocalStore::open(&p).unwrap();
        let snap = s.snapshot().unwrap();
        assert_eq!(snap.lineage, lineage);
        assert_eq!(snap.serial, 2);
        assert_eq!(snap.resources[&a].cloud_id.as_deref(), Some("subnet-1"));
        assert_eq!(snap.resources[&a].dependencies[0].to_string(), "vpc.main");
        assert!(
            snap.resources[&a].prevent_destroy,
            "protection survives a reopen"
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_state_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.db");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        drop(LocalStore::open(&p).unwrap());
        assert_eq!(mode(&p), 0o600);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let s = LocalStore::open(&p).unwrap();
        assert_eq!(
            mode(&p),
            0o600,
            "an existing state readable by others is narrowed"
        );
        assert!(s.lineage().is_ok(), "and still opens");
    }

    #[test]
    fn a_file_that_is_not_a_state_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.db");
        std::fs::write(&p, "not a database, just text ".repeat(50)).unwrap();
        let e = LocalStore::open(&p).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("is not an eksnet state"), "{e}");
        // Truncated: a real state cut short.
        let q = dir.path().join("y.db");
        drop(LocalStore::open(&q).unwrap());
        let bytes = std::fs::read(&q).unwrap();
        let _ = std::fs::remove_file(dir.path().join("y.db-wal"));
        let _ = std::fs::remove_file(dir.path().join("y.db-shm"));
        std::fs::write(&q, &bytes[..bytes.len().min(60)]).unwrap();
        let e = LocalStore::open(&q).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("is not an eksnet state"), "{e}");
    }

    #[test]
    fn second_lock_is_refused_with_holder_and_force_unlock_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.db");
        let mut a = LocalStore::open(&p).unwrap();
        let mut b = LocalStore::open(&p).unwrap();
        let id = a.lock("apply x.toml").unwrap();
        match b.lock("destroy x.toml") {
            Err(StateError::Locked {
                lock_id,
                holder,
                note,
                ..
            }) => {
                assert_eq!(lock_id, id);
                assert_eq!(holder.command, "apply x.toml");
                assert_eq!(holder.pid, std::process::id());
                assert!(note.is_empty(), "our own process is alive: {note}");
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        assert!(matches!(
            b.force_unlock("nope"),
            Err(StateError::NoSuchLock { .. })
        ));
        b.force_unlock(&id).unwrap();
        assert!(b.lock("destroy x.toml").is_ok());
    }
}
