//! The VPC CNI's own concepts, in one place: its settings live either in the `vpc-cni` EKS
//! add-on's configuration values or in a patch of the self-managed `aws-node` DaemonSet
//! (`aws_node`), never both on one cluster; custom networking is on when
//! `AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG` is true there; nodes pick their ENIConfig by the
//! label `ENI_CONFIG_LABEL_DEF` names (the zone by default). Sources: the EKS user guide's
//! custom networking tutorial and amazon-vpc-cni-k8s's README (the env names and defaults).

use crate::base::addr::{Kind, ResourceAddr};
use serde_json::Value;

/// The EKS add-on name of the VPC CNI.
pub const ADDON_NAME: &str = "vpc-cni";
/// The env var that turns custom networking on.
pub const CUSTOM_NETWORK_ENV: &str = "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG";
/// The env var naming the node label whose value is the ENIConfig's name.
pub const LABEL_DEF_ENV: &str = "ENI_CONFIG_LABEL_DEF";
/// The label nodes are matched by when `ENI_CONFIG_LABEL_DEF` is not set.
pub const DEFAULT_LABEL: &str = "topology.kubernetes.io/zone";

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

/// One planned change, as far as the CNI handover needs it.
pub struct ChangeView<'a> {
    pub addr: &'a ResourceAddr,
    /// Deleted or forgotten.
    pub removed: bool,
    pub before: Option<&'a Value>,
    pub after: Option<&'a Value>,
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
        .filter(|c| c.addr.kind == Kind::AwsNode && c.removed)
    {
        let Some(on) = cluster(old.before) else {
            continue;
        };
        for new in changes.iter().filter(|c| {
            c.addr.kind == Kind::Addon
                && !c.removed
                && c.after.is_some_and(is_addon)
                && cluster(c.after) == Some(on)
        }) {
            pairs.push((old.addr.clone(), new.addr.clone()));
        }
    }
    pairs
}
