//! The VPC CNI's own concepts, in one place: its settings live either in the `vpc-cni` EKS
//! add-on's configuration values or in a patch of the self-managed `aws-node` DaemonSet
//! (`aws_node`), never both on one cluster; custom networking is on when
//! `AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG` is true there; nodes pick their ENIConfig by the
//! label `ENI_CONFIG_LABEL_DEF` names (the zone by default). Sources: the EKS user guide's
//! custom networking tutorial and amazon-vpc-cni-k8s's README (the env names and defaults).

use super::ChangeView;
use crate::base::action::Action;
use crate::base::addr::{Kind, ResourceAddr};
use crate::base::diag::{alternatives, Diagnostics};
use crate::base::value::is_ref;
use crate::resources::{self, addon, ResourceConfig};
use crate::spec::Spec;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};

// The names the kinds themselves need (the add-on's and the `aws_node` patch's), defined
// with the EKS helpers below the kinds and used through here by everything above them.
pub use crate::resources::eks::{
    ENI_CONFIG_SELECTIONS, VPC_CNI_ADDON as ADDON_NAME,
    VPC_CNI_CUSTOM_NETWORK_ENV as CUSTOM_NETWORK_ENV, VPC_CNI_LABEL_DEF_ENV as LABEL_DEF_ENV,
    VPC_CNI_POD_ENI_ENV as POD_ENI_ENV,
};
/// `ENABLE_POD_ENI` written both ways on one resource.
fn pod_eni_twice(table: &str) -> String {
    format!("`{POD_ENI_ENV}` is set by `pod_security_groups`; remove it from `{table}`")
}

/// The label nodes are matched by when `ENI_CONFIG_LABEL_DEF` is not set.
pub const DEFAULT_LABEL: &str = "topology.kubernetes.io/zone";

/// Whether a change carries the VPC CNI's settings (see `carries_settings`).
fn is_settings(c: &ChangeView<'_>) -> bool {
    carries_settings(c.addr.kind, &[c.after, c.before])
}

/// Whether a resource of `kind` with these attributes carries the VPC CNI's settings: an
/// `aws_node`, or the `vpc-cni` add-on.
pub fn carries_settings(kind: Kind, attrs: &[Option<&Value>]) -> bool {
    match kind {
        Kind::AwsNode => true,
        Kind::Addon => attrs
            .iter()
            .flatten()
            .any(|a| a.get("name").and_then(Value::as_str) == Some(ADDON_NAME)),
        _ => false,
    }
}

/// Whether these add-on attributes are the `vpc-cni` add-on's.
pub fn is_addon(attrs: &Value) -> bool {
    attrs.get("name").and_then(Value::as_str) == Some(ADDON_NAME)
}

/// The CNI env of an `aws_node` (`env`) or of the `vpc-cni` add-on
/// (`configuration_values.env`).
pub fn env(attrs: Option<&Value>) -> Option<&Value> {
    let a = attrs?;
    a.get("env")
        .or_else(|| a.get("configuration_values").and_then(|v| v.get("env")))
}

/// The node label the settings match ENIConfigs by.
pub fn label(attrs: Option<&Value>) -> String {
    env(attrs)
        .and_then(|e| e.get(LABEL_DEF_ENV))
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_LABEL)
        .to_string()
}

