//! Deployments, ReplicaSets, PodDisruptionBudgets and the Eviction API, over real HTTP.

mod common;

use common::{names, request, rv, start, Fake};
use serde_json::{json, Value};

const MERGE: &str = "application/merge-patch+json";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/kube-system/deployments";
const RSS: &str = "/apis/apps/v1/namespaces/default/replicasets";
const PDBS: &str = "/apis/policy/v1/namespaces/default/poddisruptionbudgets";
const PODS: &str = "/api/v1/namespaces/default/pods";

fn entry<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {list}"))
}

#[test]
fn discovery_lists_the_workload_kinds_and_pods_eviction() {
    let f = start();
    let apps = f.get("/apis/apps/v1").body;
    let d = entry(&apps, "deployments");
    assert_eq!(
        (
            &d["kind"],
            &d["namespaced"],
            &d["shortNames"],
            &d["categories"]
        ),
        (
            &json!("Deployment"),
            &json!(true),
            &json!(["deploy"]),
            &json!(["all"])
        )
    );
    assert_eq!(
        entry(&apps, "deployments/status")["verbs"],
        json!(["get", "patch", "update"])
    );
    assert_eq!(entry(&apps, "replicasets")["shortNames"], json!(["rs"]));
    assert_eq!(entry(&apps, "replicasets/status")["kind"], "ReplicaSet");
    let policy = f.get("/apis/policy/v1").body;
    assert_eq!(policy["groupVersion"], "policy/v1");
    let pdb = entry(&policy, "poddisruptionbudgets");
    assert_eq!(
        (&pdb["kind"], &pdb["shortNames"]),
        (&json!("PodDisruptionBudget"), &json!(["pdb"]))
    );
    assert!(pdb.get("categories").is_none());
    entry(&policy, "poddisruptionbudgets/status");
    assert_eq!(
        f.get("/apis/policy").body["preferredVersion"]["version"],
        "v1"
    );
    let core = f.get("/api/v1").body;
    assert_eq!(
        entry(&core, "pods/eviction"),
        &json!({"name": "pods/eviction", "singularName": "", "namespaced": true,
            "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"]})
    );
    let ev = entry(&core, "events");
    assert_eq!(
        (&ev["kind"], &ev["shortNames"]),
        (&json!("Event"), &json!(["ev"]))
    );
    assert!(core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["name"] != "events/status"));
}

#[test]
fn fresh_cluster_seed_has_no_nodes_or_pods() {
    let f = start();
    assert!(names(&f.get("/api/v1/nodes").body).is_empty());
    assert!(names(&f.get("/api/v1/pods").body).is_empty());
    let coredns = f.get(&format!("{DEPLOYS}/coredns")).body;
    assert_eq!(coredns["spec"]["replicas"], 2);
    assert_eq!(
        coredns["spec"]["template"]["metadata"]["labels"]["k8s-app"],
        "kube-dns"
    );
    assert!(coredns["spec"]["template"]["spec"]
        .get("hostNetwork")
        .is_none());
    let pdb = f
        .get("/apis/policy/v1/namespaces/kube-system/poddisruptionbudgets/coredns")
        .body;
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"]["k8s-app"],
        "kube-dns"
    );
    for ds in ["aws-node", "kube-proxy"] {
        let ds = f
            .get(&format!(
                "/apis/apps/v1/namespaces/kube-system/daemonsets/{ds}"
            ))
            .body;
        assert_eq!(ds["spec"]["template"]["spec"]["hostNetwork"], true);
        assert_eq!(ds["status"]["desiredNumberScheduled"], 0);
        assert_eq!(ds["status"]["numberReady"], 0);
    }
}

fn deployment(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
}

