//! CLI behaviour that needs no AWS: the graph command and exit codes of argument errors.
//!
//! Each run of the real binary is compared whole — exit code, stdout and stderr — with an insta
//! snapshot, `tests/snapshots/cli__<name>.snap`, after filters replace what varies between
//! runs (see [`settings`]). A changed output fails with a diff and leaves a `.snap.new`;
//! `INSTA_UPDATE=always cargo test --test cli` accepts it, for review with `git diff`
//! (`tests/planner_golden.rs` says more).

use std::path::Path;
use std::process::Command;

#[path = "support/package_dir.rs"]
mod package_dir;
use package_dir::package_dir;
#[path = "support/snapshots.rs"]
mod snapshots;

fn eksnet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_eksnet"));
    c.current_dir(package_dir()).env("NO_COLOR", "1");
    c
}

/// One finished run of the binary.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().expect("run eksnet");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let code = self
            .code
            .map_or("none (killed by a signal)".into(), |c| c.to_string());
        write!(
            f,
            "exit code: {code}\n----- stdout -----\n{}\n----- stderr -----\n{}",
            self.stdout, self.stderr
        )
    }
}

/// `text` as a regex that matches it literally.
fn literal(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The snapshot settings with filters for what varies between runs: `temp` (a test's temp
/// dir) and the package directory, which are paths on this machine; lineage and other UUIDs;
/// AWS resource ids; state times (`unix:SECONDS`, RFC 3339); and elapsed times, in text
/// (`4.2s`, `1m05s`) and in JSON events (`"elapsed":4.2`).
fn settings(temp: Option<&Path>) -> insta::Settings {
    let mut s = snapshots::settings();
    if let Some(t) = temp {
        for p in [t.to_path_buf(), t.canonicalize().expect("temp dir path")] {
            s.add_filter(&literal(&p.display().to_string()), "[TEMP]");
        }
    }
    s.add_filter(&literal(&package_dir().display().to_string()), "[PACKAGE]");
    s.add_filter(
        r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
        "[UUID]",
    );
    s.add_filter(
        r"\b(vpc|subnet|sg|vpc-cidr-assoc|eni|igw|nat|rtb|eipalloc)-[0-9a-f]{8,17}\b",
        "[$1-ID]",
    );
    s.add_filter(r"\bunix:\d+\b", "unix:[TIME]");
    s.add_filter(
        r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?",
        "[TIME]",
    );
    s.add_filter(r"\b(\d+m\d{2}s|\d+\.\d+s)\b", "[DURATION]");
    s.add_filter(r#""elapsed":\s*[0-9.]+"#, r#""elapsed":"[DURATION]""#);
    s
}

/// Compares the whole run with the snapshot `cli__<name>`.
fn assert_run(name: &str, r: &Run, temp: Option<&Path>) {
    settings(temp).bind(|| insta::assert_snapshot!(name, r));
}

#[test]
fn graph_prints_dot_with_addresses_and_domain_edges() {
    // Every address, the dependency edges, and the domain edges labelled and dashed.
    let r = run(eksnet().args(["graph", "examples/custom-networking.toml"]));
    assert_run("graph", &r, None);
    assert_eq!(r.code, Some(0));

    // The same edges reversed for destroy.
    let r = run(eksnet().args(["graph", "--destroy", "examples/custom-networking.toml"]));
    assert_run("graph_destroy", &r, None);
    assert_eq!(r.code, Some(0));
}

#[test]
fn bad_arguments_exit_non_zero_with_usage() {
    let r = run(eksnet().args(["plan"]));
    assert_run("plan_without_spec", &r, None);
    assert_ne!(r.code, Some(0));

    let r = run(eksnet().args([
        "apply",
        "examples/custom-networking.toml",
        "--replace",
        "nope",
    ]));
    assert_run("replace_not_an_address", &r, None);
    assert_ne!(r.code, Some(0));
}

/// With `--json`, even a command line that does not parse gets one JSON `error` event on
/// stderr, and exit 1 (never 2, which `plan --detailed-exitcode` uses for "changes").
#[test]
fn usage_errors_in_json_mode_are_json_events() {
    let r = run(eksnet().args([
        "plan",
        "--json",
        "examples/custom-networking.toml",
        "--bogus",
    ]));
    assert_run("json_usage_error", &r, None);
    assert_eq!(r.code, Some(1));
    assert!(r.stdout.is_empty());
    let events: Vec<serde_json::Value> = r
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(events.len(), 1, "{}", r.stderr);
    assert_eq!(events[0]["event"], "error");
}

/// An empty spec is valid, but `apply` would destroy everything: say so.
#[test]
fn an_empty_spec_is_valid_with_a_warning() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("empty.toml"), "# nothing yet\n").expect("write");
    let r = run(eksnet()
        .current_dir(dir.path())
        .args(["validate", "empty.toml"]));
    assert_run("empty_spec", &r, Some(dir.path()));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

/// The filters on a made-up output with one of each thing that varies.
#[test]
fn filters_replace_what_varies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = format!(
        "{}/empty.toml in {}\nlineage 0f5e3c1a-2b4d-4e6f-8a9b-0c1d2e3f4a5b since unix:1764700000 \
         (2026-12-02T18:43:42Z)\nsubnet-0aa11111111111111 created in 4.2s, the stack in 1m05s\n\
         {{\"event\":\"done\",\"elapsed\":0.25}}\n",
        dir.path().display(),
        package_dir().display(),
    );
    settings(Some(dir.path())).bind(|| {
        insta::assert_snapshot!(text, @r#"
        [TEMP]/empty.toml in [PACKAGE]
        lineage [UUID] since unix:[TIME] ([TIME])
        [subnet-ID] created in [DURATION], the stack in [DURATION]
        {"event":"done","elapsed":"[DURATION]"}
        "#)
    });
}
