//! Field ownership (`metadata.managedFields`) and server-side apply conflicts, for what the
//! EKS `vpc-cni` add-on (manager `eks`, apply) and eksnet (strategic merge patch) both do to
//! the seeded `aws-node` DaemonSet.

mod common;

use common::{env_of, request, rv, start, Fake, Resp, DS};
use serde_json::{json, Value};

const SMP: &str = "application/strategic-merge-patch+json";
const MERGE: &str = "application/merge-patch+json";
const APPLY: &str = "application/apply-patch+yaml";
const CUSTOM: &str = "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG";

/// The add-on's apply of `env` to the aws-node container, as the fault proxy sends it.
fn addon_config(env: &[Value]) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "aws-node", "namespace": "kube-system"},
        "spec": {"template": {"spec": {"containers": [{"name": "aws-node", "env": env}]}}}})
}

/// The aws-node container's env entries as the seed has them.
fn seed_env(f: &Fake) -> Vec<Value> {
    f.get(DS).body["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env")
        .clone()
}

fn with_var(mut env: Vec<Value>, name: &str, value: &str) -> Vec<Value> {
    env.retain(|e| e["name"] != name);
    env.push(json!({"name": name, "value": value}));
    env
}

fn apply(f: &Fake, manager: &str, force: bool, config: &Value) -> Resp {
    let force = if force { "&force=true" } else { "" };
    f.patch(
        &format!("{DS}?fieldManager={manager}{force}"),
        APPLY,
        config,
    )
}

/// eksnet's patch: env entries by name, with the annotation it keeps its record in.
fn eksnet_patch(f: &Fake, env: &[(&str, &str)]) -> Resp {
    let env: Vec<Value> = env
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    let patch = json!({"metadata": {"annotations": {"eksnet.io/previous-env": "{}"}},
        "spec": {"template": {"spec": {"containers": [{"name": "aws-node", "env": env}]}}}});
    f.patch(&format!("{DS}?fieldManager=eksnet"), SMP, &patch)
}

/// The managedFields entry of `manager` (with `operation`), or Null.
fn entry(obj: &Value, manager: &str, operation: &str) -> Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .and_then(|mf| {
            mf.iter()
                .find(|e| e["manager"] == manager && e["operation"] == operation)
        })
        .cloned()
        .unwrap_or(Value::Null)
}

/// The fieldsV1 of an env entry of the aws-node container in a managedFields entry.
fn env_fields(e: &Value, name: &str) -> Value {
    e["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"aws-node\"}"]
        ["f:env"][format!("k:{{\"name\":\"{name}\"}}")]
    .clone()
}

fn value_of(ds: &Value, name: &str) -> Option<String> {
    env_of(ds)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

#[test]
fn seed_gives_the_aws_node_env_to_the_eks_addon() {
    let f = start();
    let ds = f.get(DS).body;
    let mf = ds["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields");
    let created = &ds["metadata"]["creationTimestamp"];
    assert_eq!(mf.len(), 2, "{mf:?}");
    assert_eq!(
        (&mf[0]["manager"], &mf[0]["operation"], &mf[0]["apiVersion"]),
        (&json!("eks"), &json!("Apply"), &json!("apps/v1"))
    );
    assert_eq!(
        &mf[0]["time"], created,
        "a seed entry without time gets the creation time"
    );
    assert_eq!(
        env_fields(&mf[0], "WARM_ENI_TARGET"),
        json!({".": {}, "f:name": {}, "f:value": {}})
    );
    assert_eq!(
        env_fields(&mf[0], "MY_NODE_NAME"),
        json!({".": {}, "f:name": {}, "f:valueFrom": {"f:fieldRef": {}}})
    );
    assert_eq!(mf[1]["manager"], "kube-controller-manager");
    assert_eq!(mf[1]["subresource"], "status");
    assert_eq!(mf[1]["fieldsV1"]["f:status"]["f:numberReady"], json!({}));
    // Re-applying what the add-on owns is a no-op: nothing changes, not even the time.
    let again = apply(&f, "eks", false, &addon_config(&seed_env(&f)));
    assert_eq!(again.code, 200, "{}", again.body);
    assert_eq!(again.body, ds);
}

#[test]
fn apply_creates_ownership() {
    let f = start();
    let path = "/api/v1/namespaces/kube-system/configmaps/cfg";
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "labels": {"x": "1"}}, "data": {"a": "b"}});
    let created = f.patch(&format!("{path}?fieldManager=tester"), APPLY, &cm);
    assert_eq!(created.code, 201, "{}", created.body);
    let time = created.body["metadata"]["managedFields"][0]["time"].clone();
    assert!(time.as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(
        created.body["metadata"]["managedFields"],
        json!([{"manager": "tester", "operation": "Apply", "apiVersion": "v1", "time": time,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {"f:x": {}}}}}])
    );
    assert_eq!(f.get(path).body, created.body, "GET returns them");
    // A create by POST is an Update by its manager; maps it creates are owned (`.`).
    let post = f.post(
        "/api/v1/namespaces/kube-system/configmaps?fieldManager=creator",
        &json!({"metadata": {"name": "other", "labels": {"y": "2"}}, "data": {"c": "d"}}),
    );
    assert_eq!(
        post.body["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:data": {".": {}, "f:c": {}}, "f:metadata": {"f:labels": {".": {}, "f:y": {}}}})
    );
    assert_eq!(
        post.body["metadata"]["managedFields"][0]["operation"],
        "Update"
    );
    assert_eq!(
        post.body["metadata"]["managedFields"][0]["manager"],
        "creator"
    );
}

