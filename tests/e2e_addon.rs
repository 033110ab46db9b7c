//! End to end on the add-on path: the VPC CNI as the EKS managed add-on `vpc-cni`, served by
//! the fault proxy (moto has no add-on API) which, as EKS does, server-side applies the
//! add-on's settings to the fake Kubernetes API server's `aws-node` DaemonSet with field
//! manager `eks`. What the nodes' CNI ends up with is read from the API server, not through
//! eksnet.

mod common;
#[path = "common/proxy.rs"]
mod proxy;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

const ADDON_SPEC: &str = "examples/custom-networking-addon.toml";
const DAEMONSET_SPEC: &str = "examples/custom-networking.toml";
const CLUSTER: &str = "my-custom-networking-cluster";
const AWS_NODE: &str = "/apis/apps/v1/namespaces/kube-system/daemonsets/aws-node";
const ENICONFIGS: &str = "/apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs";
const CUSTOM_NETWORK: &str = "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG";
const LABEL_DEF: &str = "ENI_CONFIG_LABEL_DEF";
/// Stack, 2 roles, cluster, block, 2 pod subnets, 3 add-ons, 2 ENIConfigs, nodegroup.
const ADDON_RESOURCES: usize = 13;

struct World {
    _guard: MotoGuard,
    proxy: proxy::Proxy,
    kube: &'static FakeKube,
    dir: tempfile::TempDir,
}

/// moto behind the proxy (EKS's cluster fields, the add-on API acting on the fake API
/// server, short add-on windows so that the waits are real), the fake API server, and a copy
/// of the examples.
fn world() -> World {
    let (guard, moto_url, kube) = moto_and_kube();
    let proxy = proxy::Proxy::start(&moto_url);
    proxy.config(json!({
        "eks_cluster_fields": true,
        "kube_url": kube.url,
        "addon_create_ms": 300,
        "addon_update_ms": 300,
        "addon_delete_ms": 300,
    }));
    World {
        _guard: guard,
        proxy,
        kube,
        dir: example_dir(),
    }
}

impl World {
    fn eksnet(&self) -> Command {
        let mut c = eksnet(&self.proxy.url, self.dir.path());
        c.env("EKSNET_KUBECONFIG", &self.kube.kubeconfig);
        c.env("EKSNET_KUBE_CONTEXT", "fake");
        c
    }

    fn d(&self) -> &Path {
        self.dir.path()
    }

    /// A cluster created without self-managed add-ons has no aws-node: the fake's seeded
    /// one is removed.
    fn without_self_managed_aws_node(&self) {
        let (status, body) = http(
            self.kube.url.trim_start_matches("http://"),
            "DELETE",
            AWS_NODE,
            "",
        );
        assert_eq!(status, 200, "delete the seeded aws-node: {body}");
        assert_eq!(self.kube.get(AWS_NODE)["code"], 404);
    }

    fn edit(&self, spec: &str, f: impl FnOnce(String) -> String) {
        let p = self.d().join(spec);
        let text = std::fs::read_to_string(&p).expect("read spec");
        let edited = f(text.clone());
        assert_ne!(edited, text, "the edit must change {spec}");
        std::fs::write(&p, edited).expect("write spec");
    }
}

/// The value of `name` in the aws-node container's env, as the API server has it.
fn env_of(ds: &Value, name: &str) -> Option<String> {
    ds["spec"]["template"]["spec"]["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == "aws-node")?["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str().map(String::from))
}

