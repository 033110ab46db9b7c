//! Golden tests of the pure planner: every directory under `tests/golden/` is one case.
//!
//! A case directory holds:
//! - `spec.toml` — the spec (other files next to it, e.g. a template, are read as usual);
//! - `state.json` — an `eksnet::state::StateSnapshot`, e.g. `{"lineage":"L","serial":3,"resources":{}}`;
//! - `observed.json` — what refresh saw: address → `{cloud_id, attrs, outputs, managed_by}` or
//!   `null` (looked up, absent); an address left out was not looked up;
//! - `options.json` (optional) — `{"destroy": bool, "replace": ["subnet.pod_a"]}`;
//! - `expected.txt` — `eksnet::render::render(&plan, Palette::PLAIN)`, or, when parsing,
//!   validation, the graph or planning fails, the diagnostics (one per line) with paths made
//!   relative to the package root. Plan warnings, if any, follow the rendered plan.
//!
//! To (re)generate the expected files after an intended change, run
//!
//! ```text
//! UPDATE_GOLDEN=1 cargo test --test planner_golden
//! ```
//!
//! and review the diff of `tests/golden/*/expected.txt` before committing it.

use eksnet::addr::ResourceAddr;
use eksnet::diag::Diagnostics;
use eksnet::graph::DependencyGraph;
use eksnet::planner::PlanOptions;
use eksnet::render::{render, Palette};
use eksnet::resources::Observed;
use eksnet::resources::ObservedState;
use eksnet::state::StateSnapshot;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[path = "support/package_dir.rs"]
mod package_dir;
use package_dir::package_dir;

/// Mirrors `eksnet::resources::Observed`, which has no serde derive.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ObservedJson {
    cloud_id: String,
    attrs: Value,
    outputs: Value,
    #[serde(default)]
    managed_by: Option<String>,
}

impl From<ObservedJson> for Observed {
    fn from(o: ObservedJson) -> Self {
        Observed {
            cloud_id: o.cloud_id,
            attrs: o.attrs,
            outputs: o.outputs,
            managed_by: o.managed_by,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OptionsJson {
    #[serde(default)]
    destroy: bool,
    #[serde(default)]
    replace: Vec<ResourceAddr>,
}

fn root() -> PathBuf {
    package_dir()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Diagnostics as text, with the package root stripped from paths so files are portable.
fn diagnostics_text(d: &Diagnostics) -> String {
    let prefix = format!("{}/", root().display());
    d.to_string().replace(&prefix, "")
}

/// Runs one case the way `eksnet plan` does, minus the refresh: parse, validate, graph, plan.
fn run_case(dir: &Path) -> String {
    let spec_path = dir.join("spec.toml");
    let spec = match eksnet::spec::parse(&spec_path, &read(&spec_path)) {
        Ok(s) => s,
        Err(d) => return diagnostics_text(&d),
    };
    let checks = eksnet::validate::validate(&spec);
    if checks.has_errors() {
        return diagnostics_text(&checks);
    }
    let state: StateSnapshot = read_json(&dir.join("state.json"));
    let observed: BTreeMap<ResourceAddr, Option<ObservedJson>> =
        read_json(&dir.join("observed.json"));
    let observed: ObservedState = observed
        .into_iter()
        .map(|(a, o)| (a, o.map(Observed::from)))
        .collect();
    let options_path = dir.join("options.json");
    let options: OptionsJson = if options_path.exists() {
        read_json(&options_path)
    } else {
        OptionsJson::default()
    };
    let opts = PlanOptions {
        destroy: options.destroy,
        replace: options.replace,
    };
    let graph = match DependencyGraph::build(&spec, Some(&state)) {
        Ok(g) => g,
        Err(d) => return diagnostics_text(&d),
    };
    match eksnet::planner::plan(&spec, &graph, &state, &observed, &opts) {
        Ok(plan) => {
            let mut out = render(&plan, Palette::PLAIN);
            for w in &plan.warnings {
                out.push_str(&format!("{w}\n"));
            }
            out.replace(&format!("{}/", root().display()), "")
        }
        Err(d) => diagnostics_text(&d),
    }
}

fn diff(expected: &str, actual: &str) -> String {
    similar::TextDiff::from_lines(expected, actual)
        .unified_diff()
        .context_radius(3)
        .header("expected.txt", "actual")
        .to_string()
}

#[test]
fn golden_plans() {
    let golden = root().join("tests/golden");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&golden)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", golden.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("spec.toml").is_file())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 10,
        "expected at least 10 golden cases, found {}",
        cases.len()
    );
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for dir in &cases {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let actual = run_case(dir);
        let expected_path = dir.join("expected.txt");
        if update {
            std::fs::write(&expected_path, &actual)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", expected_path.display()));
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `UPDATE_GOLDEN=1 cargo test --test planner_golden` to create it",
                expected_path.display()
            )
        });
        if expected != actual {
            failures.push(format!("--- case `{name}`:\n{}", diff(&expected, &actual)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} golden case(s) differ (UPDATE_GOLDEN=1 rewrites expected.txt):\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
