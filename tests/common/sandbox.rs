//! A whole local sandbox (`scripts/sandbox`) for a test: moto behind the AWS fault proxy (EKS
//! cluster fields, add-ons, by default the data plane) and the fake Kubernetes API server, each
//! its own process, in a temp dir of its own. Started with `--watch-pid` of the test process, so
//! nothing outlives the test run even when it is killed; stopped on drop. A sandbox that does
//! not come up fails the test with the script's stderr; it is never skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// What `scripts/sandbox up` is asked for.
#[derive(Clone, Debug)]
pub struct SandboxOptions {
    /// The proxy's data plane (`--no-data-plane` when false). Default on, as the script's.
    pub data_plane: bool,
    /// The proxy's per-request latency (`--latency-ms`).
    pub latency_ms: Option<u64>,
    /// Further aws-fault-proxy options (after `--`).
    pub proxy_args: Vec<String>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            data_plane: true,
            latency_ms: None,
            proxy_args: Vec::new(),
        }
    }
}

pub struct Sandbox {
    /// `AWS_ENDPOINT_URL`: the proxy, in front of moto.
    pub endpoint: String,
    /// The fake API server's kubeconfig (`EKSNET_KUBECONFIG`, `KUBECONFIG`).
    pub kubeconfig: PathBuf,
    /// `http://127.0.0.1:PORT` of the fake Kubernetes API server.
    pub kube_url: String,
    /// `http://127.0.0.1:PORT` of the proxy (its control API is under `/__proxy/`).
    pub proxy_url: String,
    /// Every variable `up` exported, by name.
    pub env: BTreeMap<String, String>,
    dir: tempfile::TempDir,
}

/// This test binary's eksnet lives in `<target dir>/<profile>/`: both, for the script.
fn target_and_profile() -> (PathBuf, String) {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_eksnet"))
        .parent()
        .expect("eksnet's directory");
    let profile = bin_dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a profile directory")
        .to_string();
    let target_dir = bin_dir
        .parent()
        .expect("the target directory")
        .to_path_buf();
    (target_dir, profile)
}

/// `scripts/sandbox` with the same target dir as this test binary's eksnet, so that the script
/// finds the binaries and builds nothing.
pub fn script() -> Command {
    let mut c = Command::new(super::package_dir().join("scripts/sandbox"));
    c.env("CARGO_TARGET_DIR", target_and_profile().0)
        .current_dir(super::package_dir());
    c
}

fn output(cmd: &mut Command, what: &str) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run scripts/sandbox {what}: {e}"))
}

/// The `export NAME=VALUE` lines of `up`, values unquoted as the shell would.
pub fn parse_exports(text: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("export ") else {
            panic!("scripts/sandbox up printed a line that is no export: {line:?}");
        };
        let (name, raw) = rest
            .split_once('=')
            .unwrap_or_else(|| panic!("an export without `=`: {line:?}"));
        let mut value = String::new();
        let mut chars = raw.chars();
        while let Some(ch) = chars.next() {
            match ch {
                '\'' => {
                    for q in chars.by_ref() {
                        if q == '\'' {
                            break;
                        }
                        value.push(q);
                    }
                }
                '\\' => value.extend(chars.next()),
                _ => value.push(ch),
            }
        }
        vars.insert(name.to_string(), value);
    }
    vars
}

impl Sandbox {
    /// Brings a sandbox up in a new temp dir; panics (failing the test) with the script's
    /// stderr if it does not come up.
    pub fn up(opts: SandboxOptions) -> Sandbox {
        // The tools as the tests build them (a lone `cargo test --test X` may not have built
        // them yet): then the script finds all three binaries.
        super::tool_binary("aws-fault-proxy");
        super::tool_binary("fake-kube-apiserver");
        let dir = tempfile::tempdir().expect("tempdir");
        let sandbox_dir = dir.path().join("sandbox");
        let profile = target_and_profile().1;
        let mut cmd = script();
        cmd.arg("up")
            .arg("--dir")
            .arg(&sandbox_dir)
            .args(["--profile", &profile])
            .args(["--watch-pid", &std::process::id().to_string()]);
        if !opts.data_plane {
            cmd.arg("--no-data-plane");
        }
        if let Some(ms) = opts.latency_ms {
            cmd.args(["--latency-ms", &ms.to_string()]);
        }
        if !opts.proxy_args.is_empty() {
            cmd.arg("--").args(&opts.proxy_args);
        }
        let out = output(&mut cmd, "up");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "scripts/sandbox up failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            out.status
        );
        let env = parse_exports(&stdout);
        let get = |name: &str| -> String {
            env.get(name).cloned().unwrap_or_else(|| {
                panic!("scripts/sandbox up exported no {name}\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
            })
        };
        Sandbox {
            endpoint: get("AWS_ENDPOINT_URL"),
            kubeconfig: PathBuf::from(get("EKSNET_KUBECONFIG")),
            kube_url: get("EKSNET_SANDBOX_KUBE_URL"),
            proxy_url: get("EKSNET_SANDBOX_PROXY_URL"),
            env,
            dir,
        }
    }

    /// The directory `up` was given (logs, pid files, ports, kubeconfig).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().join("sandbox")
    }

    /// `scripts/sandbox status` of this sandbox: its exit code and stdout.
    pub fn status(&self) -> (i32, String) {
        let out = output(
            script().arg("status").arg("--dir").arg(self.dir()),
            "status",
        );
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// `scripts/sandbox down` of this sandbox (drop does it too); panics unless it exits 0.
    pub fn down(&self) {
        let out = output(script().arg("down").arg("--dir").arg(self.dir()), "down");
        assert!(
            out.status.success(),
            "scripts/sandbox down failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `eksnet` run in `dir` with the sandbox's environment, like `common::eksnet`.
    pub fn cmd(&self, dir: &Path) -> Command {
        let mut c = super::eksnet(&self.endpoint, dir);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = script().arg("down").arg("--dir").arg(self.dir()).output();
    }
}
