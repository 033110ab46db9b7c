//! `metadata.managedFields`: which manager owns which fields, kept up on every write the way
//! kube-apiserver's field manager (`k8s.io/apimachinery/pkg/util/managedfields`, on top of
//! structured-merge-diff) keeps it.
//!
//! - Every write but apply is an `Update` by the request's `fieldManager` (else the
//!   User-Agent's product name, else `unknown`). The fields it adds or changes move to that
//!   manager; the fields it removes leave every manager. An update never conflicts.
//! - An apply replaces its manager's `Apply` set with the fields of the configuration, removes
//!   the fields the manager applied last time and left out now unless another manager (or the
//!   configuration) still owns them, and refuses to change a field another manager owns
//!   unless forced, in which case the field moves to the applier. Equal values are no
//!   conflict: the field is then owned by both.
//! - An existing object without managedFields is not tracked by updates; the first apply
//!   gives all its fields to `before-first-apply` first.
//! - kubectl's server-side apply (manager `kubectl`) may take over fields whose value is the
//!   one in the client-side `last-applied-configuration` annotation, and keeps that
//!   annotation up to date, so that objects can move from client-side to server-side apply.

use crate::fieldpath::{path_string, Pe, Set};
use crate::object::parse_rfc3339;
use crate::structure::{compare, field_set, merge, remove_where, Schema};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// kubectl's client-side apply record.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Owner of an untracked object's fields from its first apply on.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// What makes managers distinct: an `Update` manager per API version, an `Apply` manager
/// across versions, and either per subresource.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ManagerId {
    manager: String,
    operation: Operation,
    /// Empty for `Apply`.
    api_version: String,
    subresource: String,
}

impl ManagerId {
    /// The JSON the real server keys managers by, which also orders conflict messages.
    fn identifier(&self) -> String {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation.as_str()));
        if !self.api_version.is_empty() {
            m.insert("apiVersion".into(), json!(self.api_version));
        }
        if !self.subresource.is_empty() {
            m.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(m).to_string()
    }

    /// How conflict messages name the manager: `"eks"`, `"eksnet" using apps/v1`.
    fn describe(&self) -> String {
        let mut s = json!(self.manager).to_string();
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {}", json!(self.subresource)));
        }
        if self.operation == Operation::Update {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Entry {
    api_version: String,
    time: Option<String>,
    set: Set,
}

/// The decoded managedFields of one object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Managed {
    entries: BTreeMap<ManagerId, Entry>,
}

impl Managed {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Decodes `metadata.managedFields` with the real decoder's checks.
    pub fn decode(v: &Value) -> Result<Managed, String> {
        let items = match v {
            Value::Null => return Ok(Managed::default()),
            Value::Array(items) => items,
            _ => return Err("managedFields must be a list".into()),
        };
        let mut managed = Managed::default();
        for (i, item) in items.iter().enumerate() {
            let Value::Object(e) = item else {
                return Err(format!("managed fields entry {i} is not an object"));
            };
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default();
            let operation = match s("operation") {
                "Apply" => Operation::Apply,
                "Update" => Operation::Update,
                _ => return Err("operation must be `Apply` or `Update`".into()),
            };
            if s("apiVersion").is_empty() {
                return Err("apiVersion must not be empty".into());
            }
            match s("fieldsType") {
                "FieldsV1" => {}
                "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
                other => {
                    return Err(format!(
                        "invalid fieldsType {other:?} in managed fields entry {i}"
                    ))
                }
            }
            let set = match e.get("fieldsV1") {
                None | Some(Value::Null) => Set::default(),
                Some(f) => {
                    Set::from_fields_v1(f).map_err(|e| format!("error decoding set: {e}"))?
                }
            };
            let id = ManagerId {
                manager: s("manager").to_string(),
                operation,
                api_version: match operation {
                    Operation::Apply => String::new(),
                    Operation::Update => s("apiVersion").to_string(),
                },
                subresource: s("subresource").to_string(),
            };
            let entry = Entry {
                api_version: s("apiVersion").to_string(),
                time: e.get("time").and_then(Value::as_str).map(str::to_string),
                set,
            };
            managed.entries.insert(id, entry);
        }
        Ok(managed)
    }

