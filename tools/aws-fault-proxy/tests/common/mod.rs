//! Test harness: a real `moto_server`, the proxy binary in front of it, and a
//! minimal raw HTTP/1.1 client (one request per connection), so the tests see
//! exactly the bytes the proxy sends.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A child process killed when the test ends, pass or fail.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

fn moto_binary() -> PathBuf {
    if let Ok(p) = std::env::var("MOTO_SERVER") {
        return PathBuf::from(p);
    }
    // Cargo's run-time value, not env!: a target dir shared between clones reuses an unchanged
    // test binary built in another clone, whose compile-time path may be gone.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("../../.venv/bin/moto_server")
}

/// A running moto_server on a free loopback port.
pub struct Moto {
    pub port: u16,
    _proc: Proc,
}

impl Moto {
    /// Starts moto or fails the test: a missing emulator must not look like
    /// a pass.
    pub fn start() -> Moto {
        let bin = moto_binary();
        assert!(
            bin.exists(),
            "moto_server not found at {}. Install it with \
             `python3 -m venv /work/main/.venv && /work/main/.venv/bin/pip install 'moto[server]'` \
             or point MOTO_SERVER at a moto_server executable.",
            bin.display()
        );
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut proc = Proc(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = proc.0.try_wait() {
                panic!(
                    "moto_server ({}) exited during startup with {status}; \
                     reinstall with `pip install 'moto[server]'`",
                    bin.display()
                );
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on port {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Moto { port, _proc: proc }
    }

    /// moto builds each service's backend lazily: the first call or two of
    /// a service take up to a second. Calling each service once or twice
    /// directly (not through the proxy, so stats stay clean) keeps that out
    /// of the timed windows of the tests.
    pub fn warm(&self, services: &[&str]) {
        for service in services {
            for _ in 0..2 {
                let call = || match *service {
                    "eks" => eks(self.port, "GET", "/clusters", None),
                    "ec2" => query(self.port, "ec2", "Action=DescribeVpcs"),
                    "iam" => query(self.port, "iam", "Action=ListRoles"),
                    "sns" => query(self.port, "sns", "Action=ListTopics"),
                    "s3" => s3(self.port, "GET", "/", &[], b""),
                    _ => query(self.port, service, "Action=DescribeStacks"),
                };
                // Right after it starts listening, a loaded moto may reset the first
                // connections (seen on a busy 2-core machine); the warm-up is where that
                // is absorbed, a few times, so that the tests themselves never see it.
                let mut r = None;
                for attempt in 1..=5 {
                    match std::panic::catch_unwind(call) {
                        Ok(answer) => {
                            r = Some(answer);
                            break;
                        }
                        Err(_) if attempt < 5 => std::thread::sleep(Duration::from_millis(500)),
                        Err(e) => std::panic::resume_unwind(e),
                    }
                }
                let r = r.expect("an answer or a panic");
                assert_eq!(r.status, 200, "warm-up of {service}: {}", r.body);
            }
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// The proxy binary under test.
pub struct Proxy {
    pub port: u16,
    _proc: Proc,
}

impl Proxy {
    pub fn start(upstream: &str, extra_args: &[&str]) -> Proxy {
        let mut child = Command::new(env!("CARGO_BIN_EXE_aws-fault-proxy"))
            .args(["--upstream", upstream])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn aws-fault-proxy");
        let stderr = child.stderr.take().expect("proxy stderr");
        let proc = Proc(child);
        let mut reader = BufReader::new(stderr);
        let mut line = String::new();
        reader.read_line(&mut line).expect("read proxy banner");
        let port = line
            .trim()
            .strip_prefix("listening on http://127.0.0.1:")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected proxy banner {line:?}"));
        // Keep draining stderr so the proxy never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = reader.read_to_string(&mut sink);
        });
        Proxy { port, _proc: proc }
    }

    pub fn config(&self, patch: Value) -> Value {
        let r = request(
            self.port,
            "POST",
            "/__proxy/config",
            &[],
            patch.to_string().as_bytes(),
        );
        assert_eq!(r.status, 200, "config rejected: {}", r.body);
        r.json()
    }

    pub fn stats(&self) -> Value {
        request(self.port, "GET", "/__proxy/stats", &[], b"").json()
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request with `Connection: close`; reads the answer to EOF.
pub fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    s.write_all(head.as_bytes()).expect("write head");
    s.write_all(body).expect("write body");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Resp {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("malformed response: {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let body = match len {
        Some(n) => body.get(..n).unwrap_or(body).to_string(),
        None => body.to_string(),
    };
    Resp {
        status,
        headers,
        body,
    }
}

fn auth(service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/{service}/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature=0000"
    )
}

/// A Query-protocol call (`params` already form-encoded, without Version).
pub fn query(port: u16, service: &str, params: &str) -> Resp {
    let version = match service {
        "ec2" => "2016-11-15",
        "iam" => "2010-05-08",
        "cloudformation" => "2010-05-15",
        "sns" => "2010-03-31",
        "autoscaling" => "2011-01-01",
        _ => "2011-06-15",
    };
    let body = format!("{params}&Version={version}");
    request(
        port,
        "POST",
        "/",
        &[
            ("Authorization", &auth(service)),
            ("X-Amz-Date", "20260101T000000Z"),
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
        ],
        body.as_bytes(),
    )
}

/// An EKS REST-JSON call.
pub fn eks(port: u16, method: &str, path: &str, body: Option<Value>) -> Resp {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    request(
        port,
        method,
        path,
        &[
            ("Authorization", &auth("eks")),
            ("X-Amz-Date", "20260101T000000Z"),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

/// An S3 REST call (path-style), signed for the `s3` scope; `headers` are added.
pub fn s3(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let auth = auth("s3");
    let mut all = vec![
        ("Authorization", auth.as_str()),
        ("X-Amz-Date", "20260101T000000Z"),
        ("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD"),
    ];
    all.extend_from_slice(headers);
    request(port, method, path, &all, body)
}

/// Percent-encodes a form value.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Text of the first `<tag>` element.
pub fn xml(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{tag}>"))?;
    Some(body[start..start + end].to_string())
}

/// moto (warmed for `services`) with the proxy in front.
pub fn moto_and_proxy(services: &[&str], args: &[&str]) -> (Moto, Proxy) {
    let moto = Moto::start();
    moto.warm(services);
    let proxy = Proxy::start(&moto.url(), args);
    (moto, proxy)
}

/// Sleeps until `deadline` (no-op if already past).
pub fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        std::thread::sleep(deadline - now);
    }
}

/// The fake Kubernetes API server of the sibling crate `tools/fake-kube-apiserver`, beside
/// the proxy binary in the target directory; built first if missing (as the root crate's
/// tests do).
pub fn fake_kube_binary() -> PathBuf {
    let package = "fake-kube-apiserver";
    let dir = std::path::Path::new(env!("CARGO_BIN_EXE_aws-fault-proxy"))
        .parent()
        .expect("the proxy binary's directory")
        .to_path_buf();
    let bin = dir.join(format!("{package}{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let target_dir = dir.parent().expect("target dir");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
        let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        let status = Command::new(cargo)
            .current_dir(manifest_dir)
            .args(["build", "--quiet", "-p", package, "--bin", package])
            .env("CARGO_TARGET_DIR", target_dir)
            .status()
            .unwrap_or_else(|e| panic!("cannot run cargo to build {package}: {e}"));
        assert!(status.success(), "building {package} failed");
    }
    assert!(bin.exists(), "{} not found", bin.display());
    bin
}

/// A running fake Kubernetes API server (its default seed: a two-node EKS cluster with the
/// `aws-node` DaemonSet).
pub struct FakeKube {
    pub port: u16,
    _proc: Proc,
}

impl FakeKube {
    pub fn start() -> FakeKube {
        let mut child = Command::new(fake_kube_binary())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn fake-kube-apiserver");
        let stderr = child.stderr.take().expect("fake kube stderr");
        let proc = Proc(child);
        let mut reader = BufReader::new(stderr);
        let mut line = String::new();
        reader.read_line(&mut line).expect("read fake kube banner");
        let port = line
            .trim()
            .strip_prefix("listening on http://127.0.0.1:")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected fake kube banner {line:?}"));
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = reader.read_to_string(&mut sink);
        });
        FakeKube { port, _proc: proc }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn call(&self, method: &str, path: &str) -> Resp {
        request(self.port, method, path, &[], b"")
    }

    /// The API requests the fake has served, in order (`GET /__fake/requests`).
    pub fn requests(&self) -> Vec<Value> {
        let r = self.call("GET", "/__fake/requests");
        assert_eq!(r.status, 200, "{}", r.body);
        r.json().as_array().cloned().unwrap_or_default()
    }
}

/// One request a [`ScriptedServer`] received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: String,
}

type Script = dyn Fn(&Recorded) -> (u16, String) + Send + Sync;

/// A minimal HTTP/1.1 server (keep-alive, Content-Length bodies) whose answers a test
/// scripts: it stands in for a Kubernetes API server where the test needs answers the fake
/// cannot give (a field-manager conflict).
pub struct ScriptedServer {
    pub port: u16,
    log: std::sync::Arc<std::sync::Mutex<Vec<Recorded>>>,
}

impl ScriptedServer {
    pub fn start(
        script: impl Fn(&Recorded) -> (u16, String) + Send + Sync + 'static,
    ) -> ScriptedServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let script: std::sync::Arc<Script> = std::sync::Arc::new(script);
        let shared = log.clone();
        // Serves until the test process ends.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (log, script) = (shared.clone(), script.clone());
                std::thread::spawn(move || serve_scripted(stream, &log, &*script));
            }
        });
        ScriptedServer { port, log }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

fn serve_scripted(stream: TcpStream, log: &std::sync::Mutex<Vec<Recorded>>, script: &Script) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut writer = stream;
    loop {
        let mut start = String::new();
        match reader.read_line(&mut start) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut parts = start.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let target = parts.next().unwrap_or_default().to_string();
        let (mut length, mut content_type) = (0usize, String::new());
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = v.trim().parse().unwrap_or(0),
                    "content-type" => content_type = v.trim().to_string(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let rec = Recorded {
            method,
            path: path.to_string(),
            query: query.to_string(),
            content_type,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        let (status, answer) = script(&rec);
        if let Ok(mut l) = log.lock() {
            l.push(rec);
        }
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            answer.len()
        );
        if writer.write_all(head.as_bytes()).is_err()
            || writer.write_all(answer.as_bytes()).is_err()
        {
            return;
        }
    }
}