/// A cluster moving from the `aws_node` patch to the `vpc-cni` add-on in one apply: the
/// patch is undone (its originals put back) before the add-on is created or changed, never
/// after, where it would reset the settings the add-on has just applied. Pairs (removed
/// `aws_node`, `vpc-cni` add-on) of one cluster.
pub fn handovers(changes: &[ChangeView<'_>]) -> Vec<(ResourceAddr, ResourceAddr)> {
    fn cluster(v: Option<&Value>) -> Option<&str> {
        v.and_then(|v| v.get("cluster_name"))
            .and_then(Value::as_str)
    }
    let mut pairs = Vec::new();
    for old in changes
        .iter()
        .filter(|c| c.addr.kind == Kind::AwsNode && c.removed())
    {
        let Some(on) = cluster(old.before) else {
            continue;
        };
        for new in changes.iter().filter(|c| {
            c.addr.kind == Kind::Addon
                && !c.removed()
                && c.after.is_some_and(is_addon)
                && cluster(c.after) == Some(on)
        }) {
            pairs.push((old.addr.clone(), new.addr.clone()));
        }
    }
    pairs
}

/// What turns custom networking on for a cluster: its `aws_node` or its `vpc-cni` add-on,
/// with the cluster's resolved name.
fn custom_networking(spec: &Spec) -> Vec<(&ResourceAddr, String)> {
    spec.resources
        .values()
        .filter_map(|r| match &r.config {
            ResourceConfig::AwsNode(a) if a.custom_network => {
                Some((&r.addr, spec.resolved_name(&a.cluster_name)))
            }
            ResourceConfig::Addon(a) if addon::turns_on_custom_networking(a) => {
                Some((&r.addr, spec.resolved_name(&a.cluster_name)))
            }
            _ => None,
        })
        .collect()
}

/// Every nodegroup of a cluster that turns custom networking on has ENIConfigs to pick from
/// (without one, ipamd on a new node does not start — CNI 1.13 and later).
fn check_eni_configs_declared(spec: &Spec, d: &mut Diagnostics) {
    for (addr, cluster) in custom_networking(spec) {
        let has_eni = spec.resources.values().any(|o| matches!(&o.config, ResourceConfig::EniConfig(e) if spec.resolved_name(&e.cluster_name) == cluster));
        if has_eni {
            continue;
        }
        for n in spec.resources.values() {
            if let ResourceConfig::Nodegroup(ng) = &n.config {
                if spec.resolved_name(&ng.cluster_name) == cluster {
                    d.push(spec.error_at(
                        n.addr.to_string(),
                        format!("custom networking is on for this cluster (`{addr}`) but no `eni_config` is declared for it: nodes of `{}` would have no ENIConfig for their AZ; add one `[eni_config.NAME]` per AZ", n.addr),
                    ));
                }
            }
        }
    }
}

/// Labels every node of an EKS cluster carries, whoever launched it: the kubelet's own
/// (well-known labels) and the ones EKS sets on managed nodes. A custom `ENI_CONFIG_LABEL_DEF`
/// outside these must come from the node sources themselves.
const LABELS_ON_EVERY_NODE: &[&str] = &[
    "topology.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/region",
    "node.kubernetes.io/instance-type",
    "beta.kubernetes.io/instance-type",
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "eks.amazonaws.com/nodegroup",
    "eks.amazonaws.com/capacityType",
    "eks.amazonaws.com/nodegroup-image",
];

/// The zone labels: with one of them, nodes look for an ENIConfig named after their AZ.
pub fn is_zone_label(label: &str) -> bool {
    matches!(
        label,
        "topology.kubernetes.io/zone" | "failure-domain.beta.kubernetes.io/zone"
    )
}

/// What makes a cluster's nodes pick their ENIConfig in label mode: the settings resource
/// and the label, for each cluster with custom networking on (annotation mode: none).
fn label_selections(spec: &Spec) -> Vec<(&ResourceAddr, String, String)> {
    spec.resources
        .values()
        .filter_map(|r| match &r.config {
            ResourceConfig::AwsNode(a) if a.custom_network && a.eni_config_selection == "label" => {
                Some((
                    &r.addr,
                    spec.resolved_name(&a.cluster_name),
                    a.eni_config_label.clone(),
                ))
            }
            ResourceConfig::Addon(a)
                if addon::turns_on_custom_networking(a)
                    && a.eni_config_selection.as_deref().unwrap_or("label") == "label" =>
            {
                Some((
                    &r.addr,
                    spec.resolved_name(&a.cluster_name),
                    a.eni_config_label
                        .clone()
                        .unwrap_or_else(|| DEFAULT_LABEL.to_string()),
                ))
            }
            _ => None,
        })
        .collect()
}

/// The AZ of a subnet the spec declares with a literal `availability_zone`, from a reference
/// to its id.
fn declared_subnet_az(spec: &Spec, subnet_id: &str) -> Option<String> {
    let r = crate::base::value::whole_reference(subnet_id)?;
    if r.addr.kind != Kind::Subnet || r.path != ["id"] {
        return None;
    }
    spec.static_value(&format!("${{{}.availability_zone}}", r.addr))
        .filter(|az| !is_ref(az))
}

/// The ENIConfigs of a cluster the spec declares, each with its name when the spec alone
/// says it (written, or defaulted to a subnet's written AZ) and its subnet's AZ likewise.
fn declared_eni_configs<'a>(
    spec: &'a Spec,
    cluster: &str,
) -> Vec<(&'a ResourceAddr, Option<String>, Option<String>)> {
    spec.resources
        .values()
        .filter_map(|r| match &r.config {
            ResourceConfig::EniConfig(e) if spec.resolved_name(&e.cluster_name) == cluster => {
                let name = r
                    .attrs
                    .get("name")
                    .and_then(Value::as_str)
                    .and_then(|n| spec.static_value(n))
                    .filter(|n| !is_ref(n));
                Some((&r.addr, name, declared_subnet_az(spec, &e.subnet_id)))
            }
            _ => None,
        })
        .collect()
}

