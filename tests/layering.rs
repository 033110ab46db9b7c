//! The module layering of `src/` (see "The pipeline" in docs/architecture.md): no two
//! top-level modules depend on each other, directly or through others. A dependency is any
//! `crate::MODULE` path outside `#[cfg(test)]` code. This keeps each stage depending only on
//! the stages before it, and lets a kind's module be read without the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[path = "support/package_dir.rs"]
mod package_dir;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules each top-level module names as `crate::MODULE`.
fn dependencies(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src).expect("under src");
        let first = rel.components().next().expect("a component");
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("readable source");
        // Unit tests may reach anywhere; only the code itself is layered.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let entry = deps.entry(module.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                entry.insert(name);
            }
        }
    }
    // Macros called as `crate::name!` are not modules.
    let modules: BTreeSet<String> = deps.keys().cloned().collect();
    for d in deps.values_mut() {
        d.retain(|m| modules.contains(m));
    }
    deps
}

fn reaches(deps: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(m) = todo.pop() {
        for d in deps.get(&m).into_iter().flatten() {
            if d == to {
                return true;
            }
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    false
}

#[test]
fn no_module_depends_on_itself_through_others() {
    let deps = dependencies(&package_dir::package_dir().join("src"));
    assert!(
        deps.contains_key("resources") && deps.contains_key("spec"),
        "expected to find the modules of src/, found {:?}",
        deps.keys()
    );
    let cycles: Vec<String> = deps
        .iter()
        .flat_map(|(m, ds)| ds.iter().map(move |d| (m, d)))
        .filter(|(m, d)| reaches(&deps, d, m))
        .map(|(m, d)| format!("{m} -> {d} -> … -> {m}"))
        .collect();
    assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
}

#[test]
fn the_kinds_and_the_engine_below_the_cli_never_reach_up() {
    let deps = dependencies(&package_dir::package_dir().join("src"));
    // What each lower layer must not use: the stages after it.
    let rules: &[(&str, &[&str])] = &[
        (
            "resources",
            &[
                "spec", "graph", "refresh", "planner", "plan", "apply", "cli",
            ],
        ),
        ("kube", &["resources", "spec", "planner", "cli"]),
        ("addr", &["spec", "resources", "kube"]),
        ("spec", &["graph", "refresh", "planner", "apply", "cli"]),
        ("refresh", &["planner", "apply", "cli"]),
        ("planner", &["refresh", "apply", "cli"]),
    ];
    let mut wrong = Vec::new();
    for (module, forbidden) in rules {
        for f in *forbidden {
            if reaches(&deps, module, f) {
                wrong.push(format!("{module} reaches {f}"));
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken: {wrong:?}");
}
