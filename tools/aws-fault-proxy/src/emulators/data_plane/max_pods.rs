//! The `pods` a node's kubelet registers with (`status.capacity.pods`), decided as the
//! node's AMI and EKS decide it:
//!
//! - **User data that sets it.** AL2023's nodeadm reads `NodeConfig` documents from the
//!   user data: a MIME multi-part document whose `application/node.eks.aws` parts are
//!   merged in order, a later part's values overriding an earlier one's, or the whole user
//!   data as one NodeConfig when it is not multi-part; each is base64-decoded if it decodes
//!   (amazon-eks-ami `nodeadm/internal/configprovider/mime.go`, `userdata.go`, `encoding.go`;
//!   the merge: `nodeadm/internal/api/merge.go`, and "the value in the lattermost
//!   configuration object will take precedence", `nodeadm/doc/examples.md`). The value is
//!   `spec.kubelet.config.maxPods`, unless `spec.kubelet.flags` (appended across parts,
//!   `merge.go`) has `--max-pods`: a kubelet flag overrides the config file's value
//!   (kubernetes.io, "Set Kubelet Parameters Via A Configuration File"), and of repeated
//!   flags the last wins (the comment in `merge.go`). Bottlerocket's user data is TOML;
//!   `settings.kubernetes.max-pods` there "overrides any settings that are configured by
//!   Amazon EKS" (EKS user guide, `nodes/launch-templates.adoc`).
//! - **A managed nodegroup without a custom AMI** (no `ImageId` in its launch template, or
//!   no launch template): EKS computes it with the max-pods calculator from the CNI settings
//!   at that moment (EKS user guide, `nodes/create-managed-node-group.adoc`: "calculates and
//!   applies a single value ... the smallest value calculated across all instance types",
//!   using the script of `nodes/choosing-instance-type.adoc`). [`calculator`] follows that
//!   script (amazon-eks-ami `files/max-pods-calculator.sh`): custom networking leaves the
//!   primary ENI out, prefix delegation (Nitro, CNI ≥ 1.9) gives 16 addresses per slot, and
//!   the result is capped at 110 (≤ 30 vCPUs) or 250, which the user guide says managed
//!   node groups enforce "whether prefix delegation is enabled or not".
//! - **Otherwise** (a custom AMI, or a self-managed node) the AMI's own default, the ENI
//!   formula [`eni_limit`]: `ENIs × (IPv4 per ENI − 1) + 2`, with the ENIs of the default
//!   network card (amazon-vpc-cni-k8s `misc/eni-max-pods.txt`; nodeadm
//!   `internal/kubelet/eni_max_pods.go`), neither custom-networking nor prefix-delegation
//!   aware (amazon-eks-ami #2045).
//!
//! Which takes precedence when EKS merges its own NodeConfig with an AL2023 user's (no
//! custom AMI) is not documented; as for Bottlerocket, the user's value wins here.

use base64::Engine;
use serde_json::Value;

use super::ec2::InstanceType;

/// The VPC CNI settings the calculator takes, read from the `aws-node` DaemonSet.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CniSettings {
    /// `AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG`
    pub custom_networking: bool,
    /// `ENABLE_PREFIX_DELEGATION`
    pub prefix_delegation: bool,
    /// (major, minor) of the `aws-node` container's image tag (`v1.19.2-eksbuild.1`).
    pub version: Option<(u64, u64)>,
}

impl CniSettings {
    /// From the `aws-node` DaemonSet (`None`: no DaemonSet, the CNI's defaults).
    pub fn from_daemonset(ds: Option<&Value>) -> CniSettings {
        let Some(containers) = ds
            .and_then(|d| d.pointer("/spec/template/spec/containers"))
            .and_then(Value::as_array)
        else {
            return CniSettings::default();
        };
        let Some(node) = containers.iter().find(|c| c["name"] == "aws-node") else {
            return CniSettings::default();
        };
        let env = |name: &str| {
            node["env"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["name"] == name)
                .and_then(|e| e["value"].as_str())
                .map(parse_bool)
                .unwrap_or(false)
        };
        let version = node["image"]
            .as_str()
            .and_then(|image| image.rsplit(':').next())
            .and_then(|tag| {
                let mut parts = tag.trim_start_matches('v').split(['.', '-']);
                let major = parts.next()?.parse().ok()?;
                let minor = parts.next()?.parse().ok()?;
                Some((major, minor))
            });
        CniSettings {
            custom_networking: env("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG"),
            prefix_delegation: env("ENABLE_PREFIX_DELEGATION"),
            version,
        }
    }

