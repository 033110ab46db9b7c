//! Diagnostics: errors and warnings collected (not thrown) so that one run reports every
//! problem in a spec at once, each pointing at a file, line and key.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub location: Option<Location>,
    /// Dotted key path in the spec, e.g. `subnet.pod_a.cidr_block`.
    pub key: Option<String>,
    pub message: String,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            location: None,
            key: None,
            message: message.into(),
        }
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message)
        }
    }

    pub fn at(mut self, location: Option<Location>, key: impl Into<String>) -> Self {
        self.location = location;
        self.key = Some(key.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{sev}: ")?;
        if let Some(loc) = &self.location {
            write!(f, "{}:{}:{}: ", loc.file.display(), loc.line, loc.column)?;
        }
        if let Some(key) = &self.key {
            write!(f, "`{key}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// A list of diagnostics; "has errors" decides whether the run may go on.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.severity == Severity::Error)
    }
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.severity == Severity::Warning)
    }
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Maps byte offsets of one source file to 1-based line and column.
pub struct SourceMap<'a> {
    pub file: &'a Path,
    line_starts: Vec<usize>,
    source: &'a str,
}

impl<'a> SourceMap<'a> {
    pub fn new(file: &'a Path, source: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        SourceMap {
            file,
            line_starts,
            source,
        }
    }

    pub fn location(&self, offset: usize) -> Location {
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        let column = self
            .source
            .get(start..offset.min(self.source.len()))
            .map(|s| s.chars().count())
            .unwrap_or(0)
            + 1;
        Location {
            file: self.file.to_path_buf(),
            line: line + 1,
            column,
        }
    }
}

/// An error and its sources, outermost first, each once.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut next = err.source();
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// A field's allowed values for a message, each quoted by `quote`: `"a" or "b"`,
/// `` `a`, `b` or `c` ``.
pub fn alternatives(values: &[&str], quote: impl Fn(&str) -> String) -> String {
    let quoted: Vec<String> = values.iter().map(|v| quote(v)).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::alternatives;

    #[test]
    fn alternatives_read_as_a_list_with_or() {
        let tick = |v: &str| format!("`{v}`");
        assert_eq!(alternatives(&[], tick), "");
        assert_eq!(alternatives(&["NONE"], tick), "`NONE`");
        assert_eq!(
            alternatives(&["NONE", "OVERWRITE"], tick),
            "`NONE` or `OVERWRITE`"
        );
        assert_eq!(
            alternatives(&["NONE", "OVERWRITE", "PRESERVE"], tick),
            "`NONE`, `OVERWRITE` or `PRESERVE`"
        );
    }
}