    /// `[]` and `[{}]` in a write ask the server to drop all managedFields.
    pub fn is_reset(v: &Value) -> bool {
        match v {
            Value::Array(items) => match items.as_slice() {
                [] => true,
                [Value::Object(m)] => m.is_empty(),
                _ => false,
            },
            _ => false,
        }
    }

    /// The `metadata.managedFields` list in the real server's order (appliers first, then
    /// by time, manager, API version and subresource), or `None` when nobody owns anything.
    pub fn encode(&self) -> Option<Value> {
        if self.entries.is_empty() {
            return None;
        }
        let secs = |e: &Entry| e.time.as_deref().and_then(parse_rfc3339).unwrap_or(0);
        let mut entries: Vec<(&ManagerId, &Entry)> = self.entries.iter().collect();
        entries.sort_by(|(a, ae), (b, be)| {
            a.operation
                .cmp(&b.operation)
                .then(secs(ae).cmp(&secs(be)))
                .then_with(|| a.manager.cmp(&b.manager))
                .then_with(|| ae.api_version.cmp(&be.api_version))
                .then_with(|| a.subresource.cmp(&b.subresource))
        });
        let list = entries
            .into_iter()
            .map(|(id, e)| {
                let mut m = Map::new();
                m.insert("manager".into(), json!(id.manager));
                m.insert("operation".into(), json!(id.operation.as_str()));
                m.insert("apiVersion".into(), json!(e.api_version));
                if let Some(t) = &e.time {
                    m.insert("time".into(), json!(t));
                }
                m.insert("fieldsType".into(), json!("FieldsV1"));
                m.insert("fieldsV1".into(), e.set.to_fields_v1());
                if !id.subresource.is_empty() {
                    m.insert("subresource".into(), json!(id.subresource));
                }
                Value::Object(m)
            })
            .collect();
        Some(Value::Array(list))
    }
}

fn managed_fields(obj: &Value) -> Option<&Value> {
    obj.get("metadata")?.get("managedFields")
}

/// The managedFields stored on `obj`. The fake only ever stores ones that decode.
fn stored(obj: &Value) -> Managed {
    managed_fields(obj)
        .and_then(|v| Managed::decode(v).ok())
        .unwrap_or_default()
}

pub fn without_managed_fields(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(Value::Object(m)) = obj.get_mut("metadata") {
        m.shift_remove("managedFields");
    }
    obj
}

/// Sets (or, for `None`, removes) `metadata.managedFields`, which goes last in metadata.
pub fn set_managed_fields(obj: &mut Value, mf: Option<Value>) {
    let meta = crate::object::meta_mut(obj);
    meta.shift_remove("managedFields");
    if let Some(mf) = mf {
        meta.insert("managedFields".into(), mf);
    }
}

/// Checks a seed object's managedFields and fills in the time of entries without one with
/// the object's creation time.
pub fn normalize_seed(obj: &mut Value) -> Result<(), String> {
    let Some(mf) = managed_fields(obj) else {
        return Ok(());
    };
    let mut managed = Managed::decode(mf)?;
    let created = crate::object::meta_str(obj, "creationTimestamp").map(str::to_string);
    for e in managed.entries.values_mut() {
        if e.time.is_none() {
            e.time.clone_from(&created);
        }
    }
    set_managed_fields(obj, managed.encode());
    Ok(())
}

