//! In-memory object store: objects, the global resourceVersion counter, watch history,
//! the seed to restore on reset and the log of served requests.

use crate::resources::{by_kind, res, ResId};
// Re-exported: the rest of the crate knows them as the store's.
pub use crate::object::{meta_mut, meta_str, obj_map, parse_rfc3339, rfc3339};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

/// How many past write events are kept so a watch can resume from an older resourceVersion.
const HISTORY: usize = 1000;

/// One write, as delivered to watchers.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub res: ResId,
    pub kind: &'static str,
    pub object: Value,
}

type Key = (ResId, String, String);

pub struct Store {
    /// A BTreeMap so lists come out ordered by namespace then name, like etcd key order.
    objects: BTreeMap<Key, Value>,
    rv: u64,
    seed: Vec<Value>,
    history: VecDeque<Arc<Event>>,
    /// Watches from a resourceVersion below this can no longer be served (410 Gone).
    history_start: u64,
    pub events: broadcast::Sender<Arc<Event>>,
    log: Vec<Value>,
    log_seq: u64,
}

pub fn unix_now() -> SystemTime {
    SystemTime::now()
}

fn random_u64() -> u64 {
    // RandomState is seeded per instance from OS randomness: enough for test UIDs.
    RandomState::new().hash_one(SystemTime::now())
}

pub fn new_uid() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// The 5-character suffix `generateName` gets, from the same alphabet the server uses.
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = random_u64();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// Parses a seed document: `{"objects": [...]}` as JSON or YAML.
pub fn parse_seed(text: &str) -> Result<Vec<Value>, String> {
    let doc: Value = serde_yaml::from_str(text).map_err(|e| format!("invalid seed: {e}"))?;
    match doc.get("objects") {
        Some(Value::Array(a)) => Ok(a.clone()),
        _ => Err("invalid seed: expected a top-level \"objects\" list".into()),
    }
}

pub fn default_seed() -> Vec<Value> {
    // The shipped file is checked by a unit test, so a broken edit fails `cargo test`.
    parse_seed(include_str!("../seed/default.json")).unwrap_or_default()
}