/// An ENIConfig named after one AZ with its subnet in another.
fn misnamed(name: &str, az: &str) -> String {
    format!("the ENIConfig `{name}` is named after an AZ but its subnet is in {az}: nodes in {name} would get pod ENIs from a subnet in another AZ, which EC2 does not attach; name it `{az}` (or leave `name` out: it defaults to the subnet's AZ)")
}

/// In label mode, every node must carry the label and its value must name an ENIConfig: a
/// custom label (one EKS does not put on every node) must be set by the spec's nodegroups,
/// else their nodes look for the ENIConfig `default` (VPC CNI README, ENI_CONFIG_LABEL_DEF);
/// and an ENIConfig named after an AZ must have its subnet in that AZ, or the nodes there
/// get ENIs in another AZ's subnet, which EC2 will not attach.
fn check_label_sources(spec: &Spec, d: &mut Diagnostics) {
    for (settings, cluster, label) in label_selections(spec) {
        let enis = declared_eni_configs(spec, &cluster);
        for (addr, name, az) in &enis {
            let (Some(name), Some(az)) = (name, az) else {
                continue;
            };
            let named_after_az = crate::base::regions::is_zone_name(name);
            if named_after_az && name != az {
                let msg = misnamed(name, az);
                if is_zone_label(&label) {
                    d.push(spec.error_at(format!("{addr}.name"), msg));
                } else {
                    d.push(spec.warning_at(format!("{addr}.name"), msg));
                }
            }
        }
        if LABELS_ON_EVERY_NODE.contains(&label.as_str()) {
            continue;
        }
        let names: Option<BTreeSet<&str>> = enis.iter().map(|(_, n, _)| n.as_deref()).collect();
        let nodegroups: Vec<_> = spec
            .resources
            .values()
            .filter_map(|r| match &r.config {
                ResourceConfig::Nodegroup(n) if spec.resolved_name(&n.cluster_name) == cluster => {
                    Some((&r.addr, n))
                }
                _ => None,
            })
            .collect();
        if nodegroups.is_empty() {
            d.push(spec.warning_at(
                format!("{settings}"),
                format!("nodes pick their ENIConfig by the label `{label}`, which no node source in the spec sets and EKS does not set on its own: only nodes that get it from elsewhere find theirs, the others look for the ENIConfig `default`"),
            ));
            continue;
        }
        for (addr, n) in nodegroups {
            match n.labels.get(&label) {
                // A name only AWS will know might be `default`: not judged.
                None if names.as_ref().is_none_or(|ns| ns.contains("default")) => {}
                None => d.push(spec.error_at(
                    format!("{addr}.labels"),
                    format!("nodes of `{addr}` do not get the label `{label}` that `{settings}` picks ENIConfigs by: the VPC CNI would look for the ENIConfig `default` for them, and cluster `{cluster}` has none; add `\"{label}\" = \"NAME\"` to `labels` with the ENIConfig's name"),
                )),
                Some(v) if is_ref(v) => {}
                Some(v) => {
                    if let Some(ns) = names.as_ref().filter(|ns| !ns.contains(v.as_str())) {
                        d.push(spec.error_at(
                            format!("{addr}.labels.{label}"),
                            format!("`{label}` = `{v}` names no ENIConfig of cluster `{cluster}` (it has {}): the VPC CNI on these nodes would find none and not start", if ns.is_empty() { "none".to_string() } else { ns.iter().copied().collect::<Vec<_>>().join(", ") }),
                        ));
                    }
                }
            }
        }
    }
}