/// The empty object a create is compared against: like the real server's empty Go object,
/// it has the struct fields that are not pointers, so a create does not list them as added
/// (`".": {}`). Custom resources are unstructured and start from nothing.
pub fn empty_object(kind: &str) -> Value {
    match kind {
        "DaemonSet" => json!({"metadata": {}, "spec": {"template": {"metadata": {},
            "spec": {"containers": null}}, "updateStrategy": {}}, "status": {}}),
        "Deployment" => json!({"metadata": {}, "spec": {"template": {"metadata": {},
            "spec": {"containers": null}}, "strategy": {}}, "status": {}}),
        "ReplicaSet" => json!({"metadata": {}, "spec": {"template": {"metadata": {},
            "spec": {"containers": null}}}, "status": {}}),
        "PodDisruptionBudget" => json!({"metadata": {}, "spec": {}, "status": {}}),
        "Event" => json!({"metadata": {}, "involvedObject": {}, "source": {}}),
        "Pod" => json!({"metadata": {}, "spec": {"containers": null}, "status": {}}),
        "CustomResourceDefinition" => {
            json!({"metadata": {}, "spec": {"names": {}, "versions": null}, "status": {}})
        }
        "Node" | "Namespace" => json!({"metadata": {}, "spec": {}, "status": {}}),
        "ConfigMap" => json!({"metadata": {}}),
        _ => json!({}),
    }
}

/// Where a write happens, as far as ownership goes.
pub struct Scope {
    pub schema: Schema,
    pub api_version: String,
    pub kind: &'static str,
    /// `status` for a write to the /status subresource, else empty.
    pub subresource: &'static str,
    /// The kind has a /status subresource, so the main resource cannot own `status`.
    pub status_subresource: bool,
    /// RFC 3339 time of the write.
    pub now: String,
}

impl Scope {
    /// The fields a write through this endpoint can own (the strategies' reset fields).
    fn reset_filter(&self, s: &Set) -> Set {
        let is_status = |p: &Pe| matches!(p, Pe::Field(f) if f == "status");
        if self.subresource == "status" {
            s.filter_top(is_status)
        } else if self.status_subresource {
            s.filter_top(|p| !is_status(p))
        } else {
            s.clone()
        }
    }

    fn id(&self, manager: &str, operation: Operation) -> ManagerId {
        ManagerId {
            manager: manager.to_string(),
            operation,
            api_version: match operation {
                Operation::Apply => String::new(),
                Operation::Update => self.api_version.clone(),
            },
            subresource: self.subresource.to_string(),
        }
    }
}

/// Fields no manager owns: identity and server-set metadata.
fn strip_meta(set: &Set) -> Set {
    let mut strip = Set::default();
    let f = |s: &str| Pe::Field(s.to_string());
    for top in ["apiVersion", "kind", "metadata"] {
        strip.insert(&[f(top)]);
    }
    for m in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        strip.insert(&[f("metadata"), f(m)]);
    }
    set.difference(&strip)
}

/// One Update from `live` to `new` (both without managedFields) by `id`.
fn update(scope: &Scope, live: &Value, new: &Value, managed: &mut Managed, id: &ManagerId) {
    let cmp = compare(scope.schema, live, new).filter(|s| scope.reset_filter(s));
    let changed = cmp.modified.union(&cmp.added);
    for e in managed.entries.values_mut() {
        e.set = e.set.difference(&changed).difference(&cmp.removed);
    }
    let own = strip_meta(&changed);
    if !own.is_empty() {
        let e = managed.entries.entry(id.clone()).or_insert_with(|| Entry {
            api_version: scope.api_version.clone(),
            time: None,
            set: Set::default(),
        });
        e.set = e.set.union(&own);
        e.time = Some(scope.now.clone());
    }
    managed.entries.retain(|_, e| !e.set.is_empty());
}

/// The managedFields after a write other than apply (`None`: the object has none).
/// `live` is the stored object (`None` for a create) and `new` the object being written,
/// with whatever managedFields the client left in it: a valid non-empty list replaces the
/// stored one (except on a subresource), `[]` or `[{}]` clears it, anything else is ignored.
pub fn track_update(
    scope: &Scope,
    live: Option<&Value>,
    new: &Value,
    manager: &str,
) -> Option<Value> {
    let live_managed = || live.map(stored).unwrap_or_default();
    let mut managed = match managed_fields(new) {
        _ if !scope.subresource.is_empty() => live_managed(),
        Some(v) if Managed::is_reset(v) => Managed::default(),
        Some(v) => match Managed::decode(v) {
            Ok(m) if !m.is_empty() => m,
            _ => live_managed(),
        },
        None => live_managed(),
    };
    if managed.is_empty() && live.is_some() {
        return None;
    }
    let live_obj = live.map_or_else(|| empty_object(scope.kind), without_managed_fields);
    let id = scope.id(manager, Operation::Update);
    update(
        scope,
        &live_obj,
        &without_managed_fields(new),
        &mut managed,
        &id,
    );
    managed.encode()
}