    /// Prefix delegation needs CNI 1.9 or later (the calculator's check); a version that
    /// cannot be read counts as a current one.
    fn prefix_delegation_supported(&self) -> bool {
        self.version
            .is_none_or(|(major, minor)| major > 1 || (major == 1 && minor > 8))
    }
}

/// The CNI reads its boolean settings with Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> bool {
    matches!(s, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

/// The AMI's default: `ENIs × (IPv4 per ENI − 1) + 2`, ENIs of the default network card.
pub fn eni_limit(t: &InstanceType) -> u32 {
    let enis = t.default_card_enis.unwrap_or(t.max_enis);
    enis * t.ipv4_per_eni.saturating_sub(1) + 2
}

/// What EKS computes for a managed nodegroup without a custom AMI: the max-pods
/// calculator's recommended value (not `--show-max-allowed`).
pub fn calculator(t: &InstanceType, cni: &CniSettings) -> u32 {
    let mut enis = t.max_enis;
    if cni.custom_networking {
        enis = enis.saturating_sub(1);
    }
    let ips = t.ipv4_per_eni.saturating_sub(1);
    let nitro = t.hypervisor == "nitro";
    let max = if nitro && cni.prefix_delegation && cni.prefix_delegation_supported() {
        enis * ips * 16 + 2
    } else {
        enis * ips + 2
    };
    let ceiling = if t.vcpus > 30 { 250 } else { 110 };
    max.min(ceiling)
}

/// The max pods user data sets, if it sets it (see the module comment); `user_data` is
/// base64 as EC2 keeps it. Gzip-compressed user data is not read.
pub fn from_user_data(user_data: &str) -> Option<u32> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(user_data.trim())
        .ok()?;
    let raw = decode_if_base64(raw);
    let text = String::from_utf8(raw).ok()?;
    nodeadm_max_pods(&text).or_else(|| bottlerocket_max_pods(&text))
}

/// nodeadm's `decodeIfBase64`: the bytes decoded if they are base64, else as they are.
fn decode_if_base64(data: Vec<u8>) -> Vec<u8> {
    let trimmed: Vec<u8> = data
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    match base64::engine::general_purpose::STANDARD.decode(&trimmed) {
        Ok(decoded) if !trimmed.is_empty() => decoded,
        _ => data,
    }
}

/// maxPods from the NodeConfig documents of AL2023 user data.
fn nodeadm_max_pods(text: &str) -> Option<u32> {
    let configs: Vec<String> = match multipart_parts(text) {
        Some(parts) => parts
            .into_iter()
            .filter(|(content_type, _)| content_type == "application/node.eks.aws")
            .filter_map(|(_, body)| String::from_utf8(decode_if_base64(body.into_bytes())).ok())
            .collect(),
        None => vec![text.to_string()],
    };
    let mut config_max: Option<u32> = None;
    let mut flag_max: Option<u32> = None;
    for config in &configs {
        for doc in serde_yaml::Deserializer::from_str(config) {
            // Not YAML (serde_yaml's iterator then repeats its error for ever): nodeadm
            // would refuse the part; here it sets nothing.
            let Ok(v) = <Value as serde::Deserialize>::deserialize(doc) else {
                break;
            };
            if v["kind"] != "NodeConfig" {
                continue;
            }
            let kubelet = &v["spec"]["kubelet"];
            if let Some(n) = kubelet["config"]["maxPods"].as_u64() {
                config_max = u32::try_from(n).ok().or(config_max);
            }
            for flag in kubelet["flags"].as_array().into_iter().flatten() {
                if let Some(n) = flag.as_str().and_then(max_pods_flag) {
                    flag_max = Some(n);
                }
            }
        }
    }
    flag_max.or(config_max)
}

