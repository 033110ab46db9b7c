//! Field paths and field sets, shaped like structured-merge-diff's `fieldpath` package (the
//! library behind kube-apiserver's server-side apply), and their `FieldsV1` encoding: the
//! `fieldsV1` of a `metadata.managedFields` entry.

use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One step of a path into an object.
#[derive(Clone, Debug)]
pub enum Pe {
    /// A map field: `f:name`, printed `.name`.
    Field(String),
    /// An element of a list keyed by some of its fields (sorted by name):
    /// `k:{"name":"x"}`, printed `[name="x"]`.
    Key(Vec<(String, Value)>),
    /// An element of a set-like list of scalars: `v:"x"`, printed `[="x"]`.
    Value(Value),
    /// A list index: `i:0`, printed `[0]`. The fake never produces these, but accepts them.
    Index(usize),
}

pub type Path = [Pe];

/// Orders scalars the way structured-merge-diff's `value.Compare` does: floats and ints
/// numerically, then strings, booleans, lists, maps and null.
fn value_cmp(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(n) if n.is_f64() => 0,
            Value::Number(_) => 1,
            Value::String(_) => 2,
            Value::Bool(_) => 3,
            Value::Array(_) => 4,
            Value::Object(_) => 5,
            Value::Null => 6,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => {
                let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                x.partial_cmp(&y).unwrap_or(Ordering::Equal)
            }
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => x
            .iter()
            .zip(y)
            .map(|(x, y)| value_cmp(x, y))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| x.len().cmp(&y.len())),
        // Maps never occur in keys the fake builds; any total order will do.
        (Value::Object(_), Value::Object(_)) => a.to_string().cmp(&b.to_string()),
        _ => rank(a).cmp(&rank(b)),
    }
}

impl Ord for Pe {
    fn cmp(&self, other: &Self) -> Ordering {
        use Pe::*;
        let rank = |p: &Pe| match p {
            Field(_) => 0,
            Key(_) => 1,
            Value(_) => 2,
            Index(_) => 3,
        };
        match (self, other) {
            (Field(a), Field(b)) => a.cmp(b),
            (Key(a), Key(b)) => {
                for (x, y) in a.iter().zip(b) {
                    let o = x.0.cmp(&y.0).then_with(|| value_cmp(&x.1, &y.1));
                    if o.is_ne() {
                        return o;
                    }
                }
                a.len().cmp(&b.len())
            }
            (Value(a), Value(b)) => value_cmp(a, b),
            (Index(a), Index(b)) => a.cmp(b),
            _ => rank(self).cmp(&rank(other)),
        }
    }
}

impl PartialOrd for Pe {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Pe {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Pe {}

/// A scalar as structured-merge-diff's `value.ToString` prints it (strings quoted).
fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        other => other.to_string(),
    }
}

impl fmt::Display for Pe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pe::Field(name) => write!(f, ".{name}"),
            Pe::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}={}", scalar_string(v)))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            Pe::Value(v) => write!(f, "[={}]", scalar_string(v)),
            Pe::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// `.spec.template.spec.containers[name="aws-node"].image`: how conflicts name a field.
pub fn path_string(path: &Path) -> String {
    path.iter().map(ToString::to_string).collect()
}

impl Pe {
    /// The key of this element in `FieldsV1` (`f:`, `k:`, `v:` or `i:` form).
    fn fields_v1_key(&self) -> String {
        match self {
            Pe::Field(name) => format!("f:{name}"),
            Pe::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
                    .collect();
                format!("k:{{{}}}", parts.join(","))
            }
            Pe::Value(v) => format!("v:{v}"),
            Pe::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a `FieldsV1` key; `Ok(None)` for a prefix this version does not know, which
    /// the real decoder skips too.
    fn from_fields_v1_key(key: &str) -> Result<Option<Pe>, String> {
        let bad = |e: &dyn fmt::Display| format!("parsing key as path element: {key}: {e}");
        let Some((kind, rest)) = key.split_once(':') else {
            return Ok(None);
        };
        Ok(Some(match kind {
            "f" => Pe::Field(rest.to_string()),
            "k" => {
                let v: Map<String, Value> = serde_json::from_str(rest).map_err(|e| bad(&e))?;
                let mut fields: Vec<(String, Value)> = v.into_iter().collect();
                fields.sort_by(|a, b| a.0.cmp(&b.0));
                Pe::Key(fields)
            }
            "v" => Pe::Value(serde_json::from_str(rest).map_err(|e| bad(&e))?),
            "i" => Pe::Index(rest.parse().map_err(|e| bad(&e))?),
            _ => return Ok(None),
        }))
    }
}

/// A set of paths, stored as a tree. A node may be a member itself (the path is in the set)
/// and have children at the same time; `FieldsV1` writes the former as `".": {}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Set {
    members: BTreeSet<Pe>,
    /// Never holds an empty set.
    children: BTreeMap<Pe, Set>,
}