impl Store {
    pub fn new(seed: Vec<Value>) -> Result<Self, String> {
        let mut store = Store {
            objects: BTreeMap::new(),
            rv: 0,
            seed: Vec::new(),
            history: VecDeque::new(),
            history_start: 0,
            events: broadcast::channel(1024).0,
            log: Vec::new(),
            log_seq: 0,
        };
        store.seed_objects(&seed)?;
        store.seed = seed;
        Ok(store)
    }

    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// Adds or replaces objects without the API's validation, so tests can plant state
    /// (pod IPs, node status) that only controllers or kubelets would write.
    pub fn seed_objects(&mut self, objects: &[Value]) -> Result<usize, String> {
        let mut prepared = Vec::new();
        for o in objects {
            let (av, kind) = (o.get("apiVersion"), o.get("kind"));
            let (Some(av), Some(kind)) = (av.and_then(Value::as_str), kind.and_then(Value::as_str))
            else {
                return Err(format!("seed object without apiVersion/kind: {o}"));
            };
            let id = by_kind(av, kind).ok_or_else(|| format!("unsupported kind {av}/{kind}"))?;
            let mut o = o.clone();
            let name = meta_str(&o, "name").unwrap_or_default().to_string();
            if name.is_empty() {
                return Err(format!("seed {kind} without metadata.name"));
            }
            let m = meta_mut(&mut o);
            let ns = if res(id).namespaced {
                let ns = m
                    .get("namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("default");
                ns.to_string()
            } else {
                String::new()
            };
            if !ns.is_empty() {
                m.insert("namespace".into(), json!(ns));
            }
            m.entry("uid").or_insert_with(|| json!(new_uid()));
            m.entry("creationTimestamp")
                .or_insert_with(|| json!(rfc3339(unix_now())));
            if res(id).generation {
                m.entry("generation").or_insert(json!(1));
            }
            crate::managed::normalize_seed(&mut o).map_err(|e| {
                let at = if ns.is_empty() {
                    name.clone()
                } else {
                    format!("{ns}/{name}")
                };
                format!("seed {kind} {at}: invalid metadata.managedFields: {e}")
            })?;
            prepared.push((id, ns, name, o));
        }
        let n = prepared.len();
        for (id, ns, name, o) in prepared {
            let kind = if self.get(id, &ns, &name).is_some() {
                "MODIFIED"
            } else {
                "ADDED"
            };
            self.write(id, &ns, &name, o, kind);
        }
        Ok(n)
    }

    /// Restores the startup seed and clears the request log. The resourceVersion keeps
    /// counting up so no client ever sees it go backwards.
    pub fn reset(&mut self) {
        self.objects.clear();
        self.history.clear();
        self.history_start = self.rv;
        self.log.clear();
        let seed = std::mem::take(&mut self.seed);
        // The seed was validated when the store was built, so this cannot fail.
        let _ = self.seed_objects(&seed);
        self.seed = seed;
    }

    pub fn get(&self, id: ResId, ns: &str, name: &str) -> Option<&Value> {
        self.objects.get(&(id, ns.to_string(), name.to_string()))
    }

    /// Objects of one resource, optionally within one namespace, in key order.
    pub fn list(&self, id: ResId, ns: Option<&str>) -> Vec<&Value> {
        self.objects
            .range((id, String::new(), String::new())..(id + 1, String::new(), String::new()))
            .filter(|((_, n, _), _)| ns.is_none_or(|want| want == n))
            .map(|(_, v)| v)
            .collect()
    }

    fn record(&mut self, id: ResId, kind: &'static str, object: Value) {
        let ev = Arc::new(Event {
            rv: self.rv,
            res: id,
            kind,
            object,
        });
        if self.history.len() == HISTORY {
            if let Some(old) = self.history.pop_front() {
                self.history_start = old.rv;
            }
        }
        self.history.push_back(ev.clone());
        // No receivers is the normal case when nobody watches.
        let _ = self.events.send(ev);
    }

    /// Stores `obj` under a fresh resourceVersion and returns the stored copy.
    pub fn write(
        &mut self,
        id: ResId,
        ns: &str,
        name: &str,
        mut obj: Value,
        kind: &'static str,
    ) -> Value {
        self.rv += 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        self.objects
            .insert((id, ns.to_string(), name.to_string()), obj.clone());
        self.record(id, kind, obj.clone());
        obj
    }

    pub fn delete(&mut self, id: ResId, ns: &str, name: &str) -> Option<Value> {
        let mut obj = self
            .objects
            .remove(&(id, ns.to_string(), name.to_string()))?;
        self.rv += 1;
        // Like the real server, the DELETED event carries the deletion's resourceVersion.
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        self.record(id, "DELETED", obj.clone());
        Some(obj)
    }

    /// Write events after `rv`, or `None` when they have fallen out of the history.
    pub fn events_since(&self, rv: u64) -> Option<Vec<Arc<Event>>> {
        if rv < self.history_start {
            return None;
        }
        Some(self.history.iter().filter(|e| e.rv > rv).cloned().collect())
    }

    pub fn log_request(
        &mut self,
        method: &str,
        path: &str,
        query: &str,
        ct: &str,
        user_agent: &str,
        body: &[u8],
    ) -> u64 {
        self.log_seq += 1;
        let nanos = unix_now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let body = if body.is_empty() {
            Value::Null
        } else {
            // JSON first (exact), then YAML (apply bodies), else the raw text.
            serde_json::from_slice::<Value>(body)
                .or_else(|_| serde_yaml::from_slice::<Value>(body))
                .unwrap_or_else(|_| json!(String::from_utf8_lossy(body)))
        };
        self.log.push(
            json!({"seq": self.log_seq, "unix_nanos": nanos as u64, "method": method,
            "path": path, "query": query, "content_type": ct, "user_agent": user_agent,
            "code": null, "body": body}),
        );
        self.log_seq
    }

    pub fn log_code(&mut self, seq: u64, code: u16) {
        if let Some(e) = self.log.iter_mut().rev().find(|e| e["seq"] == json!(seq)) {
            e["code"] = json!(code);
        }
    }

    pub fn log(&self) -> &[Value] {
        &self.log
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_seed_loads() {
        let seed = parse_seed(include_str!("../seed/default.json")).unwrap();
        assert!(seed.len() >= 10);
        assert!(Store::new(seed).is_ok());
    }
}
