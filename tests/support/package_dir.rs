//! Where this package's files are when the tests run.

use std::path::PathBuf;

/// The package directory at run time. Cargo sets `CARGO_MANIFEST_DIR` for every test process
/// it runs. The compile-time `env!` value would name the directory the binary was first built
/// in: with a target directory shared between clones (CI keeps one outside its fresh clone),
/// an unchanged test binary is reused by a clone at another path, and it would read examples,
/// goldens and the moto venv from the old clone, or from nowhere once that clone is gone.
pub fn package_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        // Run by hand outside cargo: the build-time directory is the best guess left.
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
