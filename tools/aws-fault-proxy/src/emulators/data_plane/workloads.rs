//! kube-controller-manager's Deployment and ReplicaSet controllers (kubernetes
//! `pkg/controller/deployment`, `pkg/controller/replicaset`; Kubernetes docs
//! "Deployments"), one sync of each per pass, over every namespace of the API server.
//!
//! - **Deployment.** Its ReplicaSet for the current pod template is `<deploy>-<hash>`, the
//!   hash being kube's own (`controller.ComputeHash`: FNV-32a of the template, its decimal
//!   digits through `rand.SafeEncodeString`), added as the `pod-template-hash` label to the
//!   ReplicaSet, its selector and its template; owned by the Deployment (`controller:
//!   true`), annotated `deployment.kubernetes.io/revision`. `RollingUpdate` (default
//!   `maxSurge` 25% rounded up, `maxUnavailable` 25% rounded down, both 0 → 1): the new
//!   ReplicaSet grows while all ReplicaSets together stay under `replicas + maxSurge`; the
//!   old ones shrink, first by their unavailable pods, then while the available pods stay at
//!   least `replicas − maxUnavailable` (`rolling.go`). `Recreate`: old to 0, the new one
//!   grows once the old ones are at 0 (their pods go at once here: the fake API server
//!   deletes without a grace period). Status (`replicas`, `updatedReplicas`, `readyReplicas`,
//!   `availableReplicas`, `unavailableReplicas`, `observedGeneration`, the `Available` and
//!   `Progressing` conditions) through `/status`.
//! - **ReplicaSet.** `spec.replicas` active pods with its template's labels and spec,
//!   named `<rs>-<5 random characters>`, owned by it (`controller: true`); left for the
//!   scheduler. Too many: the extras go, unscheduled before scheduled, Pending before
//!   Running, not Ready before Ready, newest first (`controller.ActivePods`). A pod deleted
//!   or evicted is replaced at the next pass. Status (`replicas`, `fullyLabeledReplicas`,
//!   `readyReplicas`, `availableReplicas`, `observedGeneration`) through `/status`.
//! - **Garbage collector** (cascading delete): a ReplicaSet whose controlling Deployment is
//!   gone, and a pod whose controlling ReplicaSet is gone, are deleted.
//!
//! Simplified: `minReadySeconds` is 0 (available = Ready), no `paused`, no
//! `progressDeadlineSeconds`, old ReplicaSets at 0 are kept (no `revisionHistoryLimit`
//! clean-up), no rollback, no hash-collision counter.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::shared::form_encode;

use super::kube::Kube;
use super::objects::{controller_uid, name_of, node_name_of, now_rfc3339, pod_path};

const DEPLOYMENTS: &str = "/apis/apps/v1/deployments";
const REPLICASETS: &str = "/apis/apps/v1/replicasets";
const HASH_LABEL: &str = "pod-template-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";
/// Kubernetes' alphabet for generated names (`k8s.io/apimachinery/pkg/util/rand`).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn str_at<'v>(v: &'v Value, pointer: &str) -> &'v str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn namespace(v: &Value) -> String {
    match str_at(v, "/metadata/namespace") {
        "" => "default".to_string(),
        ns => ns.to_string(),
    }
}

fn uid(v: &Value) -> String {
    str_at(v, "/metadata/uid").to_string()
}

/// `spec.replicas`, 1 when absent (the API server's default).
fn spec_replicas(v: &Value) -> usize {
    v.pointer("/spec/replicas")
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(1)
}

fn rs_path(ns: &str, name: &str) -> String {
    format!(
        "/apis/apps/v1/namespaces/{}/replicasets/{}",
        form_encode(ns),
        form_encode(name)
    )
}

fn deployment_path(ns: &str, name: &str) -> String {
    format!(
        "/apis/apps/v1/namespaces/{}/deployments/{}",
        form_encode(ns),
        form_encode(name)
    )
}