/// A field an apply may not change without `force`.
#[derive(Debug)]
pub struct Conflict {
    manager: ManagerId,
    path: Vec<Pe>,
}

#[derive(Debug)]
pub enum ApplyError {
    Conflicts(Vec<Conflict>),
    /// The configuration does not fit the object's structure (a keyed list element without
    /// its key, a duplicate key).
    Invalid(String),
}

/// The 409 message and `details.causes` of refused conflicts, as the real server words them.
pub fn conflict_status(conflicts: &[Conflict]) -> (String, Vec<Value>) {
    let causes = conflicts
        .iter()
        .map(|c| {
            json!({"reason": "FieldManagerConflict",
                "message": format!("conflict with {}", c.manager.describe()),
                "field": path_string(&c.path)})
        })
        .collect();
    let message = match conflicts {
        [one] => format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            one.manager.describe(),
            path_string(&one.path)
        ),
        _ => {
            let mut lines = Vec::new();
            let mut last: Option<&ManagerId> = None;
            for c in conflicts {
                if last != Some(&c.manager) {
                    lines.push(format!("conflicts with {}:", c.manager.describe()));
                    last = Some(&c.manager);
                }
                lines.push(format!("- {}", path_string(&c.path)));
            }
            format!(
                "Apply failed with {} conflicts: {}",
                conflicts.len(),
                lines.join("\n")
            )
        }
    };
    (message, causes)
}

/// `merged` without the fields `last` (the applier's previous set) has and no manager,
/// the applier's new configuration included, still owns.
fn prune(schema: Schema, mut merged: Value, last: &Set, owned: &Set) -> Value {
    let (last, owned) = (
        last.with_fields_as_members(),
        owned.with_fields_as_members(),
    );
    remove_where(schema, &mut merged, &|p| last.has(p) && !owned.has(p));
    merged
}

/// One apply of `config` to `live` (without managedFields; the empty object when `exists`
/// is false). Returns the new object and managers.
fn apply(
    scope: &Scope,
    live: &Value,
    exists: bool,
    config: &Value,
    mut managed: Managed,
    manager: &str,
    force: bool,
) -> Result<(Value, Managed), ApplyError> {
    if managed.is_empty() && exists {
        let id = scope.id(BEFORE_FIRST_APPLY, Operation::Update);
        update(scope, &empty_object(scope.kind), live, &mut managed, &id);
    }
    let config_set = field_set(scope.schema, config, true).map_err(ApplyError::Invalid)?;
    let config_set = scope.reset_filter(&config_set);
    let merged = merge(scope.schema, live, config);
    let id = scope.id(manager, Operation::Apply);
    let previous = managed.entries.remove(&id);
    let owned = managed
        .entries
        .values()
        .fold(config_set.clone(), |acc, e| acc.union(&e.set));
    let new = match previous.as_ref() {
        Some(last) if !last.set.is_empty() => prune(scope.schema, merged, &last.set, &owned),
        _ => merged,
    };
    let cmp = compare(scope.schema, live, &new).filter(|s| scope.reset_filter(s));
    let changed = cmp.modified.union(&cmp.added);
    let mut conflicts: Vec<Conflict> = managed
        .entries
        .iter()
        .flat_map(|(other, e)| {
            e.set
                .intersection(&changed)
                .paths()
                .into_iter()
                .map(|path| Conflict {
                    manager: other.clone(),
                    path,
                })
        })
        .collect();
    if !force && !conflicts.is_empty() {
        // Stable: each manager's fields stay in field order.
        conflicts.sort_by_cached_key(|c| c.manager.identifier());
        return Err(ApplyError::Conflicts(conflicts));
    }
    for e in managed.entries.values_mut() {
        e.set = e.set.difference(&changed).difference(&cmp.removed);
    }
    let own = strip_meta(&config_set);
    if !own.is_empty() {
        // The time says when the manager last changed the object.
        let time = if new != *live {
            Some(scope.now.clone())
        } else {
            previous.and_then(|e| e.time)
        };
        let entry = Entry {
            api_version: scope.api_version.clone(),
            time,
            set: own,
        };
        managed.entries.insert(id, entry);
    }
    managed.entries.retain(|_, e| !e.set.is_empty());
    Ok((new, managed))
}

