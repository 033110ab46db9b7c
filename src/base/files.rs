//! Files eksnet reads that users name (the spec, templates): bounded, never a pipe.

use std::path::Path;

/// Reads a UTF-8 file that must be a regular file of at most `max` bytes. A device, a pipe or
/// a directory is refused before it is opened for reading (reading a FIFO would block until a
/// writer comes, `/dev/zero` would never end), and the read itself stops at `max + 1` bytes in
/// case the file grows meanwhile. `what` names the file in messages ("spec", "template").
pub fn read_bounded(path: &Path, max: u64, what: &str) -> Result<String, String> {
    use std::io::Read;
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {what} `{}`: {e}", path.display()))?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file (a device, a pipe or a socket)"
        };
        return Err(format!(
            "cannot read {what} `{}`: it is {kind}; give the path of a file",
            path.display()
        ));
    }
    let too_big = |n: u64| {
        format!(
            "{what} `{}` is {n} bytes; eksnet reads at most {max} bytes for a {what}: is this the right file?",
            path.display()
        )
    };
    if meta.len() > max {
        return Err(too_big(meta.len()));
    }
    let file = std::fs::File::open(path)
        .map_err(|e| format!("cannot read {what} `{}`: {e}", path.display()))?;
    // Checked again on what was opened, in case the path changed in between.
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(format!(
            "cannot read {what} `{}`: it is not a regular file",
            path.display()
        ));
    }
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {what} `{}`: {e}", path.display()))?;
    if bytes.len() as u64 > max {
        return Err(too_big(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "{what} `{}` is not UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}
