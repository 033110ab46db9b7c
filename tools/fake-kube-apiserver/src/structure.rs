//! The structure the fake assumes objects have, standing in for the OpenAPI schemas
//! kube-apiserver's server-side apply works from, and the walks structured-merge-diff's
//! `typed` package does over it: an object's field set, the comparison of two objects, the
//! apply merge and the removal of fields.
//!
//! Without schemas the fake decides by field name: a list is keyed when `patch.rs` knows its
//! keys (`containers` and `env` by `name`, ...), `metadata.finalizers` is a set, every other
//! list is atomic (owned as a whole), and maps are granular except a few atomic struct types
//! (label selectors, `fieldRef`, ...). CRD-backed kinds have only atomic lists outside
//! `metadata`, like a structural schema without `x-kubernetes-list-type`.

use crate::fieldpath::{path_string, Path, Pe, Set};
use crate::patch::list_map_keys;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Copy, Debug)]
pub struct Schema {
    /// Served from a CRD.
    pub custom: bool,
}

#[derive(Clone, Copy, Debug)]
enum ListKind {
    Atomic,
    /// `x-kubernetes-list-type: set`: scalars, addressed by value.
    Set,
    /// `x-kubernetes-list-type: map`: objects, addressed by these key fields.
    Map(&'static [&'static str]),
}

/// Built-in struct types marked `+structType=atomic` that the fake's kinds use, by the field
/// names they appear under.
const ATOMIC_MAPS: &[&str] = &[
    "selector",
    "labelSelector",
    "namespaceSelector",
    "fieldRef",
    "resourceFieldRef",
    "configMapKeyRef",
    "secretKeyRef",
    "requiredDuringSchedulingIgnoredDuringExecution",
];

/// The maps the CRDs the fake serves mark `x-kubernetes-map-type: atomic`: the
/// SecurityGroupPolicy's label selectors.
const CRD_ATOMIC_MAPS: &[&str] = &["podSelector", "serviceAccountSelector"];

fn in_metadata(path: &Path) -> bool {
    matches!(path.first(), Some(Pe::Field(f)) if f == "metadata")
}

impl Schema {
    /// How the list at `path` (its last element names the field) is addressed.
    fn list_kind(self, path: &Path) -> ListKind {
        // Custom resources still have a built-in ObjectMeta.
        if self.custom && !in_metadata(path) {
            return ListKind::Atomic;
        }
        match path {
            [Pe::Field(m), Pe::Field(f)] if m == "metadata" && f == "finalizers" => ListKind::Set,
            [.., Pe::Field(f)] => list_map_keys(f).map_or(ListKind::Atomic, ListKind::Map),
            _ => ListKind::Atomic,
        }
    }

    fn atomic_map(self, path: &Path) -> bool {
        let atomic = if self.custom {
            CRD_ATOMIC_MAPS
        } else {
            ATOMIC_MAPS
        };
        matches!(path.last(), Some(Pe::Field(f)) if atomic.contains(&f.as_str()))
    }
}

/// The schema default of a key field that may be left out (a container port's protocol).
fn key_default(key: &str) -> Option<Value> {
    (key == "protocol").then(|| Value::String("TCP".into()))
}

fn item_pe(kind: ListKind, item: &Value) -> Result<Pe, String> {
    match (kind, item) {
        (ListKind::Set, Value::Object(_) | Value::Array(_)) => {
            Err("expected a scalar in a set-like list".into())
        }
        (ListKind::Set, v) => Ok(Pe::Value(v.clone())),
        (ListKind::Map(keys), Value::Object(m)) => {
            let mut fields = Vec::with_capacity(keys.len());
            for key in keys {
                let v = match m.get(*key) {
                    Some(v) if !v.is_null() => v.clone(),
                    _ => key_default(key).ok_or_else(|| {
                        format!("associative list with keys has an element that omits key field {key:?} (and doesn't have default value)")
                    })?,
                };
                fields.push((key.to_string(), v));
            }
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(Pe::Key(fields))
        }
        (ListKind::Map(_), _) => {
            Err("associative list with keys has an element that is not a map".into())
        }
        (ListKind::Atomic, _) => Err("atomic lists have no addressable elements".into()),
    }
}

