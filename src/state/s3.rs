//! The state as one JSON object in S3, and its lock as a second object beside it
//! (`KEY.lock`), both written with S3's conditional requests: no other service is needed.
//!
//! - The lock is created with `If-None-Match: *`, so of two commands only one gets it. A
//!   retried create whose first answer was lost meets its own lock (412); the lock id inside
//!   tells it so, and it goes on holding it instead of orphaning it.
//! - The holder renews the lock (a lease) while it works. A lock whose holder died on another
//!   machine is shown as expired, with its age; `force-unlock ID` removes it from anywhere.
//! - Every state write is `If-Match` on the version this command last wrote or read. A write
//!   that loses a race is refused (412) and nothing of it is stored: the object is replaced
//!   whole or not at all. Each write carries a write id in its metadata, so a retried write
//!   whose answer was lost also recognises itself.
//! - Unlock deletes the lock `If-Match` on its own version: never someone else's lock.

use super::{Durability, S3Location};
use crate::base::addr::ResourceAddr;
use crate::state::{Document, LockInfo, StateError, StateResource, StateSnapshot, DOCUMENT_FORMAT};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// A `Soon` write waits at most this long for a durable write to carry it.
const SOON: Duration = Duration::from_millis(1000);

/// One stored version of the state, for `state history`.
#[derive(Debug, Clone, Serialize)]
pub struct Version {
    pub version_id: String,
    pub serial: Option<i64>,
    pub command: Option<String>,
    /// When S3 stored it (RFC 3339).
    pub stored_at: String,
    pub latest: bool,
}

/// The lock object's content.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LockBody {
    id: String,
    #[serde(flatten)]
    info: LockInfo,
    lease_seconds: u64,
    /// Counts renewals: each makes a new body (a new ETag), and a renewal whose answer was
    /// lost recognises itself by it.
    renewal: u64,
}

struct Doc {
    lineage: String,
    serial: i64,
    resources: BTreeMap<ResourceAddr, StateResource>,
    records: BTreeMap<String, serde_json::Value>,
    /// Counts changes made in memory; `Written::version` says how many are stored.
    version: u64,
}

struct Written {
    /// The object's ETag as this command last wrote or read it; `None`: no object yet.
    etag: Option<String>,
    version: u64,
}

struct HeldLock {
    id: String,
    etag: String,
    body: LockBody,
    renewer: Option<tokio::task::JoinHandle<()>>,
}

struct Inner {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    lock_key: String,
    url: String,
    lease: Duration,
    existed: AtomicBool,
    doc: Mutex<Doc>,
    written: tokio::sync::Mutex<Written>,
    /// Set when the state or the lock was taken by another writer: every later write fails.
    broken: Mutex<Option<StateError>>,
    /// The failure of a background (`Soon`) write, reported if the final flush fails too.
    deferred: Mutex<Option<String>>,
    soon_pending: AtomicBool,
    lock: Mutex<Option<HeldLock>>,
    /// What the next write records as its command (the lock's command).
    command: Mutex<String>,
    /// The state read together with the lock's create (`open_locked`) may predate the last
    /// holder's final write: a HEAD sent once the lock is ours gives the ETag to compare.
    /// Awaited before the first write and before apply's first request (`verified`).
    freshness: tokio::sync::Mutex<Option<Freshness>>,
}

struct Freshness {
    read: Option<String>,
    live: tokio::task::JoinHandle<Result<Option<Head>, String>>,
}

#[derive(Clone)]
pub struct S3Store(Arc<Inner>);

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The HTTP status of a failed request, when an answer came.
fn status<E, R: HttpStatus>(e: &SdkError<E, R>) -> Option<u16> {
    e.raw_response().map(|r| r.status_code())
}

trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_smithy_runtime_api::http::Response {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// 412 (a condition failed) and 409 (a conditional write raced another, real S3 only) both
/// mean "not written as asked": whether it was in fact ours is found out by reading.
fn precondition_failed<E, R: HttpStatus>(e: &SdkError<E, R>) -> bool {
    matches!(status(e), Some(412 | 409))
}

fn describe<E, R>(operation: &str, e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            format!(
                "{operation} failed: {}: {}",
                err.code().unwrap_or("Unknown"),
                err.message().unwrap_or("")
            )
        }
        other => format!(
            "{operation} failed: {}",
            crate::base::diag::error_chain(other)
        ),
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn rfc3339(t: &aws_smithy_types::DateTime) -> String {
    t.fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_else(|_| t.secs().to_string())
}

/// Metadata values must be ASCII: the command (a spec path) is percent-encoded.
fn encode_meta(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn decode_meta(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Whether requests must be path-style: asked for, or an endpoint of one's own is set
/// (emulators and S3-compatible stores rarely serve bucket subdomains).
fn path_style(loc: &S3Location, conf: &aws_types::SdkConfig) -> bool {
    loc.force_path_style.unwrap_or_else(|| {
        conf.endpoint_url().is_some()
            || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some_and(|v| !v.is_empty())
    })
}

impl S3Store {
    /// Reads the state object (absent: an empty state with a new lineage, stored by the
    /// first write).
    pub async fn open(loc: &S3Location, spec_region: Option<&str>) -> Result<S3Store, StateError> {
        let store = Self::connect(loc, spec_region).await?;
        store.load().await?;
        Ok(store)
    }

    /// A client for the bucket; nothing is read yet (see `load`).
    pub async fn connect(
        loc: &S3Location,
        spec_region: Option<&str>,
    ) -> Result<S3Store, StateError> {
        let url = loc.url();
        let conf = crate::cloud::aws::load_config(loc.region.as_deref().or(spec_region)).await;
        if conf.region().is_none() {
            return Err(StateError::Remote {
                path: PathBuf::from(&url),
                message: "no AWS region for the state bucket: set `region` in `[state]` or `[settings]`, AWS_REGION, or a profile with a region".into(),
            });
        }
        let s3conf = aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(path_style(loc, &conf))
            .build();
        Ok(S3Store(Arc::new(Inner {
            client: aws_sdk_s3::Client::from_conf(s3conf),
            bucket: loc.bucket.clone(),
            key: loc.key.clone(),
            lock_key: format!("{}.lock", loc.key),
            url,
            lease: loc.lease,
            existed: AtomicBool::new(false),
            doc: Mutex::new(Doc {
                lineage: String::new(),
                serial: 0,
                resources: BTreeMap::new(),
                records: BTreeMap::new(),
                version: 0,
            }),
            written: tokio::sync::Mutex::new(Written {
                etag: None,
                version: 0,
            }),
            broken: Mutex::new(None),
            deferred: Mutex::new(None),
            soon_pending: AtomicBool::new(false),
            lock: Mutex::new(None),
            command: Mutex::new(String::new()),
            freshness: tokio::sync::Mutex::new(None),
        })))
    }

    /// Takes the lock and reads the state in one round trip: both requests go out together.
    /// A read that raced the previous holder's last write is caught by `verified`, which
    /// every write and apply wait for, before anything is changed.
    pub async fn lock_and_load(&self, command: &str) -> Result<String, StateError> {
        let (lock, load) = tokio::join!(self.lock(command), self.load());
        let id = lock?;
        if let Err(e) = load {
            let _ = self.unlock(&id).await;
            return Err(e);
        }
        let read = self.0.written.lock().await.etag.clone();
        let me = self.clone();
        let live = tokio::spawn(async move { me.head(None).await });
        *self.0.freshness.lock().await = Some(Freshness { read, live });
        Ok(id)
    }

    /// Fails if the state changed between its read and the lock's create (the previous
    /// holder's last write landed in between): what this command planned from is stale.
    pub async fn verified(&self) -> Result<(), StateError> {
        let Some(f) = self.0.freshness.lock().await.take() else {
            return Ok(());
        };
        let live = f
            .live
            .await
            .map_err(|e| self.remote(format!("checking the state read: {e}")))?
            .map_err(|e| self.remote(e))?;
        let live_etag = live.and_then(|h| h.etag);
        if live_etag == f.read {
            return Ok(());
        }
        let message = "the previous holder's last write landed while this command was taking                        the lock, after its read"
            .to_string();
        *guard(&self.0.broken) = Some(StateError::Conflict {
            path: self.path(),
            message: message.clone(),
        });
        Err(StateError::Conflict {
            path: self.path(),
            message,
        })
    }

    /// Reads the state object; a command that writes reads it with the lock's create and has
    /// the read confirmed once the lock is ours (`lock_and_load`, `verified`), so what
    /// it plans from is what the last holder left.
    pub async fn load(&self) -> Result<(), StateError> {
        let got = self
            .0
            .client
            .get_object()
            .bucket(&self.0.bucket)
            .key(&self.0.key)
            .send()
            .await;
        let (doc, etag) = match got {
            Ok(out) => {
                let etag = out.e_tag().map(str::to_string);
                let bytes = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| self.remote(format!("reading the state object: {e}")))?
                    .into_bytes();
                (parse_document(&self.0.url, &bytes)?, etag)
            }
            Err(e) if e.code() == Some("NoSuchBucket") => {
                return Err(self.remote(format!(
                    "bucket `{}` does not exist; create it (with versioning on, for `state history`) — see docs/state.md",
                    self.0.bucket
                )))
            }
            Err(e) if status(&e) == Some(404) => (
                Document {
                    format: DOCUMENT_FORMAT,
                    lineage: uuid::Uuid::new_v4().to_string(),
                    serial: 0,
                    resources: BTreeMap::new(),
                    records: BTreeMap::new(),
                },
                None,
            ),
            Err(e) => return Err(self.remote(describe("GetObject", &e))),
        };
        self.0.existed.store(etag.is_some(), Ordering::SeqCst);
        let mut w = self.0.written.lock().await;
        let mut d = guard(&self.0.doc);
        d.lineage = doc.lineage;
        d.serial = doc.serial;
        d.resources = doc.resources;
        d.records = doc.records;
        w.etag = etag;
        w.version = d.version;
        Ok(())
    }

    pub fn url(&self) -> String {
        self.0.url.clone()
    }

    /// Whether the object existed when it was read.
    pub fn exists(&self) -> bool {
        self.0.existed.load(Ordering::SeqCst)
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(&self.0.url)
    }

    fn remote(&self, message: String) -> StateError {
        StateError::Remote {
            path: self.path(),
            message,
        }
    }

    pub fn snapshot(&self) -> StateSnapshot {
        let d = guard(&self.0.doc);
        StateSnapshot {
            lineage: d.lineage.clone(),
            serial: d.serial,
            resources: d.resources.clone(),
        }
    }

    pub fn meta(&self) -> (String, i64) {
        let d = guard(&self.0.doc);
        (d.lineage.clone(), d.serial)
    }

    /// Sets (`Some`) or removes (`None`) one row, bumping the serial as the local store does.
    pub async fn put(
        &self,
        addr: &ResourceAddr,
        row: Option<StateResource>,
        durability: Durability,
    ) -> Result<(), StateError> {
        self.check_broken()?;
        let version = {
            let mut d = guard(&self.0.doc);
            match row {
                Some(r) => {
                    d.resources.insert(addr.clone(), r);
                }
                None => {
                    d.resources.remove(addr);
                }
            }
            d.serial += 1;
            d.version += 1;
            d.version
        };
        match durability {
            Durability::Now => self.flush_to(version).await,
            Durability::Soon => {
                self.schedule();
                Ok(())
            }
        }
    }

    /// The progress records (see [`Document::records`]).
    pub fn records(&self) -> BTreeMap<String, serde_json::Value> {
        guard(&self.0.doc).records.clone()
    }

    /// Sets (`Some`) or removes (`None`) one progress record, stored before it returns.
    pub async fn put_record(
        &self,
        key: &str,
        value: Option<serde_json::Value>,
    ) -> Result<(), StateError> {
        self.check_broken()?;
        let version = {
            let mut d = guard(&self.0.doc);
            match value {
                Some(v) => {
                    d.records.insert(key.to_string(), v);
                }
                None => {
                    d.records.remove(key);
                }
            }
            d.serial += 1;
            d.version += 1;
            d.version
        };
        self.flush_to(version).await
    }

    /// A background write within `SOON`, unless one is already due.
    fn schedule(&self) {
        if self.0.soon_pending.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(SOON).await;
            me.0.soon_pending.store(false, Ordering::SeqCst);
            let version = guard(&me.0.doc).version;
            if let Err(e) = me.flush_to(version).await {
                *guard(&me.0.deferred) = Some(e.to_string());
            }
        });
    }

    /// Stores everything changed so far.
    pub async fn flush(&self) -> Result<(), StateError> {
        let version = guard(&self.0.doc).version;
        match self.flush_to(version).await {
            Ok(()) => {
                guard(&self.0.deferred).take();
                Ok(())
            }
            Err(e) => {
                let earlier = guard(&self.0.deferred).take();
                Err(match (e, earlier) {
                    (StateError::Remote { path, message }, Some(before)) => StateError::Remote {
                        path,
                        message: format!(
                            "{message} (an earlier background write failed too: {before})"
                        ),
                    },
                    (e, _) => e,
                })
            }
        }
    }

    fn check_broken(&self) -> Result<(), StateError> {
        match &*guard(&self.0.broken) {
            None => Ok(()),
            Some(StateError::LockLost {
                path,
                lock_id,
                message,
            }) => Err(StateError::LockLost {
                path: path.clone(),
                lock_id: lock_id.clone(),
                message: message.clone(),
            }),
            Some(e) => Err(StateError::Conflict {
                path: self.path(),
                message: e.to_string(),
            }),
        }
    }

    /// Group commit: waits for the write in flight, then writes every change made so far in
    /// one request, unless a write since has already stored change `version`.
    async fn flush_to(&self, version: u64) -> Result<(), StateError> {
        self.verified().await?;
        let mut w = self.0.written.lock().await;
        if w.version >= version {
            return Ok(());
        }
        self.check_broken()?;
        let (body, serial, upto) = {
            let d = guard(&self.0.doc);
            let doc = Document {
                format: DOCUMENT_FORMAT,
                lineage: d.lineage.clone(),
                serial: d.serial,
                resources: d.resources.clone(),
                records: d.records.clone(),
            };
            let body = serde_json::to_vec_pretty(&doc)
                .map_err(|e| self.remote(format!("cannot encode the state: {e}")))?;
            (body, d.serial, d.version)
        };
        let write_id = uuid::Uuid::new_v4().to_string();
        let command = guard(&self.0.command).clone();
        let mut req = self
            .0
            .client
            .put_object()
            .bucket(&self.0.bucket)
            .key(&self.0.key)
            .content_type("application/json")
            .metadata("eksnet-serial", serial.to_string())
            .metadata("eksnet-write", &write_id)
            .metadata("eksnet-command", encode_meta(&command))
            .body(ByteStream::from(body));
        req = match &w.etag {
            Some(etag) => req.if_match(etag),
            None => req.if_none_match("*"),
        };
        match req.send().await {
            Ok(out) => {
                w.etag = out.e_tag().map(str::to_string);
                w.version = upto;
                Ok(())
            }
            Err(e) if precondition_failed(&e) => {
                // Either our own write, stored but its answer lost and the request retried,
                // or another writer's: the write id in the stored object tells.
                match self.head(None).await {
                    Ok(Some(head)) if head.write_id.as_deref() == Some(write_id.as_str()) => {
                        w.etag = head.etag;
                        w.version = upto;
                        Ok(())
                    }
                    Ok(found) => {
                        let message = match found {
                            Some(h) => format!(
                                "it is now at serial {} written by `{}`",
                                h.serial
                                    .map(|s| s.to_string())
                                    .unwrap_or_else(|| "?".into()),
                                h.command.unwrap_or_else(|| "?".into())
                            ),
                            None => "it was deleted".into(),
                        };
                        let err = StateError::Conflict {
                            path: self.path(),
                            message,
                        };
                        *guard(&self.0.broken) = Some(StateError::Conflict {
                            path: self.path(),
                            message: err.to_string(),
                        });
                        Err(err)
                    }
                    Err(read) => {
                        Err(self.remote(format!("{} and then: {read}", describe("PutObject", &e))))
                    }
                }
            }
            Err(e) => Err(self.remote(describe("PutObject", &e))),
        }
    }

    /// Replaces the whole state with `doc` in one conditional write.
    pub async fn replace_all(&self, doc: &Document) -> Result<(), StateError> {
        self.check_broken()?;
        let version = {
            let mut d = guard(&self.0.doc);
            d.lineage = doc.lineage.clone();
            d.serial = doc.serial;
            d.resources = doc.resources.clone();
            d.records = doc.records.clone();
            d.version += 1;
            d.version
        };
        self.flush_to(version).await
    }

    async fn head(&self, version_id: Option<&str>) -> Result<Option<Head>, String> {
        let mut req = self
            .0
            .client
            .head_object()
            .bucket(&self.0.bucket)
            .key(&self.0.key);
        if let Some(v) = version_id {
            req = req.version_id(v);
        }
        match req.send().await {
            Ok(out) => {
                let meta = out.metadata();
                let get = |k: &str| meta.and_then(|m| m.get(k)).cloned();
                Ok(Some(Head {
                    etag: out.e_tag().map(str::to_string),
                    serial: get("eksnet-serial").and_then(|s| s.parse().ok()),
                    write_id: get("eksnet-write"),
                    command: get("eksnet-command").map(|c| decode_meta(&c)),
                }))
            }
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(describe("HeadObject", &e)),
        }
    }

    async fn get_lock(&self) -> Result<Option<(LockBody, String, i64)>, StateError> {
        let got = self
            .0
            .client
            .get_object()
            .bucket(&self.0.bucket)
            .key(&self.0.lock_key)
            .send()
            .await;
        match got {
            Ok(out) => {
                let etag = out.e_tag().map(str::to_string).unwrap_or_default();
                let modified = out
                    .last_modified()
                    .map(|t| t.secs())
                    .unwrap_or_else(now_secs);
                let bytes = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| self.remote(format!("reading the lock: {e}")))?
                    .into_bytes();
                let body: LockBody = serde_json::from_slice(&bytes).map_err(|e| {
                    self.remote(format!(
                        "the lock object `{}` is not an eksnet lock ({e}); remove it by hand if no eksnet command is running",
                        self.0.lock_key
                    ))
                })?;
                Ok(Some((body, etag, modified)))
            }
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.remote(describe("GetObject (lock)", &e))),
        }
    }

    pub async fn lock(&self, command: &str) -> Result<String, StateError> {
        *guard(&self.0.command) = command.to_string();
        let body = LockBody {
            id: uuid::Uuid::new_v4().to_string(),
            info: LockInfo::ours(command),
            lease_seconds: self.0.lease.as_secs(),
            renewal: 0,
        };
        // A lock released between our refused create and our read of it: try again.
        for _ in 0..3 {
            let bytes = serde_json::to_vec(&body)
                .map_err(|e| self.remote(format!("cannot encode the lock: {e}")))?;
            let put = self
                .0
                .client
                .put_object()
                .bucket(&self.0.bucket)
                .key(&self.0.lock_key)
                .content_type("application/json")
                .if_none_match("*")
                .body(ByteStream::from(bytes))
                .send()
                .await;
            let etag = match put {
                Ok(out) => out.e_tag().map(str::to_string).unwrap_or_default(),
                Err(e) if precondition_failed(&e) => match self.get_lock().await? {
                    // Our own create, stored, its answer lost, the SDK's retry refused.
                    Some((held, etag, _)) if held.id == body.id => etag,
                    Some((held, _, modified)) => {
                        return Err(StateError::Locked {
                            path: self.path(),
                            lock_id: held.id.clone(),
                            note: lease_note(&held, now_secs() - modified),
                            holder: Box::new(held.info),
                        })
                    }
                    None => continue,
                },
                Err(e) => return Err(self.remote(describe("PutObject (lock)", &e))),
            };
            let id = body.id.clone();
            *guard(&self.0.lock) = Some(HeldLock {
                id: id.clone(),
                etag,
                body: body.clone(),
                renewer: None,
            });
            let renewer = tokio::spawn(self.clone().renew_forever(id.clone()));
            if let Some(h) = guard(&self.0.lock).as_mut() {
                h.renewer = Some(renewer);
            }
            return Ok(id);
        }
        Err(self.remote("the lock changed hands three times while being taken; try again".into()))
    }

    /// Renews the lease every quarter of it while the lock is held.
    async fn renew_forever(self, id: String) {
        let every = (self.0.lease / 4).max(Duration::from_secs(1));
        loop {
            tokio::time::sleep(every).await;
            match self.renew(&id).await {
                Ok(true) => {}
                Ok(false) => return,
                // A failed renewal is tried again at the next tick; the lease has three more.
                Err(_) => {}
            }
        }
    }

    /// One renewal; `Ok(false)` when the lock is no longer ours (or released).
    async fn renew(&self, id: &str) -> Result<bool, StateError> {
        let (mut body, etag) = match &*guard(&self.0.lock) {
            Some(h) if h.id == id => (h.body.clone(), h.etag.clone()),
            _ => return Ok(false),
        };
        body.renewal += 1;
        let bytes = serde_json::to_vec(&body)
            .map_err(|e| self.remote(format!("cannot encode the lock: {e}")))?;
        let put = self
            .0
            .client
            .put_object()
            .bucket(&self.0.bucket)
            .key(&self.0.lock_key)
            .content_type("application/json")
            .if_match(&etag)
            .body(ByteStream::from(bytes))
            .send()
            .await;
        let new_etag = match put {
            Ok(out) => out.e_tag().map(str::to_string).unwrap_or_default(),
            Err(e) if precondition_failed(&e) || status(&e) == Some(404) => {
                match self.get_lock().await? {
                    Some((held, etag, _)) if held.id == id && held.renewal == body.renewal => etag,
                    other => {
                        let message = match other {
                            Some((held, _, _)) => format!("it is now held by {}", held.info),
                            None => "it was removed, by `force-unlock` or by hand".into(),
                        };
                        *guard(&self.0.broken) = Some(StateError::LockLost {
                            path: self.path(),
                            lock_id: id.to_string(),
                            message,
                        });
                        return Ok(false);
                    }
                }
            }
            Err(e) => return Err(self.remote(describe("PutObject (lock renewal)", &e))),
        };
        if let Some(h) = guard(&self.0.lock).as_mut().filter(|h| h.id == id) {
            h.etag = new_etag;
            h.body = body;
        }
        Ok(true)
    }

    /// Removes our lock, and only ours.
    pub async fn unlock(&self, lock_id: &str) -> Result<(), StateError> {
        let held = {
            let mut g = guard(&self.0.lock);
            match g.as_ref() {
                Some(h) if h.id == lock_id => g.take(),
                _ => None,
            }
        };
        let Some(held) = held else {
            return Ok(());
        };
        if let Some(r) = &held.renewer {
            r.abort();
        }
        let mut etag = held.etag;
        for _ in 0..2 {
            let del = self
                .0
                .client
                .delete_object()
                .bucket(&self.0.bucket)
                .key(&self.0.lock_key)
                .if_match(&etag)
                .send()
                .await;
            match del {
                Ok(_) => return Ok(()),
                Err(e) if status(&e) == Some(404) => return Ok(()),
                Err(e) if precondition_failed(&e) => match self.get_lock().await? {
                    // A renewal stored but unanswered changed the ETag: still ours.
                    Some((body, current, _)) if body.id == lock_id => etag = current,
                    // Freed and taken by someone else meanwhile: theirs stays.
                    _ => return Ok(()),
                },
                Err(e) => return Err(self.remote(describe("DeleteObject (lock)", &e))),
            }
        }
        Err(self.remote("the lock kept changing while it was being released".into()))
    }

    pub async fn force_unlock(&self, lock_id: &str) -> Result<(), StateError> {
        let current = self.get_lock().await?;
        match current {
            Some((body, etag, _)) if body.id == lock_id => {
                match self
                    .0
                    .client
                    .delete_object()
                    .bucket(&self.0.bucket)
                    .key(&self.0.lock_key)
                    .if_match(&etag)
                    .send()
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) if status(&e) == Some(404) => Ok(()),
                    Err(e) if precondition_failed(&e) => Err(self.remote(
                        "the lock was renewed while being removed: its holder is alive; try again if you are sure it is not".into(),
                    )),
                    Err(e) => Err(self.remote(describe("DeleteObject (lock)", &e))),
                }
            }
            other => Err(StateError::NoSuchLock {
                path: self.path(),
                lock_id: lock_id.to_string(),
                current: other.map(|(b, _, _)| b.id).unwrap_or_else(|| "none".into()),
            }),
        }
    }

    pub async fn history(&self) -> Result<Vec<Version>, StateError> {
        let mut listed = Vec::new();
        let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
        loop {
            let out = self
                .0
                .client
                .list_object_versions()
                .bucket(&self.0.bucket)
                .prefix(&self.0.key)
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(version_marker.clone())
                .send()
                .await
                .map_err(|e| self.remote(describe("ListObjectVersions", &e)))?;
            for v in out.versions() {
                if v.key() == Some(self.0.key.as_str()) {
                    listed.push((
                        v.version_id().unwrap_or("null").to_string(),
                        v.last_modified().map(rfc3339).unwrap_or_default(),
                        v.is_latest().unwrap_or(false),
                    ));
                }
            }
            if out.is_truncated() != Some(true) {
                break;
            }
            key_marker = out.next_key_marker().map(str::to_string);
            version_marker = out.next_version_id_marker().map(str::to_string);
        }
        // The serial and command are in each version's metadata: one HEAD each, eight at a
        // time.
        use futures::StreamExt;
        let heads: Vec<_> = futures::stream::iter(listed.iter().map(|(id, _, _)| {
            let me = self.clone();
            let id = id.clone();
            async move { me.head(Some(&id)).await }
        }))
        .buffered(8)
        .collect()
        .await;
        let mut versions = Vec::new();
        for ((id, at, latest), head) in listed.into_iter().zip(heads) {
            let head = head.map_err(|e| self.remote(e))?;
            versions.push(Version {
                version_id: id,
                serial: head.as_ref().and_then(|h| h.serial),
                command: head.and_then(|h| h.command),
                stored_at: at,
                latest,
            });
        }
        versions.sort_by(|a, b| b.serial.cmp(&a.serial).then(b.stored_at.cmp(&a.stored_at)));
        Ok(versions)
    }

    pub async fn at_serial(&self, serial: i64) -> Result<Document, StateError> {
        let versions = self.history().await?;
        let Some(v) = versions.iter().find(|v| v.serial == Some(serial)) else {
            let known: Vec<String> = versions
                .iter()
                .filter_map(|v| v.serial.map(|s| s.to_string()))
                .collect();
            return Err(self.remote(format!(
                "no stored version has serial {serial} (stored: {}); is bucket versioning on?",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            )));
        };
        let out = self
            .0
            .client
            .get_object()
            .bucket(&self.0.bucket)
            .key(&self.0.key)
            .version_id(&v.version_id)
            .send()
            .await
            .map_err(|e| self.remote(describe("GetObject", &e)))?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| self.remote(format!("reading the state object: {e}")))?
            .into_bytes();
        parse_document(&self.0.url, &bytes)
    }
}

