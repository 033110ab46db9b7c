//! Golden tests of the pure planner: every directory under `tests/golden/` is one case, and
//! one `#[test]` of the same name (listed in `golden_cases!`) plans it.
//!
//! A case directory holds:
//! - `spec.toml` — the spec (other files next to it, e.g. a template, are read as usual);
//! - `state.json` — an `eksnet::state::StateSnapshot`, e.g. `{"lineage":"L","serial":3,"resources":{}}`;
//! - `observed.json` — what refresh saw: address → `{cloud_id, attrs, outputs, managed_by}` or
//!   `null` (looked up, absent); an address left out was not looked up;
//! - `options.json` (optional) — `{"destroy": bool, "replace": ["subnet.pod_a"]}`.
//!
//! The expected output is the insta snapshot `tests/snapshots/planner_golden__<case>.snap`:
//! `eksnet::plan::render(&plan, Palette::PLAIN)`, or, when parsing, validation, the graph or
//! planning fails, the diagnostics (one per line) with paths made relative to the package root.
//! Plan warnings, if any, follow the rendered plan.
//!
//! A case whose output differs fails with a diff (`-old +new`) and leaves the new output in
//! `tests/snapshots/planner_golden__<case>.snap.new` (not under `CI`). To review: read the
//! diff, or `diff` the `.snap` and `.snap.new` files; with cargo-insta installed (it is not
//! needed), `cargo insta review` does both and accepts or rejects each. To accept every new
//! output, (re)generate the snapshots with
//!
//! ```text
//! INSTA_UPDATE=always cargo test --test planner_golden
//! ```
//!
//! and review `git diff tests/snapshots/` before committing it. A new case is a new directory
//! plus its name in `golden_cases!`; the run above writes its snapshot.

use eksnet::addr::ResourceAddr;
use eksnet::diag::Diagnostics;
use eksnet::graph::DependencyGraph;
use eksnet::plan::{render, Palette};
use eksnet::planner::{ObservedState, PlanOptions};
use eksnet::resources::Observed;
use eksnet::state::StateSnapshot;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[path = "support/package_dir.rs"]
mod package_dir;
use package_dir::package_dir;
#[path = "support/snapshots.rs"]
mod snapshots;

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

/// Runs one case and compares its output with the snapshot `tests/snapshots/planner_golden__<case>.snap`.
fn check(case: &str) {
    let text = run_case(&root().join("tests/golden").join(case));
    snapshots::settings().bind(|| insta::assert_snapshot!(case, text));
    // insta compares with trailing whitespace trimmed; every output ends in exactly one newline,
    // so with this the snapshot (which insta stores as the text plus one newline) is exact.
    assert!(
        text.trim_end().len() + 1 == text.len() && text.ends_with('\n'),
        "case `{case}`: the output must end in exactly one newline: {text:?}"
    );
}

/// One `#[test]` per case, named after it, and the list of all of them.
macro_rules! golden_cases {
    ($($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                check(stringify!($case));
            }
        )*
        const CASES: &[&str] = &[$(stringify!($case)),*];
    };
}

golden_cases! {
    adopted_vpc_differs_error,
    adopted_vpc_first_plan,
    adopted_vpc_missing_error,
    all_creates_example,
    az_coverage_error,
    cidr_change_forces_replacement,
    creating_row_found_is_adopted,
    deleted_outside_eksnet_recreates,
    destroy_reverse_order,
    drift_outside_eksnet,
    example_applied_no_changes,
    example_template_edit_updates_stack,
    interrupted_run_tagged_resource_adopted,
    k8s_cluster_not_yet_existing,
    k8s_cni_too_old,
    k8s_custom_networking_on_existing_nodegroup,
    k8s_missing_cluster_security_group,
    k8s_missing_eniconfig_for_nodegroup_az,
    k8s_new_pod_subnet_with_a_literal_az,
    k8s_no_changes,
    k8s_replaced_cluster_takes_its_nodegroup,
    k8s_two_eniconfigs_same_name,
    no_changes,
    policy_format_differences_no_change,
    removed_from_spec_deletes,
    replace_option,
    replace_unknown_address_error,
    replaced_block_cascades_to_its_subnets,
    replaced_block_overlaps_live_block,
    secondary_block_overlaps_live_block,
    set_in_another_order_is_no_change,
    tag_change_updates_in_place,
    tag_resolves_to_a_list,
    untagged_existing_resource_error,
}

fn listed(dir: &Path, keep: impl Fn(&Path) -> Option<String>) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter_map(|p| keep(&p))
        .collect();
    names.sort();
    names
}

/// Every case directory and every snapshot has its test, and every test its directory.
#[test]
fn every_case_has_a_test() {
    let mut cases: Vec<String> = CASES.iter().map(|c| c.to_string()).collect();
    cases.sort();
    let dirs = listed(&root().join("tests/golden"), |p| {
        p.is_dir().then(|| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
    });
    assert_eq!(
        dirs, cases,
        "tests/golden/ directories vs the cases in golden_cases!"
    );
    let snaps = listed(&snapshots::snapshot_dir(), |p| {
        let name = p.file_name()?.to_str()?;
        Some(
            name.strip_prefix("planner_golden__")?
                .strip_suffix(".snap")?
                .to_string(),
        )
    });
    assert_eq!(
        snaps, cases,
        "tests/snapshots/planner_golden__*.snap vs the cases in golden_cases!"
    );
}