/// The spec's Kubernetes side (`validate`, no call): settings values, settings that EKS would
/// undo, and ENIConfigs for every cluster that turns custom networking on.
pub fn check_spec(spec: &Spec, d: &mut Diagnostics) {
    check_eni_configs_declared(spec, d);
    check_label_sources(spec, d);
    for (addr, r) in &spec.resources {
        match &r.config {
            ResourceConfig::AwsNode(a) => {
                if !ENI_CONFIG_SELECTIONS.contains(&a.eni_config_selection.as_str()) {
                    d.push(spec.error_at(
                        format!("{addr}.eni_config_selection"),
                        format!(
                            "eni_config_selection must be {}, not `{}`",
                            alternatives(ENI_CONFIG_SELECTIONS, |v| format!("\"{v}\"")),
                            a.eni_config_selection
                        ),
                    ));
                }
                for k in a.env.keys() {
                    if k == CUSTOM_NETWORK_ENV || k == LABEL_DEF_ENV {
                        d.push(spec.error_at(
                            format!("{addr}.env.{k}"),
                            format!("`{k}` is set by `custom_network` / `eni_config_label`; remove it from `env`"),
                        ));
                    } else if k == POD_ENI_ENV && a.pod_security_groups.is_some() {
                        d.push(spec.error_at(format!("{addr}.env.{k}"), pod_eni_twice("env")));
                    }
                }
                // EKS owns the DaemonSet of a cluster whose CNI is the managed add-on: a patch
                // would be undone by the add-on's next update.
                let cluster = spec.resolved_name(&a.cluster_name);
                if let Some(cni) = spec.resources.values().find(|o| {
                    matches!(&o.config, ResourceConfig::Addon(x) if x.name == ADDON_NAME && spec.resolved_name(&x.cluster_name) == cluster)
                }) {
                    d.push(spec.error_at(
                        addr.to_string(),
                        format!("cluster `{cluster}` runs the VPC CNI as the managed add-on `{}`: EKS owns the aws-node DaemonSet's settings there, and its next add-on update would undo this patch (nodes would then come up without custom networking); hint: put the settings on `{}` (custom_network, eni_config_selection, eni_config_label, configuration_values.env) and remove `{addr}`", cni.addr, cni.addr),
                    ));
                }
                // A cluster made without EKS's self-managed add-ons has no aws-node until a
                // `vpc-cni` add-on installs it: the patch would wait for a DaemonSet that never
                // comes.
                else if let Some(c) = spec.resources.values().find(|o| {
                    matches!(&o.config, ResourceConfig::Cluster(c) if c.bootstrap_self_managed_addons == Some(false) && spec.resolved_name(&c.name) == cluster)
                }) {
                    d.push(spec.error_at(
                        addr.to_string(),
                        format!("cluster `{cluster}` is created without self-managed add-ons (`{}.bootstrap_self_managed_addons = false`): it has no aws-node DaemonSet to patch; hint: declare the CNI as the add-on, `[addon.vpc_cni]` with `name = \"vpc-cni\"`, and put these settings there", c.addr),
                    ));
                }
            }
            ResourceConfig::Addon(a) => {
                let env = a
                    .configuration_values
                    .get("env")
                    .and_then(|e| e.as_object());
                for k in env.into_iter().flat_map(|e| e.keys()) {
                    let set_by_field = (k == CUSTOM_NETWORK_ENV && a.custom_network.is_some())
                        || (k == LABEL_DEF_ENV && addon::turns_on_custom_networking(a));
                    if set_by_field {
                        d.push(spec.error_at(
                            format!("{addr}.configuration_values.env.{k}"),
                            format!("`{k}` is set by `custom_network` / `eni_config_label`; remove it from `configuration_values.env`"),
                        ));
                    } else if k == POD_ENI_ENV && a.pod_security_groups.is_some() {
                        d.push(spec.error_at(
                            format!("{addr}.configuration_values.env.{k}"),
                            pod_eni_twice("configuration_values.env"),
                        ));
                    }
                }
            }
            ResourceConfig::EniConfig(e) => {
                if let Some(name) = &e.name {
                    let ok = crate::base::kubernetes_names::is_dns_subdomain(name);
                    if !ok && !is_ref(name) {
                        d.push(spec.error_at(format!("{addr}.name"), format!("`{name}` is not a valid Kubernetes object name (lowercase letters, digits, `-` and `.`)")));
                    }
                }
            }
            _ => {}
        }
    }
}