struct Head {
    etag: Option<String>,
    serial: Option<i64>,
    write_id: Option<String>,
    command: Option<String>,
}

/// What a lock's age says about its holder.
fn lease_note(held: &LockBody, age: i64) -> String {
    let lease = held.lease_seconds as i64;
    if age > lease {
        format!(
            " — its lease expired {}s ago (last renewed {age}s ago): the holder stopped renewing it, so it has most likely died or lost its connection",
            age - lease
        )
    } else {
        format!(" — renewed {age}s ago, lease {lease}s: the holder is probably still running")
    }
}

fn parse_document(url: &str, bytes: &[u8]) -> Result<Document, StateError> {
    let doc: Document = serde_json::from_slice(bytes).map_err(|e| StateError::Remote {
        path: PathBuf::from(url),
        message: format!("the object is not an eksnet state document: {e}"),
    })?;
    if doc.format > DOCUMENT_FORMAT {
        return Err(StateError::SchemaTooNew {
            path: PathBuf::from(url),
            found: doc.format as i64,
        });
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_judged_by_its_lease() {
        let body = LockBody {
            id: "x".into(),
            info: LockInfo::ours("eksnet apply a.toml"),
            lease_seconds: 60,
            renewal: 3,
        };
        assert!(lease_note(&body, 10).contains("probably still running"));
        let old = lease_note(&body, 200);
        assert!(old.contains("expired 140s ago"), "{old}");
        assert!(old.contains("last renewed 200s ago"), "{old}");
    }

    #[test]
    fn commands_survive_the_metadata_encoding() {
        let c = "eksnet apply clusters/prod é.toml";
        let e = encode_meta(c);
        assert!(e.is_ascii());
        assert_eq!(decode_meta(&e), c);
    }
}
