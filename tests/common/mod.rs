//! Test harness: a moto server started by the tests themselves on a free loopback port (one per
//! test process, reset before each test), the real `eksnet` binary, and AWS SDK clients that
//! check results behind eksnet's back. A test that needs moto and cannot start it fails with
//! instructions; it is never skipped.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

pub struct Moto {
    pub url: String,
    _child: Child,
}

fn moto_server_path() -> PathBuf {
    if let Ok(p) = std::env::var("EKSNET_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server")
}

fn start_moto() -> Moto {
    let server = moto_server_path();
    assert!(
        server.exists(),
        "moto_server not found at {} — run `scripts/setup` (creates .venv with moto[server]) or set EKSNET_MOTO_SERVER",
        server.display()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port");
    let python = server.with_file_name("python");
    // A small parent watchdog: moto dies with the test process even when it is killed, so no
    // emulator outlives a test run.
    let watchdog = "import os,subprocess,sys,time\np=subprocess.Popen(sys.argv[1:])\nparent=os.getppid()\nwhile p.poll() is None:\n  if os.getppid()!=parent:\n    p.kill();break\n  time.sleep(0.3)\n";
    let child = Command::new(&python)
        .arg("-c")
        .arg(watchdog)
        .arg(&server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start moto via {}: {e}", python.display()));
    let url = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "moto did not start on {url} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto { url, _child: child }
}

/// Held for the whole of a test that uses moto. Each `#[tokio::test]` has its own runtime, so
/// holding this plain mutex across awaits cannot deadlock; it only serialises the tests.
pub struct MotoGuard {
    _serialised: MutexGuard<'static, ()>,
}

/// One moto per test process; tests using it run one at a time and start from a reset.
pub fn moto() -> (MotoGuard, String) {
    static SERVER: OnceLock<Moto> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let m = SERVER.get_or_init(start_moto);
    reset(&m.url);
    (MotoGuard { _serialised: guard }, m.url.clone())
}

pub fn reset(url: &str) {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect to moto");
    use std::io::{Read, Write};
    write!(s, "POST /moto-api/reset HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").expect("send reset");
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    assert!(
        resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200"),
        "moto reset failed: {resp}"
    );
}

/// The environment every eksnet run in tests gets: moto endpoint, dummy credentials, no IMDS.
pub fn eksnet(endpoint: &str, dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_eksnet"));
    c.current_dir(dir)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-west-2")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("EKSNET_POLL_MAX_MS", "100")
        .env("NO_COLOR", "1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN");
    c
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(cmd: &mut Command) -> Run {
    let out: Output = cmd.output().expect("run eksnet");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs and asserts the exit code, printing both streams on failure.
pub fn run_ok(cmd: &mut Command, expected: i32) -> Run {
    let r = run(cmd);
    assert_eq!(
        r.code, expected,
        "exit code\n--- stdout\n{}\n--- stderr\n{}",
        r.stdout, r.stderr
    );
    r
}

/// A temp dir holding a copy of `examples/`.
pub fn example_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let dst = dir.path().join("examples");
    std::fs::create_dir_all(&dst).expect("mkdir");
    for e in std::fs::read_dir(src).expect("examples dir").flatten() {
        std::fs::copy(e.path(), dst.join(e.file_name())).expect("copy example");
    }
    dir
}

/// SDK clients that talk to moto directly, to check what eksnet did.
pub async fn sdk(endpoint: &str) -> eksnet::aws::AwsClients {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(eksnet::aws::http_client())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-west-2"))
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await;
    eksnet::aws::AwsClients::from_config(&conf)
}
