//! `aws-fault-proxy`: an HTTP proxy between an AWS SDK client and the moto
//! emulator that makes moto behave more like real AWS for tests and
//! benchmarks: added latency, throttling and server errors, transitional
//! resource states (CREATING/DELETING, *_IN_PROGRESS), IAM propagation delay,
//! EC2 DependencyViolation, per-operation request accounting, and a hook that
//! kills the client right after its k-th mutating call succeeded upstream, and
//! lost answers (a call carried out upstream whose answer never arrives).
//! Opt-in (`--eks-cluster-fields`), it also gives EKS clusters the
//! `clusterSecurityGroupId` and `vpcId` moto omits, backed by a real group.
//! It serves the EKS managed add-on API itself (moto has none), optionally applying the
//! `vpc-cni` add-on's DaemonSet to a Kubernetes API server (`--kube-url`), and EKS
//! UpdateNodegroupVersion (launch template versions, as an overlay on moto's nodegroups).
//!
//! Point the client at it with `AWS_ENDPOINT_URL=http://127.0.0.1:PORT`.
//! Control API (JSON): `GET|POST /__proxy/config`, `GET /__proxy/stats`,
//! `POST /__proxy/reset-stats`, `POST /__proxy/reset`, `GET /__proxy/health`.
//! See `README.md` beside this crate for the fields.

mod core;
mod emulators;
mod shared;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value};
use tokio::net::TcpListener;

use crate::core::app::App;
use crate::core::background;
use crate::core::config::{self, Config};
use crate::core::pipeline;

const USAGE: &str = "\
usage: aws-fault-proxy --upstream http://127.0.0.1:MOTOPORT [options]

options:
  --listen ADDR                   address to listen on (default 127.0.0.1:0)
  --port-file PATH                write the chosen port to PATH once listening
  --verbose                       log every AWS request to stderr
  --latency-ms N                  delay added to every AWS request
  --throttle-fraction F           fraction 0..1 of requests answered with throttling
  --throttle-seed N               seed for the fault dice (reproducible runs)
  --server-error-fraction F       fraction 0..1 answered with 500/503
  --transition-ms N               sets all ten window fields below
  --cluster-create-ms N  --cluster-delete-ms N
  --nodegroup-create-ms N  --nodegroup-delete-ms N  --nodegroup-update-ms N
  --stack-create-ms N  --stack-delete-ms N
  --addon-create-ms N  --addon-update-ms N  --addon-delete-ms N
  --iam-propagation-ms N          CreateCluster/CreateNodegroup with a role this new fail
  --dependency-violation-count N  first N DeleteSubnet per subnet fail
  --lose-answer-op OP             requests of operation OP (PutObject, CreateVpc...) are
  --lose-answer-count N           carried out in moto, then the first N get no answer:
                                  the proxy closes the connection instead
  --kill-after-mutating K         signal a process after the K-th mutating answer
  --kill-pid PID | --kill-pid-file PATH
  --kill-signal SIG               number or name (default KILL)
  --eks-cluster-fields[=BOOL]     add clusterSecurityGroupId and vpcId to EKS cluster
                                  answers, backed by a security group made in moto
  --kube-url http://HOST:PORT     Kubernetes API server standing in for every cluster:
                                  the vpc-cni add-on applies its DaemonSet there
  --data-plane[=BOOL]             launch managed nodegroups' instances in moto and have
                                  instances join the --kube-url server as Nodes

Every option after --verbose is also a field of POST /__proxy/config
(dashes become underscores).";

struct Cli {
    upstream: String,
    listen: SocketAddr,
    port_file: Option<String>,
    verbose: bool,
    config: Config,
}

fn parse_args(args: Vec<String>) -> Result<Cli, String> {
    let mut upstream = None;
    let mut listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut port_file = None;
    let mut verbose = false;
    // Config flags are collected into one JSON patch so that they go through
    // exactly the validation of the control API.
    let mut patch = Map::new();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        match flag.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--verbose" => {
                verbose = true;
                continue;
            }
            _ => {}
        }
        let Some(name) = flag.strip_prefix("--") else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        // Switches take no separate value, so that the next argument is not
        // swallowed; `--flag=false` turns one off explicitly.
        let field = name.replace('-', "_");
        if config::BOOL_FIELDS.contains(&field.as_str()) {
            let on = match inline.as_deref() {
                None | Some("true") => true,
                Some("false") => false,
                Some(v) => return Err(format!("{flag} takes true or false, got {v:?}")),
            };
            patch.insert(field, Value::Bool(on));
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => it.next().ok_or_else(|| format!("{flag} needs a value"))?,
        };
        match name {
            "upstream" => upstream = Some(value),
            "listen" => {
                listen = value
                    .parse()
                    .map_err(|e| format!("--listen {value:?}: {e}"))?
            }
            "port-file" => port_file = Some(value),
            other => {
                let field = other.replace('-', "_");
                if !config::FIELDS.contains(&field.as_str()) {
                    return Err(format!("unknown option {flag}"));
                }
                // Numbers stay numbers; anything else (paths, signal names)
                // is taken as a string.
                let v = serde_json::from_str::<Value>(&value)
                    .ok()
                    .filter(|v| v.is_number())
                    .unwrap_or(Value::String(value));
                patch.insert(field, v);
            }
        }
    }
    let upstream = upstream.ok_or("--upstream is required")?;
    let upstream = upstream.trim_end_matches('/').to_string();
    if !upstream.starts_with("http://") {
        return Err(format!(
            "--upstream must be a plain http:// URL (no TLS), got {upstream:?}"
        ));
    }
    let mut config = Config::default();
    config.merge(&Value::Object(patch))?;
    Ok(Cli {
        upstream,
        listen,
        port_file,
        verbose,
        config,
    })
}

