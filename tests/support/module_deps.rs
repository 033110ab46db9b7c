//! The module dependency graph of a crate's `src/`, read from its text, for layering tests.
//!
//! Dependency-free (std only) so that any package's test can include it with
//! `#[path = "…/tests/support/module_deps.rs"] mod module_deps;`. It reads Rust well enough
//! for layering, not for compiling:
//!
//! - A module is a file (`foo.rs`, `foo/mod.rs`; `main.rs`/`lib.rs` are the crate root, the
//!   empty path `""`). Inline `mod x { … }` blocks count as part of their file.
//! - A dependency is a path the code names: `crate::a::b…` (also `$crate::` in macros),
//!   `super::…` and `self::…` relative to the file's module, with `use` groups such as
//!   `crate::{a, b::{c, self}}` expanded. A path is attributed to the longest prefix of it
//!   that is a module (`crate::core::App` is `core` when `App` lives in `core`'s `mod.rs`).
//! - Comments, string and char literals are blanked first, so a path in a doc comment or a
//!   message is not a dependency. Items under `#[cfg(test)]` (the attribute spelled exactly
//!   so) are left out, and so is the file of a `#[cfg(test)] mod name;`: unit tests may
//!   reach anywhere, only the code itself is layered.
//! - Bare paths (`foo::bar` naming a child module without `self::`) are not followed: they
//!   can only name a module's own children, which never make a cycle among siblings.
//!
//! The graph is kept per folder: the entries of a folder are its `.rs` files other than
//! `mod.rs`/`lib.rs`/`main.rs`, and its subfolders (`foo.rs` beside `foo/` is one entry
//! `foo`). Edges between a folder's own module (its `mod.rs`, or `foo.rs`) and its entries
//! are not cycles (a parent declaring and re-exporting its children is normal); edges among
//! sibling entries are.

#![allow(dead_code)] // each including test uses only some of the functions

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// For every folder under `src` (the crate root included): the graph among its entries (each
/// `.rs` file other than mod.rs/lib.rs/main.rs, and each subfolder; a `foo.rs` next to a
/// `foo/` folder is one entry `foo`), with an edge A -> B when code in A (recursively, outside
/// `#[cfg(test)]` sections) names a path that resolves into B: `crate::x::y…` absolute paths,
/// `super::…` and `self::…` relative to the file's module, and `use` groups like
/// `crate::{a, b::c}`.
///
/// Keys are entries as module paths (`"plan::planner"`, `"plan"`); every entry has a key,
/// with an empty set when it depends on no sibling.
pub fn module_dependencies(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let tree = ModuleTree::read(src);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for module in tree.modules.keys().filter(|m| !m.is_empty()) {
        graph.entry(module.clone()).or_default();
    }
    for (from, targets) in &tree.edges {
        for to in targets {
            // The folder where the two part ways: their longest common ancestor. Below it,
            // `from` lies in one entry and `to` in another (or `to` is the folder itself,
            // which is the parent, not a sibling: no edge).
            let common = common_prefix(from, to);
            let (Some(a), Some(b)) = (child_toward(&common, from), child_toward(&common, to))
            else {
                continue;
            };
            if a != b {
                graph.entry(a).or_default().insert(b);
            }
        }
    }
    graph
}

/// Every import cycle, as the module paths in it, e.g. `["addons", "proxy", "state"]`.
/// Empty when the layering is acyclic. Strongly connected components of size > 1 plus
/// self-loops, computed among siblings of each folder (see [`module_dependencies`]).
pub fn cycles(src: &Path) -> Vec<Vec<String>> {
    let graph = module_dependencies(src);
    let mut out: Vec<Vec<String>> = strongly_connected(&graph)
        .into_iter()
        .filter(|scc| scc.len() > 1 || graph.get(&scc[0]).is_some_and(|ds| ds.contains(&scc[0])))
        .collect();
    for scc in &mut out {
        scc.sort();
    }
    out.sort();
    out
}