#[test]
fn deployment_replicaset_and_pdb_crud() {
    let f = start();
    let created = f.post(DEPLOYS, &deployment("web"));
    assert_eq!(created.code, 201, "{}", created.body);
    assert_eq!(created.body["metadata"]["generation"], 1);
    assert_eq!(created.body["status"], json!({}));
    let path = format!("{DEPLOYS}/web");
    let scaled = f.patch(&path, MERGE, &json!({"spec": {"replicas": 3}}));
    assert_eq!(scaled.body["metadata"]["generation"], 2);
    // Status goes through /status only.
    let ignored = f.patch(&path, MERGE, &json!({"status": {"replicas": 3}}));
    assert_eq!(ignored.body["status"], json!({}));
    let st = f.patch(
        &format!("{path}/status"),
        MERGE,
        &json!({"status": {"replicas": 3, "readyReplicas": 3}}),
    );
    assert_eq!(st.code, 200, "{}", st.body);
    assert_eq!(st.body["status"]["readyReplicas"], 3);
    assert_eq!(st.body["metadata"]["generation"], 2);
    assert_eq!(
        names(&f.get("/apis/apps/v1/deployments").body),
        ["coredns", "web"]
    );
    assert_eq!(f.post(DEPLOYS, &deployment("web")).code, 409);
    let gone = f.delete(&path).body;
    assert_eq!(
        (
            &gone["status"],
            &gone["details"]["kind"],
            &gone["details"]["group"]
        ),
        (&json!("Success"), &json!("deployments"), &json!("apps"))
    );
    assert_eq!(
        f.get(&path).body["message"],
        "deployments.apps \"web\" not found"
    );

    let mut rs = deployment("web-5d9c8");
    rs["kind"] = json!("ReplicaSet");
    let rs = f.post(RSS, &rs);
    assert_eq!(rs.code, 201, "{}", rs.body);
    assert_eq!(rs.body["status"], json!({"replicas": 0}));
    let by_replicas = f
        .get(&format!("{RSS}?fieldSelector=status.replicas%3D0"))
        .body;
    assert_eq!(names(&by_replicas), ["web-5d9c8"]);

    let pdb = f.post(PDBS, &pdb_obj("web", json!({"minAvailable": "50%"})));
    assert_eq!(pdb.code, 201, "{}", pdb.body);
    assert_eq!(
        pdb.body["status"],
        json!({"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0})
    );
    let again = f.patch(
        &format!("{PDBS}/web"),
        MERGE,
        &json!({"spec": {"minAvailable": 1}}),
    );
    assert_eq!(again.body["metadata"]["generation"], 2);
    let wrong = f.post(
        PDBS,
        &json!({"apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "x"}}),
    );
    assert_eq!(wrong.code, 400);
    let events = "/api/v1/namespaces/default/events";
    let ev = f.post(
        events,
        &json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "web.1"}, "involvedObject": {"kind": "Pod", "name": "web-1"},
        "reason": "Evicted", "type": "Normal"}),
    );
    assert_eq!(ev.code, 201, "{}", ev.body);
    let found = f.get(&format!(
        "{events}?fieldSelector=involvedObject.name%3Dweb-1,reason%3DEvicted"
    ));
    assert_eq!(names(&found.body), ["web.1"]);
}

fn pdb_obj(name: &str, spec: Value) -> Value {
    let mut spec = spec;
    spec["selector"] = json!({"matchLabels": {"app": "web"}});
    json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": name}, "spec": spec})
}

fn pod(name: &str, phase: &str, ready: bool) -> Value {
    let ready = if ready { "True" } else { "False" };
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": phase, "podIP": "10.0.0.1",
            "conditions": [{"type": "Ready", "status": ready}]}})
}

/// Three Running web pods, two of them Ready.
fn web_pods(f: &Fake) {
    let seed = json!({"objects": [pod("web-1", "Running", true), pod("web-2", "Running", true),
        pod("web-3", "Running", false)]});
    assert_eq!(f.post("/__fake/seed", &seed).code, 200);
}

fn evict(f: &Fake, name: &str, extra: Value) -> common::Resp {
    let mut body = json!({"apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": name, "namespace": "default"}});
    if let Value::Object(m) = extra {
        for (k, v) in m {
            body[k] = v;
        }
    }
    f.post(&format!("{PODS}/{name}/eviction"), &body)
}