/// The field managers of an object's managedFields.
fn managers(obj: &Value) -> Vec<String> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["manager"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn position(text: &str, needle: &str) -> usize {
    text.find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in:\n{text}"))
}

async fn describe_addon(
    aws: &eksnet::cloud::aws::AwsClients,
    name: &str,
) -> aws_sdk_eks::types::Addon {
    aws.eks
        .describe_addon()
        .cluster_name(CLUSTER)
        .addon_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeAddon {name}: {e:?}"))
        .addon
        .unwrap_or_else(|| panic!("DescribeAddon {name}: no addon"))
}

fn values_of(addon: &aws_sdk_eks::types::Addon) -> Value {
    addon
        .configuration_values()
        .map(|v| serde_json::from_str(v).expect("configurationValues are JSON"))
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn addon_example_end_to_end_on_a_cluster_without_self_managed_addons() {
    let w = world();
    let aws = sdk(&w.proxy.url).await;
    w.without_self_managed_aws_node();
    run_ok(w.eksnet().args(["validate", ADDON_SPEC]), 0);

    // --- the first plan shows the add-on with its values, the ENIConfigs and the
    //     nodegroup, in the order they will be made ---
    let plan = run_ok(
        w.eksnet().args(["plan", ADDON_SPEC, "--detailed-exitcode"]),
        2,
    );
    let out = &plan.stdout;
    assert!(
        out.contains(&format!(
            "Plan: {ADDON_RESOURCES} to add, 0 to change, 0 to replace, 0 to destroy."
        )),
        "{out}"
    );
    let cni = position(out, "# addon.vpc_cni will be created");
    assert!(
        out[cni..].contains(r#"configuration_values        = {"env":{"AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG":"true","ENI_CONFIG_LABEL_DEF":"topology.kubernetes.io/zone"}}"#),
        "{out}"
    );
    let order = [
        "# cluster.main will be created",
        "# addon.vpc_cni will be created",
        "# eni_config.pod_a will be created",
        "# nodegroup.main will be created",
        "# addon.coredns will be created",
    ]
    .map(|l| position(out, l));
    assert!(order.windows(2).all(|p| p[0] < p[1]), "{order:?}\n{out}");
    assert!(
        !plan.stderr.contains("warning"),
        "the add-on example plans without warnings: {}",
        plan.stderr
    );

    // --- apply, in one go ---
    w.proxy.reset_stats();
    let seen = w.kube.requests().len();
    let applied = run_ok(w.eksnet().args(["apply", ADDON_SPEC, "--auto-approve"]), 0);
    assert!(
        applied.stderr.contains(&format!(
            "Apply complete! Resources: {ADDON_RESOURCES} added"
        )),
        "{}",
        applied.stderr
    );
    let stats = w.proxy.stats();
    let creates = stats.of("CreateAddon");
    let nodegroup = stats.of("CreateNodegroup");
    assert_eq!((creates.len(), nodegroup.len()), (3, 1), "{creates:?}");
    // vpc-cni and kube-proxy after the cluster, before the nodes; CoreDNS (a Deployment)
    // once there are nodes.
    let before_nodes = creates
        .iter()
        .filter(|r| r.start_ms < nodegroup[0].start_ms)
        .count();
    assert_eq!(before_nodes, 2, "{:?}", stats.requests());
    let cluster_created = stats.of("CreateCluster")[0].end_ms;
    assert!(
        creates.iter().all(|r| r.start_ms >= cluster_created),
        "{:?}",
        stats.requests()
    );
    let last_nodegroup_read = stats
        .of("DescribeNodegroup")
        .last()
        .map(|r| r.end_ms)
        .expect("nodegroup waited for");
    assert!(
        creates.iter().any(|r| r.start_ms >= last_nodegroup_read),
        "CoreDNS is created once the nodegroup is ACTIVE: {:?}",
        stats.requests()
    );

    // --- the cluster's side: aws-node exists (made by the add-on), with custom networking,
    //     owned by EKS, and it was there before any ENIConfig ---
    let ds = w.kube.get(AWS_NODE);
    assert_eq!(env_of(&ds, CUSTOM_NETWORK).as_deref(), Some("true"), "{ds}");
    assert_eq!(
        env_of(&ds, LABEL_DEF).as_deref(),
        Some("topology.kubernetes.io/zone"),
        "{ds}"
    );
    assert_eq!(managers(&ds), vec!["eks".to_string()], "{ds}");
    let log = w.kube.requests().split_off(seen);
    let first = |pred: &dyn Fn(&Value) -> bool| log.iter().position(pred);
    let cni_applied = first(&|r| {
        r["method"] == "PATCH"
            && r["path"] == AWS_NODE
            && r["query"]
                .as_str()
                .is_some_and(|q| q.contains("fieldManager=eks"))
    })
    .expect("EKS applied aws-node");
    let first_eni = first(&|r| {
        r["method"] != "GET"
            && r["path"]
                .as_str()
                .is_some_and(|p| p.starts_with(ENICONFIGS))
    })
    .expect("ENIConfigs written");
    assert!(cni_applied < first_eni, "{log:?}");
    assert!(
        log.iter().all(|r| !(r["path"] == AWS_NODE
            && r["method"] != "GET"
            && !r["query"]
                .as_str()
                .is_some_and(|q| q.contains("fieldManager=eks")))),
        "eksnet itself never writes aws-node on the add-on path: {log:?}"
    );

    // --- through the SDK: the add-ons are ACTIVE with the values ---
    let vpc_cni = describe_addon(&aws, "vpc-cni").await;
    assert_eq!(vpc_cni.status().map(|s| s.as_str()), Some("ACTIVE"));
    assert_eq!(
        values_of(&vpc_cni),
        json!({"env": {CUSTOM_NETWORK: "true", LABEL_DEF: "topology.kubernetes.io/zone"}})
    );
    for name in ["kube-proxy", "coredns"] {
        assert_eq!(
            describe_addon(&aws, name)
                .await
                .status()
                .map(|s| s.as_str()),
            Some("ACTIVE"),
            "{name}"
        );
    }

    // --- no-change plan: nothing to do; its cost is printed for docs/performance.md ---
    w.proxy.reset_stats();
    // A latency well above the time eksnet takes to send one wave (tens of milliseconds on
    // a loaded machine), so that the proxy's round-trip count means what it says.
    w.proxy.config(json!({"latency_ms": 200}));
    run_ok(
        w.eksnet().args(["plan", ADDON_SPEC, "--detailed-exitcode"]),
        0,
    );
    w.proxy.config(json!({"latency_ms": null}));
    let reads = w.proxy.stats();
    eprintln!(
        "no-change plan of the add-on example: {} requests, {} round trips",
        reads.total(),
        reads.round_trips()
    );
    assert_eq!(reads.mutating(), 0);
    // The refresh and the live checks in one wave: the installed version's schema is asked
    // for beside the catalogue.
    assert_eq!(reads.round_trips(), 1, "{:?}", reads.requests());
    assert_eq!(reads.count("DescribeAddonConfiguration"), 1);
    // The spec pins the cluster's version: the add-on checks need not ask for it.
    assert_eq!(reads.count("DescribeCluster"), 1, "{:?}", reads.requests());

    // --- an add-on update by someone else (an upgrade through the console or eksctl, with
    //     OVERWRITE and no values: EKS keeps the add-on's own) leaves custom networking on ---
    let update = aws
        .eks
        .update_addon()
        .cluster_name(CLUSTER)
        .addon_name("vpc-cni")
        .addon_version(vpc_cni.addon_version().unwrap_or_default())
        .resolve_conflicts(aws_sdk_eks::types::ResolveConflicts::Overwrite)
        .send()
        .await
        .expect("UpdateAddon");
    assert!(update.update.is_some());
    std::thread::sleep(std::time::Duration::from_millis(400));
    let ds = w.kube.get(AWS_NODE);
    assert_eq!(env_of(&ds, CUSTOM_NETWORK).as_deref(), Some("true"), "{ds}");
    run_ok(
        w.eksnet().args(["plan", ADDON_SPEC, "--detailed-exitcode"]),
        0,
    );

    // --- drift: the values changed behind eksnet's back are shown and put back ---
    aws.eks
        .update_addon()
        .cluster_name(CLUSTER)
        .addon_name("vpc-cni")
        .configuration_values(json!({"env": {CUSTOM_NETWORK: "false"}}).to_string())
        .resolve_conflicts(aws_sdk_eks::types::ResolveConflicts::Overwrite)
        .send()
        .await
        .expect("UpdateAddon behind eksnet's back");
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert_eq!(
        env_of(&w.kube.get(AWS_NODE), CUSTOM_NETWORK).as_deref(),
        Some("false")
    );
    let drift = run_ok(
        w.eksnet().args(["plan", ADDON_SPEC, "--detailed-exitcode"]),
        2,
    );
    assert!(
        drift
            .stdout
            .contains("# addon.vpc_cni will be updated in place"),
        "{}",
        drift.stdout
    );
    assert!(
        drift.stdout.contains("configuration_values"),
        "{}",
        drift.stdout
    );

    // --- a setting added in the spec: one UpdateAddon, the env reaches the DaemonSet ---
    w.edit(ADDON_SPEC, |s| {
        s.replacen(
            "eni_config_label = \"topology.kubernetes.io/zone\"\n",
            "eni_config_label = \"topology.kubernetes.io/zone\"\nconfiguration_values = { env = { WARM_IP_TARGET = \"5\" } }\n",
            1,
        )
    });
    w.proxy.reset_stats();
    run_ok(w.eksnet().args(["apply", ADDON_SPEC, "--auto-approve"]), 0);
    let stats = w.proxy.stats();
    assert_eq!(stats.mutating(), 1, "{:?}", stats.requests());
    assert_eq!(stats.count("UpdateAddon"), 1);
    let ds = w.kube.get(AWS_NODE);
    assert_eq!(env_of(&ds, CUSTOM_NETWORK).as_deref(), Some("true"), "{ds}");
    assert_eq!(env_of(&ds, "WARM_IP_TARGET").as_deref(), Some("5"), "{ds}");
    run_ok(
        w.eksnet().args(["plan", ADDON_SPEC, "--detailed-exitcode"]),
        0,
    );

    // --- the vpc-cni add-on removed from the spec while its cluster stays: EKS forgets the
    //     add-on, the CNI keeps running (preserve_on_delete defaults to true) ---
    w.edit(ADDON_SPEC, |s| {
        let start = s.find("[addon.vpc_cni]").expect("vpc-cni block");
        let end = start + s[start..].find("\n\n").expect("end of the block");
        format!("{}{}", &s[..start], &s[end + 2..])
    });
    let removed = run_ok(w.eksnet().args(["apply", ADDON_SPEC, "--auto-approve"]), 0);
    assert!(
        removed.stdout.contains("addon.vpc_cni: destroy complete")
            || removed.stderr.contains("addon.vpc_cni: destroy complete"),
        "{}",
        removed.stderr
    );
    let gone = aws
        .eks
        .describe_addon()
        .cluster_name(CLUSTER)
        .addon_name("vpc-cni")
        .send()
        .await;
    assert!(gone.is_err(), "the add-on is deleted in EKS");
    let ds = w.kube.get(AWS_NODE);
    assert_eq!(
        env_of(&ds, CUSTOM_NETWORK).as_deref(),
        Some("true"),
        "aws-node keeps running as it was: {ds}"
    );

    // --- destroy: the add-ons go before the cluster; nothing is left ---
    w.proxy.reset_stats();
    run_ok(
        w.eksnet().args(["destroy", ADDON_SPEC, "--auto-approve"]),
        0,
    );
    let stats = w.proxy.stats();
    let deletes = stats.of("DeleteAddon");
    let cluster_delete = stats.of("DeleteCluster");
    assert_eq!((deletes.len(), cluster_delete.len()), (2, 1));
    assert!(
        deletes
            .iter()
            .all(|r| r.end_ms <= cluster_delete[0].start_ms),
        "{:?}",
        stats.requests()
    );
    let gone = aws.eks.describe_cluster().name(CLUSTER).send().await;
    assert!(gone.is_err(), "cluster deleted");
}

/// The DaemonSet patch on a cluster whose CNI becomes the add-on: EKS's OVERWRITE undoes it
/// (seen on the API server), eksnet then refuses the patch, and the hint's way out — the
/// settings on an imported `vpc-cni` add-on instead of `aws_node` — converges in one apply.
#[tokio::test]
async fn daemonset_patch_is_undone_by_the_addon_and_the_addon_form_takes_over() {
    let w = world();
    let aws = sdk(&w.proxy.url).await;
    run_ok(
        w.eksnet().args(["apply", DAEMONSET_SPEC, "--auto-approve"]),
        0,
    );
    let ds = w.kube.get(AWS_NODE);
    assert_eq!(env_of(&ds, CUSTOM_NETWORK).as_deref(), Some("true"), "{ds}");

    // Someone converts the cluster's CNI to the managed add-on, as the console does.
    aws.eks
        .create_addon()
        .cluster_name(CLUSTER)
        .addon_name("vpc-cni")
        .resolve_conflicts(aws_sdk_eks::types::ResolveConflicts::Overwrite)
        .send()
        .await
        .expect("CreateAddon");
    let ds = w.kube.get(AWS_NODE);
    assert_eq!(
        env_of(&ds, CUSTOM_NETWORK).as_deref(),
        Some("false"),
        "EKS's OVERWRITE resets the patched setting: {ds}"
    );
    std::thread::sleep(std::time::Duration::from_millis(400));

    // eksnet refuses to patch it again, naming the consequence and the way out.
    let refused = run_ok(w.eksnet().args(["plan", DAEMONSET_SPEC]), 1);
    assert!(
        refused.stderr.contains("`aws_node.main`")
            && refused.stderr.contains("managed add-on `vpc-cni`")
            && refused.stderr.contains("eksnet import")
            && refused.stderr.contains("custom-networking.toml:"),
        "{}",
        refused.stderr
    );

    // The way out: the settings move to the add-on, which is imported.
    w.edit(DAEMONSET_SPEC, |s| {
        let start = s.find("[aws_node.main]").expect("aws_node block");
        let end = s[start..]
            .find("\n\n")
            .map(|i| start + i)
            .expect("end of the aws_node block");
        format!(
            "{}[addon.vpc_cni]\ncluster_name = \"${{cluster.main.name}}\"\nname = \"vpc-cni\"\ncustom_network = true\neni_config_label = \"topology.kubernetes.io/zone\"{}",
            &s[..start],
            &s[end..]
        )
    });
    run_ok(
        w.eksnet().args([
            "import",
            DAEMONSET_SPEC,
            "addon.vpc_cni",
            &format!("{CLUSTER}/vpc-cni"),
        ]),
        0,
    );
    let plan = run_ok(
        w.eksnet()
            .args(["plan", DAEMONSET_SPEC, "--detailed-exitcode"]),
        2,
    );
    assert!(
        plan.stdout
            .contains("# addon.vpc_cni will be updated in place")
            && plan.stdout.contains("# aws_node.main will be destroyed"),
        "{}",
        plan.stdout
    );
    run_ok(
        w.eksnet().args(["apply", DAEMONSET_SPEC, "--auto-approve"]),
        0,
    );
    // The patch was undone first, then the add-on applied the settings: they hold.
    let ds = w.kube.get(AWS_NODE);
    assert_eq!(env_of(&ds, CUSTOM_NETWORK).as_deref(), Some("true"), "{ds}");
    assert_eq!(
        env_of(&ds, LABEL_DEF).as_deref(),
        Some("topology.kubernetes.io/zone"),
        "{ds}"
    );
    assert_eq!(
        values_of(&describe_addon(&aws, "vpc-cni").await),
        json!({"env": {CUSTOM_NETWORK: "true", LABEL_DEF: "topology.kubernetes.io/zone"}})
    );
    run_ok(
        w.eksnet()
            .args(["plan", DAEMONSET_SPEC, "--detailed-exitcode"]),
        0,
    );
}

/// What EKS would refuse is refused at plan time, at file:line and key, before any change.
#[tokio::test]
async fn addon_version_and_schema_errors_are_found_at_plan_time() {
    let w = world();
    w.edit(ADDON_SPEC, |s| {
        s.replacen(
                "name = \"vpc-cni\"\n",
                "name = \"vpc-cni\"\nversion = \"v1.18.3-eksbuild.1\"\nconfiguration_values = { env = { WARM_IP_TARGET = \"5\", NOT_A_CNI_SETTING = \"1\" }, enableNetworkPolicy = \"maybe\" }\n",
                1,
            )
            .replacen("name = \"coredns\"", "name = \"coredns\"\nversion = \"v0.0.1\"", 1)
    });
    // A typo in an add-on name.
    let p = w.d().join(ADDON_SPEC);
    let mut text = std::fs::read_to_string(&p).expect("spec");
    text.push_str(
        "\n[addon.typo]\ncluster_name = \"${cluster.main.name}\"\nname = \"kube-proxi\"\n",
    );
    std::fs::write(&p, text).expect("spec");
    run_ok(w.eksnet().args(["validate", ADDON_SPEC]), 0);

    w.proxy.reset_stats();
    let r = run_ok(w.eksnet().args(["plan", ADDON_SPEC]), 1);
    let e = &r.stderr;
    let line_of = |key: &str| -> String {
        e.lines()
            .find(|l| l.contains(&format!("`{key}`")))
            .unwrap_or_else(|| panic!("no error at `{key}`:\n{e}"))
            .to_string()
    };
    let incompatible = line_of("addon.vpc_cni.version");
    assert!(
        incompatible.contains("does not run on Kubernetes 1.33")
            && incompatible.contains("custom-networking-addon.toml:"),
        "{incompatible}"
    );
    let unknown = line_of("addon.vpc_cni.configuration_values.env.NOT_A_CNI_SETTING");
    assert!(
        unknown.contains("is not a setting of `vpc-cni`"),
        "{unknown}"
    );
    let bad_enum = line_of("addon.vpc_cni.configuration_values.enableNetworkPolicy");
    assert!(bad_enum.contains("\"maybe\""), "{bad_enum}");
    assert!(
        !e.contains("WARM_IP_TARGET`"),
        "a known setting is not an error: {e}"
    );
    assert!(line_of("addon.coredns.version").contains("has no version `v0.0.1`"));
    assert!(line_of("addon.typo.name").contains("no add-on named `kube-proxi`"));
    assert_eq!(w.proxy.stats().mutating(), 0, "nothing is changed");
    assert!(
        !w.d().join("state/custom-networking-addon.db").exists(),
        "a refused plan writes no state"
    );
}

/// A PATCH of aws-node by another field manager (what `kubectl edit` or a Helm chart leaves),
/// as a strategic merge of the container's env by name.
fn patch_aws_node_as(kube: &FakeKube, manager: &str, env: Value) {
    let body =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "aws-node", "env": env}]}}}});
    let url = format!("{}{AWS_NODE}?fieldManager={manager}", kube.url);
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .build(),
    );
    let request = ureq::http::Request::builder()
        .method("PATCH")
        .uri(&url)
        .header("Content-Type", "application/strategic-merge-patch+json")
        .body(body.to_string())
        .expect("request");
    let response = agent.run(request).expect("PATCH aws-node");
    assert_eq!(response.status(), 200, "PATCH {url}");
}

