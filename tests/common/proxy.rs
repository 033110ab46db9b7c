//! The AWS fault proxy (`tools/aws-fault-proxy`) for eksnet's own integration tests: one proxy
//! process per test in front of the test process's moto, its control API, and helpers to read
//! its request records.
//!
//! Included by test files with `#[path = "common/proxy.rs"] mod proxy;` (not through
//! `common/mod.rs`), so tests that do not need the proxy do not compile it.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The proxy executable.
///
/// `CARGO_BIN_EXE_<name>` only exists for binaries of the package under test, and the proxy is
/// another workspace package, so its path is derived from eksnet's: both land in the same
/// `<target dir>/<profile>/` directory. A plain `cargo test --test resilience` builds only the
/// root package, so when the proxy is not there yet it is built here with the same cargo, target
/// dir and profile (a one-off of a few seconds; cargo has released its build lock by the time
/// tests run). `EKSNET_FAULT_PROXY` points at another build.
pub fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("EKSNET_FAULT_PROXY") {
            return PathBuf::from(p);
        }
        let dir = Path::new(env!("CARGO_BIN_EXE_eksnet"))
            .parent()
            .expect("eksnet's directory")
            .to_path_buf();
        let bin = dir.join(format!("aws-fault-proxy{}", std::env::consts::EXE_SUFFIX));
        if !bin.exists() {
            build(&dir);
        }
        assert!(
            bin.exists(),
            "aws-fault-proxy not found at {} even after building it",
            bin.display()
        );
        bin
    })
    .clone()
}

fn build(profile_dir: &Path) {
    let target_dir = profile_dir.parent().expect("target dir");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "build",
            "--quiet",
            "-p",
            "aws-fault-proxy",
            "--bin",
            "aws-fault-proxy",
        ])
        .env("CARGO_TARGET_DIR", target_dir);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build -p aws-fault-proxy");
    assert!(
        status.success(),
        "cargo build -p aws-fault-proxy failed: {status}"
    );
}

/// Python for the watchdog: the interpreter of the moto venv the harness already requires.
fn python() -> PathBuf {
    let server = std::env::var("EKSNET_MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server"));
    let venv = server.with_file_name("python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// A running proxy. Dropping it stops the proxy.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub url: String,
    addr: String,
    watchdog: Child,
    /// Closing this pipe (on drop, or when the test process dies in any way) makes the
    /// watchdog kill the proxy, so no proxy outlives its test.
    lifeline: Option<ChildStdin>,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// Starts a proxy in front of `upstream` (moto's URL) with no fault configured.
    pub fn start(upstream: &str) -> Proxy {
        let bin = binary();
        let dir = tempfile::tempdir().expect("tempdir");
        let port_file = dir.path().join("port");
        let watchdog = "import subprocess,sys\np=subprocess.Popen(sys.argv[1:],stdin=subprocess.DEVNULL,stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)\nsys.stdin.read()\np.kill()\np.wait()\n";
        let mut child = Command::new(python())
            .arg("-c")
            .arg(watchdog)
            .arg(&bin)
            .args(["--upstream", upstream, "--port-file"])
            .arg(&port_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} under a watchdog: {e}", bin.display()));
        let lifeline = child.stdin.take();
        let start = Instant::now();
        let port = loop {
            if let Some(p) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.trim().parse::<u16>().ok())
            {
                break p;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("aws-fault-proxy exited during startup: {status}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "aws-fault-proxy did not start within 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let addr = format!("127.0.0.1:{port}");
        Proxy {
            url: format!("http://{addr}"),
            addr,
            watchdog: child,
            lifeline,
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

    pub fn reset_stats(&self) {
        self.control("POST", "/__proxy/reset-stats", "");
    }

    /// Clears windows, counters, stats and the kill hook, and resets moto behind the proxy.
    pub fn reset(&self) {
        let v = self.control("POST", "/__proxy/reset", "");
        assert_eq!(v["ok"], true, "proxy reset: {v}");
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        drop(self.lifeline.take());
        let _ = self.watchdog.wait();
    }
}

/// One HTTP/1.1 request on its own connection: (status, body).
pub fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send request");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read answer");
    let (head, payload) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, payload.to_string())
}

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