#[test]
fn an_update_by_another_manager_takes_over_the_fields_it_changes() {
    let f = start();
    f.seed_cluster();
    let r = eksnet_patch(&f, &[("WARM_ENI_TARGET", "2"), (CUSTOM, "true")]);
    assert_eq!(r.code, 200, "{}", r.body);
    let eksnet = entry(&r.body, "eksnet", "Update");
    assert_eq!(eksnet["apiVersion"], "apps/v1");
    assert_eq!(
        eksnet["fieldsV1"],
        json!({"f:metadata": {"f:annotations": {"f:eksnet.io/previous-env": {}}},
            "f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"aws-node\"}": {"f:env": {
                format!("k:{{\"name\":\"{CUSTOM}\"}}"): {".": {}, "f:name": {}, "f:value": {}},
                "k:{\"name\":\"WARM_ENI_TARGET\"}": {"f:value": {}}}}}}}}})
    );
    // The add-on keeps the entry and its name, and loses only the changed value.
    let eks = entry(&r.body, "eks", "Apply");
    assert_eq!(
        env_fields(&eks, "WARM_ENI_TARGET"),
        json!({".": {}, "f:name": {}})
    );
    // Without fieldManager the manager is the User-Agent's product, else `unknown`.
    let node = "/api/v1/nodes/ip-192-168-0-70.us-west-2.compute.internal";
    f.patch(
        &format!("{DS}?fieldManager=eksnet"),
        MERGE,
        &json!({"metadata": {"labels": {"a": "1"}}}),
    );
    let ua = request(
        f.addr,
        "PATCH",
        DS,
        &[("Content-Type", MERGE), ("User-Agent", "kube-rs/0.99.0")],
        r#"{"metadata":{"labels":{"b":"2"}}}"#,
    );
    assert_eq!(
        entry(&ua.body, "kube-rs", "Update")["fieldsV1"],
        json!({"f:metadata": {"f:labels": {"f:b": {}}}})
    );
    let anon = f.patch(DS, MERGE, &json!({"metadata": {"labels": {"c": "3"}}}));
    assert!(entry(&anon.body, "unknown", "Update").is_object());
    // Updates to an object that has no managedFields (the seeded nodes) are not tracked,
    // as on the real server.
    let n = f.patch(node, MERGE, &json!({"metadata": {"labels": {"a": "1"}}}));
    assert!(n.body["metadata"].get("managedFields").is_none());
}

#[test]
fn a_non_forced_apply_conflicts_and_changes_nothing() {
    let f = start();
    eksnet_patch(&f, &[(CUSTOM, "true")]);
    let before = f.get(DS).body;
    let config = addon_config(&with_var(seed_env(&f), CUSTOM, "false"));
    let r = apply(&f, "eks", false, &config);
    let field =
        format!(".spec.template.spec.containers[name=\"aws-node\"].env[name=\"{CUSTOM}\"].value");
    assert_eq!(
        (r.code, r.body.clone()),
        (
            409,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("Apply failed with 1 conflict: conflict with \"eksnet\" using apps/v1: {field}"),
            "reason": "Conflict",
            "details": {"causes": [{"reason": "FieldManagerConflict",
                "message": "conflict with \"eksnet\" using apps/v1", "field": field}]},
            "code": 409})
        )
    );
    assert_eq!(f.get(DS).body, before, "a conflict changes nothing");
    // Dry runs conflict the same way.
    let dry = f.patch(&format!("{DS}?fieldManager=eks&dryRun=All"), APPLY, &config);
    assert_eq!(dry.code, 409);
    // Several conflicts, listed per manager.
    eksnet_patch(&f, &[("WARM_ENI_TARGET", "5")]);
    let config = addon_config(&with_var(seed_env(&f), CUSTOM, "false"));
    let config = addon_config(&with_var(
        config["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .clone(),
        "WARM_ENI_TARGET",
        "1",
    ));
    let two = apply(&f, "eks", false, &config);
    assert_eq!(
        two.body["message"],
        format!("Apply failed with 2 conflicts: conflicts with \"eksnet\" using apps/v1:\n- {field}\n- .spec.template.spec.containers[name=\"aws-node\"].env[name=\"WARM_ENI_TARGET\"].value")
    );
    assert_eq!(two.body["details"]["causes"].as_array().unwrap().len(), 2);
}