/// The element of each item of a granular list. With `strict` (an applied configuration) a
/// bad or duplicate element is an error, as in the real server; otherwise (stored objects,
/// which the fake does not validate) such a list is treated as atomic (`Ok(None)`).
fn list_pes(
    kind: ListKind,
    items: &[Value],
    path: &Path,
    strict: bool,
) -> Result<Option<Vec<Pe>>, String> {
    let mut pes = Vec::with_capacity(items.len());
    let mut seen = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let pe = match item_pe(kind, item) {
            Ok(pe) => pe,
            Err(e) if strict => return Err(format!("{}: element {i}: {e}", path_string(path))),
            Err(_) => return Ok(None),
        };
        if strict && !seen.insert(pe.clone()) {
            return Err(format!(
                "{}: duplicate entries for key {pe}",
                path_string(path)
            ));
        }
        pes.push(pe);
    }
    Ok(Some(pes))
}

fn granular(schema: Schema, path: &Path) -> Option<ListKind> {
    match schema.list_kind(path) {
        ListKind::Atomic => None,
        kind => Some(kind),
    }
}

/// The fields an object sets, as `TypedValue.ToFieldSet` lists them: every scalar, null,
/// empty map and atomic list or map, and every element of a granular list. `strict` as in
/// [`list_pes`].
pub fn field_set(schema: Schema, obj: &Value, strict: bool) -> Result<Set, String> {
    let mut set = Set::default();
    if let Value::Object(m) = obj {
        fields_of_map(schema, m, &mut Vec::new(), &mut set, strict)?;
    }
    Ok(set)
}

fn fields_of_map(
    schema: Schema,
    m: &Map<String, Value>,
    path: &mut Vec<Pe>,
    set: &mut Set,
    strict: bool,
) -> Result<(), String> {
    for (k, v) in m {
        path.push(Pe::Field(k.clone()));
        match v {
            Value::Object(om) if om.is_empty() || schema.atomic_map(path) => set.insert(path),
            Value::Object(om) => fields_of_map(schema, om, path, set, strict)?,
            Value::Array(items) => fields_of_list(schema, items, path, set, strict)?,
            _ => set.insert(path),
        }
        path.pop();
    }
    Ok(())
}

fn fields_of_list(
    schema: Schema,
    items: &[Value],
    path: &mut Vec<Pe>,
    set: &mut Set,
    strict: bool,
) -> Result<(), String> {
    let pes = match granular(schema, path) {
        Some(kind) => list_pes(kind, items, path, strict)?,
        None => None,
    };
    let Some(pes) = pes else {
        set.insert(path);
        return Ok(());
    };
    let mut count: BTreeMap<&Pe, usize> = BTreeMap::new();
    for pe in &pes {
        *count.entry(pe).or_default() += 1;
    }
    for (item, pe) in items.iter().zip(&pes) {
        path.push(pe.clone());
        // A duplicated element is owned as a whole, its fields are not addressable.
        if count.get(pe) == Some(&1) {
            if let Value::Object(im) = item {
                fields_of_map(schema, im, path, set, strict)?;
            }
        }
        set.insert(path);
        path.pop();
    }
    Ok(())
}

/// What changed between two versions of an object (`TypedValue.Compare`). A map or list
/// element that appears or disappears is itself added or removed, along with its fields.
#[derive(Debug, Default)]
pub struct Comparison {
    pub added: Set,
    pub modified: Set,
    pub removed: Set,
}

impl Comparison {
    pub fn filter(self, f: impl Fn(&Set) -> Set) -> Comparison {
        Comparison {
            added: f(&self.added),
            modified: f(&self.modified),
            removed: f(&self.removed),
        }
    }
}

pub fn compare(schema: Schema, lhs: &Value, rhs: &Value) -> Comparison {
    let mut c = Comparison::default();
    compare_at(schema, Some(lhs), Some(rhs), &mut Vec::new(), &mut c);
    c
}

fn leaf(l: Option<&Value>, r: Option<&Value>, path: &Path, c: &mut Comparison) {
    match (l, r) {
        (None, Some(_)) => c.added.insert(path),
        (Some(_), None) => c.removed.insert(path),
        (Some(a), Some(b)) if a != b => c.modified.insert(path),
        _ => {}
    }
}

/// `null` counts as present (as in structured-merge-diff, where it is a value) but holds
/// nothing, so it can stand on either side of a map or a list.
fn as_map(v: Option<&Value>) -> Option<Option<&Map<String, Value>>> {
    match v {
        None | Some(Value::Null) => Some(None),
        Some(Value::Object(m)) => Some(Some(m)),
        _ => None,
    }
}