/// A pod that counts for its controller: not being deleted, not finished.
fn active(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp").is_none()
        && !matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed")
}

fn ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// The pod-template hash (`controller.ComputeHash` without a collision count): FNV-32a of
/// the template, its decimal digits mapped onto the name alphabet (at most 10 characters).
pub fn template_hash(template: &Value) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in canonical(template).bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h.to_string()
        .bytes()
        .map(|b| char::from(ALPHABET[usize::from(b) % ALPHABET.len()]))
        .collect()
}

/// JSON with object keys sorted, so that the hash does not depend on key order.
pub(super) fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::from(k.as_str()), canonical(&m[k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(canonical).collect();
            format!("[{}]", parts.join(","))
        }
        other => other.to_string(),
    }
}

/// Five random characters of the name alphabet (`generateName`).
fn random_suffix() -> String {
    (0..5)
        .map(|_| char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]))
        .collect()
}

/// An int-or-percent field of `total` (`intstr.GetScaledValueFromIntOrPercent`).
fn scaled(v: Option<&Value>, default: &str, total: usize, round_up: bool) -> usize {
    let owned;
    let v = match v {
        Some(v) if !v.is_null() => v,
        _ => {
            owned = json!(default);
            &owned
        }
    };
    if let Some(n) = v.as_u64() {
        return usize::try_from(n).unwrap_or(usize::MAX);
    }
    let pct = v
        .as_str()
        .and_then(|s| s.strip_suffix('%'))
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(0);
    let x = total * pct;
    if round_up {
        x.div_ceil(100)
    } else {
        x / 100
    }
}

/// (maxSurge, maxUnavailable) of a RollingUpdate Deployment (`deploymentutil.ResolveFenceposts`).
fn fenceposts(d: &Value, replicas: usize) -> (usize, usize) {
    let ru = d.pointer("/spec/strategy/rollingUpdate");
    let surge = scaled(ru.and_then(|r| r.get("maxSurge")), "25%", replicas, true);
    let unavailable = scaled(
        ru.and_then(|r| r.get("maxUnavailable")),
        "25%",
        replicas,
        false,
    );
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// Pods of a controller (by uid), active ones.
fn pods_of<'p>(pods: &'p [Value], owner: &str) -> Vec<&'p Value> {
    pods.iter()
        .filter(|p| active(p) && controller_uid(p).as_deref() == Some(owner))
        .collect()
}

fn with_label(labels: Option<&Value>, hash: &str) -> Value {
    let mut m = labels
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_else(Map::new);
    m.insert(HASH_LABEL.to_string(), json!(hash));
    Value::Object(m)
}

/// The ReplicaSet a Deployment wants for its current template.
fn new_replicaset(d: &Value, hash: &str, replicas: usize, revision: u64) -> Value {
    let name = name_of(d);
    let mut template = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
    template["metadata"]["labels"] = with_label(template.pointer("/metadata/labels"), hash);
    let mut selector = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
    selector["matchLabels"] = with_label(selector.get("matchLabels"), hash);
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {
            "name": format!("{name}-{hash}"),
            "namespace": namespace(d),
            "labels": with_label(template.pointer("/metadata/labels"), hash),
            "annotations": {REVISION: revision.to_string(),
                "deployment.kubernetes.io/desired-replicas": spec_replicas(d).to_string()},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                "uid": uid(d), "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": {"replicas": replicas, "selector": selector, "template": template},
    })
}

fn revision_of(rs: &Value) -> u64 {
    rs.pointer(&format!(
        "/metadata/annotations/{}",
        REVISION.replace('/', "~1")
    ))
    .and_then(Value::as_str)
    .and_then(|r| r.parse().ok())
    .unwrap_or(0)
}