/// `resolve_conflicts_on_create = "NONE"` on a cluster where another manager set a field the
/// add-on also sets: EKS ends the add-on `CREATE_FAILED` with a ConfigurationConflict health
/// issue. The apply fails with that issue in the message, the add-on is kept in the state,
/// and no node is created without its CNI.
#[tokio::test]
async fn addon_create_failed_reports_the_health_issue_and_no_node_comes_before_the_cni() {
    let w = world();
    let aws = sdk(&w.proxy.url).await;
    patch_aws_node_as(
        w.kube,
        "kubectl-edit",
        json!([{"name": "WARM_ENI_TARGET", "value": "2"}]),
    );
    w.edit(ADDON_SPEC, |s| {
        s.replacen(
            "name = \"vpc-cni\"\n",
            "name = \"vpc-cni\"\nresolve_conflicts_on_create = \"NONE\"\n",
            1,
        )
    });
    let failed = run_ok(w.eksnet().args(["apply", ADDON_SPEC, "--auto-approve"]), 1);
    let e = &failed.stderr;
    assert!(
        e.contains("addon.vpc_cni")
            && e.contains("CREATE_FAILED")
            && e.contains("ConfigurationConflict"),
        "{e}"
    );
    assert!(
        e.contains("WARM_ENI_TARGET"),
        "the conflicting field is named: {e}"
    );
    let groups = aws
        .eks
        .list_nodegroups()
        .cluster_name(CLUSTER)
        .send()
        .await
        .expect("ListNodegroups");
    assert!(
        groups.nodegroups().is_empty(),
        "no nodegroup before its CNI"
    );
    let ds = w.kube.get(AWS_NODE);
    assert_eq!(env_of(&ds, "WARM_ENI_TARGET").as_deref(), Some("2"), "{ds}");
    assert_eq!(env_of(&ds, CUSTOM_NETWORK), None, "{ds}");
    let listed = run_ok(
        w.eksnet().args([
            "state",
            "list",
            "--state",
            "state/custom-networking-addon.db",
        ]),
        0,
    );
    assert!(listed.stdout.contains("addon.vpc_cni"), "{}", listed.stdout);
}