#[test]
fn a_forced_apply_takes_over_and_resets_the_value() {
    let f = start();
    eksnet_patch(&f, &[(CUSTOM, "true")]);
    let patched = f.get(DS).body;
    let config = addon_config(&with_var(seed_env(&f), CUSTOM, "false"));
    let r = apply(&f, "eks", true, &config);
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(value_of(&r.body, CUSTOM).as_deref(), Some("false"));
    assert!(rv(&r.body) > rv(&patched));
    assert_eq!(r.body["metadata"]["generation"], 3);
    let eks = entry(&r.body, "eks", "Apply");
    assert_eq!(
        env_fields(&eks, CUSTOM),
        json!({".": {}, "f:name": {}, "f:value": {}})
    );
    assert_ne!(eks["time"], Value::Null);
    // eksnet keeps what it still shares (the entry and its name) and its annotation.
    let eksnet = entry(&r.body, "eksnet", "Update");
    assert_eq!(env_fields(&eksnet, CUSTOM), json!({".": {}, "f:name": {}}));
    assert_eq!(
        r.body["metadata"]["annotations"]["eksnet.io/previous-env"],
        "{}"
    );
    // Everything else is as the add-on left it.
    let mut expected = env_of(&patched);
    for (k, v) in &mut expected {
        if k == CUSTOM {
            *v = "false".into();
        }
    }
    assert_eq!(env_of(&r.body), expected);
}

#[test]
fn equal_values_are_owned_by_both_managers() {
    let f = start();
    eksnet_patch(&f, &[(CUSTOM, "true")]);
    let before = f.get(DS).body;
    let r = apply(
        &f,
        "eks",
        false,
        &addon_config(&with_var(seed_env(&f), CUSTOM, "true")),
    );
    assert_eq!(r.code, 200, "{}", r.body);
    // Only managedFields change (that is still a write, as on the real server); the add-on
    // changed nothing, so its entry keeps its time.
    assert_eq!(r.body["spec"], before["spec"]);
    assert_eq!(
        r.body["metadata"]["generation"],
        before["metadata"]["generation"]
    );
    assert_eq!(
        entry(&r.body, "eks", "Apply")["time"],
        entry(&before, "eks", "Apply")["time"]
    );
    let path = json!({".": {}, "f:name": {}, "f:value": {}});
    assert_eq!(env_fields(&entry(&r.body, "eks", "Apply"), CUSTOM), path);
    assert_eq!(
        env_fields(&entry(&r.body, "eksnet", "Update"), CUSTOM),
        path
    );
    // Now a change of that value by the add-on conflicts with eksnet, and one by eksnet
    // (an update) just takes it over.
    let r = apply(
        &f,
        "eks",
        false,
        &addon_config(&with_var(seed_env(&f), CUSTOM, "false")),
    );
    assert_eq!(r.code, 409);
    let p = eksnet_patch(&f, &[(CUSTOM, "maybe")]);
    assert_eq!(
        env_fields(&entry(&p.body, "eks", "Apply"), CUSTOM),
        json!({".": {}, "f:name": {}})
    );
}

#[test]
fn fields_dropped_from_an_applied_config_go_unless_someone_else_owns_them() {
    let f = start();
    eksnet_patch(&f, &[("EXTRA", "1")]);
    // The add-on applies EXTRA too (same value, so shared), then drops it and WARM_ENI_TARGET.
    let with_extra = with_var(seed_env(&f), "EXTRA", "1");
    assert_eq!(
        apply(&f, "eks", false, &addon_config(&with_extra)).code,
        200
    );
    let mut fewer = with_extra.clone();
    fewer.retain(|e| e["name"] != "EXTRA" && e["name"] != "WARM_ENI_TARGET");
    let r = apply(&f, "eks", false, &addon_config(&fewer));
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(
        value_of(&r.body, "WARM_ENI_TARGET"),
        None,
        "nobody else owned it"
    );
    assert_eq!(
        value_of(&r.body, "EXTRA").as_deref(),
        Some("1"),
        "eksnet still owns it"
    );
    let eks = entry(&r.body, "eks", "Apply");
    assert_eq!(env_fields(&eks, "WARM_ENI_TARGET"), Value::Null);
    assert_eq!(env_fields(&eks, "EXTRA"), Value::Null);
    // The rest of the DaemonSet is nobody's to prune.
    let c = &r.body["spec"]["template"]["spec"]["containers"][0];
    assert!(c["image"]
        .as_str()
        .is_some_and(|i| i.contains("amazon-k8s-cni")));
}