/// The Deployment and ReplicaSet controllers and their garbage collection, over `pods`
/// (kept up to date with what they create and delete).
pub(super) async fn run(kube: &Kube<'_>, pods: &mut Vec<Value>) -> Result<(), String> {
    let deployments = kube.list(DEPLOYMENTS).await?;
    let mut replicasets = kube.list(REPLICASETS).await?;
    // Garbage collection of ReplicaSets whose Deployment is gone.
    let deployment_uids: BTreeSet<String> = deployments.iter().map(uid).collect();
    let mut kept = Vec::new();
    for rs in replicasets {
        if orphaned(&rs, "Deployment", &deployment_uids) {
            kube.delete(&rs_path(&namespace(&rs), &name_of(&rs)))
                .await?;
        } else {
            kept.push(rs);
        }
    }
    replicasets = kept;
    for d in &deployments {
        sync_deployment(kube, d, &mut replicasets, pods).await?;
    }
    // Garbage collection of pods whose ReplicaSet is gone.
    let rs_uids: BTreeSet<String> = replicasets.iter().map(uid).collect();
    let mut gone = Vec::new();
    for pod in pods.iter() {
        if orphaned(pod, "ReplicaSet", &rs_uids) {
            gone.push(pod_path(pod));
        }
    }
    for path in &gone {
        kube.delete(path).await?;
    }
    pods.retain(|p| !gone.contains(&pod_path(p)));
    for rs in &replicasets {
        sync_replicaset(kube, rs, pods).await?;
    }
    for d in &deployments {
        deployment_status(kube, d, &replicasets, pods).await?;
    }
    Ok(())
}

