//! The module layering of `src/`: no module depends on itself through its siblings, so each
//! can be read (and changed) knowing only the modules below it. The graph is built by
//! `tests/support/module_deps.rs` at the repository root.

use std::path::PathBuf;

#[path = "../../../tests/support/module_deps.rs"]
mod module_deps;

fn src() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("src")
}

#[test]
fn no_import_cycles() {
    let src = src();
    let deps = module_deps::module_dependencies(&src);
    assert!(
        deps.contains_key("store") && deps.contains_key("server"),
        "expected the modules of {}, found {:?}",
        src.display(),
        deps.keys()
    );
    let cycles = module_deps::cycles(&src);
    assert!(
        cycles.is_empty(),
        "import cycles among the modules of {} (move what both sides need into a lower \
         module): {cycles:#?}",
        src.display()
    );
}
