//! Test harness: a moto server started by the tests themselves on a free loopback port (one per
//! test process, reset before each test), the real `eksnet` binary, and AWS SDK clients that
//! check results behind eksnet's back. A test that needs moto and cannot start it fails with
//! instructions; it is never skipped.
#![allow(dead_code)]

#[path = "../support/package_dir.rs"]
mod package_dir;
pub use package_dir::package_dir;
pub mod existing_cluster;
pub mod sandbox;

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
    package_dir().join(".venv/bin/moto_server")
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
    let (status, body) = http(
        url.trim_start_matches("http://"),
        "POST",
        "/moto-api/reset",
        "",
    );
    assert_eq!(status, 200, "moto reset failed: {body}");
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
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("EKSNET_KUBECONFIG")
        .env_remove("EKSNET_KUBE_CONTEXT");
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
    let src = package_dir().join("examples");
    let dst = dir.path().join("examples");
    std::fs::create_dir_all(&dst).expect("mkdir");
    for e in std::fs::read_dir(src).expect("examples dir").flatten() {
        std::fs::copy(e.path(), dst.join(e.file_name())).expect("copy example");
    }
    dir
}

/// SDK clients that talk to moto directly, to check what eksnet did.
pub async fn sdk(endpoint: &str) -> eksnet::cloud::aws::AwsClients {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(eksnet::cloud::aws::http_client())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-west-2"))
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await;
    eksnet::cloud::aws::AwsClients::from_config(&conf)
}

/// The subnets whose CIDR is one of `cidrs`, as DescribeSubnets finds them (none for a
/// deleted one).
pub async fn subnets_by_cidr(
    aws: &eksnet::cloud::aws::AwsClients,
    cidrs: &[&str],
) -> Vec<aws_sdk_ec2::types::Subnet> {
    let mut filter = aws_sdk_ec2::types::Filter::builder().name("cidr-block");
    for c in cidrs {
        filter = filter.values(*c);
    }
    aws.ec2
        .describe_subnets()
        .filters(filter.build())
        .send()
        .await
        .expect("DescribeSubnets")
        .subnets()
        .to_vec()
}

/// A binary of another workspace package (the test-support tools). `CARGO_BIN_EXE_` only
/// covers this package, so the path is derived from eksnet's own: both land in the same
/// `<target>/<profile>/`. `cargo test --workspace` builds them; a lone `cargo test --test X`
/// may not, so a missing one is built here with the same cargo and target dir.
pub fn tool_binary(package: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_eksnet"))
        .parent()
        .expect("eksnet's directory")
        .to_path_buf();
    let bin = dir.join(format!("{package}{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let target_dir = dir.parent().expect("target dir");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
        let status = Command::new(cargo)
            .current_dir(package_dir())
            .args(["build", "--quiet", "-p", package, "--bin", package])
            .env("CARGO_TARGET_DIR", target_dir)
            .status()
            .unwrap_or_else(|e| panic!("cannot run cargo to build {package}: {e}"));
        assert!(status.success(), "building {package} failed");
    }
    assert!(bin.exists(), "{} not found", bin.display());
    bin
}

/// A test-support tool started under a watchdog: the tool dies when the test process does
/// (the watchdog waits on our stdin pipe), so none outlives its test.
pub struct ToolProcess {
    pub port: u16,
    watchdog: Child,
    lifeline: Option<std::process::ChildStdin>,
}

impl ToolProcess {
    /// Starts `bin` with `args` plus `--port-file FILE` and waits for the port.
    pub fn start(bin: &Path, args: &[&std::ffi::OsStr], dir: &Path) -> ToolProcess {
        let port_file = dir.join("port");
        let watchdog = "import subprocess,sys\np=subprocess.Popen(sys.argv[1:],stdin=subprocess.DEVNULL,stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)\nsys.stdin.read()\np.kill()\np.wait()\n";
        let python = moto_server_path().with_file_name("python");
        let mut child = Command::new(&python)
            .arg("-c")
            .arg(watchdog)
            .arg(bin)
            .args(args)
            .arg("--port-file")
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
                panic!("{} exited during startup: {status}", bin.display());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{} did not start within 30 s",
                bin.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        ToolProcess {
            port,
            watchdog: child,
            lifeline,
        }
    }
}

impl Drop for ToolProcess {
    fn drop(&mut self) {
        drop(self.lifeline.take());
        let _ = self.watchdog.wait();
    }
}

/// The in-repo fake Kubernetes API server, one per test process, reset by `moto_and_kube()`.
pub struct FakeKube {
    pub url: String,
    pub kubeconfig: PathBuf,
    addr: String,
    _process: ToolProcess,
    _dir: tempfile::TempDir,
}

fn start_fake_kube() -> FakeKube {
    let bin = tool_binary("fake-kube-apiserver");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let process = ToolProcess::start(
        &bin,
        &["--kubeconfig-out".as_ref(), kubeconfig.as_os_str()],
        dir.path(),
    );
    let addr = format!("127.0.0.1:{}", process.port);
    FakeKube {
        url: format!("http://{addr}"),
        kubeconfig,
        addr,
        _process: process,
        _dir: dir,
    }
}

/// A Node as a kubelet registers it in us-west-2 and reports it Ready: for tests that seed a
/// cluster's nodes instead of letting the proxy's data plane launch them.
pub fn ready_node(name: &str, zone: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name,
            "topology.kubernetes.io/region": "us-west-2",
            "topology.kubernetes.io/zone": zone}},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "kubelet is posting ready status"}]}
    })
}

