//! CLI behaviour that needs no AWS: the graph command and exit codes of argument errors.

use std::process::Command;

#[path = "support/package_dir.rs"]
mod package_dir;
use package_dir::package_dir;

fn eksnet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_eksnet"));
    c.current_dir(package_dir()).env("NO_COLOR", "1");
    c
}

#[test]
fn graph_prints_dot_with_addresses_and_domain_edges() {
    let out = eksnet()
        .args(["graph", "examples/custom-networking.toml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let dot = String::from_utf8_lossy(&out.stdout);
    assert!(dot.starts_with("digraph eksnet {"), "{dot}");
    for node in [
        "vpc.main",
        "cidr_block.pods",
        "subnet.pod_a",
        "subnet.pod_b",
        "iam_role.cluster",
        "iam_role.node",
        "cluster.main",
        "nodegroup.main",
    ] {
        assert!(
            dot.contains(&format!("\"{node}\";")),
            "node {node} missing:\n{dot}"
        );
    }
    assert!(dot.contains("\"cidr_block.pods\" -> \"subnet.pod_a\" [label=\"subnet inside secondary CIDR block\", style=dashed];"), "{dot}");
    assert!(
        dot.contains("\"cluster.main\" -> \"nodegroup.main\";"),
        "{dot}"
    );

    let out = eksnet()
        .args(["graph", "--destroy", "examples/custom-networking.toml"])
        .output()
        .expect("run");
    let dot = String::from_utf8_lossy(&out.stdout);
    assert!(
        dot.contains("\"nodegroup.main\" -> \"cluster.main\";"),
        "reversed for destroy:\n{dot}"
    );
}

#[test]
fn bad_arguments_exit_non_zero_with_usage() {
    let out = eksnet().args(["plan"]).output().expect("run");
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage"));
    let out = eksnet()
        .args([
            "apply",
            "examples/custom-networking.toml",
            "--replace",
            "nope",
        ])
        .output()
        .expect("run");
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a resource address"));
}

/// With `--json`, even a command line that does not parse gets one JSON `error` event on
/// stderr, and exit 1 (never 2, which `plan --detailed-exitcode` uses for "changes").
#[test]
fn usage_errors_in_json_mode_are_json_events() {
    let out = eksnet()
        .args([
            "plan",
            "--json",
            "examples/custom-networking.toml",
            "--bogus",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(events.len(), 1, "{stderr}");
    assert_eq!(events[0]["event"], "error");
    assert!(
        events[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("unexpected argument '--bogus'")),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

/// An empty spec is valid, but `apply` would destroy everything: say so.
#[test]
fn an_empty_spec_is_valid_with_a_warning() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("empty.toml"), "# nothing yet\n").expect("write");
    let out = eksnet()
        .current_dir(dir.path())
        .args(["validate", "empty.toml"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: empty.toml:1:1: the spec declares no resources: `apply` would destroy everything its state holds"),
        "{stderr}"
    );
}