/// The Kubernetes side, once live values are known: the VPC CNI must be recent enough; every AZ
/// a nodegroup runs in needs an ENIConfig named after it (label mode); and turning custom
/// networking on does not move existing nodes, which the plan must say.
pub fn check_plan(
    spec: &Spec,
    changes: &[ChangeView<'_>],
    azs: &HashMap<String, String>,
    diags: &mut Diagnostics,
) {
    // Two ENIConfigs resolving to one object name in one cluster would overwrite each other.
    let mut seen: HashMap<(String, String), &ResourceAddr> = HashMap::new();
    for e in changes
        .iter()
        .filter(|e| e.addr.kind == Kind::EniConfig && e.action != Action::Delete)
    {
        let Some(a) = e.after else { continue };
        let (Some(cl), Some(name)) = (
            resources::str_attr(a, "cluster_name"),
            resources::str_attr(a, "name"),
        ) else {
            continue;
        };
        if cl.contains("${") || name.contains("${") {
            continue;
        }
        if let Some(first) = seen.insert((cl.to_string(), name.to_string()), e.addr) {
            diags.push(spec.error_at(
                e.addr.to_string(),
                format!("`{}` and `{first}` both resolve to the ENIConfig `{name}` in cluster `{cl}`; give one a different `name` (two pod subnets in one AZ need annotation mode)", e.addr),
            ));
        }
    }
    for c in changes.iter().filter(|c| is_settings(c)) {
        // The cluster's read says whether its CNI is the managed add-on.
        let cluster = c
            .after
            .and_then(|a| resources::str_attr(a, "cluster_name"))
            .unwrap_or_default();
        let cni_addon = changes
            .iter()
            .filter(|k| k.addr.kind == Kind::Cluster)
            .filter_map(|k| k.observed)
            .filter(|o| resources::str_attr(o, "name") == Some(cluster))
            .find_map(|o| resources::str_attr(o, "vpc_cni_addon"));
        if let Some(version) =
            cni_addon.filter(|_| c.addr.kind == Kind::AwsNode && c.action != Action::Delete)
        {
            diags.push(spec.error_at(
                c.addr.to_string(),
                format!("cluster `{cluster}` runs the VPC CNI as the EKS managed add-on `vpc-cni` ({version}): EKS owns the aws-node DaemonSet's settings, and its next add-on update would undo this patch (nodes would then come up without custom networking); hint: declare `[addon.vpc_cni]` with `name = \"vpc-cni\"`, `cluster_name` and these settings (custom_network, eni_config_selection, eni_config_label, configuration_values.env), import it with `eksnet import SPEC addon.vpc_cni {cluster}/vpc-cni`, and remove `{}`", c.addr),
            ));
        }
        let custom_on = env(c.after)
            .and_then(|e| e.get(CUSTOM_NETWORK_ENV))
            .and_then(Value::as_str)
            == Some("true");
        // The version the CNI will run: the DaemonSet's image, or the add-on's version (the
        // one asked for, else the one installed).
        let running = if c.addr.kind == Kind::AwsNode {
            c.observed
                .and_then(|o| o.get("image"))
                .and_then(Value::as_str)
                .map(String::from)
        } else {
            c.after
                .and_then(|a| resources::str_attr(a, "version"))
                .filter(|v| !v.contains("${"))
                .or_else(|| c.observed.and_then(|o| resources::str_attr(o, "version")))
                .map(|v| format!("amazon-k8s-cni:{v}"))
        };
        if let (true, Some(image)) = (custom_on, running) {
            if let Err(msg) = resources::aws_node::check_version(&image) {
                let msg = if c.addr.kind == Kind::AwsNode {
                    msg
                } else {
                    format!(
                        "the `vpc-cni` add-on version {} is older than v1.6.3-eksbuild.2, the first that supports custom networking; set `version` to a newer one (`aws eks describe-addon-versions --addon-name vpc-cni` lists them)",
                        image.trim_start_matches("amazon-k8s-cni:")
                    )
                };
                diags.push(spec.error_at(c.addr.to_string(), msg));
            }
        }
        let Some(after) = c.after else { continue };
        let Some(cluster) =
            resources::str_attr(after, "cluster_name").filter(|n| !n.contains("${"))
        else {
            continue;
        };
        let env_on = |v: Option<&Value>| {
            v.and_then(|e| e.get(CUSTOM_NETWORK_ENV))
                .and_then(Value::as_str)
                == Some("true")
        };
        // Moving the settings from a removed `aws_node` to the add-on turns nothing on: the
        // nodes already run with custom networking.
        let on_elsewhere = changes.iter().any(|o| {
            o.addr != c.addr
                && is_settings(o)
                && o.before
                    .and_then(|b| resources::str_attr(b, "cluster_name"))
                    == Some(cluster)
                && env_on(env(o.before))
        });
        let turning_on = env_on(env(Some(after))) && !env_on(env(c.before)) && !on_elsewhere;
        let nodegroups = || {
            changes.iter().filter(move |n| {
                crate::resources::NODE_GROUPS.contains(&n.addr.kind)
                    && n.after.and_then(|a| resources::str_attr(a, "cluster_name")) == Some(cluster)
            })
        };
        if turning_on && c.before.is_some() {
            let existing: Vec<String> = nodegroups()
                .filter(|n| matches!(n.action, Action::NoOp | Action::Update | Action::Adopt))
                .map(|n| n.addr.to_string())
                .collect();
            if !existing.is_empty() {
                diags.push(spec.warning_at(
                    c.addr.to_string(),
                    format!(
                        "custom networking is being turned on for cluster `{cluster}`, whose nodegroups {} already have nodes: those nodes keep giving pods IPs from the primary subnet until they are replaced; hint: after this apply, `eksnet apply {} {}` replaces them without downtime (each new nodegroup is active before its old one is deleted)",
                        existing.join(", "),
                        spec.path.display(),
                        existing
                            .iter()
                            .map(|n| format!("--replace {n}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                ));
            }
        }
        // Only a zone label makes nodes look for an ENIConfig named after their AZ.
        let label_now = env(Some(after))
            .and_then(|e| e.get(LABEL_DEF_ENV))
            .and_then(Value::as_str);
        let zone_label = matches!(
            label_now,
            Some("topology.kubernetes.io/zone" | "failure-domain.beta.kubernetes.io/zone")
        );
        if !env_on(env(Some(after))) || !zone_label {
            continue;
        }
        // An ENIConfig named after one AZ whose subnet AWS reports in another (the spec
        // alone could not tell: an existing subnet by id).
        for e in changes
            .iter()
            .filter(|e| e.addr.kind == Kind::EniConfig && e.action != Action::Delete)
        {
            let Some(a) = e
                .after
                .filter(|a| resources::str_attr(a, "cluster_name") == Some(cluster))
            else {
                continue;
            };
            let (Some(name), Some(az)) = (
                resources::str_attr(a, "name"),
                resources::str_attr(a, "subnet_id").and_then(|s| azs.get(s)),
            ) else {
                continue;
            };
            if crate::base::regions::is_zone_name(name) && name != az {
                diags.push(spec.error_at(format!("{}.name", e.addr), misnamed(name, az)));
            }
        }
        let names: Option<BTreeSet<String>> = changes
            .iter()
            .filter(|e| e.addr.kind == Kind::EniConfig && e.action != Action::Delete)
            .filter_map(|e| e.after.as_ref())
            .filter(|a| resources::str_attr(a, "cluster_name") == Some(cluster))
            .map(|a| {
                resources::str_attr(a, "name")
                    .filter(|n| !n.contains("${"))
                    .map(String::from)
            })
            .collect();
        let Some(names) = names else { continue }; // some names known only after apply
        for n in nodegroups() {
            let Some(after) = n.after else { continue };
            let ng_azs: Option<BTreeSet<String>> = resources::str_list(after, "subnet_ids")
                .iter()
                .map(|s| azs.get(s).cloned())
                .collect();
            let Some(ng_azs) = ng_azs else { continue };
            let missing: Vec<String> = ng_azs
                .into_iter()
                .filter(|az| !names.contains(az))
                .collect();
            if !missing.is_empty() {
                diags.push(spec.error_at(
                    format!("{}.subnet_ids", n.addr),
                    format!(
                        "`{}` has nodes in {} but cluster `{cluster}` has no ENIConfig named after {}: with ENI_CONFIG_LABEL_DEF={} nodes there would find no ENIConfig; add an `[eni_config.NAME]` with a pod subnet in that AZ",
                        n.addr,
                        missing.join(", "),
                        if missing.len() == 1 { "it" } else { "them" },
                        label(c.after),
                    ),
                ));
            }
        }
    }
}

/// Custom networking (pod subnets) cannot be used on an IPv6 cluster.
pub fn check_ipv6(spec: &Spec, d: &mut Diagnostics) {
    let has_pod_subnets = spec.resources.values().any(|r| match &r.config {
        ResourceConfig::Subnet(_) | ResourceConfig::EniConfig(_) => true,
        ResourceConfig::AwsNode(a) => a.custom_network,
        ResourceConfig::Addon(a) => addon::turns_on_custom_networking(a),
        _ => false,
    });
    if !has_pod_subnets {
        return;
    }
    for (addr, r) in &spec.resources {
        if let ResourceConfig::Cluster(c) = &r.config {
            if c.ip_family == "ipv6" {
                d.push(spec.error_at(format!("{addr}.ip_family"), "custom networking (pod subnets and ENIConfigs) cannot be used with an IPv6 cluster; use ip_family = \"ipv4\", or drop the pod subnets (IPv6 already avoids IPv4 exhaustion)"));
            }
        }
    }
}
