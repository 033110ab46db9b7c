//! The inputs of one planner golden case (`tests/planner_golden.rs`): a shared base from
//! `tests/golden/shared/` plus what the case changes, so that a case states only what is its
//! own. The including crate also includes `support/package_dir.rs` as `mod package_dir` at
//! its root.
//!
//! The bases:
//! - [`Case::demo`]: an adopted VPC with a secondary block, two pod subnets, a cluster role and
//!   a cluster (`demo.toml`), all applied (`demo.state.json`) and found as applied
//!   (`demo.observed.json`).
//! - [`Case::tutorial`]: the EKS user guide's custom networking tutorial, Kubernetes side
//!   included (`tutorial.toml`, the same as `examples/custom-networking.toml`, with its
//!   template `vpc-private-subnets.yaml`), all applied and found as applied. The state's
//!   `template_body` is the template file's text (`tutorial.state.json` leaves it out). The
//!   VPC's route tables as the plan reads them are the template's
//!   (`tutorial.route_tables.json`): the main table with the local routes only, a NAT table
//!   per private subnet, one internet gateway table for the public subnets.
//!
//! Edits panic when what they name is not there (a text to replace that is not in the spec
//! exactly once, a key to remove or a parent to set into that does not exist), so a recipe
//! cannot silently stop applying to its base. JSON pointers (RFC 6901) are relative to the
//! state row or observed entry of an address, e.g. `"/outputs/subnets/pods-a"`. A set keeps
//! an existing key where it is and adds a new one at the end; a removal keeps the order of
//! the others.

use serde_json::{json, Value};

/// One case's inputs. `tests/planner_golden.rs` writes `spec` and `files` into a directory and
/// plans from there.
#[derive(Clone, Debug)]
pub struct Case {
    /// `spec.toml`'s text.
    pub spec: String,
    /// Files next to `spec.toml`, by name: the template a `template_file` names.
    pub files: Vec<(String, String)>,
    /// An `eksnet::state::StateSnapshot`: `{"lineage", "serial", "resources": {addr: row}}`.
    pub state: Value,
    /// What refresh saw: address → `{cloud_id, attrs, outputs, managed_by}`, or `null` (looked
    /// up, absent); an address left out was not looked up.
    pub observed: Value,
    /// `plan --destroy`.
    pub destroy: bool,
    /// `--replace ADDR`, each.
    pub replace: Vec<String>,
    /// Node sizing's reads, when the case shows them: instance type → `{max_enis,
    /// ipv4_per_eni, vcpus, nitro}`, and subnet id → free addresses. `Null`: no sizing.
    pub instance_types: Value,
    pub available: Value,
    /// Node sizing's reads of the node sources outside the spec: cluster name → a list of
    /// `eksnet::nodes::sizing::OutsideGroup`. `Null`: none.
    pub outside: Value,
    /// The route tables the plan read, VPC id → a list of
    /// `eksnet::domain::routing::RouteTableInfo`. `Null`: none read.
    pub route_tables: Value,
}

fn fixture(name: &str) -> String {
    let path = crate::package_dir::package_dir()
        .join("tests/golden/shared")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn json_fixture(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `pointer` split into its parent and its last token (unescaped).
fn split_pointer(pointer: &str) -> (&str, String) {
    let (parent, last) = pointer
        .rsplit_once('/')
        .unwrap_or_else(|| panic!("`{pointer}` is not a JSON pointer"));
    (parent, last.replace("~1", "/").replace("~0", "~"))
}

fn parent_mut<'a>(doc: &'a mut Value, pointer: &str) -> (&'a mut Value, String) {
    let (parent, key) = split_pointer(pointer);
    let p = doc
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("nothing at `{parent}` to hold `{key}`"));
    (p, key)
}

fn set_at(doc: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = parent_mut(doc, pointer);
    match parent {
        Value::Object(m) => {
            m.insert(key, value);
        }
        Value::Array(a) => {
            let i: usize = key
                .parse()
                .unwrap_or_else(|_| panic!("`{pointer}`: not an index"));
            *a.get_mut(i)
                .unwrap_or_else(|| panic!("`{pointer}`: no such element")) = value;
        }
        other => panic!("`{pointer}`: the parent is not an object or array: {other}"),
    }
}