#[test]
fn managed_fields_are_the_servers() {
    let f = start();
    let mut config = addon_config(&seed_env(&f));
    config["metadata"]["managedFields"] = json!([]);
    let r = apply(&f, "eks", false, &config);
    assert_eq!(
        (r.code, r.body["message"].as_str()),
        (400, Some("metadata.managedFields must be nil"))
    );
    // A missing manager or a bad keyed list are refused as the real server does.
    let bad = addon_config(&[json!({"value": "x"})]);
    let r = apply(&f, "eks", false, &bad);
    assert_eq!(r.code, 500);
    assert_eq!(r.body["message"], "failed to create typed patch object (kube-system/aws-node; apps/v1, Kind=DaemonSet): .spec.template.spec.containers[name=\"aws-node\"].env: element 0: associative list with keys has an element that omits key field \"name\" (and doesn't have default value)");
    assert!(r.body.get("reason").is_none());
    // `[{}]` clears them; updates then track nothing, as for any object without them.
    let cleared = f.patch(DS, MERGE, &json!({"metadata": {"managedFields": [{}]}}));
    assert!(
        cleared.body["metadata"].get("managedFields").is_none(),
        "{}",
        cleared.body
    );
    let p = eksnet_patch(&f, &[("WARM_ENI_TARGET", "3")]);
    assert!(p.body["metadata"].get("managedFields").is_none());
    // The first apply hands the existing fields to `before-first-apply`, so changing one
    // conflicts with it.
    let r = apply(
        &f,
        "eks",
        false,
        &addon_config(&with_var(seed_env(&f), "WARM_ENI_TARGET", "1")),
    );
    assert_eq!(r.code, 409);
    assert_eq!(
        r.body["details"]["causes"][0]["message"],
        "conflict with \"before-first-apply\" using apps/v1"
    );
    let r = apply(
        &f,
        "eks",
        true,
        &addon_config(&with_var(seed_env(&f), "WARM_ENI_TARGET", "1")),
    );
    assert_eq!(value_of(&r.body, "WARM_ENI_TARGET").as_deref(), Some("1"));
    assert!(entry(&r.body, "before-first-apply", "Update").is_object());
    assert!(entry(&r.body, "eks", "Apply").is_object());
    // A PUT of the object as read keeps them; the Update is recorded on top.
    let mut edited = r.body.clone();
    edited["metadata"]["labels"]["edited"] = json!("yes");
    let put = request(
        f.addr,
        "PUT",
        DS,
        &[
            ("Content-Type", "application/json"),
            ("User-Agent", "kubectl/v1.32.4 (linux/amd64)"),
        ],
        &edited.to_string(),
    );
    assert_eq!(put.code, 200, "{}", put.body);
    assert_eq!(
        entry(&put.body, "kubectl", "Update")["fieldsV1"],
        json!({"f:metadata": {"f:labels": {"f:edited": {}}}})
    );
    assert!(entry(&put.body, "eks", "Apply").is_object());
}

#[test]
fn status_writes_are_owned_per_subresource() {
    let f = start();
    let r = f.patch(
        &format!("{DS}/status?fieldManager=tester"),
        MERGE,
        &json!({"status": {"numberReady": 1}}),
    );
    assert_eq!(r.code, 200, "{}", r.body);
    let mf = &r.body["metadata"]["managedFields"];
    let tester = mf
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "tester")
        .unwrap();
    assert_eq!(tester["subresource"], "status");
    assert_eq!(
        tester["fieldsV1"],
        json!({"f:status": {"f:numberReady": {}}})
    );
    let kcm = entry(&r.body, "kube-controller-manager", "Update");
    assert!(kcm["fieldsV1"]["f:status"].get("f:numberReady").is_none());
    // The main resource cannot own status, so an apply that sends some owns none.
    let mut config = addon_config(&seed_env(&f));
    config["status"] = json!({"numberReady": 7});
    let a = apply(&f, "eks", false, &config);
    assert_eq!(a.body["status"]["numberReady"], 1);
    assert!(entry(&a.body, "eks", "Apply")["fieldsV1"]
        .get("f:status")
        .is_none());
}