/// Moto plus the fake Kubernetes API server, both reset; tests run one at a time.
pub fn moto_and_kube() -> (MotoGuard, String, &'static FakeKube) {
    static KUBE: OnceLock<FakeKube> = OnceLock::new();
    let (guard, url) = moto();
    let kube = KUBE.get_or_init(start_fake_kube);
    let (status, body) = http(&kube.addr, "POST", "/__fake/reset", "");
    assert_eq!(status, 200, "fake kube reset: {body}");
    (guard, url, kube)
}

impl FakeKube {
    /// GET a path as JSON.
    pub fn get(&self, path: &str) -> serde_json::Value {
        let (status, body) = http(&self.addr, "GET", path, "");
        assert!(
            status == 200 || status == 404,
            "GET {path}: {status} {body}"
        );
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
    }

    /// Every API request served since the last reset, in order.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        self.get("/__fake/requests")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Arms the fake's kill hook: once the `after_writes`-th Kubernetes write of eksnet from now
    /// (to `path` only, if given) is in the store, the process whose pid `pid_file` holds at that
    /// moment gets SIGKILL, before the write's answer is sent. Returns the hook's state.
    pub fn arm_kill(
        &self,
        after_writes: usize,
        path: Option<&str>,
        pid_file: &Path,
    ) -> serde_json::Value {
        // Only eksnet's writes count: the proxy's data plane writes Nodes and pods meanwhile.
        let config = serde_json::json!({"after_writes": after_writes, "path": path,
            "pid_file": pid_file, "user_agent": "eksnet/"});
        self.kill_config(&config)
    }

    /// Disarms the kill hook (`/__fake/reset` does too).
    pub fn disarm_kill(&self) {
        self.kill_config(&serde_json::Value::Null);
    }

    /// The kill hook's state: `armed`, `writes`, `fired`, `killed`, `pid`, `after_seq`
    /// (request-log seq of the write it fired after), `error`.
    pub fn kill_hook(&self) -> serde_json::Value {
        self.get("/__fake/kill")
    }

    fn kill_config(&self, config: &serde_json::Value) -> serde_json::Value {
        let (status, body) = http(&self.addr, "POST", "/__fake/kill", &config.to_string());
        assert_eq!(status, 200, "kill hook {config}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("kill hook: not JSON ({e}): {body}"))
    }

    /// Adds or replaces objects (pods, nodes…).
    pub fn seed(&self, objects: serde_json::Value) {
        let (status, body) = http(
            &self.addr,
            "POST",
            "/__fake/seed",
            &serde_json::json!({ "objects": objects }).to_string(),
        );
        assert_eq!(status, 200, "seed: {body}");
    }
}

/// One HTTP request to a test helper on this machine (moto's control API, the fake
/// Kubernetes API server, the fault proxy's control endpoints): `addr` is `HOST:PORT`, the body
/// is sent as JSON. Returns the status and the body; any status is an answer (a 404 or 500 is
/// the caller's to judge), only a failure to talk HTTP at all panics.
pub fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    let agent = AGENT.get_or_init(|| {
        ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                // Loopback only: never through an HTTP(S)_PROXY of the environment.
                .proxy(None)
                // One connection per request, as before: never a pooled connection that a
                // helper closed in the meantime.
                .max_idle_connections(0)
                .timeout_global(Some(Duration::from_secs(60)))
                .build(),
        )
    });
    let url = format!("http://{addr}{path}");
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(&url)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let mut response = agent
        .run(request)
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let bytes = response
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .unwrap_or_else(|e| panic!("{method} {url}: reading the body: {e}"));
    (
        response.status().as_u16(),
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// One nodegroup as EKS describes it, asked through the SDK; panics (failing the test) when
/// it does not exist.
pub async fn described_nodegroup(
    aws: &eksnet::cloud::aws::AwsClients,
    cluster: &str,
    name: &str,
) -> aws_sdk_eks::types::Nodegroup {
    aws.eks
        .describe_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("describe nodegroup {cluster}/{name}: {e}"))
        .nodegroup
        .unwrap_or_else(|| panic!("nodegroup {cluster}/{name}: no body"))
}