fn as_list(v: Option<&Value>) -> Option<Option<&Vec<Value>>> {
    match v {
        None | Some(Value::Null) => Some(None),
        Some(Value::Array(a)) => Some(Some(a)),
        _ => None,
    }
}

fn compare_at(
    schema: Schema,
    l: Option<&Value>,
    r: Option<&Value>,
    path: &mut Vec<Pe>,
    c: &mut Comparison,
) {
    let in_leaf = match (as_map(l), as_map(r), as_list(l), as_list(r)) {
        (Some(lm), Some(rm), _, _)
            if (lm.is_some() || rm.is_some()) && !schema.atomic_map(path) =>
        {
            let empty = |m: Option<&Map<String, Value>>| m.is_none_or(Map::is_empty);
            if empty(lm) && empty(rm) {
                leaf(l, r, path, c);
                true
            } else {
                let keys: BTreeSet<&String> =
                    lm.into_iter().chain(rm).flat_map(Map::keys).collect();
                for k in keys {
                    path.push(Pe::Field(k.clone()));
                    compare_at(
                        schema,
                        lm.and_then(|m| m.get(k)),
                        rm.and_then(|m| m.get(k)),
                        path,
                        c,
                    );
                    path.pop();
                }
                false
            }
        }
        (_, _, Some(ll), Some(rl)) if ll.is_some() || rl.is_some() => {
            let ll = ll.map_or(&[][..], Vec::as_slice);
            let rl = rl.map_or(&[][..], Vec::as_slice);
            let pes = |items: &[Value]| {
                granular(schema, path).and_then(|k| list_pes(k, items, path, false).ok().flatten())
            };
            match (pes(ll), pes(rl)) {
                (Some(lp), Some(rp)) if !(ll.is_empty() && rl.is_empty()) => {
                    compare_items(schema, (ll, &lp), (rl, &rp), path, c);
                    false
                }
                _ => {
                    leaf(l, r, path, c);
                    true
                }
            }
        }
        _ => {
            leaf(l, r, path, c);
            true
        }
    };
    if !in_leaf {
        match (l, r) {
            (None, _) => c.added.insert(path),
            (_, None) => c.removed.insert(path),
            _ => {}
        }
    }
}

fn compare_items(
    schema: Schema,
    (litems, lpes): (&[Value], &[Pe]),
    (ritems, rpes): (&[Value], &[Pe]),
    path: &mut Vec<Pe>,
    c: &mut Comparison,
) {
    let group = |items: &'_ [Value], pes: &'_ [Pe]| {
        let mut m: BTreeMap<Pe, Vec<Value>> = BTreeMap::new();
        for (item, pe) in items.iter().zip(pes) {
            m.entry(pe.clone()).or_default().push(item.clone());
        }
        m
    };
    let (lg, rg) = (group(litems, lpes), group(ritems, rpes));
    let all: BTreeSet<&Pe> = lg.keys().chain(rg.keys()).collect();
    for pe in all {
        let (lv, rv) = (
            lg.get(pe).map_or(&[][..], Vec::as_slice),
            rg.get(pe).map_or(&[][..], Vec::as_slice),
        );
        path.push(pe.clone());
        // Duplicated elements are compared whole, as the real comparison does.
        match (lv.len(), rv.len()) {
            (0..=1, 0..=1) => compare_at(schema, lv.first(), rv.first(), path, c),
            (2.., 2..) if lv != rv => c.modified.insert(path),
            (2.., 2..) => {}
            (2.., n) => {
                if n == 1 {
                    compare_at(schema, None, rv.first(), path, c);
                }
                c.removed.insert(path);
            }
            (n, _) => {
                if n == 1 {
                    compare_at(schema, lv.first(), None, path, c);
                }
                c.added.insert(path);
            }
        }
        path.pop();
    }
}

/// `lhs` with `rhs` merged in the way server-side apply merges a configuration into the
/// live object: maps field by field, keyed lists element by element, everything else
/// replaced. A `null` in `rhs` removes the field. `rhs` must have passed
/// [`field_set`] with `strict`.
pub fn merge(schema: Schema, lhs: &Value, rhs: &Value) -> Value {
    merge_at(schema, &mut Vec::new(), Some(lhs), rhs)
}

/// `v` without the null map entries that stand for absent fields.
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