/// `--max-pods=N` (or `--max-pods N` in one string).
fn max_pods_flag(flag: &str) -> Option<u32> {
    let rest = flag.trim().strip_prefix("--max-pods")?;
    let value = rest.strip_prefix('=').unwrap_or(rest).trim();
    value.parse().ok()
}

/// The parts of a MIME multi-part document as (media type, body), or `None` if the text is
/// not one (no `multipart/*` Content-Type in its header, or no boundary).
fn multipart_parts(text: &str) -> Option<Vec<(String, String)>> {
    let text = text.replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n")?;
    let content_type = header(head, "content-type")?;
    let (media, params) = media_type(&content_type);
    if !media.starts_with("multipart/") {
        return None;
    }
    let boundary = params.get("boundary")?.clone();
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in body.lines() {
        if line.trim_end() == delimiter || line.trim_end() == format!("{delimiter}--") {
            if let Some(lines) = current.take() {
                parts.push(part(&lines.join("\n")));
            }
            if line.trim_end().ends_with("--") && line.trim_end() != delimiter {
                break;
            }
            current = Some(Vec::new());
        } else if let Some(lines) = current.as_mut() {
            lines.push(line);
        }
    }
    Some(parts)
}

/// One part: its media type (lowercase, without parameters) and body.
fn part(text: &str) -> (String, String) {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let media = header(head, "content-type")
        .map(|ct| media_type(&ct).0)
        .unwrap_or_else(|| "text/plain".to_string());
    (media, body.to_string())
}

/// A header's value (folded lines joined), by case-insensitive name.
fn header(head: &str, name: &str) -> Option<String> {
    let mut found: Option<String> = None;
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(v) = found.as_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if found.is_some() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case(name) {
                found = Some(v.trim().to_string());
            }
        }
    }
    found
}

/// `type/subtype; k="v"` → (lowercase media type, parameters).
fn media_type(value: &str) -> (String, std::collections::BTreeMap<String, String>) {
    let mut pieces = value.split(';');
    let media = pieces
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let params = pieces
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            ))
        })
        .collect();
    (media, params)
}

