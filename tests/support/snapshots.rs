//! insta settings shared by the snapshot tests. The including crate also includes
//! `support/package_dir.rs` as `mod package_dir` at its root.

use std::path::PathBuf;

/// Where the `.snap` files are: `tests/snapshots/` of the package directory at run time.
///
/// insta's default is relative to the `CARGO_MANIFEST_DIR` the test binary was built with,
/// which is wrong when a target directory is shared between clones (see `package_dir.rs`);
/// an absolute path overrides it.
pub fn snapshot_dir() -> PathBuf {
    crate::package_dir::package_dir().join("tests/snapshots")
}

/// The settings every snapshot assertion runs under (bind them with `Settings::bind`).
pub fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(snapshot_dir());
    // The `.snap` header then holds only the source file, not the asserted expression.
    s.set_omit_expression(true);
    s
}