fn remove_at(doc: &mut Value, pointer: &str) {
    let (parent, key) = parent_mut(doc, pointer);
    let removed = match parent {
        Value::Object(m) => m.shift_remove(&key),
        other => panic!("`{pointer}`: the parent is not an object: {other}"),
    };
    assert!(removed.is_some(), "`{pointer}`: nothing to remove");
}

fn row(addr: &str) -> String {
    format!("/resources/{addr}")
}

fn entry(addr: &str) -> String {
    format!("/{addr}")
}

impl Case {
    /// See the module doc.
    pub fn demo() -> Case {
        Case {
            spec: fixture("demo.toml"),
            files: Vec::new(),
            state: json_fixture("demo.state.json"),
            observed: json_fixture("demo.observed.json"),
            destroy: false,
            replace: Vec::new(),
            instance_types: Value::Null,
            available: Value::Null,
            outside: Value::Null,
            route_tables: Value::Null,
        }
    }

    /// See the module doc.
    pub fn tutorial() -> Case {
        let template = fixture("vpc-private-subnets.yaml");
        Case {
            spec: fixture("tutorial.toml"),
            files: vec![("vpc-private-subnets.yaml".into(), template.clone())],
            state: json_fixture("tutorial.state.json"),
            observed: json_fixture("tutorial.observed.json"),
            destroy: false,
            replace: Vec::new(),
            instance_types: Value::Null,
            available: Value::Null,
            outside: Value::Null,
            route_tables: json_fixture("tutorial.route_tables.json"),
        }
        .state_set("vpc.main", "/attrs/template_body", json!(template))
    }

    // ---- the spec

    /// Replaces `from`, which must occur exactly once in the spec, with `to`.
    pub fn spec_edit(mut self, from: &str, to: &str) -> Case {
        let n = self.spec.matches(from).count();
        assert_eq!(n, 1, "the spec has {n} occurrences of {from:?}, not one");
        self.spec = self.spec.replacen(from, to, 1);
        self
    }

    /// Removes the text from `from` up to (not including) `until`, both in the spec once.
    pub fn spec_cut(self, from: &str, until: &str) -> Case {
        let start = self
            .spec
            .find(from)
            .unwrap_or_else(|| panic!("{from:?} is not in the spec"));
        let end = start
            + self.spec[start..]
                .find(until)
                .unwrap_or_else(|| panic!("{until:?} is not in the spec after {from:?}"));
        let cut = self.spec[start..end].to_string();
        self.spec_edit(&cut, "")
    }

    /// Puts `text` (whole lines, each ending in `\n`) before the spec.
    pub fn spec_prepend(mut self, text: &str) -> Case {
        assert!(text.ends_with('\n'), "{text:?} must end with a newline");
        self.spec.insert_str(0, text);
        self
    }

    /// Puts `text` (whole lines, each ending in `\n`) after the spec.
    pub fn spec_append(mut self, text: &str) -> Case {
        assert!(text.ends_with('\n'), "{text:?} must end with a newline");
        self.spec.push_str(text);
        self
    }

    // ---- the state

    /// Nothing applied yet: serial 0 and no resources (the lineage stays).
    pub fn fresh_state(mut self) -> Case {
        self.state["serial"] = json!(0);
        self.state["resources"] = json!({});
        self
    }

    pub fn serial(mut self, serial: i64) -> Case {
        set_at(&mut self.state, "/serial", json!(serial));
        self
    }

    /// Removes these rows from the state.
    pub fn state_without(mut self, addrs: &[&str]) -> Case {
        for a in addrs {
            remove_at(&mut self.state, &row(a));
        }
        self
    }

    /// Adds (or replaces) a whole state row.
    pub fn state_row(mut self, addr: &str, value: Value) -> Case {
        set_at(&mut self.state, &row(addr), value);
        self
    }

    /// Sets the value at `pointer` in the state row of `addr`.
    pub fn state_set(mut self, addr: &str, pointer: &str, value: Value) -> Case {
        set_at(&mut self.state, &(row(addr) + pointer), value);
        self
    }