/// One sync of a Deployment: its new ReplicaSet made, ReplicaSets scaled
/// (`replicasets` updated with what it writes).
async fn sync_deployment(
    kube: &Kube<'_>,
    d: &Value,
    replicasets: &mut Vec<Value>,
    pods: &[Value],
) -> Result<(), String> {
    let duid = uid(d);
    if duid.is_empty() {
        return Ok(());
    }
    let ns = namespace(d);
    let replicas = spec_replicas(d);
    let hash = template_hash(&d.pointer("/spec/template").cloned().unwrap_or(json!({})));
    let owned = |rss: &[Value]| -> Vec<usize> {
        rss.iter()
            .enumerate()
            .filter(|(_, rs)| controller_uid(rs).as_deref() == Some(duid.as_str()))
            .map(|(i, _)| i)
            .collect()
    };
    let mine = owned(replicasets);
    let is_new = |rs: &Value| str_at(rs, &format!("/metadata/labels/{HASH_LABEL}")) == hash;
    let recreate = str_at(d, "/spec/strategy/type") == "Recreate";
    let old_total: usize = mine
        .iter()
        .filter(|&&i| !is_new(&replicasets[i]))
        .map(|&i| spec_replicas(&replicasets[i]))
        .sum();
    if !mine.iter().any(|&i| is_new(&replicasets[i])) {
        let revision = mine
            .iter()
            .map(|&i| revision_of(&replicasets[i]))
            .max()
            .unwrap_or(0)
            + 1;
        let start = if old_total == 0 {
            replicas
        } else if recreate {
            0
        } else {
            let (surge, _) = fenceposts(d, replicas);
            (replicas + surge).saturating_sub(old_total).min(replicas)
        };
        let rs = new_replicaset(d, &hash, start, revision);
        let path = format!("/apis/apps/v1/namespaces/{}/replicasets", form_encode(&ns));
        if kube.post(&path, &rs).await? != 201 {
            // Taken (a ReplicaSet of that name the Deployment does not own, or a create
            // that raced): the next pass sees it.
            return Ok(());
        }
        let Some(created) = kube.get(&rs_path(&ns, &name_of(&rs))).await? else {
            return Ok(());
        };
        if revision_of(d) != revision {
            kube.merge_patch(
                &deployment_path(&ns, &name_of(d)),
                &json!({"metadata": {"annotations": {REVISION: revision.to_string()}}}),
            )
            .await?;
        }
        replicasets.push(created);
        return Ok(());
    }
    let mine = owned(replicasets);
    let Some(new) = mine.iter().copied().find(|&i| is_new(&replicasets[i])) else {
        return Ok(());
    };
    let mut olds: Vec<usize> = mine.iter().copied().filter(|&i| i != new).collect();
    olds.sort_by(|&a, &b| {
        str_at(&replicasets[a], "/metadata/creationTimestamp")
            .cmp(str_at(&replicasets[b], "/metadata/creationTimestamp"))
    });
    let available = |rs: &Value| {
        pods_of(pods, &uid(rs))
            .into_iter()
            .filter(|p| ready(p))
            .count()
    };
    let mut scale: Vec<(usize, usize)> = Vec::new();
    let new_replicas = spec_replicas(&replicasets[new]);
    if old_total == 0 {
        if new_replicas != replicas {
            scale.push((new, replicas));
        }
    } else if recreate {
        for &i in &olds {
            if spec_replicas(&replicasets[i]) > 0 {
                scale.push((i, 0));
            }
        }
    } else {
        let (surge, unavailable) = fenceposts(d, replicas);
        let all = old_total + new_replicas;
        let max_total = replicas + surge;
        if new_replicas < replicas && all < max_total {
            // Scale up the new ReplicaSet (`NewRSNewReplicas`).
            let up = (max_total - all).min(replicas - new_replicas);
            scale.push((new, new_replicas + up));
        } else if new_replicas > replicas {
            scale.push((new, replicas));
        } else {
            // Scale down the old ones (`reconcileOldReplicaSets`).
            let min_available = replicas.saturating_sub(unavailable);
            let new_unavailable = new_replicas.saturating_sub(available(&replicasets[new]));
            let mut room = all
                .saturating_sub(min_available)
                .saturating_sub(new_unavailable);
            let mut sizes: Vec<(usize, usize)> = olds
                .iter()
                .map(|&i| (i, spec_replicas(&replicasets[i])))
                .collect();
            // First their pods that are not available.
            for (i, size) in sizes.iter_mut() {
                let unhealthy = size.saturating_sub(available(&replicasets[*i]));
                let cut = unhealthy.min(room);
                *size -= cut;
                room -= cut;
            }
            // Then while enough stay available.
            let available_all: usize = mine.iter().map(|&i| available(&replicasets[i])).sum();
            let mut budget = available_all.saturating_sub(min_available);
            for (_, size) in sizes.iter_mut() {
                let cut = (*size).min(budget);
                *size -= cut;
                budget -= cut;
            }
            for (i, size) in sizes {
                if size != spec_replicas(&replicasets[i]) {
                    scale.push((i, size));
                }
            }
        }
    }
    for (i, size) in scale {
        let rs = &mut replicasets[i];
        kube.merge_patch(
            &rs_path(&namespace(rs), &name_of(rs)),
            &json!({"metadata": {"annotations": {
                "deployment.kubernetes.io/desired-replicas": replicas.to_string()}},
                "spec": {"replicas": size}}),
        )
        .await?;
        rs["spec"]["replicas"] = json!(size);
    }
    Ok(())
}

/// Deletion order of a ReplicaSet's extra pods (`controller.ActivePods`): unscheduled,
/// then Pending before Running, not Ready before Ready, then the newest.
fn deletion_rank(pod: &Value) -> (bool, u8, bool, std::cmp::Reverse<String>) {
    let phase = match str_at(pod, "/status/phase") {
        "Pending" | "" => 0,
        "Unknown" => 1,
        _ => 2,
    };
    (
        node_name_of(pod).is_some(),
        phase,
        ready(pod),
        std::cmp::Reverse(format!(
            "{} {}",
            str_at(pod, "/metadata/creationTimestamp"),
            name_of(pod)
        )),
    )
}