#[test]
fn eviction_allowed_by_the_budget_deletes_the_pod() {
    let f = start();
    web_pods(&f);
    // minAvailable 1 with two healthy pods: one disruption allowed.
    assert_eq!(
        f.post(PDBS, &pdb_obj("web", json!({"minAvailable": 1})))
            .code,
        201
    );
    let before = rv(&f.get(PODS).body);
    let r = evict(&f, "web-1", json!({"deleteOptions": {}}));
    assert_eq!(
        (r.code, r.body.clone()),
        (
            201,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
        )
    );
    assert_eq!(f.get(&format!("{PODS}/web-1")).code, 404);
    assert_eq!(names(&f.get(PODS).body), ["web-2", "web-3"]);
    // The budget as the eviction left it, disruption taken.
    let pdb = f.get(&format!("{PDBS}/web")).body;
    let st = &pdb["status"];
    assert_eq!(
        (
            &st["disruptionsAllowed"],
            &st["currentHealthy"],
            &st["desiredHealthy"],
            &st["expectedPods"]
        ),
        (&json!(0), &json!(2), &json!(1), &json!(3))
    );
    assert!(st["disruptedPods"].get("web-1").is_some());
    assert_eq!(st["conditions"][0]["reason"], "InsufficientPods");
    // Watchers saw the pod marked as a disruption target, then deleted.
    let events: Vec<(String, Value)> = watch_events(&f, before);
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["MODIFIED", "DELETED"]);
    let conds = events[0].1["status"]["conditions"]
        .as_array()
        .unwrap()
        .clone();
    assert!(conds
        .iter()
        .any(|c| c["type"] == "DisruptionTarget" && c["reason"] == "EvictionByEvictionAPI"));
    // The second eviction finds the budget spent: web-2 and web-3 (unready) are left.
    let refused = evict(&f, "web-2", json!({}));
    assert_eq!(refused.code, 429);
    // No PDB: a pod goes at once; policy/v1beta1 is accepted too.
    f.delete(&format!("{PDBS}/web"));
    let r = f.post(
        &format!("{PODS}/web-2/eviction"),
        &json!({"apiVersion": "policy/v1beta1", "kind": "Eviction", "metadata": {"name": "web-2"}}),
    );
    assert_eq!(r.code, 201, "{}", r.body);
    assert_eq!(f.get(&format!("{PODS}/web-2")).code, 404);
}

/// Pod events in `default` after `from`, as (type, object).
fn watch_events(f: &Fake, from: u64) -> Vec<(String, Value)> {
    let r = request(
        f.addr,
        "GET",
        &format!("{PODS}?watch=1&resourceVersion={from}&timeoutSeconds=1"),
        &[],
        "",
    );
    let text = match r.body {
        Value::String(s) => s,
        other => other.to_string(),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["type"].as_str().unwrap().to_string(), v["object"].clone())
        })
        .collect()
}