// ---- an add-on made elsewhere (`existing = true`)

/// The spec `eksnet init` writes for a cluster and its `vpc-cni` add-on made elsewhere: the
/// cluster only read, custom networking turned on in the add-on's values, the value it was
/// made with kept.
const EXISTING_SPEC: &str = "existing.toml";
const EXISTING: &str = r#"# A cluster and its VPC CNI add-on made elsewhere (eksctl, Terraform, the console).
[cluster.main]
name = "my-custom-networking-cluster"
existing = true

[addon.vpc_cni]
cluster_name = "${cluster.main.name}"
name = "vpc-cni"
existing = true
custom_network = true
configuration_values = { env = { WARM_IP_TARGET = "5" } }
"#;

/// The configuration values the add-on is made with, outside eksnet.
fn made_values() -> Value {
    json!({"env": {"WARM_IP_TARGET": "5"}})
}

/// The VPC, the cluster and its `vpc-cni` add-on (with `made_values`), made through the SDK
/// as eksctl or the console would, and the add-on waited to `ACTIVE`.
async fn made_elsewhere(aws: &eksnet::cloud::aws::AwsClients) {
    let vpc = aws
        .ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .expect("CreateVpc")
        .vpc
        .and_then(|v| v.vpc_id)
        .expect("VPC id");
    let mut subnets = Vec::new();
    for (cidr, az) in [("10.0.0.0/24", "us-west-2a"), ("10.0.1.0/24", "us-west-2b")] {
        let s = aws
            .ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(cidr)
            .availability_zone(az)
            .send()
            .await
            .expect("CreateSubnet");
        subnets.push(s.subnet.and_then(|s| s.subnet_id).expect("subnet id"));
    }
    aws.eks
        .create_cluster()
        .name(CLUSTER)
        .version("1.33")
        .role_arn("arn:aws:iam::123456789012:role/made-by-eksctl")
        .resources_vpc_config(
            aws_sdk_eks::types::VpcConfigRequest::builder()
                .set_subnet_ids(Some(subnets))
                .build(),
        )
        .send()
        .await
        .expect("CreateCluster");
    aws.eks
        .create_addon()
        .cluster_name(CLUSTER)
        .addon_name("vpc-cni")
        .configuration_values(made_values().to_string())
        .resolve_conflicts(aws_sdk_eks::types::ResolveConflicts::Overwrite)
        .send()
        .await
        .expect("CreateAddon");
    for _ in 0..100 {
        let status = describe_addon(aws, "vpc-cni").await.status().cloned();
        if status == Some(aws_sdk_eks::types::AddonStatus::Active) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the add-on made elsewhere never became ACTIVE");
}

/// The lines of one resource's block in a rendered plan, from its `# ADDR` line to the blank
/// line after it.
fn plan_block<'a>(plan: &'a str, addr: &str) -> Vec<&'a str> {
    let start = position(plan, &format!("# {addr} "));
    plan[start..]
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .collect()
}