/// Writes the port via a temporary file and a rename, so that a test polling
/// for the file never reads it half-written.
fn write_port_file(path: &str, port: u16) -> std::io::Result<()> {
    let tmp = format!("{path}.tmp{}", std::process::id());
    std::fs::write(&tmp, format!("{port}\n"))?;
    std::fs::rename(&tmp, path)
}

#[tokio::main]
async fn main() {
    let cli = match parse_args(std::env::args().skip(1).collect()) {
        Ok(c) => c,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("aws-fault-proxy: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(cli.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("aws-fault-proxy: cannot listen on {}: {e}", cli.listen);
            std::process::exit(1);
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("aws-fault-proxy: local_addr: {e}");
            std::process::exit(1);
        }
    };
    if let Some(path) = &cli.port_file {
        if let Err(e) = write_port_file(path, addr.port()) {
            eprintln!("aws-fault-proxy: cannot write port file {path}: {e}");
            std::process::exit(1);
        }
    }
    eprintln!("listening on http://{addr}");

    let app = Arc::new(App::new(
        cli.upstream,
        cli.config,
        cli.verbose,
        emulators::all(),
    ));
    background::ensure_running(&app);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Typically EMFILE; back off instead of spinning.
                eprintln!("aws-fault-proxy: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| pipeline::handle(app.clone(), req));
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            // Clients dropping connections is normal; nothing to report.
            let _ = conn.await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_become_config() {
        let cli = parse_args(args(&[
            "--upstream",
            "http://127.0.0.1:5000/",
            "--latency-ms",
            "25",
            "--throttle-fraction=0.25",
            "--kill-signal",
            "TERM",
            "--kill-pid-file",
            "/tmp/pid",
            "--transition-ms",
            "300",
            "--lose-answer-op",
            "PutObject",
            "--lose-answer-count=2",
        ]))
        .unwrap();
        assert_eq!(cli.upstream, "http://127.0.0.1:5000");
        assert_eq!(cli.config.latency_ms, 25);
        assert_eq!(cli.config.throttle_fraction, 0.25);
        assert_eq!(cli.config.kill_signal, libc::SIGTERM);
        assert_eq!(cli.config.kill_pid_file.as_deref(), Some("/tmp/pid"));
        assert_eq!(cli.config.stack_delete_ms, 300);
        assert_eq!(cli.config.lose_answer_op.as_deref(), Some("PutObject"));
        assert_eq!(cli.config.lose_answer_count, 2);
        assert!(!cli.config.eks_cluster_fields, "off by default");
    }

    #[test]
    fn switches_take_no_separate_value() {
        let cli = parse_args(args(&[
            "--eks-cluster-fields",
            "--upstream",
            "http://127.0.0.1:5000",
        ]))
        .unwrap();
        assert!(cli.config.eks_cluster_fields);
        assert_eq!(cli.upstream, "http://127.0.0.1:5000");
        let cli = parse_args(args(&[
            "--upstream",
            "http://x",
            "--eks-cluster-fields=false",
        ]))
        .unwrap();
        assert!(!cli.config.eks_cluster_fields);
        assert!(parse_args(args(&["--upstream", "http://x", "--eks-cluster-fields=1"])).is_err());
        let cli = parse_args(args(&[
            "--data-plane",
            "--kube-url",
            "http://127.0.0.1:6443",
            "--upstream",
            "http://x",
        ]))
        .unwrap();
        assert!(cli.config.data_plane);
        assert!(
            parse_args(args(&["--upstream", "http://x", "--data-plane"])).is_err(),
            "the data plane needs --kube-url"
        );
    }

    #[test]
    fn bad_flags_are_rejected() {
        assert!(parse_args(args(&["--latency-ms", "5"])).is_err());
        assert!(parse_args(args(&["--upstream", "https://x"])).is_err());
        assert!(parse_args(args(&["--upstream", "http://x", "--bogus", "1"])).is_err());
        assert!(parse_args(args(&["--upstream", "http://x", "--latency-ms"])).is_err());
    }
}
