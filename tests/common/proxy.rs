//! The AWS fault proxy (`tools/aws-fault-proxy`) for eksnet's own integration tests: one proxy
//! process per test in front of the test process's moto, its control API, and helpers to read
//! its request records.
//!
//! Included by test files with `#[path = "common/proxy.rs"] mod proxy;` (not through
//! `common/mod.rs`), so tests that do not need the proxy do not compile it.
#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;

/// The proxy executable (`EKSNET_FAULT_PROXY` points at another build).
pub fn binary() -> PathBuf {
    match std::env::var("EKSNET_FAULT_PROXY") {
        Ok(p) => PathBuf::from(p),
        Err(_) => crate::common::tool_binary("aws-fault-proxy"),
    }
}

/// A running proxy. Dropping it stops the proxy.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub url: String,
    addr: String,
    _process: crate::common::ToolProcess,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// Starts a proxy in front of `upstream` (moto's URL) with no fault configured.
    pub fn start(upstream: &str) -> Proxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let process = crate::common::ToolProcess::start(
            &binary(),
            &["--upstream".as_ref(), upstream.as_ref()],
            dir.path(),
        );
        let addr = format!("127.0.0.1:{}", process.port);
        Proxy {
            url: format!("http://{addr}"),
            addr,
            _process: process,
            _dir: dir,
        }
    }

    /// One control request; panics unless it answers 200.
    fn control(&self, method: &str, path: &str, body: &str) -> Value {
        let (status, text) = http(&self.addr, method, path, body);
        assert_eq!(status, 200, "{method} {path} {body}: {text}");
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"))
    }

    /// Merges a config patch (`null` resets a field); returns the whole config.
    pub fn config(&self, patch: Value) -> Value {
        self.control("POST", "/__proxy/config", &patch.to_string())
    }

    pub fn stats(&self) -> Stats {
        Stats(self.control("GET", "/__proxy/stats", ""))
    }

    /// Waits until the proxy has no AWS request in flight: every request it received has been
    /// answered by moto (the proxy carries a request out even after its client died). A test
    /// that killed eksnet calls this before it runs eksnet again or reads moto, as a user
    /// re-running later would find AWS done with the dead run's requests; moto answering a
    /// describe while it still builds a stack is not something AWS does. Panics after a minute.
    pub fn wait_idle(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let stats = self.stats();
            if stats.0["in_flight"].as_u64() == Some(0) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the proxy still has requests in flight after 60 s: {}",
                stats.0["in_flight"]
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn reset_stats(&self) {
        self.control("POST", "/__proxy/reset-stats", "");
    }

    /// Clears windows, counters, stats and the kill hook, and resets moto behind the proxy.
    pub fn reset(&self) {
        let v = self.control("POST", "/__proxy/reset", "");
        assert_eq!(v["ok"], true, "proxy reset: {v}");
    }
}

pub use crate::common::http;

/// `GET /__proxy/stats`, with accessors for what the tests look at.
#[derive(Debug, Clone)]
pub struct Stats(pub Value);

/// One proxied request, times in milliseconds since the epoch.
#[derive(Debug, Clone)]
pub struct Req {
    pub seq: u64,
    pub op: String,
    pub mutating: bool,
    pub start_ms: f64,
    pub end_ms: f64,
    pub status: u64,
    pub fault: Option<String>,
}

impl Stats {
    pub fn total(&self) -> u64 {
        self.0["total"].as_u64().unwrap_or(0)
    }
    pub fn mutating(&self) -> u64 {
        self.0["mutating"].as_u64().unwrap_or(0)
    }
    pub fn round_trips(&self) -> u64 {
        self.0["round_trips"].as_u64().unwrap_or(0)
    }
    pub fn count(&self, op: &str) -> u64 {
        self.0["by_operation"][op].as_u64().unwrap_or(0)
    }
    pub fn requests(&self) -> Vec<Req> {
        self.0["requests"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| Req {
                        seq: r["seq"].as_u64().unwrap_or(0),
                        op: r["op"].as_str().unwrap_or_default().to_string(),
                        mutating: r["mutating"].as_bool().unwrap_or(false),
                        start_ms: r["start_unix_nanos"].as_f64().unwrap_or(0.0) / 1e6,
                        end_ms: r["end_unix_nanos"].as_f64().unwrap_or(0.0) / 1e6,
                        status: r["status"].as_u64().unwrap_or(0),
                        fault: r["fault"].as_str().map(String::from),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
    /// Requests of one operation, by sequence number.
    pub fn of(&self, op: &str) -> Vec<Req> {
        self.requests().into_iter().filter(|r| r.op == op).collect()
    }
    /// Requests answered with this injected fault.
    pub fn faulted(&self, fault: &str) -> Vec<Req> {
        self.requests()
            .into_iter()
            .filter(|r| r.fault.as_deref() == Some(fault))
            .collect()
    }
}