/// The fields kubectl's server-side apply may take over from the client-side apply that
/// came before: those of `last-applied-configuration` that still have its value.
fn allowed_from_last_applied(scope: &Scope, live: &Value) -> Option<Set> {
    let text = live
        .get("metadata")?
        .get("annotations")?
        .get(LAST_APPLIED)?
        .as_str()?;
    let last: Value = serde_json::from_str(text).ok()?;
    if last.get("apiVersion").and_then(Value::as_str) != Some(scope.api_version.as_str()) {
        return None;
    }
    let set = field_set(scope.schema, &last, true).ok()?;
    let cmp = compare(scope.schema, &last, live);
    Some(
        set.difference(&cmp.modified)
            .difference(&cmp.added)
            .difference(&cmp.removed),
    )
}

/// JSON with object keys sorted, as Go encodes maps.
fn sorted_keys(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted_keys(v)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted_keys).collect()),
        other => other.clone(),
    }
}

/// After kubectl's server-side apply, an object that has the client-side annotation gets
/// the applied configuration as its new value (lastAppliedUpdater).
fn update_last_applied(obj: &mut Value, config: &Value) {
    let has = obj
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if !has {
        return;
    }
    let mut config = config.clone();
    if let Some(Value::Object(meta)) = config.get_mut("metadata") {
        match meta.get_mut("annotations") {
            Some(Value::Object(a)) => {
                a.shift_remove(LAST_APPLIED);
            }
            Some(Value::Null) => {
                meta.shift_remove("annotations");
            }
            _ => {}
        }
    }
    let mut text = sorted_keys(&config).to_string();
    text.push('\n');
    let meta = crate::object::meta_mut(obj);
    let annotations = crate::object::obj_map(meta.entry("annotations").or_insert(Value::Null));
    annotations.insert(LAST_APPLIED.into(), Value::String(text));
}