/// `settings.kubernetes.max-pods` of Bottlerocket's TOML user data.
fn bottlerocket_max_pods(text: &str) -> Option<u32> {
    let settings: toml::Table = text.parse().ok()?;
    let n = settings
        .get("settings")?
        .get("kubernetes")?
        .get("max-pods")?
        .as_integer()?;
    u32::try_from(n).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn itype(enis: u32, ips: u32, vcpus: u32) -> InstanceType {
        InstanceType {
            name: "x".into(),
            max_enis: enis,
            default_card_enis: Some(enis),
            ipv4_per_eni: ips,
            vcpus,
            hypervisor: "nitro".into(),
            architectures: vec!["x86_64".into()],
        }
    }

    #[test]
    fn formulas_match_the_published_values() {
        let t3_medium = itype(3, 6, 2);
        let m5_large = itype(3, 10, 2);
        let m5_24xlarge = itype(15, 50, 96);
        let plain = CniSettings::default();
        // eni-max-pods.txt: t3.medium 17, m5.large 29, m5.24xlarge 737.
        assert_eq!(eni_limit(&t3_medium), 17);
        assert_eq!(eni_limit(&m5_large), 29);
        assert_eq!(eni_limit(&m5_24xlarge), 737);
        // The user guide's m5.large: 29, custom networking 20, prefix delegation 110.
        assert_eq!(calculator(&m5_large, &plain), 29);
        let custom = CniSettings {
            custom_networking: true,
            ..plain.clone()
        };
        assert_eq!(calculator(&m5_large, &custom), 20);
        assert_eq!(calculator(&t3_medium, &custom), 12);
        let pd = CniSettings {
            prefix_delegation: true,
            ..plain.clone()
        };
        assert_eq!(calculator(&m5_large, &pd), 110);
        assert_eq!(
            calculator(&m5_24xlarge, &plain),
            250,
            "capped above 30 vCPUs"
        );
        let old = CniSettings {
            prefix_delegation: true,
            version: Some((1, 8)),
            ..plain.clone()
        };
        assert_eq!(
            calculator(&m5_large, &old),
            29,
            "no prefix delegation before 1.9"
        );
        let xen = InstanceType {
            hypervisor: "xen".into(),
            ..m5_large.clone()
        };
        assert_eq!(calculator(&xen, &pd), 29, "prefix delegation needs Nitro");
    }

    #[test]
    fn cni_settings_from_the_daemonset() {
        let ds = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "aws-node",
             "image": "602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni:v1.19.2-eksbuild.1",
             "env": [{"name": "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "value": "true"},
                     {"name": "ENABLE_PREFIX_DELEGATION", "value": "false"}]}]}}}});
        let s = CniSettings::from_daemonset(Some(&ds));
        assert!(s.custom_networking && !s.prefix_delegation);
        assert_eq!(s.version, Some((1, 19)));
        assert_eq!(CniSettings::from_daemonset(None), CniSettings::default());
    }

    const NODECONFIG_30: &str = "---\napiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\n\
        spec:\n  kubelet:\n    config:\n      maxPods: 30\n";

    #[test]
    fn nodeadm_single_part_and_multipart() {
        assert_eq!(from_user_data(&b64(NODECONFIG_30)), Some(30));
        let two = "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"BOUNDARY\"\n\n\
            --BOUNDARY\nContent-Type: application/node.eks.aws\n\n\
            apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  kubelet:\n    config:\n      maxPods: 40\n\n\
            --BOUNDARY\nContent-Type: text/x-shellscript; charset=\"us-ascii\"\n\n#!/bin/bash\necho hi\n\n\
            --BOUNDARY\nContent-Type: application/node.eks.aws\n\n\
            apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  kubelet:\n    config:\n      maxPods: 50\n\n\
            --BOUNDARY--\n";
        assert_eq!(from_user_data(&b64(two)), Some(50), "the later part wins");
        // A part that itself is base64, CRLF line ends.
        let crlf = format!(
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"//\"\r\n\r\n--//\r\n\
             Content-Type: application/node.eks.aws\r\n\r\n{}\r\n--//--\r\n",
            b64(NODECONFIG_30)
        );
        assert_eq!(from_user_data(&b64(&crlf)), Some(30));
        // A flag beats the config file, whichever part it is in.
        let flags = "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\n\
            --B\nContent-Type: application/node.eks.aws\n\n\
            apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  kubelet:\n    flags:\n    - --max-pods=20\n\n\
            --B\nContent-Type: application/node.eks.aws\n\n\
            apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  kubelet:\n    config:\n      maxPods: 60\n\n\
            --B--\n";
        assert_eq!(from_user_data(&b64(flags)), Some(20));
        // No NodeConfig part, or NodeConfig without maxPods, or a shell script: nothing set.
        let script = "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\n\
            --B\nContent-Type: text/x-shellscript\n\n#!/bin/bash\n/etc/eks/bootstrap.sh c --kubelet-extra-args '--max-pods=9'\n--B--\n";
        assert_eq!(from_user_data(&b64(script)), None);
        assert_eq!(from_user_data(&b64("kind: NodeConfig\nspec: {}\n")), None);
        assert_eq!(from_user_data("%%% not base64"), None);
    }

    #[test]
    fn bottlerocket_toml() {
        let toml = "[settings.kubernetes]\nmax-pods = 25\ncluster-name = \"c\"\n";
        assert_eq!(from_user_data(&b64(toml)), Some(25));
        assert_eq!(
            from_user_data(&b64("settings.kubernetes.max-pods = 7\n")),
            Some(7)
        );
        assert_eq!(
            from_user_data(&b64("[settings.kubernetes]\ncluster-name = \"c\"\n")),
            None
        );
    }
}