fn merge_at(schema: Schema, path: &mut Vec<Pe>, l: Option<&Value>, r: &Value) -> Value {
    match (l, r) {
        (Some(Value::Object(lm)), Value::Object(rm)) if !schema.atomic_map(path) => {
            let mut out = lm.clone();
            for (k, rv) in rm {
                if rv.is_null() {
                    out.shift_remove(k);
                    continue;
                }
                path.push(Pe::Field(k.clone()));
                let merged = merge_at(schema, path, lm.get(k), rv);
                path.pop();
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Some(Value::Array(ll)), Value::Array(rl)) => {
            let kind = granular(schema, path);
            let pes =
                |items: &[Value]| kind.and_then(|k| list_pes(k, items, path, false).ok().flatten());
            match (pes(ll), pes(rl)) {
                (Some(lp), Some(rp)) if lp.iter().collect::<BTreeSet<_>>().len() == lp.len() => {
                    Value::Array(merge_list(schema, path, (ll, &lp), (rl, &rp)))
                }
                _ => without_nulls(r),
            }
        }
        _ => without_nulls(r),
    }
}

/// structured-merge-diff's list merge: live elements keep their places, the configuration's
/// new elements go in at their position relative to the elements both have, and those
/// shared elements follow the configuration's order.
fn merge_list(
    schema: Schema,
    path: &mut Vec<Pe>,
    (litems, lpes): (&[Value], &[Pe]),
    (ritems, rpes): (&[Value], &[Pe]),
) -> Vec<Value> {
    let lindex: BTreeMap<&Pe, &Value> = lpes.iter().zip(litems).collect();
    let rindex: BTreeMap<&Pe, &Value> = rpes.iter().zip(ritems).collect();
    let mut shared = rpes.iter().filter(|pe| lindex.contains_key(pe));
    let mut next_shared = shared.next();
    let mut merged_rhs: BTreeSet<&Pe> = BTreeSet::new();
    let mut out = Vec::with_capacity(litems.len().max(ritems.len()));
    let item = |path: &mut Vec<Pe>, pe: &Pe, l: Option<&Value>, r: Option<&Value>| {
        path.push(pe.clone());
        let v = match r {
            Some(r) => merge_at(schema, path, l, r),
            None => l.cloned().unwrap_or(Value::Null),
        };
        path.pop();
        v
    };
    let (mut li, mut ri) = (0, 0);
    while li < lpes.len() || ri < rpes.len() {
        if li < lpes.len() && ri < rpes.len() {
            let pe = &lpes[li];
            if *pe == rpes[ri] {
                merged_rhs.insert(pe);
                out.push(item(
                    path,
                    pe,
                    lindex.get(pe).copied(),
                    rindex.get(pe).copied(),
                ));
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            // A shared element the configuration wants later: skip it here, it is merged
            // when the configuration reaches it.
            if rindex.contains_key(pe) && next_shared.is_some_and(|n| n != pe) {
                li += 1;
                continue;
            }
        }
        if li < lpes.len() {
            let pe = &lpes[li];
            if !rindex.contains_key(pe) {
                out.push(item(path, pe, Some(&litems[li]), None));
                li += 1;
                continue;
            } else if merged_rhs.contains(pe) {
                li += 1;
            }
        }
        if ri < rpes.len() {
            let pe = &rpes[ri];
            merged_rhs.insert(pe);
            out.push(item(
                path,
                pe,
                lindex.get(pe).copied(),
                rindex.get(pe).copied(),
            ));
            ri += 1;
            if next_shared == Some(pe) {
                next_shared = shared.next();
            }
        }
    }
    out
}

/// Removes, with everything below it, each map field and list element whose path `doomed`
/// picks (`TypedValue.RemoveItems`). Atomic values are removed whole or not at all.
pub fn remove_where(schema: Schema, v: &mut Value, doomed: &dyn Fn(&Path) -> bool) {
    remove_at(schema, &mut Vec::new(), v, doomed);
}

fn remove_at(schema: Schema, path: &mut Vec<Pe>, v: &mut Value, doomed: &dyn Fn(&Path) -> bool) {
    match v {
        Value::Object(m) if !schema.atomic_map(path) => {
            m.retain(|k, _| {
                path.push(Pe::Field(k.clone()));
                let gone = doomed(path);
                path.pop();
                !gone
            });
            for (k, child) in m.iter_mut() {
                path.push(Pe::Field(k.clone()));
                remove_at(schema, path, child, doomed);
                path.pop();
            }
        }
        Value::Array(items) => {
            let Some(pes) =
                granular(schema, path).and_then(|k| list_pes(k, items, path, false).ok().flatten())
            else {
                return;
            };
            let mut kept = Vec::with_capacity(items.len());
            for (mut item, pe) in std::mem::take(items).into_iter().zip(pes) {
                path.push(pe);
                if !doomed(path) {
                    remove_at(schema, path, &mut item, doomed);
                    kept.push(item);
                }
                path.pop();
            }
            *items = kept;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BUILTIN: Schema = Schema { custom: false };

    fn fv1(v: &Value) -> Value {
        field_set(BUILTIN, v, true).unwrap().to_fields_v1()
    }

    #[test]
    fn field_set_of_a_container() {
        let c = json!({"spec": {"selector": {"matchLabels": {"a": "b"}}, "containers": [
            {"name": "c", "image": "i", "ports": [{"containerPort": 80}],
             "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}],
             "args": ["x"], "resources": {}}]}});
        assert_eq!(
            fv1(&c),
            json!({"f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {},
                "f:args": {},
                "f:env": {"k:{\"name\":\"A\"}": {".": {}, "f:name": {}, "f:valueFrom": {"f:fieldRef": {}}}},
                "f:image": {}, "f:name": {},
                "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}},
                "f:resources": {}}},
                "f:selector": {}}})
        );
        let err = field_set(
            BUILTIN,
            &json!({"spec": {"containers": [{"image": "i"}]}}),
            true,
        );
        assert_eq!(err.unwrap_err(), ".spec.containers: element 0: associative list with keys has an element that omits key field \"name\" (and doesn't have default value)");
        let dup = field_set(
            BUILTIN,
            &json!({"env": [{"name": "A"}, {"name": "A"}]}),
            true,
        );
        assert_eq!(
            dup.unwrap_err(),
            ".env: duplicate entries for key [name=\"A\"]"
        );
    }

    #[test]
    fn compare_marks_new_maps_and_elements() {
        let l = json!({"spec": {"env": [{"name": "A", "value": "1"}]}});
        let r = json!({"metadata": {"labels": {"x": "y"}},
            "spec": {"env": [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}]}});
        let c = compare(BUILTIN, &l, &r);
        assert_eq!(
            c.modified.to_fields_v1(),
            json!({"f:spec": {"f:env": {"k:{\"name\":\"A\"}": {"f:value": {}}}}})
        );
        assert_eq!(
            c.added.to_fields_v1(),
            json!({"f:metadata": {".": {}, "f:labels": {".": {}, "f:x": {}}},
                "f:spec": {"f:env": {"k:{\"name\":\"B\"}": {".": {}, "f:name": {}, "f:value": {}}}}})
        );
        let back = compare(BUILTIN, &r, &l);
        assert!(back.removed.has(&[Pe::Field("metadata".into())]));
    }

    #[test]
    fn merge_orders_like_structured_merge_diff() {
        let names = |v: &Value| -> Vec<String> {
            v["env"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap().to_string())
                .collect()
        };
        let live = json!({"env": [{"name": "A"}, {"name": "B", "value": "1"}, {"name": "C"}]});
        let m = merge(
            BUILTIN,
            &live,
            &json!({"env": [{"name": "X"}, {"name": "B", "value": "2"}]}),
        );
        assert_eq!(names(&m), ["A", "X", "B", "C"]);
        assert_eq!(m["env"][2]["value"], "2");
        let m = merge(
            BUILTIN,
            &live,
            &json!({"env": [{"name": "C"}, {"name": "A"}]}),
        );
        assert_eq!(names(&m), ["B", "C", "A"]);
        let m = merge(
            BUILTIN,
            &json!({"a": {"b": 1, "c": 2}, "l": [1, 2]}),
            &json!({"a": {"b": null}, "l": [3]}),
        );
        assert_eq!(m, json!({"a": {"c": 2}, "l": [3]}));
    }

    #[test]
    fn remove_drops_subtrees() {
        let mut v = json!({"spec": {"env": [{"name": "A", "value": "1"}, {"name": "B"}], "x": 1}});
        let b = Pe::Key(vec![("name".into(), json!("B"))]);
        remove_where(BUILTIN, &mut v, &|p| {
            matches!(p, [Pe::Field(_), Pe::Field(_), k] if *k == b)
                || matches!(p.last(), Some(Pe::Field(f)) if f == "x")
        });
        assert_eq!(v, json!({"spec": {"env": [{"name": "A", "value": "1"}]}}));
    }
}