/// An existing add-on: the plan shows one update, of its configuration values only; the
/// apply sends one UpdateAddon and nothing else (no create, no tags, no version); destroy
/// puts back exactly the values it was made with, with one UpdateAddon, and leaves the
/// add-on and the cluster where they are.
#[tokio::test]
async fn an_existing_addon_gets_its_values_and_destroy_puts_back_the_ones_it_had() {
    let w = world();
    let aws = sdk(&w.proxy.url).await;
    made_elsewhere(&aws).await;
    std::fs::write(w.d().join(EXISTING_SPEC), EXISTING).expect("write spec");
    run_ok(w.eksnet().args(["validate", EXISTING_SPEC]), 0);

    // --- the plan: the add-on updated in place, its configuration values alone ---
    let plan = run_ok(
        w.eksnet()
            .args(["plan", EXISTING_SPEC, "--detailed-exitcode"]),
        2,
    );
    let out = &plan.stdout;
    assert!(
        out.contains("Plan: 0 to add, 1 to change, 0 to replace, 0 to destroy."),
        "{out}"
    );
    let block = plan_block(out, "addon.vpc_cni");
    assert!(block[0].contains("will be updated in place"), "{block:#?}");
    let attrs: Vec<&&str> = block
        .iter()
        .filter(|l| l.starts_with("      ") && !l.starts_with("        "))
        .collect();
    assert_eq!(attrs.len(), 1, "one attribute changes: {block:#?}");
    assert!(
        attrs[0].trim_start().starts_with("~ configuration_values"),
        "{block:#?}"
    );
    assert!(
        block
            .iter()
            .any(|l| l.contains(CUSTOM_NETWORK) && l.contains("\"true\"")),
        "{block:#?}"
    );
    assert!(!out.contains("will be created"), "{out}");

    // --- apply: one UpdateAddon, nothing else changes ---
    w.proxy.reset_stats();
    run_ok(
        w.eksnet().args(["apply", EXISTING_SPEC, "--auto-approve"]),
        0,
    );
    let stats = w.proxy.stats();
    assert_eq!(stats.mutating(), 1, "{:?}", stats.requests());
    assert_eq!(stats.count("UpdateAddon"), 1, "{:?}", stats.requests());
    let merged = json!({"env": {
        CUSTOM_NETWORK: "true",
        LABEL_DEF: "topology.kubernetes.io/zone",
        "WARM_IP_TARGET": "5",
    }});
    let addon = describe_addon(&aws, "vpc-cni").await;
    assert_eq!(values_of(&addon), merged);
    let ds = w.kube.get(AWS_NODE);
    assert_eq!(env_of(&ds, CUSTOM_NETWORK).as_deref(), Some("true"), "{ds}");
    run_ok(
        w.eksnet()
            .args(["plan", EXISTING_SPEC, "--detailed-exitcode"]),
        0,
    );

    // --- destroy: the values put back, nothing deleted ---
    w.proxy.reset_stats();
    let destroyed = run_ok(
        w.eksnet()
            .args(["destroy", EXISTING_SPEC, "--auto-approve"]),
        0,
    );
    let block = plan_block(&destroyed.stdout, "addon.vpc_cni");
    assert!(
        block[0].contains("will be put back as it was before eksnet"),
        "{}",
        destroyed.stdout
    );
    assert!(
        destroyed
            .stdout
            .contains("Plan: 0 to add, 1 to change, 0 to replace, 0 to destroy."),
        "{}",
        destroyed.stdout
    );
    let stats = w.proxy.stats();
    assert_eq!(stats.mutating(), 1, "{:?}", stats.requests());
    assert_eq!(stats.count("UpdateAddon"), 1, "{:?}", stats.requests());
    let addon = describe_addon(&aws, "vpc-cni").await;
    assert_eq!(
        values_of(&addon),
        made_values(),
        "exactly the values it was made with"
    );
    assert_eq!(addon.status().map(|s| s.as_str()), Some("ACTIVE"));
    let ds = w.kube.get(AWS_NODE);
    assert_eq!(
        env_of(&ds, CUSTOM_NETWORK).as_deref(),
        Some("false"),
        "{ds}"
    );
    assert_eq!(env_of(&ds, "WARM_IP_TARGET").as_deref(), Some("5"), "{ds}");
    let cluster = aws.eks.describe_cluster().name(CLUSTER).send().await;
    assert!(cluster.is_ok(), "the cluster stays: {cluster:?}");
    let listed = run_ok(
        w.eksnet()
            .args(["state", "list", "--state", "state/existing.db"]),
        0,
    );
    assert!(listed.stdout.trim().is_empty(), "{}", listed.stdout);
}

