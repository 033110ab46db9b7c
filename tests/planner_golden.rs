//! Golden tests of the pure planner: each case is one `#[test]`, named after it in `golden!`
//! below, that plans its inputs the way `eksnet plan` does, minus the refresh.
//!
//! A case's inputs are built (`tests/support/golden_builder.rs`) from one of two shared bases
//! in `tests/golden/shared/` — [`Case::demo`], an adopted VPC with pod subnets and a cluster,
//! and [`Case::tutorial`], the EKS custom networking tutorial — plus what the case changes:
//! - the spec (`spec.toml`, and the template next to it);
//! - the state, an `eksnet::state::StateSnapshot` (`{"lineage", "serial", "resources"}`);
//! - what refresh saw: address → `{cloud_id, attrs, outputs, managed_by}` or `null` (looked
//!   up, absent); an address left out was not looked up;
//! - the options `--destroy` and `--replace ADDR`;
//! - node sizing's reads and the VPCs' route tables, when the case has them.
//!
//! The spec is written to `<temp dir>/tests/golden/<case>/spec.toml` and planned from there,
//! so paths in diagnostics read `tests/golden/<case>/spec.toml`.
//!
//! The expected output is the insta snapshot `tests/snapshots/planner_golden__<case>.snap`:
//! `eksnet::plan::render::render(&plan, Palette::PLAIN)`, or, when parsing, validation, the graph or
//! planning fails, the diagnostics (one per line) with paths made relative to that temp dir.
//! Plan warnings, if any, follow the rendered plan.
//!
//! A case whose output differs fails with a diff (`-old +new`) and leaves the new output in
//! `tests/snapshots/planner_golden__<case>.snap.new` (not under `CI`). To review: read the
//! diff, or `diff` the `.snap` and `.snap.new` files; with cargo-insta installed (it is not
//! needed), `cargo insta review` does both and accepts or rejects each. To accept every new
//! output, (re)generate the snapshots with
//!
//! ```text
//! INSTA_UPDATE=always cargo test --test planner_golden
//! ```
//!
//! and review `git diff tests/snapshots/` before committing it. A new case is a new line in
//! `golden!`; the run above writes its snapshot.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

#[path = "support/package_dir.rs"]
mod package_dir;
use package_dir::package_dir;
#[path = "support/golden_builder.rs"]
mod golden_builder;
#[path = "support/snapshots.rs"]
mod snapshots;
use golden_builder::Case;

/// Mirrors `eksnet::resources::Observed`, which has no serde derive.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ObservedJson {
    cloud_id: String,
    attrs: Value,
    outputs: Value,
    #[serde(default)]
    managed_by: Option<String>,
}

fn from_value<T: DeserializeOwned>(what: &str, v: &Value) -> T {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Plans `case`, whose spec is at `spec_path`, as `eksnet plan` does minus the refresh: parse,
/// validate, graph, plan, render. Returns the rendered plan followed by its warnings, or the
/// diagnostics of the first stage that fails.
///
/// Every use of the eksnet library in this file is in this function, so that a change to its
/// API is an edit here only.
fn plan_with_eksnet(spec_path: &Path, case: &Case) -> String {
    use eksnet::base::addr::ResourceAddr;
    use eksnet::domain::routing::RoutingReads;
    use eksnet::nodes::sizing::SizingReads;
    use eksnet::plan::graph::DependencyGraph;
    use eksnet::plan::inventory::Inventory;
    use eksnet::plan::planner::{plan, PlanOptions};
    use eksnet::plan::render::{render, Palette};
    use eksnet::resources::{Observed, ObservedState};
    use eksnet::state::StateSnapshot;

    let spec = match eksnet::spec::parse(spec_path, &case.spec) {
        Ok(s) => s,
        Err(d) => return d.to_string(),
    };
    let checks = eksnet::validate::validate(&spec);
    if checks.has_errors() {
        return checks.to_string();
    }
    let state: StateSnapshot = from_value("state", &case.state);
    let observed: BTreeMap<ResourceAddr, Option<ObservedJson>> =
        from_value("observed", &case.observed);
    let observed: ObservedState = observed
        .into_iter()
        .map(|(addr, o)| {
            let o = o.map(|o| Observed {
                cloud_id: o.cloud_id,
                attrs: o.attrs,
                outputs: o.outputs,
                managed_by: o.managed_by,
            });
            (addr, o)
        })
        .collect();
    let options = PlanOptions {
        destroy: case.destroy,
        replace: from_value("replace", &json!(case.replace)),
    };
    let graph = match DependencyGraph::build(&spec, Some(&state)) {
        Ok(g) => g,
        Err(d) => return d.to_string(),
    };
    // Node sizing's reads, as `plan` makes them alongside the refresh, from the case's.
    let sizing = match &case.instance_types {
        Value::Object(types) => {
            let mut reads = SizingReads::default();
            for (name, t) in types {
                let mut t = t.clone();
                t["instance_type"] = json!(name);
                reads
                    .types
                    .insert(name.clone(), from_value("instance type", &t));
            }
            if !case.outside.is_null() {
                reads.outside = from_value("outside", &case.outside);
            }
            if let Value::Object(free) = &case.available {
                for (id, n) in free {
                    reads
                        .available
                        .insert(id.clone(), from_value("available", n));
                }
            }
            Some(reads)
        }
        _ => None,
    };
    let routing = match &case.route_tables {
        Value::Null => None,
        tables => Some(RoutingReads {
            tables: from_value("route tables", tables),
            problems: Vec::new(),
        }),
    };
    let inventory = Inventory {
        resources: observed,
        inspections: BTreeMap::new(),
        sizing,
        routing,
    };
    match plan(&spec, &graph, &state, &inventory, &options) {
        Ok(plan) => {
            let mut out = render(&plan, Palette::PLAIN);
            for w in &plan.warnings {
                out.push_str(&format!("{w}\n"));
            }
            out
        }
        Err(d) => d.to_string(),
    }
}

/// Writes the case's files to `<temp dir>/tests/golden/<name>/` and plans from there.
fn run_case(name: &str, case: &Case) -> String {
    let stage = tempfile::tempdir().expect("temp dir");
    let root = stage.path().canonicalize().expect("temp dir path");
    let dir = root.join("tests/golden").join(name);
    std::fs::create_dir_all(&dir).expect("case dir");
    let spec_path = dir.join("spec.toml");
    std::fs::write(&spec_path, &case.spec).expect("write spec.toml");
    for (file, text) in &case.files {
        std::fs::write(dir.join(file), text).unwrap_or_else(|e| panic!("write {file}: {e}"));
    }
    plan_with_eksnet(&spec_path, case).replace(&format!("{}/", root.display()), "")
}

/// Plans one case and compares the output with its snapshot.
fn check(name: &str, case: Case) {
    let text = run_case(name, &case);
    snapshots::settings().bind(|| insta::assert_snapshot!(name, text));
    // insta compares with trailing whitespace trimmed; every output ends in exactly one newline,
    // so with this the snapshot (which insta stores as the text plus one newline) is exact.
    assert!(
        text.trim_end().len() + 1 == text.len() && text.ends_with('\n'),
        "case `{name}`: the output must end in exactly one newline: {text:?}"
    );
}

/// `name: recipe` → one `#[test] fn name` that checks the case `recipe` builds, and `CASES`,
/// the list of all names.
macro_rules! golden {
    ($($case:ident: $recipe:expr),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                check(stringify!($case), $recipe);
            }
        )*
        const CASES: &[&str] = &[$(stringify!($case)),*];
    };
}

// ---- the demo: an adopted VPC (192.168.0.0/24) with a secondary block (100.64.0.0/16), two
// pod subnets, a cluster role and a cluster.

/// The demo VPC's outputs that list the pod subnets (there once the subnets exist).
const DEMO_POD_SUBNET_OUTPUTS: &[&str] = &[
    "/outputs/subnets/subnet-0aa11111111111111",
    "/outputs/subnets/pods-a",
    "/outputs/subnets/subnet-0bb22222222222222",
    "/outputs/subnets/pods-b",
    "/outputs/subnet_azs/subnet-0aa11111111111111",
    "/outputs/subnet_azs/subnet-0bb22222222222222",
];

/// The demo before its first apply: nothing in the state, and only the adopted VPC exists, with
/// its primary block and the cluster subnets.
fn demo_first_plan() -> Case {
    Case::demo()
        .fresh_state()
        .absent(&[
            "cidr_block.pods",
            "subnet.pod_a",
            "subnet.pod_b",
            "iam_role.cluster",
            "cluster.main",
        ])
        .observed_set(
            "vpc.main",
            "/outputs/cidr_blocks",
            json!(["192.168.0.0/24"]),
        )
        .observed_remove("vpc.main", DEMO_POD_SUBNET_OUTPUTS)
}

/// The demo's spec with the secondary block and its pod subnets in 100.64.128.0/17.
fn pods_in_100_64_128(case: Case) -> Case {
    case.spec_edit(
        r#"cidr_block = "100.64.0.0/16""#,
        r#"cidr_block = "100.64.128.0/17""#,
    )
    .spec_edit(
        r#"cidr_block = "100.64.0.0/19""#,
        r#"cidr_block = "100.64.128.0/19""#,
    )
    .spec_edit(
        r#"cidr_block = "100.64.32.0/19""#,
        r#"cidr_block = "100.64.160.0/19""#,
    )
}

