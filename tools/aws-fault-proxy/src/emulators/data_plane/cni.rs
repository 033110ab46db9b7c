//! The VPC CNI (amazon-vpc-cni-k8s, ipamd) on one node: its settings, which ENIConfig it
//! picks, and how many addresses its warm pool wants. Pure decisions; the data plane
//! carries them out in moto (`data_plane.rs`).
//!
//! - ipamd reads its environment once, when aws-node starts on the node (`ipamd.New()`,
//!   `pkg/ipamd/ipamd.go`): the settings are snapshot when the node's CNI starts and hold
//!   for the node's life; an env change reaches new nodes only.
//! - Until ipamd is healthy the CNI config is not written (`cmd/aws-vpc-cni/main.go`), so
//!   the kubelet reports `NetworkPluginNotReady ... cni plugin not initialized`
//!   (karpenter-provider-aws #1391).
//! - ENIConfig, first hit wins (`pkg/eniconfig/eniconfig.go`): node label
//!   `vpc.amazonaws.com/externalEniConfig`, the annotation `ENI_CONFIG_ANNOTATION_DEF`, the
//!   label `ENI_CONFIG_LABEL_DEF` (both default `k8s.amazonaws.com/eniConfig`), else
//!   `default`. One that does not exist fails ipamd (CNI ≥ 1.13, amazon-vpc-cni-k8s #2354):
//!   aws-node exits and restarts, the node never gets Ready.
//! - Pod addresses per ENI = IPv4 per ENI − 1 (`docs/troubleshooting.md`); defaults
//!   WARM_ENI_TARGET=1, WARM_IP_TARGET and MINIMUM_IP_TARGET unset; WARM_IP_TARGET
//!   overrides WARM_ENI_TARGET (README, `ipamd.go`); the pool stops at the node's
//!   `capacity.pods` (`ipamd.go`). Prefix delegation: one /28 per ENI slot (README).

use std::net::Ipv4Addr;

use serde_json::Value;

pub const DEFAULT_ENI_CONFIG_KEY: &str = "k8s.amazonaws.com/eniConfig";
pub const EXTERNAL_ENI_CONFIG_LABEL: &str = "vpc.amazonaws.com/externalEniConfig";
/// Tags and description of the ENIs the CNI creates (`pkg/awsutils/awsutils.go`).
pub const TAG_INSTANCE: &str = "node.k8s.amazonaws.com/instance_id";
pub const TAG_CREATED: &str = "node.k8s.amazonaws.com/createdAt";
pub const DESCRIPTION_PREFIX: &str = "aws-K8S-";

pub const NOT_READY_MESSAGE: &str = "container runtime network not ready: NetworkReady=false \
reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized";

/// The env of the `aws-node` container that ipamd reads at start.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub custom_networking: bool,
    pub label_def: String,
    pub annotation_def: String,
    pub prefix_delegation: bool,
    pub warm_eni_target: u32,
    pub warm_ip_target: Option<u32>,
    pub minimum_ip_target: Option<u32>,
    /// `ENABLE_POD_ENI`: ipamd keeps an ENI slot for the trunk of security groups for pods
    /// (`hasRoomForEni`) and leaves the trunk alone once attached (`vrc.rs`).
    pub pod_eni: bool,
}

