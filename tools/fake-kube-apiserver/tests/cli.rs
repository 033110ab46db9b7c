//! The standalone binary: flags, port/kubeconfig files, custom seed and clean SIGTERM exit.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn binary_writes_port_and_kubeconfig_and_exits_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("fake-kube-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (seed, port_file, kubeconfig) = (dir.join("seed.yaml"), dir.join("port"), dir.join("kc"));
    std::fs::write(
        &seed,
        "objects:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: kube-system}\n\
         - apiVersion: v1\n  kind: Node\n  metadata:\n    name: only-node\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fake-kube-apiserver"))
        .arg("--listen=127.0.0.1:0")
        .arg("--seed")
        .arg(&seed)
        .arg("--port-file")
        .arg(&port_file)
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let port: u16 = loop {
        if let Some(p) = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break p;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no port file");
        std::thread::sleep(Duration::from_millis(20));
    };
    let kc = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(
        kc.contains(&format!("server: http://127.0.0.1:{port}")),
        "{kc}"
    );
    assert!(kc.contains("current-context: fake"));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let nodes = common::request(addr, "GET", "/api/v1/nodes", &[], "").body;
    assert_eq!(common::names(&nodes), ["only-node"]);
    let dss = common::request(addr, "GET", "/apis/apps/v1/daemonsets", &[], "").body;
    assert_eq!(
        common::names(&dss).len(),
        0,
        "a custom seed replaces the default one"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains(&format!("listening on http://127.0.0.1:{port}")),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn binary_rejects_bad_arguments() {
    let out = Command::new(env!("CARGO_BIN_EXE_fake-kube-apiserver"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: fake-kube-apiserver"));
    let out = Command::new(env!("CARGO_BIN_EXE_fake-kube-apiserver"))
        .args(["--seed", "/nonexistent/seed.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