impl Set {
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    pub fn insert(&mut self, path: &Path) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    pub fn has(&self, path: &Path) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// Combines two sets node by node; `keep` decides membership and `child` descends.
    fn combine(
        &self,
        other: &Set,
        members: impl Fn(&BTreeSet<Pe>, &BTreeSet<Pe>) -> BTreeSet<Pe>,
        child: impl Fn(Option<&Set>, Option<&Set>) -> Set,
    ) -> Set {
        let children = self
            .children
            .keys()
            .chain(other.children.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|pe| {
                (
                    pe.clone(),
                    child(self.children.get(pe), other.children.get(pe)),
                )
            })
            .filter(|(_, s)| !s.is_empty())
            .collect();
        Set {
            members: members(&self.members, &other.members),
            children,
        }
    }

    pub fn union(&self, other: &Set) -> Set {
        self.combine(
            other,
            |a, b| a.union(b).cloned().collect(),
            |a, b| match (a, b) {
                (Some(a), Some(b)) => a.union(b),
                (Some(s), None) | (None, Some(s)) => s.clone(),
                (None, None) => Set::default(),
            },
        )
    }

    /// The paths of `self` that are not in `other` (children are compared one by one, so a
    /// member of `other` does not take away the paths below it).
    pub fn difference(&self, other: &Set) -> Set {
        self.combine(
            other,
            |a, b| a.difference(b).cloned().collect(),
            |a, b| match (a, b) {
                (Some(a), Some(b)) => a.difference(b),
                (Some(a), None) => a.clone(),
                _ => Set::default(),
            },
        )
    }

    pub fn intersection(&self, other: &Set) -> Set {
        self.combine(
            other,
            |a, b| a.intersection(b).cloned().collect(),
            |a, b| match (a, b) {
                (Some(a), Some(b)) => a.intersection(b),
                _ => Set::default(),
            },
        )
    }

    /// Keeps or drops whole top-level subtrees: `keep(field)` for each first path element.
    pub fn filter_top(&self, keep: impl Fn(&Pe) -> bool) -> Set {
        Set {
            members: self.members.iter().filter(|p| keep(p)).cloned().collect(),
            children: self
                .children
                .iter()
                .filter(|(p, _)| keep(p))
                .map(|(p, s)| (p.clone(), s.clone()))
                .collect(),
        }
    }

    /// The set with every map field that has children made a member too, like
    /// `EnsureNamedFieldsAreMembers` does for struct fields (the fake has no schema and
    /// treats every map field as a struct field). Pruning uses it so that a struct left
    /// empty by an applier disappears along with its last field.
    pub fn with_fields_as_members(&self) -> Set {
        let mut members = self.members.clone();
        members.extend(
            self.children
                .keys()
                .filter(|p| matches!(p, Pe::Field(_)))
                .cloned(),
        );
        Set {
            members,
            children: self
                .children
                .iter()
                .map(|(p, s)| (p.clone(), s.with_fields_as_members()))
                .collect(),
        }
    }