impl Settings {
    /// From the `aws-node` DaemonSet; `None` when there is none (the CNI does not run).
    pub fn from_daemonset(ds: &Value) -> Settings {
        let env: Vec<(String, String)> = ds
            .pointer("/spec/template/spec/containers")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["name"] == "aws-node"))
            .and_then(|c| c["env"].as_array())
            .into_iter()
            .flatten()
            .filter_map(|e| {
                Some((
                    e["name"].as_str()?.to_string(),
                    e["value"].as_str().unwrap_or_default().to_string(),
                ))
            })
            .collect();
        let get = |name: &str| {
            env.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim().to_string())
        };
        // Go's strconv.ParseBool, as the CNI reads its switches.
        let flag = |name: &str| {
            get(name)
                .is_some_and(|v| matches!(v.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True"))
        };
        let num = |name: &str| get(name).and_then(|v| v.parse::<u32>().ok());
        let key = |name: &str| match get(name) {
            Some(v) if !v.is_empty() => v,
            _ => DEFAULT_ENI_CONFIG_KEY.to_string(),
        };
        Settings {
            custom_networking: flag("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG"),
            label_def: key("ENI_CONFIG_LABEL_DEF"),
            annotation_def: key("ENI_CONFIG_ANNOTATION_DEF"),
            prefix_delegation: flag("ENABLE_PREFIX_DELEGATION"),
            warm_eni_target: num("WARM_ENI_TARGET").unwrap_or(1),
            warm_ip_target: num("WARM_IP_TARGET").filter(|n| *n > 0),
            minimum_ip_target: num("MINIMUM_IP_TARGET").filter(|n| *n > 0),
            pod_eni: flag("ENABLE_POD_ENI"),
        }
    }
}