/// The same command, started through `sh` that writes its pid to `pid_file` and then `exec`s
/// eksnet, so the proxy's kill hook always finds it (as in `tests/resilience.rs`).
fn with_pid_file(cmd: &Command, pid_file: &Path) -> Command {
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(r#"echo $$ > "$0"; exec "$@""#)
        .arg(pid_file)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        sh.current_dir(d);
    }
    sh
}

/// An apply killed right after EKS accepted its UpdateAddon, before it could write anything
/// after it: the values from before eksnet were in the state already, so the destroy that
/// follows still puts them back.
#[tokio::test]
async fn an_apply_killed_right_after_its_update_addon_still_lets_destroy_put_the_values_back() {
    use std::os::unix::process::ExitStatusExt;
    let w = world();
    let aws = sdk(&w.proxy.url).await;
    made_elsewhere(&aws).await;
    std::fs::write(w.d().join(EXISTING_SPEC), EXISTING).expect("write spec");

    let pid_file = w.d().join("eksnet.pid");
    w.proxy.config(json!({
        "kill_after_mutating": 1, "kill_op": "UpdateAddon", "kill_pid_file": pid_file,
    }));
    let killed = with_pid_file(
        w.eksnet().args(["apply", EXISTING_SPEC, "--auto-approve"]),
        &pid_file,
    )
    .stdin(std::process::Stdio::null())
    .output()
    .expect("run eksnet");
    let hook = w.proxy.stats().0["kill"].clone();
    assert_eq!(hook["killed"], true, "{hook}");
    assert_eq!(hook["op"], "UpdateAddon", "{hook}");
    assert_eq!(
        killed.status.signal(),
        Some(9),
        "{}",
        String::from_utf8_lossy(&killed.stderr)
    );
    w.proxy
        .config(json!({"kill_after_mutating": null, "kill_op": null, "kill_pid_file": null}));
    w.proxy.wait_idle();
    std::thread::sleep(std::time::Duration::from_millis(400));
    // The update went through; eksnet died before it could record anything after it.
    assert_eq!(
        values_of(&describe_addon(&aws, "vpc-cni").await)["env"][CUSTOM_NETWORK],
        "true"
    );

    // The dead run's lock is stale: freed, then destroy.
    let locked = run_ok(
        w.eksnet()
            .args(["destroy", EXISTING_SPEC, "--auto-approve"]),
        1,
    );
    let id = locked
        .stderr
        .lines()
        .find_map(|l| l.split("eksnet force-unlock ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .map(|id| id.trim_matches('`').to_string())
        .unwrap_or_else(|| panic!("no lock id in {}", locked.stderr));
    run_ok(
        w.eksnet()
            .args(["force-unlock", &id, "--state", "state/existing.db"]),
        0,
    );
    let destroyed = run_ok(
        w.eksnet()
            .args(["destroy", EXISTING_SPEC, "--auto-approve"]),
        0,
    );
    assert!(
        destroyed
            .stdout
            .contains("# addon.vpc_cni will be put back as it was before eksnet"),
        "{}",
        destroyed.stdout
    );
    let addon = describe_addon(&aws, "vpc-cni").await;
    assert_eq!(
        values_of(&addon),
        made_values(),
        "exactly the values it was made with"
    );
    let cluster = aws.eks.describe_cluster().name(CLUSTER).send().await;
    assert!(cluster.is_ok(), "the cluster stays: {cluster:?}");
}