/// Whether module `from` reaches module `to` (paths as above, at any depth): some module in
/// `from`'s subtree names `to` or something inside it, directly or through other modules. A
/// module reaches what its descendants reach. `false` for a `from` that is not a module.
pub fn reaches(src: &Path, from: &str, to: &str) -> bool {
    let tree = ModuleTree::read(src);
    let mut todo: Vec<&String> = tree.modules.keys().filter(|m| within(m, from)).collect();
    let mut seen: BTreeSet<&String> = todo.iter().copied().collect();
    while let Some(m) = todo.pop() {
        for d in tree.edges.get(m).into_iter().flatten() {
            // Reaching into `from` itself again is no news; anything inside `to` is `to`.
            if within(d, to) && !within(d, from) {
                return true;
            }
            if seen.insert(d) {
                todo.push(d);
            }
        }
    }
    false
}

// ---- the module tree ------------------------------------------------------------------

/// All modules of a crate, and which modules each one's code names.
struct ModuleTree {
    /// Module path -> its file (the root is `""`).
    modules: BTreeMap<String, PathBuf>,
    /// Module path -> the modules its code names (itself left out).
    edges: BTreeMap<String, BTreeSet<String>>,
}

impl ModuleTree {
    fn read(src: &Path) -> ModuleTree {
        let mut files = Vec::new();
        rust_files(src, &mut files);
        let mut modules = BTreeMap::new();
        for file in files {
            if let Some(path) = module_path(src, &file) {
                modules.insert(path, file);
            }
        }
        // Code of each module, without its tests; test-only child files drop out.
        let mut code: BTreeMap<String, String> = BTreeMap::new();
        let mut test_only: Vec<String> = Vec::new();
        for (module, file) in &modules {
            let text = std::fs::read_to_string(file)
                .unwrap_or_else(|e| panic!("module_deps: cannot read {}: {e}", file.display()));
            let (kept, test_mods) = without_cfg_test(&blank_literals(&text));
            test_only.extend(test_mods.into_iter().map(|m| join(module, &m)));
            code.insert(module.clone(), kept);
        }
        modules.retain(|m, _| !test_only.iter().any(|t| within(m, t)));
        code.retain(|m, _| modules.contains_key(m));

        let known: BTreeSet<&String> = modules.keys().collect();
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (module, text) in &code {
            let targets = edges.entry(module.clone()).or_default();
            for path in named_paths(text, module) {
                // The longest prefix that is a module; the root (`""`) always is.
                let target = (0..=path.len())
                    .rev()
                    .map(|n| path[..n].join("::"))
                    .find(|p| known.contains(p))
                    .unwrap_or_default();
                if target != *module {
                    targets.insert(target);
                }
            }
        }
        ModuleTree { modules, edges }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("module_deps: cannot list {}: {e}", dir.display()));
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `a/b.rs` -> `a::b`, `a/mod.rs` -> `a`, `main.rs`/`lib.rs` -> `""`. `None` for a
/// `main.rs`/`lib.rs` below the root (a binary's own root, not a module of this crate).
fn module_path(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let last = parts.pop()?;
    let stem = last.strip_suffix(".rs")?;
    match stem {
        "mod" => {}
        "main" | "lib" if parts.is_empty() => {}
        "main" | "lib" => return None,
        _ => parts.push(stem.to_string()),
    }
    Some(parts.join("::"))
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}::{child}")
    }
}

/// Whether module `m` is `ancestor` or inside it.
fn within(m: &str, ancestor: &str) -> bool {
    ancestor.is_empty()
        || m == ancestor
        || m.strip_prefix(ancestor)
            .is_some_and(|rest| rest.starts_with("::"))
}

/// The longest common ancestor module of two module paths.
fn common_prefix(a: &str, b: &str) -> String {
    let a: Vec<&str> = a.split("::").filter(|s| !s.is_empty()).collect();
    let b: Vec<&str> = b.split("::").filter(|s| !s.is_empty()).collect();
    let n = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    a[..n].join("::")
}

/// The entry of folder `folder` that holds `m`; `None` when `m` is the folder itself.
fn child_toward(folder: &str, m: &str) -> Option<String> {
    let rest = if folder.is_empty() {
        m
    } else {
        m.strip_prefix(folder)?.strip_prefix("::")?
    };
    let first = rest.split("::").next().filter(|s| !s.is_empty())?;
    Some(join(folder, first))
}

// ---- reading the text -----------------------------------------------------------------

