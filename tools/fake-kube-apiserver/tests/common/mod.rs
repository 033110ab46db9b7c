//! Test harness: an in-process fake server on its own thread plus a tiny blocking HTTP client.

#![allow(dead_code)]

use fake_kube_apiserver::{default_seed, serve, State};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub struct Fake {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug)]
pub struct Resp {
    pub code: u16,
    pub content_type: String,
    pub body: Value,
}

/// Starts a fake with the built-in seed on a free loopback port.
pub fn start() -> Fake {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            addr_tx
                .send(listener.local_addr().expect("addr"))
                .expect("send addr");
            let state = State::new(default_seed()).expect("seed");
            serve(listener, state, async {
                let _ = stopped.await;
            })
            .await;
        });
    });
    let addr = addr_rx.recv().expect("server thread started");
    Fake {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Decodes an HTTP/1.1 chunked body.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = raw.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&raw[..pos]).unwrap_or("0").trim(), 16)
                .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = pos + 2;
        out.extend_from_slice(&raw[start..(start + size).min(raw.len())]);
        raw = &raw[(start + size + 2).min(raw.len())..];
    }
    out
}

/// One request on a fresh connection (`Connection: close`), returning status and JSON body.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            })
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let mut bytes = raw[split + 4..].to_vec();
    if header("transfer-encoding").eq_ignore_ascii_case("chunked") {
        bytes = dechunk(&bytes);
    }
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Resp {
        code,
        content_type: header("content-type"),
        body,
    }
}

impl Fake {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn get(&self, path: &str) -> Resp {
        request(self.addr, "GET", path, &[], "")
    }
    pub fn send(&self, method: &str, path: &str, content_type: &str, body: &Value) -> Resp {
        let text = match body {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        request(
            self.addr,
            method,
            path,
            &[("Content-Type", content_type)],
            &text,
        )
    }
    pub fn post(&self, path: &str, body: &Value) -> Resp {
        self.send("POST", path, "application/json", body)
    }
    pub fn put(&self, path: &str, body: &Value) -> Resp {
        self.send("PUT", path, "application/json", body)
    }
    pub fn patch(&self, path: &str, content_type: &str, body: &Value) -> Resp {
        self.send("PATCH", path, content_type, body)
    }
    pub fn delete(&self, path: &str) -> Resp {
        request(self.addr, "DELETE", path, &[], "")
    }
    /// Adds two Ready nodes and the six Running pods they host (aws-node, kube-proxy and
    /// coredns, with IPs) from `tests/common/cluster.json`: the state of a cluster whose
    /// nodes have joined, which the default seed (a fresh cluster) no longer has.
    pub fn seed_cluster(&self) {
        let r = request(
            self.addr,
            "POST",
            "/__fake/seed",
            &[("Content-Type", "application/json")],
            CLUSTER,
        );
        assert_eq!(r.code, 200, "seeding the cluster fixture: {}", r.body);
        assert_eq!(r.body["seeded"], 9);
    }
    /// The fake's request log.
    pub fn requests(&self) -> Vec<Value> {
        match self.get("/__fake/requests").body {
            Value::Array(a) => a,
            other => panic!("request log is not a list: {other}"),
        }
    }
}

pub const DS: &str = "/apis/apps/v1/namespaces/kube-system/daemonsets/aws-node";
pub const ENI: &str = "/apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs";
/// Nodes and pods of a cluster whose nodes have joined (see [`Fake::seed_cluster`]).
pub const CLUSTER: &str = include_str!("cluster.json");
pub const NODE_A: &str = "ip-192-168-0-70.us-west-2.compute.internal";

/// `name=value` pairs of the aws-node container's env, in order.
pub fn env_of(ds: &Value) -> Vec<(String, String)> {
    let c = &ds["spec"]["template"]["spec"]["containers"][0];
    c["env"]
        .as_array()
        .expect("env list")
        .iter()
        .map(|e| {
            let v = e["value"].as_str().unwrap_or("<valueFrom>");
            (
                e["name"].as_str().unwrap_or_default().to_string(),
                v.to_string(),
            )
        })
        .collect()
}

pub fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            i["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

pub fn rv(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("resourceVersion")
}