/// One sync of a ReplicaSet: its pods made or deleted, its status written.
async fn sync_replicaset(kube: &Kube<'_>, rs: &Value, pods: &mut Vec<Value>) -> Result<(), String> {
    let rs_uid = uid(rs);
    if rs_uid.is_empty() {
        return Ok(());
    }
    let ns = namespace(rs);
    let name = name_of(rs);
    let want = spec_replicas(rs);
    let mut mine: Vec<Value> = pods_of(pods, &rs_uid).into_iter().cloned().collect();
    if mine.len() < want {
        let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let path = format!("/api/v1/namespaces/{}/pods", form_encode(&ns));
        for _ in mine.len()..want {
            let mut metadata = json!({
                "name": format!("{name}-{}", random_suffix()),
                "namespace": ns,
                "labels": template.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": name, "uid": rs_uid, "controller": true, "blockOwnerDeletion": true}],
            });
            if let Some(a) = template.pointer("/metadata/annotations") {
                metadata["annotations"] = a.clone();
            }
            let pod = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": metadata,
                "spec": template.get("spec").cloned().unwrap_or(json!({})),
                "status": {"phase": "Pending"},
            });
            // A name taken (409) is tried again next pass.
            if kube.post(&path, &pod).await? == 201 {
                let created = kube.get(&pod_path(&pod)).await?.unwrap_or(pod);
                mine.push(created.clone());
                pods.push(created);
            }
        }
    } else if mine.len() > want {
        mine.sort_by_key(deletion_rank);
        let extra: Vec<Value> = mine.drain(..mine.len() - want).collect();
        for pod in &extra {
            kube.delete(&pod_path(pod)).await?;
        }
        let paths: BTreeSet<String> = extra.iter().map(pod_path).collect();
        pods.retain(|p| !paths.contains(&pod_path(p)));
    }
    let ready_count = mine.iter().filter(|p| ready(p)).count();
    let status = json!({
        "replicas": mine.len(),
        "fullyLabeledReplicas": mine.len(),
        "readyReplicas": ready_count,
        "availableReplicas": ready_count,
        "observedGeneration": rs.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
    });
    write_status(kube, &rs_path(&ns, &name), rs, status, &[]).await
}

/// A Deployment's status from its ReplicaSets' pods.
async fn deployment_status(
    kube: &Kube<'_>,
    d: &Value,
    replicasets: &[Value],
    pods: &[Value],
) -> Result<(), String> {
    let duid = uid(d);
    if duid.is_empty() {
        return Ok(());
    }
    let hash = template_hash(&d.pointer("/spec/template").cloned().unwrap_or(json!({})));
    let replicas = spec_replicas(d);
    let (mut total, mut updated, mut ready_count) = (0, 0, 0);
    for rs in replicasets
        .iter()
        .filter(|rs| controller_uid(rs).as_deref() == Some(duid.as_str()))
    {
        let mine = pods_of(pods, &uid(rs));
        total += mine.len();
        ready_count += mine.iter().filter(|p| ready(p)).count();
        if str_at(rs, &format!("/metadata/labels/{HASH_LABEL}")) == hash {
            updated += mine.len();
        }
    }
    let (_, max_unavailable) = if str_at(d, "/spec/strategy/type") == "Recreate" {
        (0, 0)
    } else {
        fenceposts(d, replicas)
    };
    let is_available = ready_count >= replicas.saturating_sub(max_unavailable);
    let complete = updated == replicas && total == replicas && ready_count == replicas;
    let rs_name = format!("{}-{hash}", name_of(d));
    let conditions = [
        if is_available {
            (
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".to_string(),
            )
        } else {
            (
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".to_string(),
            )
        },
        if complete {
            (
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
            )
        } else {
            (
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{rs_name}\" is progressing."),
            )
        },
    ];
    let status = json!({
        "replicas": total,
        "updatedReplicas": updated,
        "readyReplicas": ready_count,
        "availableReplicas": ready_count,
        "unavailableReplicas": replicas.saturating_sub(ready_count),
        "observedGeneration": d.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
    });
    let path = deployment_path(&namespace(d), &name_of(d));
    write_status(kube, &path, d, status, &conditions).await
}