/// The trust policy of `policy_format_differences_no_change`: two services, laid out unlike
/// what IAM returns.
const TWO_SERVICE_POLICY: &str = r#"assume_role_policy = '''
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Principal": { "Service": [ "eks.amazonaws.com",   "ec2.amazonaws.com" ] },
      "Action":    "sts:AssumeRole",
      "Effect":    "Allow"
    }
  ]
}
'''
"#;

/// A third pod subnet, applied by this state and still there.
fn pod_c_attrs_and_outputs() -> (Value, Value) {
    let attrs = json!({
        "vpc_id": "vpc-0a1b2c3d4e5f60718",
        "cidr_block": "100.64.64.0/19",
        "availability_zone": "us-west-2a",
        "tags": {"Name": "pods-c", "kubernetes.io/role/internal-elb": "1"}
    });
    let outputs = json!({
        "id": "subnet-0cc33333333333333",
        "arn": "arn:aws:ec2:us-west-2:111122223333:subnet/subnet-0cc33333333333333",
        "availability_zone": "us-west-2a",
        "cidr_block": "100.64.64.0/19",
        "vpc_id": "vpc-0a1b2c3d4e5f60718"
    });
    (attrs, outputs)
}

// ---- the tutorial: the EKS user guide's custom networking tutorial (`examples/`).

/// The tutorial's Kubernetes side.
const K8S: &[&str] = &["aws_node.main", "eni_config.pod_a", "eni_config.pod_b"];

// ---- max pods set by the nodegroup: eksnet's launch template

/// The tutorial nodegroup's instance types line, where `max_pods` is added.
const NG_TYPES: &str = "instance_types = [\"t3.medium\"]\n";
/// t3.medium under custom networking: 2 pod ENIs × 5 addresses + 2 = 12 max pods.
fn t3_medium() -> Value {
    json!({"t3.medium": {"max_enis": 3, "ipv4_per_eni": 6, "vcpus": 2, "nitro": true}})
}
fn with_max_pods(n: u32) -> String {
    format!("{NG_TYPES}ami_type = \"AL2023_x86_64_STANDARD\"\nmax_pods = {n}\n")
}
/// The user data eksnet writes for AL2023 and `max_pods = n`, as AWS returns it decoded.
fn al2023_user_data(n: u32) -> String {
    format!(
        "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"//\"\n\n--//\nContent-Type: application/node.eks.aws\n\n---\napiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  kubelet:\n    config:\n      maxPods: {n}\n\n--//--\n"
    )
}
const TEMPLATE_NAME: &str = "eksnet-my-custom-networking-cluster-my-nodegroup";
const TEMPLATE_ID: &str = "lt-0a1b2c3d4e5f60718";

/// The whole tutorial applied with `max_pods = n` on its nodegroup: the launch template at
/// version `version`, the nodegroup on it.
fn tutorial_with_template(n: u32, version: &str) -> Case {
    let template_attrs = json!({
        "name": TEMPLATE_NAME, "max_pods": n, "ami_family": "al2023",
        "user_data": al2023_user_data(n), "tags": {}
    });
    let template_outputs = json!({
        "id": TEMPLATE_ID, "name": TEMPLATE_NAME, "version": version, "latest_version": version
    });
    Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .spec_edit(NG_TYPES, &with_max_pods(n))
        .state_row(
            "launch_template.main",
            json!({"status": "present", "cloud_id": TEMPLATE_NAME, "attrs": template_attrs,
                   "outputs": template_outputs, "dependencies": []}),
        )
        .observed_entry(
            "launch_template.main",
            json!({"cloud_id": TEMPLATE_NAME, "attrs": template_attrs,
                   "outputs": template_outputs,
                   "managed_by": "0f5e3c1a-2b4d-4e6f-8a9b-0c1d2e3f4a5b"}),
        )
        .set_in_both(
            "nodegroup.main",
            "/attrs/launch_template_id",
            json!(TEMPLATE_ID),
        )
        .set_in_both(
            "nodegroup.main",
            "/attrs/launch_template_version",
            json!(version),
        )
        .state_set(
            "nodegroup.main",
            "/attrs/ami_type",
            json!("AL2023_x86_64_STANDARD"),
        )
        .state_set(
            "nodegroup.main",
            "/dependencies",
            json!([
                "vpc.main",
                "iam_role.node",
                "cluster.main",
                "launch_template.main"
            ]),
        )
        .sizing(
            t3_medium(),
            json!({"subnet-0aa11111111111111": 20, "subnet-0bb22222222222222": 27}),
        )
}

/// The tutorial's nodes as a self-managed group instead of its managed nodegroup.
const SELF_MANAGED: &str = "
[self_managed_node_group.main]
cluster_name = \"${cluster.main.name}\"
name = \"my-self-managed-nodes\"
node_role_arn = \"${iam_role.node.arn}\"
subnet_ids = [\"${vpc.main.subnets.PrivateSubnet01.id}\", \"${vpc.main.subnets.PrivateSubnet02.id}\"]
instance_type = \"m5.large\"
ami_type = \"AL2023_x86_64_STANDARD\"
ami_id = \"ami-0123456789abcdef0\"
max_pods = 20
scaling = { min_size = 1, max_size = 3, desired_size = 2 }
";

/// The tutorial's cluster with access entries allowed (`API_AND_CONFIG_MAP`, applied so), which
/// a self-managed group's access entry needs.
fn api_access(c: Case) -> Case {
    c.spec_edit(
        "[cluster.main]\nname = \"my-custom-networking-cluster\"\n",
        "[cluster.main]\nname = \"my-custom-networking-cluster\"\nauthentication_mode = \"API_AND_CONFIG_MAP\"\n",
    )
    .set_in_both(
        "cluster.main",
        "/attrs/authentication_mode",
        json!("API_AND_CONFIG_MAP"),
    )
}

/// The self-managed group as applied with `SELF_MANAGED` (`max_pods` = `n`).
fn self_managed_applied(n: u32) -> Value {
    json!({
        "cluster_name": "my-custom-networking-cluster",
        "name": "my-self-managed-nodes",
        "node_role_arn": "arn:aws:iam::111122223333:role/myCustomNetworkingAmazonEKSNodeRole",
        "subnet_ids": ["subnet-0e1000000000000p1", "subnet-0e2000000000000p2"],
        "instance_type": "m5.large",
        "ami_id": "ami-0123456789abcdef0",
        "ami_family": "al2023",
        "max_pods": n,
        "scaling": {"min_size": 1, "max_size": 3, "desired_size": 2},
        "tags": {}
    })
}

/// The tutorial applied with its nodes from `SELF_MANAGED` at `max_pods = n`.
fn self_managed_case(n: u32) -> Case {
    let outputs = json!({
        "name": "my-self-managed-nodes",
        "launch_template_name": "eksnet-my-custom-networking-cluster-my-self-managed-nodes",
        "instance_profile_name": "my-self-managed-nodes",
    });
    api_access(Case::tutorial())
        .spec_prepend(ALL_APPLIED)
        .spec_append(SELF_MANAGED)
        .state_row(
            "self_managed_node_group.main",
            json!({
                "status": "present", "cloud_id": "my-self-managed-nodes",
                "attrs": self_managed_applied(n), "outputs": outputs,
                "dependencies": ["vpc.main", "iam_role.node", "cluster.main"],
            }),
        )
        .observed_entry(
            "self_managed_node_group.main",
            json!({
                "cloud_id": "my-self-managed-nodes", "attrs": self_managed_applied(n),
                "outputs": outputs, "managed_by": "0f5e3c1a-2b4d-4e6f-8a9b-0c1d2e3f4a5b",
            }),
        )
}

/// The comment of the cases where the whole tutorial is applied.
const ALL_APPLIED: &str = "\
# Golden case: the whole tutorial applied, Kubernetes side included; aws-node env and both
# ENIConfigs match the spec.

";

/// The comment of two of the cases built on [`tutorial_before_k8s`].
const BEFORE_K8S: &str = "\
# Golden case: the tutorial applied before eksnet managed the Kubernetes side; aws-node
# (VPC CNI v1.18.3) has no AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG, the ENIConfigs do not exist.
# The existing nodegroup keeps primary-subnet pod IPs: the plan warns and hints --replace.

";

/// The tutorial's AWS side applied (state serial 31) before eksnet managed its Kubernetes
/// side: aws-node (VPC CNI v1.18.3) has no custom networking settings, and the ENIConfigs do
/// not exist.
/// A state row's `deposed` list: the tutorial's nodegroup under the EKS name `name`, left by
/// an interrupted create-before-destroy replacement.
fn old_nodegroup(name: &str) -> Value {
    json!([{
        "cloud_id": format!("my-custom-networking-cluster/{name}"),
        "attrs": {"cluster_name": "my-custom-networking-cluster", "name": "my-nodegroup"},
        "outputs": {"name": name}
    }])
}

fn tutorial_before_k8s() -> Case {
    Case::tutorial()
        .serial(31)
        .state_without(K8S)
        .with_observed_attr("aws_node.main", "env", json!({}))
        .absent(&["eni_config.pod_a", "eni_config.pod_b"])
}

/// The tutorial without its Kubernetes side (Steps 7 to 9), applied.
fn tutorial_aws_only() -> Case {
    tutorial_before_k8s()
        .spec_cut("# Steps 7 and 9:", "# Step 10:")
        .spec_edit(
            "subnets. eksnet creates it only after the CNI\n\
             # settings and the ENIConfigs of its cluster exist (see `eksnet graph`).\n",
            "subnets.\n",
        )
        .not_looked_up(K8S)
}

/// The applied tutorial on m5.large nodes, with security groups for pods turned on in the
/// spec (`pod_security_groups`, the cluster role's controller policy, a policy for `app=web`).
fn tutorial_with_sgp() -> Case {
    Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .spec_edit(
            "eni_config_label = \"topology.kubernetes.io/zone\"",
            "eni_config_label = \"topology.kubernetes.io/zone\"\npod_security_groups = true",
        )
        .spec_edit(
            "managed_policies = [\"AmazonEKSClusterPolicy\"]",
            "managed_policies = [\"AmazonEKSClusterPolicy\", \"AmazonEKSVPCResourceController\"]",
        )
        .spec_edit(NG_TYPES, "instance_types = [\"m5.large\"]\n")
        .set_in_both(
            "nodegroup.main",
            "/attrs/instance_types",
            json!(["m5.large"]),
        )
        .spec_append(
            r#"
[security_group_policy.web]
cluster_name = "${cluster.main.name}"
pod_selector = { app = "web" }
security_group_ids = ["sg-0a0000000000000b1"]
"#,
        )
        .absent(&["security_group_policy.web"])
        .sizing(
            json!({"m5.large": {"max_enis": 3, "ipv4_per_eni": 10, "vcpus": 2, "nitro": true}}),
            json!({"subnet-0aa11111111111111": 27, "subnet-0bb22222222222222": 27}),
        )
}

/// The applied tutorial with a Karpenter node class (no `max_pods`) and a pool of
/// m5.large/m5.xlarge up to 4 nodes, both new.
fn tutorial_with_karpenter() -> Case {
    Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .spec_append(
            r#"
[karpenter_node_class.default]
cluster_name = "${cluster.main.name}"
role = "${iam_role.node.name}"
subnet_ids = ["${vpc.main.subnets.PrivateSubnet01.id}", "${vpc.main.subnets.PrivateSubnet02.id}"]

[karpenter_node_pool.default]
cluster_name = "${cluster.main.name}"
node_class = "default"
instance_types = ["m5.large", "m5.xlarge"]
limits = { nodes = 4 }
"#,
        )
        .absent(&[
            "karpenter_node_class.default",
            "karpenter_node_pool.default",
        ])
        .sizing(
            json!({
                "t3.medium": {"max_enis": 3, "ipv4_per_eni": 6, "vcpus": 2, "nitro": true},
                "m5.large": {"max_enis": 3, "ipv4_per_eni": 10, "vcpus": 2, "nitro": true},
                "m5.xlarge": {"max_enis": 4, "ipv4_per_eni": 15, "vcpus": 4, "nitro": true},
            }),
            json!({"subnet-0aa11111111111111": 27, "subnet-0bb22222222222222": 27}),
        )
}

/// `security_group_policy.web` as the spec of [`tutorial_with_sgp`] gives it.
fn sgp_attrs() -> Value {
    json!({"cluster_name": "my-custom-networking-cluster", "namespace": "default", "name": "web",
        "security_group_ids": ["sg-0a0000000000000b1"], "pod_selector": {"app": "web"}})
}

/// The tutorial's custom-networking settings on the `vpc-cni` add-on instead of `aws_node`.
const VPC_CNI_ADDON: &str = r#"
# The VPC CNI as the EKS managed add-on, with the tutorial's custom-networking settings.
[addon.vpc_cni]
cluster_name = "${cluster.main.name}"
name = "vpc-cni"
custom_network = true
eni_config_label = "topology.kubernetes.io/zone"
"#;

/// The cluster's name line, where cluster fields are added.
const CLUSTER_NAME_LINE: &str = "name = \"my-custom-networking-cluster\"\n";

/// The tutorial on the add-on path: a cluster without self-managed add-ons, the CNI settings
/// on the `vpc-cni` add-on, CoreDNS as an add-on too.
fn tutorial_addon() -> Case {
    Case::tutorial()
        .spec_cut("# Steps 7 and 9:", "# Step 8:")
        .spec_edit(
            CLUSTER_NAME_LINE,
            "name = \"my-custom-networking-cluster\"\nbootstrap_self_managed_addons = false\n",
        )
        .spec_append(VPC_CNI_ADDON)
        .spec_append(
            r#"
# A Deployment's add-on: created after the nodegroup.
[addon.coredns]
cluster_name = "${cluster.main.name}"
name = "coredns"
"#,
        )
}

// ---- an add-on made elsewhere (`existing = true`), on the demo's cluster

/// The `vpc-cni` add-on someone made with `WARM_IP_TARGET = "5"`, declared as existing with
/// custom networking turned on and the value kept.
const EXISTING_ADDON: &str = r#"
# The VPC CNI add-on made elsewhere (eksctl, Terraform, the console), adopted in place: only
# its configuration values are eksnet's to change, and destroy puts them back.
[addon.vpc_cni]
cluster_name = "${cluster.main.name}"
name = "vpc-cni"
existing = true
custom_network = true

[addon.vpc_cni.configuration_values.env]
WARM_IP_TARGET = "5"
"#;

/// The add-on's configuration values as it was made, and as eksnet sets them.
fn made_values() -> Value {
    json!({"env": {"WARM_IP_TARGET": "5"}})
}
fn merged_values() -> Value {
    json!({"env": {
        "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": "true",
        "ENI_CONFIG_LABEL_DEF": "topology.kubernetes.io/zone",
        "WARM_IP_TARGET": "5"
    }})
}

/// What refresh reads of the add-on with these values: its version and tags too (made
/// elsewhere, not compared), marked `existing`, with the values from before eksnet.
fn existing_addon_observed(values: Value, previous: Value) -> Value {
    json!({
        "cloud_id": "demo/vpc-cni",
        "attrs": {
            "cluster_name": "demo", "name": "vpc-cni", "version": "v1.19.2-eksbuild.1",
            "configuration_values": values,
            "tags": {"alpha.eksctl.io/cluster-name": "demo"},
            "existing": true
        },
        "outputs": {
            "name": "vpc-cni", "cluster_name": "demo",
            "arn": "arn:aws:eks:us-west-2:111122223333:addon/demo/vpc-cni/0ac9d1e2",
            "version": "v1.19.2-eksbuild.1", "status": "ACTIVE",
            "previous_configuration_values": previous
        }
    })
}

/// The demo with the existing add-on found in place, not in the state yet, as it was made.
fn existing_addon_found() -> Case {
    Case::demo().spec_append(EXISTING_ADDON).observed_entry(
        "addon.vpc_cni",
        existing_addon_observed(made_values(), made_values()),
    )
}

/// The demo after the existing add-on's first apply: its values merged, the state keeping
/// those it had before.
fn existing_addon_applied() -> Case {
    with_existing_addon_applied(Case::demo().spec_append(EXISTING_ADDON))
}

/// `case` (whatever its spec) with the state and the add-on of [`existing_addon_applied`].
fn with_existing_addon_applied(case: Case) -> Case {
    let observed = existing_addon_observed(merged_values(), made_values());
    case.state_row(
        "addon.vpc_cni",
        json!({
            "status": "present", "cloud_id": "demo/vpc-cni",
            "attrs": {"cluster_name": "demo", "name": "vpc-cni", "existing": true,
                      "configuration_values": merged_values()},
            "outputs": observed["outputs"].clone(),
            "dependencies": ["cluster.main"]
        }),
    )
    .observed_entry("addon.vpc_cni", observed)
}

// ---- the CNI's own IAM role: EKS Pod Identity and IRSA, on the add-on path

/// The add-on path's `vpc-cni` add-on and CoreDNS as this state applied them (version
/// v1.19.2-eksbuild.1), the `aws_node` patch gone, the cluster made without self-managed
/// add-ons.
fn tutorial_addon_applied() -> Case {
    let cni_values = json!({"env": {
        "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": "true",
        "ENI_CONFIG_LABEL_DEF": "topology.kubernetes.io/zone"
    }});
    let addon = |name: &str, values: Value| {
        let attrs = json!({
            "cluster_name": "my-custom-networking-cluster", "name": name,
            "configuration_values": values, "preserve_on_delete": true,
            "resolve_conflicts_on_create": "OVERWRITE", "resolve_conflicts_on_update": "OVERWRITE",
            "tags": {}
        });
        let outputs = json!({
            "name": name, "cluster_name": "my-custom-networking-cluster",
            "arn": format!("arn:aws:eks:us-west-2:111122223333:addon/my-custom-networking-cluster/{name}/0ac9d1e2"),
            "version": "v1.19.2-eksbuild.1", "status": "ACTIVE"
        });
        let row = json!({"status": "present", "cloud_id": format!("my-custom-networking-cluster/{name}"),
            "attrs": attrs, "outputs": outputs, "dependencies": ["cluster.main"]});
        let live = json!({"cloud_id": format!("my-custom-networking-cluster/{name}"),
            "attrs": {"cluster_name": "my-custom-networking-cluster", "name": name,
                "version": "v1.19.2-eksbuild.1", "configuration_values": attrs["configuration_values"], "tags": {}},
            "outputs": outputs, "managed_by": "0f5e3c1a-2b4d-4e6f-8a9b-0c1d2e3f4a5b"});
        (row, live)
    };
    let (cni_row, cni_live) = addon("vpc-cni", cni_values);
    let (dns_row, dns_live) = addon("coredns", json!({}));
    tutorial_addon()
        .state_without(&["aws_node.main"])
        .not_looked_up(&["aws_node.main"])
        .set_in_both(
            "cluster.main",
            "/attrs/bootstrap_self_managed_addons",
            json!(false),
        )
        .observed_remove("cluster.main", &["/attrs/bootstrap_self_managed_addons"])
        .observed_set(
            "cluster.main",
            "/outputs/oidc_issuer",
            json!("https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"),
        )
        .state_row("addon.vpc_cni", cni_row)
        .observed_entry("addon.vpc_cni", cni_live)
        .state_row("addon.coredns", dns_row)
        .observed_entry("addon.coredns", dns_live)
}

/// The Pod Identity Agent and the CNI's own role, as the production example has them.
const CNI_POD_IDENTITY: &str = r#"
# EKS Pod Identity: the agent, and a role only the VPC CNI uses.
[addon.pod_identity_agent]
cluster_name = "${cluster.main.name}"
name = "eks-pod-identity-agent"

[iam_role.cni]
name = "myCni"
assume_role_service = "pods.eks.amazonaws.com"
managed_policies = ["AmazonEKS_CNI_Policy"]
"#;

/// The `vpc-cni` add-on's line where its Pod Identity association is added.
const CNI_ADDON_NAME: &str = "name = \"vpc-cni\"\n";
const CNI_ASSOCIATION: &str = "name = \"vpc-cni\"\npod_identity_associations = [{ service_account = \"aws-node\", role_arn = \"${iam_role.cni.arn}\" }]\n";
const NODE_POLICIES: &str = r#"managed_policies = ["AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryReadOnly", "AmazonEKS_CNI_Policy"]"#;
const NODE_POLICIES_WITHOUT_CNI: &str =
    r#"managed_policies = ["AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryReadOnly"]"#;

/// The applied add-on path given the CNI a role of its own through Pod Identity; the node
/// role keeps its policies unless the case takes the CNI's off.
fn cni_pod_identity(case: Case) -> Case {
    case.spec_append(CNI_POD_IDENTITY)
        .spec_edit(CNI_ADDON_NAME, CNI_ASSOCIATION)
        .absent(&["addon.pod_identity_agent", "iam_role.cni"])
}

/// IRSA for the CNI: the cluster's OIDC provider and a role for `kube-system:aws-node`.
const CNI_IRSA: &str = r#"
# IRSA: the cluster's OIDC provider and a role only aws-node may assume through it.
[oidc_provider.main]
url = "${cluster.main.oidc_issuer}"

[iam_role.cni_irsa]
name = "myCniIrsa"
assume_role_web_identity = { provider_arn = "${oidc_provider.main.arn}", service_account = "kube-system:aws-node" }
managed_policies = ["AmazonEKS_CNI_Policy"]
"#;

// ---- route tables of the pod subnets

/// The tutorial's pod subnets on a route table of their own, to the stack's first NAT gateway.
const PODS_TABLE: &str = r#"
# The pod subnets' own route table: out of the VPC through the stack's first NAT gateway.
[route_table.pods]
vpc_id = "${vpc.main.id}"
routes = [{ destination = "0.0.0.0/0", nat_gateway_id = "${vpc.main.outputs.NatGateway01}" }]
subnet_ids = ["${subnet.pod_a.id}", "${subnet.pod_b.id}"]
tags = { Name = "pods" }
"#;

/// The route table's attributes and outputs once applied (`routes` to `nat`).
fn pods_table_applied(nat: &str) -> (Value, Value) {
    let attrs = json!({
        "vpc_id": "vpc-0a1b2c3d4e5f60718",
        "routes": [{"destination": "0.0.0.0/0", "nat_gateway_id": nat}],
        "subnet_ids": ["subnet-0aa11111111111111", "subnet-0bb22222222222222"],
        "tags": {"Name": "pods"}
    });
    let outputs = json!({
        "id": "rtb-0b1000000000000f1",
        "vpc_id": "vpc-0a1b2c3d4e5f60718",
        "associations": {"subnet-0aa11111111111111": "rtbassoc-0b100000000000001",
                         "subnet-0bb22222222222222": "rtbassoc-0b100000000000002"},
        "main": false
    });
    (attrs, outputs)
}

/// The whole tutorial applied with [`PODS_TABLE`], its route to the first NAT gateway.
fn tutorial_with_pods_table() -> Case {
    let (attrs, outputs) = pods_table_applied("nat-0a1000000000000e1");
    Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .spec_append(PODS_TABLE)
        .state_row(
            "route_table.pods",
            json!({"status": "present", "cloud_id": "rtb-0b1000000000000f1", "attrs": attrs,
                   "outputs": outputs, "dependencies": ["vpc.main", "subnet.pod_a", "subnet.pod_b"]}),
        )
        .observed_entry(
            "route_table.pods",
            json!({"cloud_id": "rtb-0b1000000000000f1", "attrs": attrs, "outputs": outputs,
                   "managed_by": "0f5e3c1a-2b4d-4e6f-8a9b-0c1d2e3f4a5b"}),
        )
}

/// The first private subnet's NAT table of the stack, adopted for the first pod subnet.
const NODES_TABLE: &str = r#"
# The node subnet's own table in us-west-2a, made by the stack: the pod subnet of that AZ
# joins it, so pods reach what the nodes reach.
[route_table.nodes]
existing = true
id = "rtb-0a1000000000000f1"
subnet_ids = ["${subnet.pod_a.id}"]
"#;

/// How refresh reads the adopted table: its own association (the node subnet's) is not
/// eksnet's, so only the managed subnets show; `pod_a` is associated or not.
fn nodes_table_observed(pod_a: bool, previous: Value) -> Value {
    let (subnets, assoc) = if pod_a {
        (
            json!(["subnet-0aa11111111111111"]),
            json!({"subnet-0aa11111111111111": "rtbassoc-0a100000000000002"}),
        )
    } else {
        (json!([]), json!({}))
    };
    json!({
        "cloud_id": "rtb-0a1000000000000f1",
        "attrs": {"existing": true, "id": "rtb-0a1000000000000f1",
                  "vpc_id": "vpc-0a1b2c3d4e5f60718", "subnet_ids": subnets},
        "outputs": {"id": "rtb-0a1000000000000f1", "vpc_id": "vpc-0a1b2c3d4e5f60718",
                    "associations": assoc, "main": false,
                    "routes": [{"destination": "0.0.0.0/0", "nat_gateway_id": "nat-0a1000000000000e1"}],
                    "previous_subnet_ids": previous}
    })
}

/// The tutorial applied with [`NODES_TABLE`] applied too.
fn tutorial_with_nodes_table_applied() -> Case {
    let observed = nodes_table_observed(true, json!([]));
    Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .spec_append(NODES_TABLE)
        .state_row(
            "route_table.nodes",
            json!({"status": "present", "cloud_id": "rtb-0a1000000000000f1",
                   "attrs": {"existing": true, "id": "rtb-0a1000000000000f1",
                             "subnet_ids": ["subnet-0aa11111111111111"]},
                   "outputs": observed["outputs"].clone(),
                   "dependencies": ["subnet.pod_a"]}),
        )
        .observed_entry("route_table.nodes", observed)
}

/// The tutorial's CNI settings with external SNAT on.
const EXTERNAL_SNAT: &str = "eni_config_label = \"topology.kubernetes.io/zone\"\nenv = { AWS_VPC_K8S_CNI_EXTERNALSNAT = \"true\" }\n";
const LABEL_LINE: &str = "eni_config_label = \"topology.kubernetes.io/zone\"\n";
/// The tutorial's CNI settings with a range outside the VPC excluded from SNAT.
const EXCLUDED_SNAT: &str = "eni_config_label = \"topology.kubernetes.io/zone\"\nenv = { AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS = \"10.20.0.0/16\" }\n";

/// The tutorial's route tables, with `pod_b` associated outside eksnet with the public
/// subnets' table (0.0.0.0/0 to the internet gateway).
fn route_tables_with_pod_b_on_the_public_table() -> Value {
    let mut tables = Case::tutorial().route_tables;
    let public = tables["vpc-0a1b2c3d4e5f60718"][3]["subnet_ids"]
        .as_array_mut()
        .expect("the public table's subnets");
    public.push(json!("subnet-0bb22222222222222"));
    tables
}

/// The demo cluster turned to EKS Auto Mode in place, its role given the Auto Mode policies
/// and the TagSession trust, and a NodeClass with its pool in the demo's pod subnets (the plan
/// counts their /28 prefixes).
fn auto_mode_turned_on() -> Case {
    Case::demo()
        .spec_edit(
            "assume_role_service = \"eks.amazonaws.com\"\nmanaged_policies = [\"AmazonEKSClusterPolicy\"]",
            "assume_role_policy = '{\"Version\": \"2012-10-17\", \"Statement\": [{\"Effect\": \"Allow\", \"Principal\": {\"Service\": \"eks.amazonaws.com\"}, \"Action\": [\"sts:AssumeRole\", \"sts:TagSession\"]}]}'\nmanaged_policies = [\"AmazonEKSClusterPolicy\", \"AmazonEKSComputePolicy\", \"AmazonEKSBlockStoragePolicy\", \"AmazonEKSLoadBalancingPolicy\", \"AmazonEKSNetworkingPolicy\"]",
        )
        .spec_edit("version = \"1.31\"", "version = \"1.31\"\nauto_mode = true")
        .spec_append(
            r#"
[auto_mode_node_class.pods]
cluster_name = "${cluster.main.name}"
name = "custom-networking"
role = "demo-node-role"
subnet_ids = ["subnet-0c1000000000000a1", "subnet-0c2000000000000b2"]
pod_subnet_ids = ["${subnet.pod_a.id}", "${subnet.pod_b.id}"]
pod_security_group_ids = ["sg-0123456789abcdef0"]
node_pool = { instance_types = ["m5.large"], limits = { nodes = 10 } }
"#,
        )
        .absent(&["auto_mode_node_class.pods"])
        .sizing(
            json!({"m5.large": {"max_enis": 3, "ipv4_per_eni": 10, "vcpus": 2, "nitro": true}}),
            json!({}),
        )
}

golden! {
    auto_mode_turned_on_in_place_with_a_node_class: auto_mode_turned_on(),
    // Auto Mode on in AWS and in the state, dropped from the spec: turned off in place.
    auto_mode_dropped_from_the_spec_turns_it_off: Case::demo()
        .set_in_both("cluster.main", "/attrs/auto_mode", json!(true)),
    addon_existing_found_updates_its_values_only: existing_addon_found(),
    addon_existing_found_as_the_spec_has_it_is_recorded: Case::demo()
        .spec_append(EXISTING_ADDON)
        .observed_entry(
            "addon.vpc_cni",
            existing_addon_observed(merged_values(), merged_values()),
        ),
    addon_existing_missing_error: Case::demo()
        .spec_append(EXISTING_ADDON)
        .absent(&["addon.vpc_cni"]),
    addon_existing_applied_no_changes: existing_addon_applied(),
    addon_existing_destroy_puts_its_values_back: existing_addon_applied().destroy(),
    addon_existing_removed_from_spec_puts_its_values_back: with_existing_addon_applied(
        Case::demo()
    ),
    addon_existing_protected_put_back_error: existing_addon_applied()
        .spec_append("\n[addon.vpc_cni.lifecycle]\nprevent_destroy = true\n")
        .destroy(),
    addon_existing_is_another_addon_error: existing_addon_applied()
        .spec_edit("cluster_name = \"${cluster.main.name}\"\nname = \"vpc-cni\"", "cluster_name = \"other\"\nname = \"vpc-cni\""),
    addon_path_first_plan: tutorial_addon()
        .nothing_exists()
        .absent(&["addon.vpc_cni", "addon.coredns"]),
    addon_old_cni_version_error: tutorial_addon()
        .spec_edit(
            "name = \"vpc-cni\"\n",
            "name = \"vpc-cni\"\nversion = \"v1.6.2-eksbuild.1\"\n",
        )
        .nothing_exists()
        .absent(&["addon.vpc_cni", "addon.coredns"]),
    addon_cni_settings_on_another_addon_error: Case::tutorial().spec_append(
        r#"
[addon.coredns]
cluster_name = "${cluster.main.name}"
name = "coredns"
custom_network = true
"#,
    ),
    addon_env_value_not_a_string_error: tutorial_addon().spec_append(
        "[addon.vpc_cni.configuration_values.env]\nWARM_IP_TARGET = 5\n",
    ),
    aws_node_and_vpc_cni_addon_error: Case::tutorial().spec_append(VPC_CNI_ADDON),
    aws_node_on_a_cluster_without_self_managed_addons_error: Case::tutorial()
        .spec_edit(
            CLUSTER_NAME_LINE,
            "name = \"my-custom-networking-cluster\"\nbootstrap_self_managed_addons = false\n",
        )
        .nothing_exists(),
    aws_node_on_a_cluster_with_the_addon_error: Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .observed_set(
            "cluster.main",
            "/outputs/vpc_cni_addon",
            json!("v1.19.2-eksbuild.1"),
        ),
    // The add-on path's spec on a cluster that was created with EKS's default.
    cluster_create_only_field_changed_warns: tutorial_addon()
        .spec_prepend(ALL_APPLIED)
        .absent(&["addon.vpc_cni", "addon.coredns"]),
    adopted_vpc_differs_error: Case::demo().spec_edit(
        r#"cidr_block = "192.168.0.0/24""#,
        r#"cidr_block = "192.168.8.0/24""#,
    ),
    adopted_vpc_first_plan: demo_first_plan(),
    adopted_vpc_missing_error: Case::demo().nothing_exists(),
    all_creates_example: tutorial_aws_only().nothing_exists(),
    az_coverage_error: Case::demo()
        .spec_edit(
            r#"availability_zone = "us-west-2b""#,
            r#"availability_zone = "us-west-2a""#,
        )
        .state_without(&["subnet.pod_a", "subnet.pod_b"])
        .absent(&["subnet.pod_a", "subnet.pod_b"])
        .remove_in_both("vpc.main", DEMO_POD_SUBNET_OUTPUTS),
    cidr_change_forces_replacement: Case::demo().spec_edit(
        r#"cidr_block = "100.64.32.0/19""#,
        r#"cidr_block = "100.64.64.0/19""#,
    ),
    creating_row_found_is_adopted: Case::demo()
        .state_set("cluster.main", "/status", json!("creating"))
        .state_set("cluster.main", "/cloud_id", Value::Null)
        .state_set("cluster.main", "/outputs", json!({})),
    deleted_outside_eksnet_recreates: Case::demo().absent(&["subnet.pod_b"]),
    destroy_reverse_order: Case::demo().destroy(),
    drift_outside_eksnet: Case::demo().with_observed_attr(
        "subnet.pod_a",
        "tags",
        json!({
            "Name": "edited-by-hand",
            "kubernetes.io/role/internal-elb": "1",
            "owner": "someone"
        }),
    ),
    example_applied_no_changes: tutorial_aws_only(),
    example_template_edit_updates_stack: tutorial_aws_only().state_text_edit(
        "vpc.main",
        "/attrs/template_body",
        "GroupDescription: Cluster communication with worker nodes",
        "GroupDescription: Cluster communication",
    ),
    interrupted_run_tagged_resource_adopted: Case::demo().state_without(&["subnet.pod_b"]),
    k8s_cluster_not_yet_existing: Case::tutorial().nothing_exists(),
    k8s_cni_too_old: tutorial_before_k8s()
        .spec_prepend(
            "\
# Golden case: aws-node runs VPC CNI v1.6.2, older than the 1.6.3-eksbuild.2 custom
# networking needs: the plan fails and says what to upgrade.

",
        )
        .observed_set(
            "aws_node.main",
            "/outputs/image",
            json!("602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni:v1.6.2"),
        )
        .observed_set("aws_node.main", "/outputs/cni_version", json!("v1.6.2")),
    k8s_custom_networking_on_existing_nodegroup: tutorial_before_k8s().spec_prepend(BEFORE_K8S),
    k8s_missing_cluster_security_group: tutorial_before_k8s()
        .spec_prepend(
            "\
# Golden case: the cluster exists but DescribeCluster returned no clusterSecurityGroupId, and
# the ENIConfigs leave `security_group_ids` to default to it: the plan asks for explicit groups.

",
        )
        .remove_in_both("cluster.main", &["/outputs/cluster_security_group_id"]),
    k8s_missing_eniconfig_for_nodegroup_az: Case::tutorial()
        .spec_prepend(
            "\
# Golden case: the nodegroup runs in us-west-2a and us-west-2b (subnet AZs from the VPC's
# outputs), but only the ENIConfig `us-west-2a` is declared: label mode would leave nodes in
# us-west-2b without an ENIConfig.

",
        )
        .spec_edit(
            "[eni_config.pod_a]\ncluster_name = \"${cluster.main.name}\"\n",
            "[eni_config.pod_a]\ncluster_name = \"${cluster.main.name}\"\nname = \"us-west-2a\"\n",
        )
        .spec_cut("[eni_config.pod_b]", "[iam_role.node]")
        .serial(31)
        .state_without(&["eni_config.pod_b"])
        .not_looked_up(&["eni_config.pod_b"]),
    k8s_new_pod_subnet_with_a_literal_az: Case::tutorial().spec_prepend(ALL_APPLIED).spec_append(
        r#"
# A third pod subnet with its AZ written out: its ENIConfig's default name is that AZ,
# shown in the plan rather than "known after apply".
[subnet.pod_c]
vpc_id = "${vpc.main.id}"
cidr_block = "192.168.1.64/27"
availability_zone = "us-west-2c"

[eni_config.pod_c]
cluster_name = "${cluster.main.name}"
subnet_id = "${subnet.pod_c.id}"
"#,
    ),
    k8s_no_changes: Case::tutorial().spec_prepend(ALL_APPLIED),
    k8s_replaced_cluster_takes_its_nodegroup: Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .spec_prepend(
            "\
# --replace cluster.main: its nodegroup, whose cluster_name refers to it, is replaced with it
# even though the name stays the same (a cluster is deleted with its nodegroups).
",
        )
        .replace(&["cluster.main"]),
    k8s_two_eniconfigs_same_name: tutorial_before_k8s().spec_prepend(BEFORE_K8S).spec_append(
        r#"
# A second ENIConfig whose name resolves to the same object as eni_config.pod_a's default
# (the AZ of subnet.pod_a): it would overwrite it.
[eni_config.dup]
cluster_name = "${cluster.main.name}"
subnet_id = "${subnet.pod_a.id}"
name = "us-west-2a"
"#,
    ),
    // The autoscaler took the nodegroup down to 1 node; the spec leaves desired_size alone.
    lifecycle_ignore_changes_keeps_the_autoscalers_desired_size: Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .spec_append(
            "\n[nodegroup.main.lifecycle]\nignore_changes = [\"scaling.desired_size\"]\n",
        )
        .observed_set("nodegroup.main", "/attrs/scaling/desired_size", json!(1)),
    // The same without `ignore_changes`: apply would set it back to 2.
    lifecycle_without_ignore_changes_sets_desired_size_back: Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .observed_set("nodegroup.main", "/attrs/scaling/desired_size", json!(1)),
    // max_size raised in the spec: the update keeps the live desired_size.
    lifecycle_ignore_changes_update_keeps_the_live_value: Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .spec_append(
            "scaling = { min_size = 1, max_size = 4, desired_size = 2 }\n\n[nodegroup.main.lifecycle]\nignore_changes = [\"scaling.desired_size\"]\n",
        )
        .observed_set("nodegroup.main", "/attrs/scaling/desired_size", json!(1)),
    // A change that forces replacement, on an ignored attribute: nothing happens.
    lifecycle_ignore_changes_on_a_force_new_attribute: Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .spec_edit(
            "instance_types = [\"t3.medium\"]",
            "instance_types = [\"m5.large\"]\nlifecycle = { ignore_changes = [\"instance_types\"] }",
        ),
    lifecycle_ignore_changes_bad_paths_error: Case::tutorial().spec_append(
        "\n[nodegroup.main.lifecycle]\nignore_changes = [\"scaling.desired_size\", \"desired_size\", \"name\", \"disk_size.gib\", \"scaling..max\", \"scaling.desired_size\"]\n",
    ),
    lifecycle_unknown_key_error: Case::tutorial()
        .spec_append("\n[nodegroup.main.lifecycle]\nprevent_destory = true\n"),
    lifecycle_prevent_destroy_refuses_a_forced_replace: Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .spec_edit(
            "instance_types = [\"t3.medium\"]",
            "instance_types = [\"m5.large\"]\nlifecycle = { prevent_destroy = true }",
        ),
    lifecycle_prevent_destroy_refuses_destroy: Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .spec_append("\n[nodegroup.main.lifecycle]\nprevent_destroy = true\n")
        .destroy(),
    // The block is gone from the spec, but the state row still says protected.
    lifecycle_prevent_destroy_in_the_state_protects_a_removed_block: Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .spec_cut("# Step 11:", "instance_types = [\"t3.medium\"]\n")
        .spec_edit("instance_types = [\"t3.medium\"]\n", "")
        .state_set("nodegroup.main", "/prevent_destroy", json!(true)),
    // Lifted in the spec: the state's flag no longer protects it.
    lifecycle_prevent_destroy_lifted_in_the_spec: Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .spec_append("\n[nodegroup.main.lifecycle]\nprevent_destroy = false\n")
        .state_set("nodegroup.main", "/prevent_destroy", json!(true))
        .replace(&["nodegroup.main"]),
    // A field that forces replacement: the new nodegroup comes first (`+/-`), named
    // `my-nodegroup-cbd` while the old one holds `my-nodegroup`.
    nodegroup_replaced_create_before_destroy: Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .spec_edit("instance_types = [\"t3.medium\"]", "instance_types = [\"m5.large\"]"),
    // The node role is renamed (replaced destroy-first): the old nodegroup must go before
    // the old role can, so the nodegroup is replaced destroy-first too, with a warning.
    nodegroup_destroy_first_when_its_role_is_replaced: Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .spec_edit(
            "name = \"myCustomNetworkingAmazonEKSNodeRole\"",
            "name = \"myCustomNetworkingAmazonEKSNodeRole2\"",
        ),
    // A crash after the replacement's intent was stored, before its create was sent: the
    // state names the new nodegroup's id and the old one; the new one is created (under the
    // name next to the old one's) and the old one deleted after.
    nodegroup_replacement_resumed_before_its_create: Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .state_set("nodegroup.main", "/status", json!("creating"))
        .state_set(
            "nodegroup.main",
            "/cloud_id",
            json!("my-custom-networking-cluster/my-nodegroup-cbd"),
        )
        .state_set(
            "nodegroup.main",
            "/deposed",
            old_nodegroup("my-nodegroup"),
        )
        .absent(&["nodegroup.main"]),
    // A crash after the new nodegroup was recorded, before the old one was deleted: nothing
    // to change, one old object to destroy.
    nodegroup_replacement_left_its_old_nodegroup: Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .state_set(
            "nodegroup.main",
            "/cloud_id",
            json!("my-custom-networking-cluster/my-nodegroup-cbd"),
        )
        .state_set(
            "nodegroup.main",
            "/deposed",
            old_nodegroup("my-nodegroup"),
        )
        .observed_set(
            "nodegroup.main",
            "/cloud_id",
            json!("my-custom-networking-cluster/my-nodegroup-cbd"),
        ),
    // Destroy deletes the old object too.
    nodegroup_destroy_deletes_what_a_replacement_left: Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .state_set(
            "nodegroup.main",
            "/deposed",
            old_nodegroup("my-nodegroup-cbd"),
        )
        .destroy(),
    // A self-managed group beside the tutorial's: one create, ordered like the nodegroup
    // (after the CNI settings and the ENIConfigs), sized at max_size with its max pods.
    self_managed_group_created: api_access(Case::tutorial())
        .spec_prepend(ALL_APPLIED)
        .spec_append(SELF_MANAGED)
        .absent(&["self_managed_node_group.main"]),
    // Sized beside the managed nodegroup: m5.large under custom networking (2 pod ENIs of
    // 9 slots: 20 max pods), counted at max_size 3.
    self_managed_group_sized: api_access(Case::tutorial())
        .spec_prepend(ALL_APPLIED)
        .spec_append(SELF_MANAGED)
        .absent(&["self_managed_node_group.main"])
        .sizing(
            json!({"t3.medium": {"max_enis": 3, "ipv4_per_eni": 6, "vcpus": 2, "nitro": true},
                "m5.large": {"max_enis": 3, "ipv4_per_eni": 10, "vcpus": 2, "nitro": true}}),
            json!({"subnet-0aa11111111111111": 27, "subnet-0bb22222222222222": 27}),
        ),
    // One pod more than the two pod ENIs of m5.large hold under custom networking: refused.
    self_managed_group_max_pods_over_custom_networking: api_access(Case::tutorial())
        .spec_prepend(ALL_APPLIED)
        .spec_append(&SELF_MANAGED.replace("max_pods = 20", "max_pods = 21"))
        .absent(&["self_managed_node_group.main"])
        .sizing(
            json!({"t3.medium": {"max_enis": 3, "ipv4_per_eni": 6, "vcpus": 2, "nitro": true},
                "m5.large": {"max_enis": 3, "ipv4_per_eni": 10, "vcpus": 2, "nitro": true}}),
            json!({"subnet-0aa11111111111111": 27, "subnet-0bb22222222222222": 27}),
        ),
    // As applied: nothing to do.
    self_managed_group_no_changes: self_managed_case(20),
    // New max pods means new instances: a new group first (`+/-`), named
    // `my-self-managed-nodes-cbd` while the old one holds the name.
    self_managed_group_replaced_create_before_destroy: self_managed_case(17),
    // Max pods past what the ENIs of m5.large can ever hold: refused before any call.
    self_managed_group_max_pods_over_the_enis: api_access(Case::tutorial())
        .spec_prepend(ALL_APPLIED)
        .spec_append(&SELF_MANAGED.replace("max_pods = 20", "max_pods = 900")),
    // The cluster runs with access entries only (API): back to API_AND_CONFIG_MAP is refused,
    // EKS moves the mode forward only.
    authentication_mode_going_back_error: api_access(Case::tutorial())
        .spec_prepend(ALL_APPLIED)
        .set_in_both("cluster.main", "/attrs/authentication_mode", json!("API")),
    // CONFIG_MAP (EKS's default, never set in the spec) to API_AND_CONFIG_MAP: in place.
    authentication_mode_opened_to_access_entries: api_access(Case::tutorial())
        .spec_prepend(ALL_APPLIED)
        .set_in_both("cluster.main", "/attrs/authentication_mode", json!("CONFIG_MAP")),
    no_changes: Case::demo(),
    policy_format_differences_no_change: Case::demo()
        .spec_edit("assume_role_service = \"eks.amazonaws.com\"\n", TWO_SERVICE_POLICY)
        .set_in_both(
            "iam_role.cluster",
            "/attrs/assume_role_policy/Statement/0/Principal/Service",
            json!(["ec2.amazonaws.com", "eks.amazonaws.com"]),
        ),
    removed_from_spec_deletes: {
        let (attrs, outputs) = pod_c_attrs_and_outputs();
        Case::demo()
            .state_row(
                "subnet.pod_c",
                json!({
                    "status": "present",
                    "cloud_id": "subnet-0cc33333333333333",
                    "attrs": attrs,
                    "outputs": outputs,
                    "dependencies": ["vpc.main", "cidr_block.pods"]
                }),
            )
            .observed_entry(
                "subnet.pod_c",
                json!({
                    "cloud_id": "subnet-0cc33333333333333",
                    "attrs": attrs,
                    "outputs": outputs,
                    "managed_by": "0f5e3c1a-2b4d-4e6f-8a9b-0c1d2e3f4a5b"
                }),
            )
    },
    replace_option: Case::demo().replace(&["subnet.pod_a"]),
    replace_unknown_address_error: Case::demo().replace(&["subnet.nope"]),
    replaced_block_cascades_to_its_subnets: Case::demo()
        .spec_prepend(
            "\
# The secondary block shrinks from /16 to /17 (a replacement); both pod subnets are unchanged
# and fit in either range, but AWS cannot disassociate a block with subnets in it: the subnets
# must be replaced with it.
",
        )
        .spec_edit(
            r#"cidr_block = "100.64.0.0/16""#,
            r#"cidr_block = "100.64.0.0/17""#,
        ),
    // Applied: the VPC and the secondary block, then 100.66.0.0/16 (serial 4); since then
    // 100.64.0.0/16 was associated outside eksnet.
    replaced_block_overlaps_live_block: pods_in_100_64_128(Case::demo())
        .spec_prepend(
            "\
# The secondary block is changed (replace) to a range that overlaps a block added outside eksnet;
# its own old range must not count as an overlap.
",
        )
        .serial(4)
        .state_without(&["subnet.pod_a", "subnet.pod_b", "iam_role.cluster", "cluster.main"])
        .absent(&["subnet.pod_a", "subnet.pod_b", "iam_role.cluster", "cluster.main"])
        .set_in_both(
            "vpc.main",
            "/outputs/cidr_blocks",
            json!(["192.168.0.0/24", "100.66.0.0/16", "100.64.0.0/16"]),
        )
        .remove_in_both("vpc.main", DEMO_POD_SUBNET_OUTPUTS)
        .set_in_both("cidr_block.pods", "/cloud_id", json!("vpc-cidr-assoc-0pods"))
        .set_in_both("cidr_block.pods", "/attrs/cidr_block", json!("100.66.0.0/16"))
        .set_in_both("cidr_block.pods", "/outputs/association_id", json!("vpc-cidr-assoc-0pods"))
        .set_in_both("cidr_block.pods", "/outputs/cidr_block", json!("100.66.0.0/16"))
        .observed_set("cidr_block.pods", "/managed_by", Value::Null),
    // 100.64.0.0/16 is associated outside eksnet.
    secondary_block_overlaps_live_block: pods_in_100_64_128(demo_first_plan()).observed_set(
        "vpc.main",
        "/outputs/cidr_blocks",
        json!(["192.168.0.0/24", "100.64.0.0/16"]),
    ),
    // The spec does not say the VPC's primary block, so only the plan can apply the VPC
    // guide's association table: 10.64.0.0/16 beside the live 192.168.0.0/24 is refused.
    secondary_block_refused_beside_live_primary: demo_first_plan()
        .spec_edit("cidr_block = \"192.168.0.0/24\"\n", "")
        .spec_edit(r#"cidr_block = "100.64.0.0/16""#, r#"cidr_block = "10.64.0.0/16""#)
        .spec_edit(r#"cidr_block = "100.64.0.0/19""#, r#"cidr_block = "10.64.0.0/19""#)
        .spec_edit(r#"cidr_block = "100.64.32.0/19""#, r#"cidr_block = "10.64.32.0/19""#),
    // A cluster subnet AWS reports in a Local Zone: EKS puts no control plane ENI there.
    cluster_subnet_in_a_live_local_zone: demo_first_plan().observed_set(
        "vpc.main",
        "/outputs/subnet_azs/subnet-0c2000000000000b2",
        json!("us-west-2-lax-1a"),
    ),
    // Two cluster subnets AWS reports in one AZ: CreateCluster wants two AZs.
    cluster_subnets_in_one_live_az: demo_first_plan().observed_set(
        "vpc.main",
        "/outputs/subnet_azs/subnet-0c2000000000000b2",
        json!("us-west-2a"),
    ),
    set_in_another_order_is_no_change: Case::demo()
        .spec_edit(
            "# Adopted VPC with its cluster subnets; a secondary block and two pod subnets; a cluster.\n",
            "\
# The cluster is updated for its tags; its subnet_ids, the same set in another order than
# AWS returns, must not be shown (or sent) as a change.
",
        )
        .spec_edit(
            r#"subnet_ids = ["subnet-0c1000000000000a1", "subnet-0c2000000000000b2"]"#,
            r#"subnet_ids = ["subnet-0c2000000000000b2", "subnet-0c1000000000000a1"]"#,
        )
        .spec_edit(
            "version = \"1.31\"\n",
            "version = \"1.31\"\ntags = { team = \"platform\" }\n",
        ),
    // Node sizing of the applied tutorial: t3.medium under custom networking, free addresses
    // as DescribeSubnets reported them.
    sizing_tutorial_applied: Case::tutorial().spec_prepend(ALL_APPLIED).sizing(
        json!({"t3.medium": {"max_enis": 3, "ipv4_per_eni": 6, "vcpus": 2, "nitro": true}}),
        json!({"subnet-0aa11111111111111": 20, "subnet-0bb22222222222222": 27}),
    ),
    // Two instance types with different max pods (EKS uses the lowest) and a max_size the
    // /27 pod subnets cannot hold.
    sizing_mixed_types_and_shortfall: Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .spec_edit(
            "instance_types = [\"t3.medium\"]",
            "instance_types = [\"t3.medium\", \"m5.large\"]\nscaling = { min_size = 1, max_size = 8, desired_size = 2 }",
        )
        .sizing(
            json!({
                "t3.medium": {"max_enis": 3, "ipv4_per_eni": 6, "vcpus": 2, "nitro": true},
                "m5.large": {"max_enis": 3, "ipv4_per_eni": 10, "vcpus": 2, "nitro": true}
            }),
            json!({"subnet-0aa11111111111111": 27, "subnet-0bb22222222222222": 27}),
        ),
    // Prefix delegation on m5.24xlarge: max pods capped at 250, supply in /28 prefixes.
    sizing_prefix_delegation_caps_and_counts_prefixes: Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .spec_edit(
            "eni_config_label = \"topology.kubernetes.io/zone\"",
            "eni_config_label = \"topology.kubernetes.io/zone\"\nenv = { ENABLE_PREFIX_DELEGATION = \"true\" }",
        )
        .spec_edit("instance_types = [\"t3.medium\"]", "instance_types = [\"m5.24xlarge\"]")
        .sizing(
            json!({"m5.24xlarge": {"max_enis": 15, "ipv4_per_eni": 50, "vcpus": 96, "nitro": true}}),
            json!({"subnet-0aa11111111111111": 27, "subnet-0bb22222222222222": 27}),
        ),
    // The cluster's other node sources (a cluster the spec only reads has them): the spec's
    // own nodegroup read again is counted once; an Auto Scaling group at its max size; a
    // Karpenter pool where its nodes run, with a warning; a type with unknown limits left out,
    // with a warning.
    sizing_node_sources_outside_the_spec: Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .sizing(
            json!({
                "t3.medium": {"max_enis": 3, "ipv4_per_eni": 6, "vcpus": 2, "nitro": true},
                "m5.large": {"max_enis": 3, "ipv4_per_eni": 10, "vcpus": 2, "nitro": true}
            }),
            json!({"subnet-0aa11111111111111": 200, "subnet-0bb22222222222222": 27}),
        )
        .outside(json!({"my-custom-networking-cluster": [
            {"label": "managed nodegroup `my-nodegroup`", "nodegroup": "my-nodegroup",
             "max_size": 2, "azs": ["us-west-2a", "us-west-2b"], "instance_types": ["t3.medium"],
             "nodes_per_az": {"us-west-2a": 1, "us-west-2b": 1}},
            {"label": "Auto Scaling group `self-managed`", "nodegroup": null, "max_size": 4,
             "azs": ["us-west-2a", "us-west-2b"], "instance_types": ["t3.medium"],
             "nodes_per_az": {"us-west-2a": 1}},
            {"label": "Karpenter node pool `default`", "nodegroup": null, "max_size": null,
             "azs": ["us-west-2a"], "instance_types": ["m5.large"],
             "nodes_per_az": {"us-west-2a": 2}},
            {"label": "unknown owner", "nodegroup": null, "max_size": null,
             "azs": ["us-west-2b"], "instance_types": ["x9.huge"],
             "nodes_per_az": {"us-west-2b": 1}}
        ]})),
    // Security groups for pods turned on for the applied tutorial (nodes of m5.large): the CNI
    // gets ENABLE_POD_ENI, the cluster role the controller's policy, the policy is created
    // and the plan says whose groups its own replace; the trunk leaves m5.large 11 pods.
    sgp_turned_on_counts_the_trunk: tutorial_with_sgp(),
    // Karpenter on the applied tutorial: the node class and pool come after the CNI settings
    // and ENIConfigs; the class gets max pods 20 (m5.large under custom networking, where
    // Karpenter's own count would say 29), the pool's 4 nodes are counted in the pod subnets,
    // and m5.xlarge's lost pods are named.
    karpenter_class_gets_the_smallest_types_max_pods: tutorial_with_karpenter(),
    // A `max_pods` m5.large's ENIs cannot hold under custom networking is refused.
    karpenter_max_pods_above_what_the_enis_hold_error: tutorial_with_karpenter().spec_edit(
        "subnet_ids = [\"${vpc.main.subnets.PrivateSubnet01.id}\", \"${vpc.main.subnets.PrivateSubnet02.id}\"]\n\n[karpenter_node_pool",
        "subnet_ids = [\"${vpc.main.subnets.PrivateSubnet01.id}\", \"${vpc.main.subnets.PrivateSubnet02.id}\"]\nmax_pods = 29\n\n[karpenter_node_pool",
    ),
    // The same once applied: nothing to do, and no word about the groups again.
    sgp_applied_no_changes: tutorial_with_sgp()
        .set_in_both("aws_node.main", "/attrs/env/ENABLE_POD_ENI", json!("true"))
        .set_in_both(
            "iam_role.cluster",
            "/attrs/managed_policy_arns",
            json!(["arn:aws:iam::aws:policy/AmazonEKSClusterPolicy", "arn:aws:iam::aws:policy/AmazonEKSVPCResourceController"]),
        )
        .state_row("security_group_policy.web", json!({
            "status": "present", "cloud_id": "my-custom-networking-cluster/default/web",
            "attrs": sgp_attrs(), "outputs": {"name": "web", "namespace": "default"},
            "dependencies": ["cluster.main"]
        }))
        .observed_entry("security_group_policy.web", json!({
            "cloud_id": "my-custom-networking-cluster/default/web",
            "attrs": sgp_attrs(), "outputs": {"name": "web", "namespace": "default"},
            "managed_by": "0f5e3c1a-2b4d-4e6f-8a9b-0c1d2e3f4a5b"
        })),
    // Before the first apply: counted from the CIDRs.
    sizing_first_plan_from_the_cidrs: Case::tutorial().nothing_exists().sizing(
        json!({"t3.medium": {"max_enis": 3, "ipv4_per_eni": 6, "vcpus": 2, "nitro": true}}),
        json!({}),
    ),
    // max_pods on a new nodegroup: eksnet makes a launch template with the kubelet setting
    // (AL2023 NodeConfig), and the nodegroup is created on its id and version.
    max_pods_first_plan_makes_a_launch_template: Case::tutorial()
        .nothing_exists()
        .spec_edit(NG_TYPES, &with_max_pods(10))
        .sizing(t3_medium(), json!({})),
    // More than the ENIs of t3.medium can give under custom networking (12): refused at plan.
    max_pods_above_what_the_enis_give_error: Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .spec_edit(NG_TYPES, &with_max_pods(13))
        .sizing(t3_medium(), json!({})),
    max_pods_applied_no_changes: tutorial_with_template(10, "1"),
    // A new max_pods: a new version of the template, and the nodegroup moved to it.
    max_pods_change_makes_a_new_version_and_updates_the_nodegroup: tutorial_with_template(10, "1")
        .spec_edit("max_pods = 10", "max_pods = 8"),
    // max_pods dropped: EKS cannot take a nodegroup off its launch template, so it is
    // replaced (create-before-destroy), and the template deleted.
    max_pods_removed_replaces_the_nodegroup_and_deletes_its_template: tutorial_with_template(10, "1")
        .spec_edit(&with_max_pods(10), NG_TYPES),
    // A tag on the nodegroup: on its template too, but no new version, so the nodegroup's
    // version stays known.
    max_pods_tag_change_updates_the_template_without_a_new_version: tutorial_with_template(10, "1")
        .spec_edit(
            &with_max_pods(10),
            &format!("{}tags = {{ team = \"platform\" }}\n", with_max_pods(10)),
        ),
    // `--replace launch_template.main`: a new template beside the old one (`-cbd`), and the
    // nodegroup, which cannot change templates, replaced onto it; both create-before-destroy.
    max_pods_template_replaced_takes_its_nodegroup: tutorial_with_template(10, "1")
        .replace(&["launch_template.main"]),
    // max_pods set on a nodegroup made without a template: replaced, onto the new template.
    max_pods_set_on_an_existing_nodegroup_replaces_it: Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .spec_edit(NG_TYPES, &with_max_pods(10))
        .absent(&["launch_template.main"])
        .sizing(t3_medium(), json!({"subnet-0aa11111111111111": 20, "subnet-0bb22222222222222": 27})),
    tag_change_updates_in_place: Case::demo()
        .spec_edit(r#"Name = "pods-a","#, r#"Name = "pods-a-v2","#),
    tag_resolves_to_a_list: demo_first_plan()
        .spec_prepend(
            "# A tag referencing a list output (the VPC's blocks) cannot become a tag value.\n",
        )
        .spec_edit(
            r#"tags = { Name = "pods-a", "kubernetes.io/role/internal-elb" = "1" }"#,
            r#"tags = { Name = "pods-a", blocks = "${vpc.main.cidr_blocks}" }"#,
        ),
    route_table_first_plan_creates_it: Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .spec_append(PODS_TABLE)
        .absent(&["route_table.pods"]),
    route_table_applied_no_changes: tutorial_with_pods_table(),
    route_table_route_changed_updates_in_place: tutorial_with_pods_table().spec_edit(
        "NatGateway01",
        "NatGateway02",
    ),
    route_table_destroy_disassociates_and_deletes: tutorial_with_pods_table().destroy(),
    route_table_existing_first_plan_associates_a_pod_subnet: Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .spec_append(NODES_TABLE)
        .observed_entry("route_table.nodes", nodes_table_observed(false, json!([]))),
    route_table_existing_applied_no_changes: tutorial_with_nodes_table_applied(),
    route_table_existing_removed_puts_the_association_back: tutorial_with_nodes_table_applied()
        .spec_edit(NODES_TABLE, ""),
    route_table_existing_missing_error: Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .spec_append(NODES_TABLE)
        .absent(&["route_table.nodes"]),
    route_table_external_snat_on_the_main_table_warns: Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .spec_edit(LABEL_LINE, EXTERNAL_SNAT),
    route_table_external_snat_with_a_nat_route_is_quiet: tutorial_with_pods_table()
        .spec_edit(LABEL_LINE, EXTERNAL_SNAT),
    // Traffic to 10.20.0.0/16 keeps the pods' addresses and leaves from the pod subnets,
    // whose main table does not route it; the pods' own table routes 0.0.0.0/0 and with it
    // 10.20.0.0/16.
    route_table_excluded_snat_range_not_routed_warns: Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .spec_edit(LABEL_LINE, EXCLUDED_SNAT),
    route_table_excluded_snat_range_routed_is_quiet: tutorial_with_pods_table()
        .spec_edit(LABEL_LINE, EXCLUDED_SNAT),
    // 100.66.0.0/16 is a block AWS reports for the VPC that the spec does not write.
    route_table_route_inside_a_live_block_error: Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .spec_append(&PODS_TABLE.replace(
            r#"routes = [{ destination = "0.0.0.0/0", nat_gateway_id = "${vpc.main.outputs.NatGateway01}" }]"#,
            r#"routes = [{ destination = "100.66.1.0/24", nat_gateway_id = "${vpc.main.outputs.NatGateway01}" }]"#,
        ))
        .absent(&["route_table.pods"])
        .observed_set(
            "vpc.main",
            "/outputs/cidr_blocks",
            json!(["192.168.0.0/24", "192.168.1.0/24", "100.66.0.0/16"]),
        ),
    route_table_subnet_in_a_table_outside_eksnet: Case::tutorial()
        .spec_prepend(ALL_APPLIED)
        .spec_edit(LABEL_LINE, EXTERNAL_SNAT)
        .route_tables(route_tables_with_pod_b_on_the_public_table()),
    untagged_existing_resource_error: Case::demo()
        .state_without(&["subnet.pod_a", "subnet.pod_b"])
        .observed_set("subnet.pod_a", "/managed_by", json!("9d9d9d9d-other-lineage"))
        .observed_remove("subnet.pod_b", &["/managed_by"]),
    cni_pod_identity_moves_the_cni_policy_off_the_node_role: cni_pod_identity(tutorial_addon_applied())
        .spec_edit(NODE_POLICIES, NODE_POLICIES_WITHOUT_CNI),
    cni_pod_identity_with_the_policy_still_on_the_node_role_warns: cni_pod_identity(
        tutorial_addon_applied()
    ),
    cni_pod_identity_role_not_trusting_pod_identity_error: cni_pod_identity(tutorial_addon_applied())
        .spec_edit(
            "assume_role_service = \"pods.eks.amazonaws.com\"",
            "assume_role_service = \"ec2.amazonaws.com\"",
        ),
    cni_pod_identity_without_the_agent_error: cni_pod_identity(tutorial_addon_applied())
        .spec_cut("[addon.pod_identity_agent]", "[iam_role.cni]"),
    cni_irsa_role_trust_known_after_apply: tutorial_addon_applied()
        .spec_append(CNI_IRSA)
        .spec_edit(
            CNI_ADDON_NAME,
            "name = \"vpc-cni\"\nservice_account_role_arn = \"${iam_role.cni_irsa.arn}\"\n",
        )
        .spec_edit(NODE_POLICIES, NODE_POLICIES_WITHOUT_CNI)
        .absent(&["oidc_provider.main", "iam_role.cni_irsa"]),
}

fn listed(dir: &Path, keep: impl Fn(&Path) -> Option<String>) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter_map(|p| keep(&p))
        .collect();
    names.sort();
    names
}

/// Every snapshot has its case and every case its snapshot; `tests/golden/` holds only the
/// shared bases.
#[test]
fn every_case_has_a_test() {
    let mut cases: Vec<String> = CASES.iter().map(|c| c.to_string()).collect();
    cases.sort();
    let snaps = listed(&snapshots::snapshot_dir(), |p| {
        let name = p.file_name()?.to_str()?;
        Some(
            name.strip_prefix("planner_golden__")?
                .strip_suffix(".snap")?
                .to_string(),
        )
    });
    assert_eq!(
        snaps, cases,
        "tests/snapshots/planner_golden__*.snap vs the cases in golden!"
    );
    let dirs = listed(&package_dir().join("tests/golden"), |p| {
        p.is_dir().then(|| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
    });
    assert_eq!(
        dirs,
        ["shared"],
        "tests/golden/ holds the shared bases only; a case is built in golden!"
    );
}
