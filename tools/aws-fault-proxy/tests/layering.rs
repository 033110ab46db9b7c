//! The module layering of `src/`: a core that names no emulator, emulators that name the
//! core and `shared` but never each other, and `shared` below everything. So an emulator
//! can be read, changed or added knowing only the core's `Emulator` interface. The graph is
//! built by `tests/support/module_deps.rs` at the repository root.

use std::path::PathBuf;

#[path = "../../../tests/support/module_deps.rs"]
mod module_deps;

fn src() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("src")
}

/// The emulator modules: the direct children of `emulators`.
fn emulators() -> Vec<String> {
    let deps = module_deps::module_dependencies(&src());
    let found: Vec<String> = deps
        .keys()
        .filter(|m| {
            m.strip_prefix("emulators::")
                .is_some_and(|rest| !rest.contains("::"))
        })
        .cloned()
        .collect();
    assert!(
        found.len() >= 2 && deps.contains_key("core"),
        "expected the core and the emulators in {}, found {:?}",
        src().display(),
        deps.keys()
    );
    found
}

#[test]
fn no_import_cycles() {
    let cycles = module_deps::cycles(&src());
    assert!(
        cycles.is_empty(),
        "import cycles among the modules of {} (move what both sides need into a lower \
         module: the core for state, `shared` for helpers): {cycles:#?}",
        src().display()
    );
}

#[test]
fn the_core_and_shared_name_no_emulator() {
    let src = src();
    let mut wrong = Vec::new();
    for (from, to) in [
        ("core", "emulators"),
        ("shared", "emulators"),
        ("shared", "core"),
    ] {
        if module_deps::reaches(&src, from, to) {
            wrong.push(format!("{from} reaches {to}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "the core must not depend on the emulators (they plug in through \
         core::emulator::Emulator, listed in emulators/mod.rs), nor `shared` on anything: \
         {wrong:?}"
    );
}

#[test]
fn no_emulator_reaches_another() {
    let src = src();
    let emulators = emulators();
    let mut wrong = Vec::new();
    for from in &emulators {
        for to in emulators.iter().filter(|to| *to != from) {
            if module_deps::reaches(&src, from, to) {
                wrong.push(format!("{from} reaches {to}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "emulators must not depend on each other (share through the core or `shared`): \
         {wrong:?}"
    );
}
