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
                let r = match *service {
                    "eks" => eks(self.port, "GET", "/clusters", None),
                    "ec2" => query(self.port, "ec2", "Action=DescribeVpcs"),
                    "iam" => query(self.port, "iam", "Action=ListRoles"),
                    "sns" => query(self.port, "sns", "Action=ListTopics"),
                    _ => query(self.port, service, "Action=DescribeStacks"),
                };
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