    /// Every path, in structured-merge-diff's iteration order: a node's members first,
    /// then its children, each in element order.
    pub fn paths(&self) -> Vec<Vec<Pe>> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<Pe>, out: &mut Vec<Vec<Pe>>) {
        for m in &self.members {
            let mut p = prefix.clone();
            p.push(m.clone());
            out.push(p);
        }
        for (pe, child) in &self.children {
            prefix.push(pe.clone());
            child.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// The `FieldsV1` JSON, keys in element order, `"."` first where a node is both.
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.fields_v1_map(false))
    }

    fn fields_v1_map(&self, include_self: bool) -> Map<String, Value> {
        let mut out = Map::new();
        if include_self && !self.is_empty() {
            out.insert(".".into(), Value::Object(Map::new()));
        }
        let elements: BTreeSet<&Pe> = self.members.iter().chain(self.children.keys()).collect();
        for pe in elements {
            let value = match self.children.get(pe) {
                Some(child) => child.fields_v1_map(self.members.contains(pe)),
                None => Map::new(),
            };
            out.insert(pe.fields_v1_key(), Value::Object(value));
        }
        out
    }

    pub fn from_fields_v1(v: &Value) -> Result<Set, String> {
        let Value::Object(m) = v else {
            return Err("fieldsV1 must be a JSON object".into());
        };
        let mut set = Set::default();
        for (key, child) in m {
            if key == "." {
                continue;
            }
            let Some(pe) = Pe::from_fields_v1_key(key)? else {
                continue;
            };
            let Value::Object(cm) = child else {
                return Err(format!("fieldsV1 entry {key} must be a JSON object"));
            };
            let grandchildren = Set::from_fields_v1(child)?;
            // An entry with no children of its own (`{}`) or with `"."` is a member.
            if cm.contains_key(".") || grandchildren.is_empty() {
                set.members.insert(pe.clone());
            }
            if !grandchildren.is_empty() {
                set.children.insert(pe, grandchildren);
            }
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(n: &str) -> Pe {
        Pe::Field(n.into())
    }
    fn k(n: &str) -> Pe {
        Pe::Key(vec![("name".into(), json!(n))])
    }

    #[test]
    fn fields_v1_round_trip_and_order() {
        let mut s = Set::default();
        let env = [f("spec"), f("containers"), k("aws-node"), f("env")];
        s.insert(&[f("spec"), f("containers"), k("aws-node")]);
        s.insert(&[&env[..], &[k("B"), f("value")]].concat());
        s.insert(&[&env[..], &[k("A")]].concat());
        s.insert(&[&env[..], &[k("A"), f("name")]].concat());
        s.insert(&[f("metadata"), f("finalizers"), Pe::Value(json!("x"))]);
        let v = s.to_fields_v1();
        assert_eq!(
            v.to_string(),
            r#"{"f:metadata":{"f:finalizers":{"v:\"x\"":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"aws-node\"}":{".":{},"f:env":{"k:{\"name\":\"A\"}":{".":{},"f:name":{}},"k:{\"name\":\"B\"}":{"f:value":{}}}}}}}"#
        );
        assert_eq!(Set::from_fields_v1(&v).unwrap(), s);
        assert_eq!(
            path_string(&[&env[..], &[k("B"), f("value")]].concat()),
            r#".spec.containers[name="aws-node"].env[name="B"].value"#
        );
        let ports = Pe::Key(vec![
            ("containerPort".into(), json!(61678)),
            ("protocol".into(), json!("TCP")),
        ]);
        assert_eq!(
            ports.fields_v1_key(),
            r#"k:{"containerPort":61678,"protocol":"TCP"}"#
        );
        assert_eq!(ports.to_string(), r#"[containerPort=61678,protocol="TCP"]"#);
    }

    #[test]
    fn set_algebra() {
        let mut a = Set::default();
        a.insert(&[f("a"), f("b")]);
        a.insert(&[f("a"), f("c")]);
        let mut b = Set::default();
        b.insert(&[f("a"), f("c")]);
        b.insert(&[f("d")]);
        assert_eq!(a.intersection(&b).paths(), vec![vec![f("a"), f("c")]]);
        assert_eq!(a.difference(&b).paths(), vec![vec![f("a"), f("b")]]);
        assert_eq!(a.union(&b).paths().len(), 3);
        assert!(a.difference(&a).is_empty());
        assert!(a.with_fields_as_members().has(&[f("a")]));
    }
}