/// Writes `status` (and conditions `(type, status, reason, message)`) through `/status`
/// unless the object already shows them.
async fn write_status(
    kube: &Kube<'_>,
    path: &str,
    object: &Value,
    mut status: Value,
    conditions: &[(&str, &str, &str, String)],
) -> Result<(), String> {
    let current = object.get("status").cloned().unwrap_or(json!({}));
    let replicaset = path.contains("/replicasets/");
    // Counters are `omitempty` in the API types (a ReplicaSet's `replicas` excepted): a
    // zero is left out, and cleared (null in a merge patch) if it was there.
    let zero = json!(0);
    let omitted = |k: &str, v: &Value| *v == zero && !(k == "replicas" && replicaset);
    let counters_same = status.as_object().is_some_and(|m| {
        m.iter().all(|(k, v)| match current.get(k) {
            Some(c) => c == v,
            None => omitted(k, v),
        })
    });
    if let Some(m) = status.as_object_mut() {
        for (k, v) in m.iter_mut() {
            if omitted(k, v) {
                *v = Value::Null;
            }
        }
    }
    let old_conditions = current["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let find = |t: &str| old_conditions.iter().find(|c| c["type"] == t);
    let conditions_same = conditions
        .iter()
        .all(|(t, s, r, _)| find(t).is_some_and(|c| c["status"] == *s && c["reason"] == *r));
    if counters_same && conditions_same {
        return Ok(());
    }
    if !conditions.is_empty() {
        let now = now_rfc3339();
        let list: Vec<Value> = conditions
            .iter()
            .map(|(t, s, r, m)| {
                let since = find(t)
                    .filter(|c| c["status"] == *s)
                    .and_then(|c| c.get("lastTransitionTime").cloned())
                    .unwrap_or(json!(now));
                json!({"type": t, "status": s, "reason": r, "message": m,
                    "lastUpdateTime": now, "lastTransitionTime": since})
            })
            .collect();
        status["conditions"] = Value::Array(list);
    }
    kube.merge_patch(&format!("{path}/status"), &json!({"status": status}))
        .await
}

/// Whether an object's controller (`ownerReferences` with `controller: true`) is of `kind`
/// and no longer among the `live` uids: the garbage collector deletes such dependents
/// (Kubernetes docs, "Garbage Collection", owners and dependents).
fn orphaned(obj: &Value, kind: &str, live: &BTreeSet<String>) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|o| {
            o["controller"] == true
                && o["kind"] == kind
                && !live.contains(o["uid"].as_str().unwrap_or_default())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_fenceposts_and_ranks() {
        let t = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}});
        let h = template_hash(&t);
        assert!(!h.is_empty() && h.len() <= 10, "{h}");
        assert!(h.bytes().all(|b| ALPHABET.contains(&b)));
        assert_eq!(h, template_hash(&t.clone()));
        let reordered: Value = serde_json::from_str(
            r#"{"spec": {"containers": []}, "metadata": {"labels": {"a": "b"}}}"#,
        )
        .unwrap_or_default();
        assert_eq!(h, template_hash(&reordered));
        assert_ne!(
            h,
            template_hash(&json!({"metadata": {"labels": {"a": "c"}}}))
        );
        let d = |ru: Value| json!({"spec": {"strategy": {"rollingUpdate": ru}}});
        assert_eq!(fenceposts(&d(json!({})), 2), (1, 0));
        assert_eq!(fenceposts(&d(json!({})), 10), (3, 2));
        assert_eq!(
            fenceposts(&d(json!({"maxUnavailable": 1, "maxSurge": "25%"})), 2),
            (1, 1)
        );
        assert_eq!(
            fenceposts(&d(json!({"maxUnavailable": 0, "maxSurge": 0})), 2),
            (0, 1)
        );
        let pending = json!({"metadata": {"name": "a"}, "status": {"phase": "Pending"}});
        let running = json!({"metadata": {"name": "b"}, "spec": {"nodeName": "n"},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
        assert!(deletion_rank(&pending) < deletion_rank(&running));
        assert_eq!(random_suffix().len(), 5);
    }
}