/// The text with comments and the insides of string and char literals replaced by spaces
/// (newlines kept), so that only code is left to scan. Lifetimes and labels stay.
fn blank_literals(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    let is_ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut i = 0;
    while i < c.len() {
        let prev_ident = i > 0 && is_ident(c[i - 1]);
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            // Block comments nest in Rust.
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
        } else if !prev_ident && (c[i] == 'r' || (c[i] == 'b' && c.get(i + 1) == Some(&'r'))) {
            // A raw string `r#"…"#` / `br"…"`, or just an identifier starting with r/b.
            let start = if c[i] == 'b' { i + 2 } else { i + 1 };
            let hashes = c[start..].iter().take_while(|&&ch| ch == '#').count();
            if c.get(start + hashes) == Some(&'"') {
                let mut j = start + hashes + 1;
                let closes =
                    |j: usize| c[j] == '"' && (0..hashes).all(|h| c.get(j + 1 + h) == Some(&'#'));
                while j < c.len() && !closes(j) {
                    j += 1;
                }
                let end = (j + 1 + hashes).min(c.len());
                for &ch in &c[i..end] {
                    blank(&mut out, ch);
                }
                i = end;
            } else {
                out.push(c[i]);
                i += 1;
            }
        } else if c[i] == '"' {
            out.push(' ');
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    blank(&mut out, c[i]);
                    i += 1;
                }
                if i < c.len() {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c[i] == '\'' {
            // `'x'` and `'\n'` are chars; `'a` (no closing quote right after) a lifetime.
            let end = if c.get(i + 1) == Some(&'\\') {
                (i + 2..c.len()).find(|&j| c[j] == '\'')
            } else if c.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(end) => {
                    for &ch in &c[i..=end] {
                        blank(&mut out, ch);
                    }
                    i = end + 1;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// The code without the items that follow `#[cfg(test)]`, and the names of child modules
/// declared under it without a body (`#[cfg(test)] mod tests;`, a file of its own).
fn without_cfg_test(code: &str) -> (String, Vec<String>) {
    const ATTR: &str = "#[cfg(test)]";
    let b = code.as_bytes();
    let mut out = String::with_capacity(code.len());
    let mut test_mods = Vec::new();
    let mut pos = 0;
    while let Some(found) = code[pos..].find(ATTR) {
        let start = pos + found;
        out.push_str(&code[pos..start]);
        let mut i = start + ATTR.len();
        // Further attributes of the same item.
        loop {
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if b.get(i) == Some(&b'#') {
                i = matching_close(b, i + 1).map_or(b.len(), |j| j + 1);
            } else {
                break;
            }
        }
        // The item ends at a `;` outside brackets before any `{`, or with the `}` of its body.
        let item_start = i;
        let mut depth = 0i32;
        while i < b.len() {
            match b[i] {
                b'(' | b'[' => depth += 1,
                b')' | b']' => depth -= 1,
                b';' if depth == 0 => {
                    let item = &code[item_start..i];
                    let words: Vec<&str> = item.split_whitespace().collect();
                    if let Some(at) = words.iter().position(|w| *w == "mod") {
                        if let Some(name) = words.get(at + 1) {
                            test_mods.push(name.to_string());
                        }
                    }
                    i += 1;
                    break;
                }
                b'{' if depth == 0 => {
                    i = matching_close(b, i).map_or(b.len(), |j| j + 1);
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        let i = i.min(b.len());
        // Keep the line count (nothing relies on it, but it keeps debugging sane).
        out.extend(code[start..i].chars().filter(|&ch| ch == '\n'));
        pos = i;
    }
    out.push_str(&code[pos..]);
    (out, test_mods)
}

/// Index of the bracket closing the one at `open` (`{`, `[` or `(`), counting all three.
fn matching_close(b: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (j, &ch) in b.iter().enumerate().skip(open) {
        match ch {
            b'{' | b'[' | b'(' => depth += 1,
            b'}' | b']' | b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

#[derive(Debug, PartialEq)]
enum Tok {
    Ident(String),
    PathSep,
    Punct(char),
}

fn tokens(code: &str) -> Vec<Tok> {
    let c: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(c[start..i].iter().collect()));
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '.') {
                i += 1;
            }
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            out.push(Tok::PathSep);
            i += 2;
        } else {
            if !ch.is_whitespace() {
                out.push(Tok::Punct(ch));
            }
            i += 1;
        }
    }
    out
}

/// The absolute paths (segments below the crate root) that the code of `module` names with
/// `crate::`, `super::` or `self::`.
fn named_paths(code: &str, module: &str) -> Vec<Vec<String>> {
    let toks = tokens(code);
    let here: Vec<String> = module
        .split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let starts_path = i == 0 || toks[i - 1] != Tok::PathSep;
        let base = match &toks[i] {
            Tok::Ident(w) if starts_path && toks.get(i + 1) == Some(&Tok::PathSep) => {
                match w.as_str() {
                    "crate" => Some(Vec::new()),
                    "self" => Some(here.clone()),
                    "super" => {
                        // `super::super::…` climbs once per `super`.
                        let mut base = here.clone();
                        base.pop();
                        while toks.get(i + 2) == Some(&Tok::Ident("super".into()))
                            && toks.get(i + 3) == Some(&Tok::PathSep)
                        {
                            base.pop();
                            i += 2;
                        }
                        Some(base)
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        match base {
            Some(base) => i = path_tail(&toks, i + 1, base, &mut out),
            None => i += 1,
        }
    }
    out
}

/// Reads the rest of a path from `toks[i]` (a `::`, or the end of the path) on top of
/// `prefix`, expanding `{…}` groups; pushes each complete path and returns the index after.
fn path_tail(
    toks: &[Tok],
    mut i: usize,
    mut prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    while toks.get(i) == Some(&Tok::PathSep) {
        match toks.get(i + 1) {
            Some(Tok::Ident(seg)) => {
                prefix.push(seg.clone());
                i += 2;
            }
            Some(Tok::Punct('{')) => return group(toks, i + 2, prefix, out),
            // `::*`, `::<T>` and the like end the module part of the path.
            _ => break,
        }
    }
    out.push(prefix);
    i
}

/// Reads a `{ a, b::c, self, {…} }` group whose items are relative to `prefix`, from just
/// after its `{`; returns the index after its `}`.
fn group(toks: &[Tok], mut i: usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    loop {
        match toks.get(i) {
            None => return i,
            Some(Tok::Punct('}')) => return i + 1,
            Some(Tok::Punct('{')) => i = group(toks, i + 1, prefix.clone(), out),
            Some(Tok::Ident(w)) if w == "self" => {
                out.push(prefix.clone());
                i += 1;
            }
            Some(Tok::Ident(w)) if w != "as" => {
                let mut item = prefix.clone();
                item.push(w.clone());
                i = path_tail(toks, i + 1, item, out);
                // `x as y`: the alias is no path.
                if toks.get(i) == Some(&Tok::Ident("as".into())) {
                    i += 2;
                }
            }
            Some(Tok::Punct('*')) => {
                out.push(prefix.clone());
                i += 1;
            }
            Some(_) => i += 1,
        }
    }
}

// ---- strongly connected components ----------------------------------------------------

/// Tarjan's algorithm over `graph`; each component as a list of its nodes.
fn strongly_connected(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                if lw < s.low[v] {
                    s.low.insert(v, lw);
                }
            } else if s.on_stack.contains(w) && s.index[w] < s.low[v] {
                let iw = s.index[w];
                s.low.insert(v, iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                scc.push(w.to_string());
                if w == v {
                    break;
                }
            }
            s.out.push(scc);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throwaway `src/` tree with the given files, removed when dropped.
    struct Tree(PathBuf);

    impl Tree {
        fn new(name: &str, files: &[(&str, &str)]) -> Tree {
            let root = std::env::temp_dir().join(format!(
                "module_deps-{name}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&root);
            for (path, text) in files {
                let file = root.join(path);
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(file, text).unwrap();
            }
            Tree(root)
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_cycle_among_siblings_is_found_and_a_layered_tree_has_none() {
        let t = Tree::new(
            "cycle",
            &[
                ("main.rs", "mod a; mod b; mod c; use crate::a::run;"),
                ("a.rs", "use crate::b::B; pub fn run() {}"),
                ("b.rs", "pub struct B; fn f() { crate::c::g() }"),
                (
                    "c.rs",
                    "// crate::a::run is only a comment\npub fn g() { super::a::run() }",
                ),
            ],
        );
        assert_eq!(cycles(&t.0), vec![vec!["a", "b", "c"]]);
        let deps = module_dependencies(&t.0);
        assert_eq!(deps["a"], set(&["b"]));
        assert_eq!(deps["c"], set(&["a"]));

        let t = Tree::new(
            "layered",
            &[
                ("main.rs", "mod a; mod b;"),
                ("a.rs", "use crate::b::B; const S: &str = \"crate::a\";"),
                (
                    "b.rs",
                    "pub struct B;\n#[cfg(test)]\nmod tests { use crate::a::*; }",
                ),
            ],
        );
        assert!(cycles(&t.0).is_empty(), "{:?}", cycles(&t.0));
        assert!(reaches(&t.0, "a", "b"));
        assert!(!reaches(&t.0, "b", "a"));
    }

    #[test]
    fn folders_parents_and_groups() {
        let t = Tree::new(
            "folders",
            &[
                ("lib.rs", "pub mod core; pub mod emu; mod shared;"),
                // A parent re-exporting its children is no cycle.
                (
                    "core/mod.rs",
                    "mod app; mod trait_; pub use self::app::App;",
                ),
                (
                    "core/app.rs",
                    "use super::trait_::T; use crate::shared::lock;",
                ),
                (
                    "core/trait_.rs",
                    "pub trait T { fn f(&self) -> crate::core::App; }",
                ),
                ("emu.rs", "mod one; mod two; pub fn all() { one::x(); }"),
                (
                    "emu/one.rs",
                    "use crate::{core::{self, App}, shared::{lock as l}};",
                ),
                (
                    "emu/two.rs",
                    "use super::super::core::App; fn g() { super::one::x() }",
                ),
                ("shared.rs", "pub fn lock() {}"),
            ],
        );
        let deps = module_dependencies(&t.0);
        assert_eq!(deps["core"], set(&["shared"]));
        assert_eq!(deps["emu"], set(&["core", "shared"]));
        assert_eq!(deps["core::app"], set(&["core::trait_"]));
        assert_eq!(deps["core::trait_"], set(&[]));
        assert_eq!(deps["emu::two"], set(&["emu::one"]));
        assert_eq!(deps["shared"], set(&[]));
        assert!(cycles(&t.0).is_empty(), "{:?}", cycles(&t.0));
        assert!(reaches(&t.0, "emu::two", "shared"), "through one and core");
        assert!(
            reaches(&t.0, "emu", "core::app"),
            "a module reaches what its children do"
        );
        assert!(!reaches(&t.0, "core", "emu"));
        assert!(!reaches(&t.0, "emu::one", "emu::two"));
    }

    #[test]
    fn a_cycle_inside_a_folder_and_test_only_files() {
        let t = Tree::new(
            "nested",
            &[
                ("main.rs", "mod x;"),
                ("x/mod.rs", "mod p; mod q;\n#[cfg(test)]\nmod tests;"),
                (
                    "x/p.rs",
                    "pub fn f() { let s = r#\"super::q\"#; super::q::g() }",
                ),
                (
                    "x/q.rs",
                    "pub fn g() -> char { let c = '{'; super::p::f(); c }",
                ),
                // Test-only: it may name anything.
                ("x/tests.rs", "use crate::x::p::*;"),
            ],
        );
        assert_eq!(cycles(&t.0), vec![vec!["x::p", "x::q"]]);
        assert!(!module_dependencies(&t.0).contains_key("x::tests"));
    }

    #[test]
    fn literals_and_comments_are_blanked() {
        let code = blank_literals("a /* b /* c */ d */ e \"f\\\"g\" 'h' '\\n' &'a i r#\"j\"# k");
        let words: Vec<&str> = code.split_whitespace().collect();
        assert_eq!(words, ["a", "e", "&'a", "i", "k"]);
        let (kept, mods) = without_cfg_test(
            "x\n#[cfg(test)]\n#[allow(x)]\nfn f(a: [u8; 2]) { {} }\ny\n#[cfg(test)] mod t;\nz",
        );
        assert_eq!(kept.split_whitespace().collect::<Vec<_>>(), ["x", "y", "z"]);
        assert_eq!(mods, ["t"]);
    }
}