    /// Removes the values at `pointers` from the state row of `addr`.
    pub fn state_remove(mut self, addr: &str, pointers: &[&str]) -> Case {
        for p in pointers {
            remove_at(&mut self.state, &(row(addr) + p));
        }
        self
    }

    /// Replaces `from`, which must occur exactly once, with `to` in the string at `pointer` in
    /// the state row of `addr`.
    pub fn state_text_edit(mut self, addr: &str, pointer: &str, from: &str, to: &str) -> Case {
        let at = row(addr) + pointer;
        let text = self
            .state
            .pointer_mut(&at)
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("no string at `{at}`"))
            .to_string();
        let n = text.matches(from).count();
        assert_eq!(n, 1, "`{at}` has {n} occurrences of {from:?}, not one");
        set_at(&mut self.state, &at, json!(text.replacen(from, to, 1)));
        self
    }

    // ---- what refresh saw

    /// A first plan where nothing exists: a fresh state, and every address of the base
    /// looked up and absent.
    pub fn nothing_exists(mut self) -> Case {
        for (_, v) in self
            .observed
            .as_object_mut()
            .expect("observed is an object")
        {
            *v = Value::Null;
        }
        self.fresh_state()
    }

    /// Looked up and not found.
    pub fn absent(mut self, addrs: &[&str]) -> Case {
        for a in addrs {
            set_at(&mut self.observed, &entry(a), Value::Null);
        }
        self
    }

    /// Not looked up (left out of what refresh saw).
    pub fn not_looked_up(mut self, addrs: &[&str]) -> Case {
        for a in addrs {
            remove_at(&mut self.observed, &entry(a));
        }
        self
    }

    /// Adds (or replaces) what refresh saw of `addr`.
    pub fn observed_entry(mut self, addr: &str, value: Value) -> Case {
        set_at(&mut self.observed, &entry(addr), value);
        self
    }

    /// Sets the value at `pointer` in what refresh saw of `addr`.
    pub fn observed_set(mut self, addr: &str, pointer: &str, value: Value) -> Case {
        set_at(&mut self.observed, &(entry(addr) + pointer), value);
        self
    }

    /// Sets the live attribute `key` of `addr`.
    pub fn with_observed_attr(self, addr: &str, key: &str, value: Value) -> Case {
        self.observed_set(addr, &format!("/attrs/{key}"), value)
    }

    /// Removes the values at `pointers` from what refresh saw of `addr`.
    pub fn observed_remove(mut self, addr: &str, pointers: &[&str]) -> Case {
        for p in pointers {
            remove_at(&mut self.observed, &(entry(addr) + p));
        }
        self
    }

    // ---- the state and what refresh saw alike

    /// [`Case::state_set`] and [`Case::observed_set`].
    pub fn set_in_both(self, addr: &str, pointer: &str, value: Value) -> Case {
        self.state_set(addr, pointer, value.clone())
            .observed_set(addr, pointer, value)
    }

    /// [`Case::state_remove`] and [`Case::observed_remove`].
    pub fn remove_in_both(self, addr: &str, pointers: &[&str]) -> Case {
        self.state_remove(addr, pointers)
            .observed_remove(addr, pointers)
    }

    // ---- plan options

    /// `plan --destroy`.
    pub fn destroy(mut self) -> Case {
        self.destroy = true;
        self
    }

    /// Node sizing's reads (see the fields).
    pub fn sizing(mut self, instance_types: Value, available: Value) -> Case {
        self.instance_types = instance_types;
        self.available = available;
        self
    }

    /// The node sources outside the spec that sizing read (see the field).
    pub fn outside(mut self, outside: Value) -> Case {
        self.outside = outside;
        self
    }

    /// The route tables the plan read (see the field).
    pub fn route_tables(mut self, tables: Value) -> Case {
        self.route_tables = tables;
        self
    }

    /// `--replace ADDR` for each of `addrs`.
    pub fn replace(mut self, addrs: &[&str]) -> Case {
        self.replace = addrs.iter().map(|a| a.to_string()).collect();
        self
    }
}
