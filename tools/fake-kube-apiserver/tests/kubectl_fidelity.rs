//! Runs the real kubectl against the fake to prove the fake is faithful enough for it.
//!
//! kubectl is required: these tests fail when it is missing, unless
//! `EKSNET_SKIP_KUBECTL_TESTS=1` is set. `$KUBECTL` may name the binary. `kubectl apply`
//! runs with `--validate=false` because the fake serves no OpenAPI documents.

mod common;

use common::{env_of, start, Fake, DS, ENI, NODE_A};
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;

struct Kubectl {
    bin: String,
    dir: PathBuf,
}

/// Finds kubectl, or returns `None` only when skipping was explicitly requested.
fn kubectl(fake: &Fake, test: &str) -> Option<Kubectl> {
    let bin = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let works = Command::new(&bin)
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !works {
        if std::env::var("EKSNET_SKIP_KUBECTL_TESTS").as_deref() == Ok("1") {
            eprintln!("SKIPPING {test}: `{bin}` not runnable and EKSNET_SKIP_KUBECTL_TESTS=1");
            return None;
        }
        panic!(
            "{test} needs kubectl, but `{bin} version --client` failed. Install kubectl \
             (Debian: `apt-get install kubernetes-client`, or the `kubectl` package shipped \
             with the Google Cloud CLI), point $KUBECTL at it, or set \
             EKSNET_SKIP_KUBECTL_TESTS=1 to skip these tests explicitly."
        );
    }
    let dir = std::env::temp_dir().join(format!("fake-kube-{test}-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("home")).expect("temp dir");
    let kubeconfig = fake_kube_apiserver::kubeconfig(&fake.url());
    std::fs::write(dir.join("kubeconfig"), kubeconfig).expect("kubeconfig");
    Some(Kubectl { bin, dir })
}

impl Kubectl {
    /// Runs kubectl with an isolated HOME (its discovery cache) and returns stdout+stderr.
    fn run(&self, args: &[&str]) -> String {
        let (ok, text) = self.try_run(args);
        assert!(ok, "kubectl {args:?} failed:\n{text}");
        text
    }

    /// Like `run`, for commands that may fail: whether kubectl succeeded, and its output.
    fn try_run(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(&self.bin)
            .arg("--kubeconfig")
            .arg(self.dir.join("kubeconfig"))
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", self.dir.join("home"))
            .output()
            .expect("run kubectl");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, text).expect("write manifest");
        p.to_string_lossy().into_owned()
    }
}

impl Drop for Kubectl {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn kubectl_get_nodes_and_eniconfigs() {
    let f = start();
    f.seed_cluster();
    let Some(k) = kubectl(&f, "kubectl_get_nodes_and_eniconfigs") else {
        return;
    };
    let table = k.run(&["get", "nodes"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains(NODE_A) && table.contains("ip-192-168-0-100.us-west-2.compute.internal")
    );
    let zone_a = k.run(&[
        "get",
        "nodes",
        "-l",
        "topology.kubernetes.io/zone=us-west-2a",
        "-o",
        "name",
    ]);
    assert_eq!(zone_a.trim(), format!("node/{NODE_A}"));
    assert!(k.run(&["get", "eniconfigs"]).contains("No resources found"));
    f.post(
        ENI,
        &json!({"apiVersion": "crd.k8s.amazonaws.com/v1alpha1", "kind": "ENIConfig",
        "metadata": {"name": "us-west-2a"}, "spec": {"subnet": "subnet-a"}}),
    );
    let listed = k.run(&[
        "get",
        "eniconfigs",
        "-o",
        "jsonpath={.items[*].spec.subnet}",
    ]);
    assert_eq!(listed, "subnet-a");
    let pods = k.run(&["get", "pods", "-A", "-l", "k8s-app=kube-dns", "-o", "name"]);
    assert_eq!(pods.trim(), "pod/coredns-aaaa\npod/coredns-bbbb");
}

#[test]
fn kubectl_set_env_preserves_image_and_other_env() {
    let f = start();
    let Some(k) = kubectl(&f, "kubectl_set_env_preserves_image_and_other_env") else {
        return;
    };
    let before = f.get(DS).body;
    let out = k.run(&[
        "set",
        "env",
        "daemonset/aws-node",
        "-n",
        "kube-system",
        "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true",
    ]);
    assert!(out.contains("daemonset.apps/aws-node env updated"), "{out}");
    let after = f.get(DS).body;
    let spec = |v: &serde_json::Value| v["spec"]["template"]["spec"].clone();
    assert_eq!(
        spec(&after)["containers"][0]["image"],
        spec(&before)["containers"][0]["image"]
    );
    // Without `-c`, recent kubectl (1.32) also sets the variable on init containers, older
    // ones (Debian's 1.20) leave them out of the patch; either way nothing else changes.
    let init = |v: &serde_json::Value| spec(v)["initContainers"][0].clone();
    assert_eq!(init(&after)["image"], init(&before)["image"]);
    let unchanged = init(&before)["env"].as_array().unwrap().clone();
    let mut with_var = unchanged.clone();
    with_var.push(json!({"name": "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "value": "true"}));
    assert!(
        init(&after)["env"] == json!(unchanged) || init(&after)["env"] == json!(with_var),
        "init container env: {}",
        init(&after)["env"]
    );
    assert_eq!(spec(&after)["volumes"], spec(&before)["volumes"]);
    let mut expected = env_of(&before);
    expected.push(("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG".into(), "true".into()));
    assert_eq!(env_of(&after), expected);
    let patch = f
        .requests()
        .into_iter()
        .find(|e| e["method"] == "PATCH")
        .expect("a PATCH");
    assert_eq!(
        patch["content_type"],
        "application/strategic-merge-patch+json"
    );
    // Removing a variable goes through the `$patch: delete` directive.
    k.run(&[
        "set",
        "env",
        "daemonset/aws-node",
        "-n",
        "kube-system",
        "WARM_ENI_TARGET-",
    ]);
    expected.retain(|(name, _)| name != "WARM_ENI_TARGET");
    assert_eq!(env_of(&f.get(DS).body), expected);
}

#[test]
fn kubectl_apply_eniconfig_create_then_update() {
    let f = start();
    let Some(k) = kubectl(&f, "kubectl_apply_eniconfig_create_then_update") else {
        return;
    };
    let manifest = |subnet: &str| {
        format!(
        "apiVersion: crd.k8s.amazonaws.com/v1alpha1\nkind: ENIConfig\nmetadata:\n  name: us-west-2a\n\
         spec:\n  securityGroups:\n  - sg-0123456789abcdef0\n  subnet: {subnet}\n")
    };
    let file = k.write("eni.yaml", &manifest("subnet-0aaa"));
    let created = k.run(&["apply", "--validate=false", "-f", &file]);
    assert!(
        created.contains("eniconfig.crd.k8s.amazonaws.com/us-west-2a created"),
        "{created}"
    );
    let file = k.write("eni.yaml", &manifest("subnet-0bbb"));
    let updated = k.run(&["apply", "--validate=false", "-f", &file]);
    assert!(updated.contains("us-west-2a configured"), "{updated}");
    let obj = f.get(&format!("{ENI}/us-west-2a")).body;
    assert_eq!(
        obj["spec"],
        json!({"securityGroups": ["sg-0123456789abcdef0"], "subnet": "subnet-0bbb"})
    );
    assert_eq!(obj["metadata"]["generation"], 2);
    assert!(k
        .run(&["apply", "--validate=false", "-f", &file])
        .contains("unchanged"));
    let writes: Vec<(String, String)> = f
        .requests()
        .iter()
        .filter(|e| e["method"] != "GET")
        .map(|e| {
            (
                e["method"].as_str().unwrap_or("").into(),
                e["content_type"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(
        writes,
        [
            ("POST".into(), "application/json".into()),
            ("PATCH".into(), "application/merge-patch+json".into())
        ]
    );
    // Server-side apply of the same object, then of a change.
    let file = k.write("eni.yaml", &manifest("subnet-0ccc"));
    let ssa = k.run(&["apply", "--server-side", "--validate=false", "-f", &file]);
    assert!(ssa.contains("serverside-applied"), "{ssa}");
    let obj = f.get(&format!("{ENI}/us-west-2a")).body;
    assert_eq!(obj["spec"]["subnet"], "subnet-0ccc");
    // Before applying, kubectl moves its client-side apply's fields to its server-side
    // manager by rewriting managedFields with a JSON patch (which the server honours), and
    // the annotation to `kubectl-last-applied`; the server keeps the annotation up to date.
    let log = f.requests();
    let migration = log
        .iter()
        .find(|e| e["content_type"] == "application/json-patch+json")
        .unwrap_or_else(|| panic!("no managedFields migration: {log:?}"));
    assert!(
        migration["body"].to_string().contains("managedFields"),
        "{migration}"
    );
    let mf = obj["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields");
    let by = |m: &str| mf.iter().find(|e| e["manager"] == m).cloned();
    let ssa = by("kubectl").unwrap_or_else(|| panic!("kubectl's entry: {obj}"));
    assert_eq!(ssa["operation"], "Apply");
    assert_eq!(
        ssa["fieldsV1"],
        json!({"f:spec": {"f:securityGroups": {}, "f:subnet": {}}})
    );
    assert!(by("kubectl-client-side-apply").is_none(), "{obj}");
    assert_eq!(
        by("kubectl-last-applied").map(|e| e["fieldsV1"].clone()),
        Some(json!({"f:metadata": {"f:annotations": {
            "f:kubectl.kubernetes.io/last-applied-configuration": {}}}}))
    );
    let last = obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .expect("annotation");
    assert!(last.contains("subnet-0ccc"), "{last}");
}

#[test]
fn kubectl_server_side_apply_conflicts_then_forces() {
    let f = start();
    let Some(k) = kubectl(&f, "kubectl_server_side_apply_conflicts_then_forces") else {
        return;
    };
    k.run(&[
        "set",
        "env",
        "daemonset/aws-node",
        "-n",
        "kube-system",
        "-c",
        "aws-node",
        "WARM_ENI_TARGET=3",
    ]);
    let file = k.write(
        "ds.yaml",
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: aws-node\n  namespace: kube-system\n\
         spec:\n  template:\n    spec:\n      containers:\n      - name: aws-node\n        env:\n\
         \x20       - name: WARM_ENI_TARGET\n          value: \"1\"\n",
    );
    let apply = ["apply", "--server-side", "--validate=false", "-f", &file];
    let (ok, out) = k.try_run(&apply);
    assert!(!ok, "{out}");
    assert!(
        out.contains("Apply failed with 1 conflict: conflict with \"kubectl-set\" using apps/v1: .spec.template.spec.containers[name=\"aws-node\"].env[name=\"WARM_ENI_TARGET\"].value"),
        "{out}"
    );
    let value = |f: &Fake| {
        env_of(&f.get(DS).body)
            .into_iter()
            .find(|(n, _)| n == "WARM_ENI_TARGET")
            .map(|(_, v)| v)
    };
    assert_eq!(value(&f).as_deref(), Some("3"));
    let forced = k.run(&[&apply[..], &["--force-conflicts"]].concat());
    assert!(forced.contains("serverside-applied"), "{forced}");
    assert_eq!(value(&f).as_deref(), Some("1"));
    let shown = k.run(&[
        "get",
        "daemonset/aws-node",
        "-n",
        "kube-system",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    // kubectl-set owned nothing but that value, so its entry is gone.
    assert_eq!(shown, "eks kubectl kube-controller-manager");
}

#[test]
fn kubectl_annotate_node() {
    let f = start();
    f.seed_cluster();
    let Some(k) = kubectl(&f, "kubectl_annotate_node") else {
        return;
    };
    let node = format!("node/{NODE_A}");
    let path = format!("/api/v1/nodes/{NODE_A}");
    let key = "k8s.amazonaws.com/eniConfig";
    k.run(&["annotate", &node, &format!("{key}=foo")]);
    let annotations = f.get(&path).body["metadata"]["annotations"].clone();
    assert_eq!(annotations[key], "foo");
    assert_eq!(
        annotations["alpha.kubernetes.io/provided-node-ip"],
        "192.168.0.70"
    );
    k.run(&[
        "annotate",
        "--overwrite",
        &node,
        &format!("{key}=us-west-2a"),
    ]);
    assert_eq!(
        f.get(&path).body["metadata"]["annotations"][key],
        "us-west-2a"
    );
    k.run(&["annotate", &node, &format!("{key}-")]);
    assert!(f.get(&path).body["metadata"]["annotations"]
        .get(key)
        .is_none());
    k.run(&["label", &node, "eksnet/custom=yes"]);
    assert_eq!(
        f.get(&path).body["metadata"]["labels"]["eksnet/custom"],
        "yes"
    );
}
