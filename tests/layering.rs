//! The module layering of `src/` (see "The pipeline" in docs/architecture.md): no import cycle
//! anywhere, among the folders or inside one (the kinds in `resources/` included), and each
//! layer depends only on the layers below it. A dependency is any path into another module
//! (`crate::…`, `super::…`) outside `#[cfg(test)]` code, found by
//! `tests/support/module_deps.rs`. This keeps each stage depending only on the stages before
//! it, and lets a kind's module be read without the rest.

#[path = "support/package_dir.rs"]
mod package_dir;

#[path = "support/module_deps.rs"]
mod module_deps;

use std::path::PathBuf;

fn src() -> PathBuf {
    package_dir::package_dir().join("src")
}

#[test]
fn no_import_cycles_anywhere_in_src() {
    let deps = module_deps::module_dependencies(&src());
    for expected in ["resources::addon", "plan::planner", "engine", "spec"] {
        assert!(
            deps.contains_key(expected),
            "expected to find `{expected}` among the modules of src/, found {:?}",
            deps.keys()
        );
    }
    let cycles = module_deps::cycles(&src());
    assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
}

/// The layers, bottom up: what each one must never reach (directly or through others).
#[test]
fn each_layer_reaches_only_the_layers_below_it() {
    let src = src();
    // Everything above the kinds.
    const ABOVE_KINDS: &[&str] = &[
        "nodes", "spec", "domain", "validate", "plan", "engine", "apply", "state", "cli", "adopt",
    ];
    let rules: &[(&str, &[&str])] = &[
        // Below everything: names no kind, no stage and no client.
        ("base", &["resources", "domain", "cloud"]),
        ("base", ABOVE_KINDS),
        ("cloud", &["resources", "domain"]),
        ("cloud", ABOVE_KINDS),
        // Rules that span kinds: they read the spec and the kinds' configs, never a stage
        // after the spec's parse.
        (
            "domain",
            &[
                "validate", "plan", "engine", "apply", "state", "cli", "nodes", "adopt",
            ],
        ),
        ("resources", ABOVE_KINDS),
        ("nodes", &["plan", "engine", "apply", "cli", "adopt"]),
        (
            "spec",
            &["plan", "engine", "apply", "state", "cli", "nodes"],
        ),
        // The planner is pure: it never reaches the reads (the engine, node sizing's reads,
        // verify), the executor or the CLI. (It does reach the kinds, for their facts and
        // judgements, and through them the clients' types.)
        (
            "plan",
            &["engine", "apply", "cli", "nodes::capacity", "nodes::verify"],
        ),
        ("engine", &["apply", "cli"]),
        // The stores read their location from the spec's `[state]`, nothing else above.
        ("state", &["plan", "engine", "apply", "cli", "nodes"]),
        ("apply", &["engine", "cli", "plan::planner"]),
        // `init`'s reads and decisions stand on the kinds, the domain rules and node sizing;
        // the spec they write is planned by the CLI's usual commands.
        (
            "adopt",
            &["plan", "engine", "apply", "state", "cli", "validate"],
        ),
    ];
    let mut wrong = Vec::new();
    for (module, forbidden) in rules {
        for f in *forbidden {
            if module_deps::reaches(&src, module, f) {
                wrong.push(format!("{module} reaches {f}"));
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken: {wrong:#?}");
}

/// The kinds depend on what is below them, and on each other only through shared modules of
/// `resources/` (`eks`…): one kind's module never names another kind's.
#[test]
fn no_kind_names_another_kind() {
    let src = src();
    let deps = module_deps::module_dependencies(&src);
    let kinds: Vec<String> = std::fs::read_to_string(src.join("resources/mod.rs"))
        .expect("resources/mod.rs")
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once("=>")?;
            let module = rest.trim().split("::").next()?.trim();
            Some(format!("resources::{module}"))
        })
        .filter(|m| deps.contains_key(m))
        .collect();
    assert!(kinds.len() >= 10, "found only the kinds {kinds:?}");
    let mut wrong = Vec::new();
    for a in &kinds {
        for b in kinds.iter().filter(|b| *b != a) {
            if module_deps::reaches(&src, a, b) {
                wrong.push(format!("{a} reaches {b}"));
            }
        }
    }
    assert!(wrong.is_empty(), "kinds naming each other: {wrong:#?}");
}