/// Server-side apply of `config` by `manager` to the stored object `live` (`None` when the
/// apply creates the object). Returns the object to store, managedFields included.
pub fn track_apply(
    scope: &Scope,
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, ApplyError> {
    let managed = live.map(stored).unwrap_or_default();
    let live_obj = live.map_or_else(|| empty_object(scope.kind), without_managed_fields);
    let run = |force: bool| {
        apply(
            scope,
            &live_obj,
            live.is_some(),
            config,
            managed.clone(),
            manager,
            force,
        )
    };
    let (new, managed) = match run(force) {
        Err(ApplyError::Conflicts(conflicts)) if manager == "kubectl" => {
            let Some(allowed) = allowed_from_last_applied(scope, &live_obj) else {
                return Err(ApplyError::Conflicts(conflicts));
            };
            let left: Vec<Conflict> = conflicts
                .into_iter()
                .filter(|c| !allowed.has(&c.path))
                .collect();
            if !left.is_empty() {
                return Err(ApplyError::Conflicts(left));
            }
            run(true)?
        }
        other => other?,
    };
    // A create stores the configuration itself, not its merge into the empty object.
    let mut obj = if live.is_some() { new } else { config.clone() };
    if manager == "kubectl" {
        update_last_applied(&mut obj, config);
    }
    set_managed_fields(&mut obj, managed.encode());
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope {
            schema: Schema { custom: false },
            api_version: "apps/v1".into(),
            kind: "DaemonSet",
            subresource: "",
            status_subresource: true,
            now: "2024-01-01T00:00:00Z".into(),
        }
    }

    fn ds(env: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "aws-node", "namespace": "kube-system"},
            "spec": {"template": {"spec": {"containers": [{"name": "aws-node", "env": env}]}}}})
    }

    #[test]
    fn apply_update_conflict_force_prune() {
        let s = scope();
        let created = track_apply(
            &s,
            None,
            &ds(json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])),
            "eks",
            false,
        )
        .unwrap();
        let mf = &created["metadata"]["managedFields"];
        assert_eq!(mf[0]["manager"], "eks");
        assert_eq!(mf[0]["operation"], "Apply");
        assert_eq!(mf[0]["time"], "2024-01-01T00:00:00Z");
        // An update changes A.
        let mut changed = created.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = json!("9");
        let mf = track_update(&s, Some(&created), &changed, "eksnet").unwrap();
        assert_eq!(mf[1]["manager"], "eksnet");
        assert_eq!(
            mf[1]["fieldsV1"],
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"aws-node\"}": {"f:env": {"k:{\"name\":\"A\"}": {"f:value": {}}}}}}}}})
        );
        set_managed_fields(&mut changed, Some(mf));
        // Re-applying the old value conflicts; forced it wins. B left out is pruned.
        let config = ds(json!([{"name": "A", "value": "1"}]));
        let Err(ApplyError::Conflicts(c)) = track_apply(&s, Some(&changed), &config, "eks", false)
        else {
            panic!("expected a conflict");
        };
        assert_eq!(conflict_status(&c).0, "Apply failed with 1 conflict: conflict with \"eksnet\" using apps/v1: .spec.template.spec.containers[name=\"aws-node\"].env[name=\"A\"].value");
        let forced = track_apply(&s, Some(&changed), &config, "eks", true).unwrap();
        let env = &forced["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(env, &json!([{"name": "A", "value": "1"}]));
        assert_eq!(
            forced["metadata"]["managedFields"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn kubectl_may_take_over_what_client_side_apply_last_applied() {
        let s = Scope {
            schema: Schema { custom: true },
            api_version: "crd.k8s.amazonaws.com/v1alpha1".into(),
            kind: "ENIConfig",
            subresource: "",
            status_subresource: false,
            now: "2024-01-01T00:00:00Z".into(),
        };
        let cfg = |subnet: &str| {
            json!({"apiVersion": "crd.k8s.amazonaws.com/v1alpha1", "kind": "ENIConfig",
                "metadata": {"name": "a"}, "spec": {"subnet": subnet}})
        };
        let mut live = cfg("s1");
        live["metadata"]["annotations"] =
            json!({LAST_APPLIED: format!("{}\n", sorted_keys(&cfg("s1")))});
        let mf = track_update(&s, None, &live, "kubectl-client-side-apply");
        set_managed_fields(&mut live, mf);
        assert!(matches!(
            track_apply(&s, Some(&live), &cfg("s2"), "someone", false),
            Err(ApplyError::Conflicts(_))
        ));
        let took = track_apply(&s, Some(&live), &cfg("s2"), "kubectl", false).unwrap();
        assert_eq!(took["spec"]["subnet"], "s2");
        assert_eq!(
            took["metadata"]["annotations"][LAST_APPLIED],
            format!("{}\n", sorted_keys(&cfg("s2")))
        );
        // Once the live value differs from the annotation, kubectl conflicts like anyone.
        let mut drifted = live.clone();
        drifted["spec"]["subnet"] = json!("s9");
        let mf = track_update(&s, Some(&live), &drifted, "kubectl-edit");
        set_managed_fields(&mut drifted, mf);
        assert!(matches!(
            track_apply(&s, Some(&drifted), &cfg("s2"), "kubectl", false),
            Err(ApplyError::Conflicts(_))
        ));
    }
}