/// The ENIConfig a node uses (`pkg/eniconfig/eniconfig.go`).
pub fn eni_config_name(node: &Value, s: &Settings) -> String {
    let meta = |kind: &str, key: &str| {
        node.pointer(&format!("/metadata/{kind}"))
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    meta("labels", EXTERNAL_ENI_CONFIG_LABEL)
        .or_else(|| meta("annotations", &s.annotation_def))
        .or_else(|| meta("labels", &s.label_def))
        .unwrap_or_else(|| "default".to_string())
}

/// Parses `a.b.c.d/n`.
pub fn parse_cidr(cidr: &str) -> Option<(u32, u32)> {
    let (ip, len) = cidr.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let len: u32 = len.parse().ok()?;
    (len <= 32).then_some((u32::from(ip), len))
}

/// The addresses of a subnet EC2 lets you use: all but the first four and the last (VPC
/// user guide, "Subnet CIDR blocks").
fn usable(cidr: &str) -> Option<(u32, u32)> {
    let (base, len) = parse_cidr(cidr)?;
    let size = 1u64 << (32 - len);
    if size < 16 {
        return None;
    }
    let network = base & (u32::MAX.checked_shl(32 - len).unwrap_or(0));
    let last = network.checked_add(u32::try_from(size - 1).ok()?)?;
    Some((network + 4, last - 1))
}

/// Up to `n` free addresses of the subnet, lowest first.
pub fn free_ips(cidr: &str, taken: &[String], n: usize) -> Vec<String> {
    let Some((first, last)) = usable(cidr) else {
        return Vec::new();
    };
    let taken: std::collections::BTreeSet<u32> = taken
        .iter()
        .filter_map(|t| t.parse::<Ipv4Addr>().ok().map(u32::from))
        .collect();
    (first..=last)
        .filter(|ip| !taken.contains(ip))
        .take(n)
        .map(|ip| Ipv4Addr::from(ip).to_string())
        .collect()
}

/// The 16 addresses of the lowest aligned /28 of the subnet of which none is taken (and
/// none is one of EC2's reserved ones).
pub fn free_prefix(cidr: &str, taken: &[String]) -> Option<Vec<String>> {
    let (first, last) = usable(cidr)?;
    let taken: std::collections::BTreeSet<u32> = taken
        .iter()
        .filter_map(|t| t.parse::<Ipv4Addr>().ok().map(u32::from))
        .collect();
    let mut start = (first + 15) & !15;
    while start.checked_add(15).is_some_and(|end| end <= last) {
        if (start..start + 16).all(|ip| !taken.contains(&ip)) {
            return Some(
                (start..start + 16)
                    .map(|ip| Ipv4Addr::from(ip).to_string())
                    .collect(),
            );
        }
        start += 16;
    }
    None
}

/// How many more pod addresses the pool wants, given its `total` addresses, the `used`
/// ones and the node's max pods; `per_eni` is what one ENI holds.
pub fn wanted(s: &Settings, total: usize, used: usize, max_pods: usize, per_eni: usize) -> usize {
    let goal = if s.warm_ip_target.is_some() || s.minimum_ip_target.is_some() {
        // WARM_IP_TARGET overrides WARM_ENI_TARGET; MINIMUM_IP_TARGET alone means
        // WARM_IP_TARGET=0 (README, charts/aws-vpc-cni/values.yaml).
        let warm = s.warm_ip_target.unwrap_or(0) as usize;
        (used + warm).max(s.minimum_ip_target.unwrap_or(0) as usize)
    } else {
        // WARM_ENI_TARGET: a whole ENI's addresses when it is attached, another ENI's
        // when the free ones run out.
        if total > used {
            total
        } else {
            total + per_eni
        }
    };
    goal.min(max_pods).saturating_sub(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_and_eniconfig_choice() {
        let ds = json!({"spec": {"template": {"spec": {"containers": [{"name": "aws-node", "env": [
            {"name": "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "value": "true"},
            {"name": "ENI_CONFIG_LABEL_DEF", "value": "topology.kubernetes.io/zone"},
            {"name": "ENI_CONFIG_ANNOTATION_DEF", "value": ""},
            {"name": "WARM_IP_TARGET", "value": "3"}]}]}}}});
        let s = Settings::from_daemonset(&ds);
        assert!(s.custom_networking && !s.prefix_delegation);
        assert_eq!(s.annotation_def, DEFAULT_ENI_CONFIG_KEY);
        assert_eq!(s.warm_ip_target, Some(3));
        let node = json!({"metadata": {"labels": {"topology.kubernetes.io/zone": "us-east-1a"}}});
        assert_eq!(eni_config_name(&node, &s), "us-east-1a");
        let node = json!({"metadata": {"labels": {"topology.kubernetes.io/zone": "us-east-1a"},
            "annotations": {DEFAULT_ENI_CONFIG_KEY: "ann"}}});
        assert_eq!(eni_config_name(&node, &s), "ann");
        let node = json!({"metadata": {"labels": {EXTERNAL_ENI_CONFIG_LABEL: "ext",
            "topology.kubernetes.io/zone": "z"}, "annotations": {DEFAULT_ENI_CONFIG_KEY: "ann"}}});
        assert_eq!(eni_config_name(&node, &s), "ext");
        assert_eq!(eni_config_name(&json!({"metadata": {}}), &s), "default");
    }

    #[test]
    fn addresses_and_prefixes() {
        let taken = vec!["10.0.1.4".to_string(), "10.0.1.6".to_string()];
        assert_eq!(free_ips("10.0.1.0/24", &taken, 2), ["10.0.1.5", "10.0.1.7"]);
        let p = free_prefix("10.0.1.0/24", &taken).unwrap();
        assert_eq!(p.len(), 16);
        assert_eq!(p[0], "10.0.1.16");
        assert_eq!(p[15], "10.0.1.31");
        assert!(
            free_prefix("10.0.1.0/28", &[]).is_none(),
            "reserved addresses"
        );
    }

    #[test]
    fn warm_pool() {
        let s = Settings::from_daemonset(&json!({}));
        assert_eq!(s.warm_eni_target, 1);
        // A fresh node: one ENI's worth (t3.medium: 5).
        assert_eq!(wanted(&s, 0, 0, 17, 5), 5);
        assert_eq!(wanted(&s, 5, 2, 17, 5), 0);
        assert_eq!(wanted(&s, 5, 5, 17, 5), 5, "another ENI when they run out");
        assert_eq!(wanted(&s, 15, 15, 17, 5), 2, "up to max pods");
        let mut w = s.clone();
        w.warm_ip_target = Some(2);
        assert_eq!(wanted(&w, 0, 0, 17, 5), 2);
        w.minimum_ip_target = Some(4);
        assert_eq!(wanted(&w, 0, 0, 17, 5), 4);
    }
}