#[test]
fn eviction_refused_by_the_budget_keeps_the_pod() {
    let f = start();
    web_pods(&f);
    // maxUnavailable 1 of 3 expected: two must stay healthy, and two are.
    assert_eq!(
        f.post(PDBS, &pdb_obj("web", json!({"maxUnavailable": 1})))
            .code,
        201
    );
    let before = f.get(&format!("{PODS}/web-1")).body;
    let r = evict(&f, "web-1", json!({}));
    assert_eq!(r.code, 429);
    assert_eq!(
        r.body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Cannot evict pod as it would violate the pod's disruption budget.",
            "reason": "TooManyRequests",
            "details": {"causes": [{"reason": "DisruptionBudget",
                "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}]},
            "code": 429})
    );
    assert_eq!(f.get(&format!("{PODS}/web-1")).body, before);
    // An unready pod may go while the budget is met (IfHealthyBudget) ...
    assert_eq!(evict(&f, "web-3", json!({})).code, 201);
    // ... and a Pending one whatever the budget says.
    let seed = json!({"objects": [pod("web-4", "Pending", false)]});
    f.post("/__fake/seed", &seed);
    assert_eq!(evict(&f, "web-4", json!({})).code, 201);
    // A pod the budget does not select is not guarded by it.
    let mut other = pod("db-1", "Running", true);
    other["metadata"]["labels"] = json!({"app": "db"});
    f.post("/__fake/seed", &json!({"objects": [other]}));
    assert_eq!(evict(&f, "db-1", json!({})).code, 201);
}

#[test]
fn eviction_of_a_missing_pod_is_404() {
    let f = start();
    let r = evict(&f, "nope", json!({}));
    assert_eq!(
        (r.code, r.body),
        (
            404,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "pods \"nope\" not found", "reason": "NotFound",
                "details": {"name": "nope", "kind": "pods"}, "code": 404})
        )
    );
    web_pods(&f);
    let mismatch = f.post(
        &format!("{PODS}/web-1/eviction"),
        &json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-2"}}),
    );
    assert_eq!(mismatch.code, 400);
    assert_eq!(f.get(&format!("{PODS}/web-1/eviction")).code, 405);
    let wrong = f.post(
        &format!("{PODS}/web-1/eviction"),
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1"}}),
    );
    assert_eq!(wrong.code, 400);
}

#[test]
fn dry_run_eviction_leaves_the_pod_and_the_budget() {
    let f = start();
    web_pods(&f);
    f.post(PDBS, &pdb_obj("web", json!({"minAvailable": 1})));
    let pdb_before = f.get(&format!("{PDBS}/web")).body;
    let r = evict(&f, "web-1", json!({"deleteOptions": {"dryRun": ["All"]}}));
    assert_eq!((r.code, &r.body["status"]), (201, &json!("Success")));
    let q = f.post(
        &format!("{PODS}/web-1/eviction?dryRun=All"),
        &json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-1"}}),
    );
    assert_eq!(q.code, 201);
    let pod = f.get(&format!("{PODS}/web-1")).body;
    assert!(pod["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["type"] != "DisruptionTarget"));
    assert_eq!(f.get(&format!("{PDBS}/web")).body, pdb_before);
    // A dry run is refused the same way a real eviction is.
    f.post(PDBS, &pdb_obj("strict", json!({"minAvailable": 2})));
    f.delete(&format!("{PDBS}/web"));
    let refused = evict(&f, "web-1", json!({"deleteOptions": {"dryRun": ["All"]}}));
    assert_eq!(refused.code, 429);
}

#[test]
fn a_pod_with_two_budgets_cannot_be_evicted() {
    let f = start();
    web_pods(&f);
    f.post(PDBS, &pdb_obj("a", json!({"minAvailable": 0})));
    f.post(PDBS, &pdb_obj("b", json!({"maxUnavailable": "100%"})));
    let r = evict(&f, "web-1", json!({}));
    assert_eq!(
        (r.code, r.body),
        (
            500,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                "code": 500})
        )
    );
    assert_eq!(f.get(&format!("{PODS}/web-1")).code, 200);
}

#[test]
fn evicting_through_the_seeded_coredns_budget() {
    let f = start();
    f.seed_cluster();
    // Two Ready coredns pods, maxUnavailable 1 of the Deployment's 2 replicas (found through
    // the pods' ReplicaSet): one may go, then the other must stay.
    let path = "/api/v1/namespaces/kube-system/pods";
    let body =
        |n: &str| json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": n}});
    assert_eq!(
        f.post(
            &format!("{path}/coredns-aaaa/eviction"),
            &body("coredns-aaaa")
        )
        .code,
        201
    );
    let r = f.post(
        &format!("{path}/coredns-bbbb/eviction"),
        &body("coredns-bbbb"),
    );
    assert_eq!(r.code, 429, "{}", r.body);
    assert_eq!(
        r.body["details"]["causes"][0]["message"],
        "The disruption budget coredns needs 1 healthy pods and has 1 currently"
    );
}
