//! What the EKS kinds share (clusters, nodegroups, add-ons, and the templates and stacks
//! that take request tokens): request tokens, tag updates by ARN, the wait for a new IAM role
//! to become assumable, whether a cluster has an add-on, and the AMI families whose user data
//! can carry a kubelet setting. A kind's own module never names another kind's; what two need
//! lives here.

use super::{aws_error, tag_changes, Ctx, ResourceError};
use crate::base::addr::ResourceAddr;
use crate::base::events::Event;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// The EKS add-on name of the VPC CNI (its rules: `domain::cni`).
pub const VPC_CNI_ADDON: &str = "vpc-cni";
/// The VPC CNI's env var that turns custom networking on.
pub const VPC_CNI_CUSTOM_NETWORK_ENV: &str = "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG";
/// The API group and kind of Karpenter's node class, which a NodePool's `nodeClassRef` names
/// (aws/karpenter-provider-aws `pkg/apis/v1/ec2nodeclass.go`).
pub const KARPENTER_NODE_CLASS_GROUP: &str = "karpenter.k8s.aws";
pub const KARPENTER_NODE_CLASS_KIND: &str = "EC2NodeClass";
/// The VPC CNI's env var naming the node label whose value is the ENIConfig's name.
pub const VPC_CNI_LABEL_DEF_ENV: &str = "ENI_CONFIG_LABEL_DEF";
/// The VPC CNI's env var that turns security groups for pods on: ipamd leaves an ENI slot
/// for the trunk interface the VPC resource controller attaches (amazon-vpc-cni-k8s README,
/// `ENABLE_POD_ENI`).
pub const VPC_CNI_POD_ENI_ENV: &str = "ENABLE_POD_ENI";
/// How nodes pick their ENIConfig (`eni_config_selection` of `aws_node` and of the `vpc-cni`
/// add-on): by the node label `ENI_CONFIG_LABEL_DEF` names, or by the node annotation
/// `k8s.amazonaws.com/eniConfig`.
pub const ENI_CONFIG_SELECTIONS: &[&str] = &[ENI_CONFIG_BY_LABEL, "annotation"];
/// The default selection, in which eksnet sets `ENI_CONFIG_LABEL_DEF`.
pub const ENI_CONFIG_BY_LABEL: &str = "label";

/// How long a freshly created role may take to become assumable by EKS.
pub const IAM_PROPAGATION_WINDOW: Duration = Duration::from_secs(120);

/// A client request token for one create attempt. The SDK re-sends it on its own retries, so
/// a request that reached AWS but whose answer was lost does not create twice; a later attempt
/// (e.g. after destroy) gets a new one, because AWS refuses a token reused for a new request.
/// Across crashes, duplicates are prevented by the intent row and the lookup by name instead.
pub fn request_token(ctx: &Ctx, addr: &ResourceAddr, attempt_key: &str) -> String {
    let nonce = uuid::Uuid::new_v4();
    format!(
        "eksnet-{}",
        crate::base::value::digest(&format!("{}/{addr}/{attempt_key}/{nonce}", ctx.lineage))
    )
}

/// True for the error EKS gives while a new role has not propagated yet.
pub fn is_iam_propagation(err: &ResourceError) -> bool {
    matches!(err, ResourceError::Aws(crate::cloud::aws::AwsError { code, message, .. })
        if code == "InvalidParameterException"
            && (message.contains("could not be assumed") || message.contains("trusted entity")))
}

/// Runs `op` again while it fails with the IAM-propagation error, within the window.
pub async fn retry_iam_propagation<T, F, Fut>(
    ctx: &Ctx,
    addr: &ResourceAddr,
    mut op: F,
) -> Result<T, ResourceError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ResourceError>>,
{
    use crate::base::retry::{Backoff, Step, Stop};
    let result = crate::base::retry::run(
        &Backoff::iam_propagation(IAM_PROPAGATION_WINDOW),
        |_| {
            let attempt = op();
            async move {
                match attempt.await {
                    Ok(value) => Step::Done(value),
                    Err(e) if is_iam_propagation(&e) => Step::Retry(e),
                    Err(e) => Step::Fail(e),
                }
            }
        },
        // Past the window, the last refusal is returned as it is, unreported.
        |e: &ResourceError, progress| {
            if progress.retrying {
                ctx.reporter.event(Event::Retrying {
                    addr: addr.clone(),
                    reason: format!("IAM role not assumable yet: {e}"),
                    attempt: progress.attempt,
                });
            }
        },
    )
    .await;
    match result {
        Ok(value) => Ok(value),
        Err(Stop::Failed(e) | Stop::Exhausted { last: e, .. }) => Err(e),
    }
}

/// Tag changes on any EKS resource by ARN.
pub async fn update_tags(
    ctx: &Ctx,
    arn: &str,
    before: &Value,
    after: &Value,
) -> Result<(), ResourceError> {
    let (removed, set) = tag_changes(before, after);
    if !removed.is_empty() {
        ctx.aws
            .eks
            .untag_resource()
            .resource_arn(arn)
            .set_tag_keys(Some(removed))
            .send()
            .await
            .map_err(|e| aws_error("UntagResource", e))?;
    }
    if !set.is_empty() {
        ctx.aws
            .eks
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(set.into_iter().collect()))
            .send()
            .await
            .map_err(|e| aws_error("TagResource", e))?;
    }
    Ok(())
}

/// An add-on of a cluster, or `None` when it (or the cluster) does not exist.
pub async fn describe_addon(
    ctx: &Ctx,
    cluster: &str,
    name: &str,
) -> Result<Option<aws_sdk_eks::types::Addon>, ResourceError> {
    match ctx
        .aws
        .eks
        .describe_addon()
        .cluster_name(cluster)
        .addon_name(name)
        .send()
        .await
    {
        Ok(out) => Ok(out.addon),
        Err(e) => {
            let err = aws_error("DescribeAddon", e);
            // Also when the cluster itself is gone: its add-ons went with it.
            if err.code() == Some("ResourceNotFoundException") {
                Ok(None)
            } else {
                Err(err)
            }
        }
    }
}

/// Whether a cluster has this add-on, for checks that guard against EKS undoing eksnet's
/// work: `Some(version)` if it does. An answer that says neither (no permission for
/// `eks:DescribeAddon`, an emulator without the add-on API) is `None`: the check is skipped,
/// it never fails a plan.
pub async fn addon_version(ctx: &Ctx, cluster: &str, name: &str) -> Option<String> {
    let addon = describe_addon(ctx, cluster, name).await.ok()??;
    Some(addon.addon_version().unwrap_or_default().to_string())
}

/// The node agent that reads the user data, from the nodegroup's `ami_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AmiFamily {
    /// AL2023: nodeadm merges `NodeConfig` documents, the later one winning.
    Al2023,
    /// Bottlerocket: the user data is TOML settings, merged with EKS's.
    Bottlerocket,
}

impl AmiFamily {
    /// The family whose user data can set max pods for this `ami_type`, or why none can.
    pub fn of(ami_type: Option<&str>) -> Result<AmiFamily, String> {
        let Some(t) = ami_type else {
            return Err("`max_pods` needs `ami_type`: eksnet writes the kubelet setting in the user data of the AMI family (AL2023 `NodeConfig` or Bottlerocket settings), and EKS's default AMI type depends on the Kubernetes version; set e.g. `ami_type = \"AL2023_x86_64_STANDARD\"`".into());
        };
        if t.starts_with("AL2023_") {
            Ok(AmiFamily::Al2023)
        } else if t.starts_with("BOTTLEROCKET_") {
            Ok(AmiFamily::Bottlerocket)
        } else if t.starts_with("AL2_") {
            Err(format!("`max_pods` cannot be set on `ami_type = \"{t}\"`: for an AL2 managed nodegroup EKS runs bootstrap.sh with its own `--max-pods`, which no launch template user data can override short of a custom AMI (and EKS publishes no AL2 AMIs from Kubernetes 1.33); use an AL2023 or Bottlerocket AMI type, or leave `max_pods` out and let EKS compute it"))
        } else {
            Err(format!("`max_pods` is supported on AL2023 and Bottlerocket AMI types, not `{t}`; leave it out and let EKS compute max pods"))
        }
    }

    /// Where the volume `disk_size` sizes is: AL2023's root, Bottlerocket's data volume.
    pub fn data_device(self) -> &'static str {
        match self {
            AmiFamily::Al2023 => "/dev/xvda",
            AmiFamily::Bottlerocket => "/dev/xvdb",
        }
    }
}

use schemars::JsonSchema;

/// A node group's node counts (managed or self-managed): all three when the table is given.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scaling {
    /// The fewest nodes, 0 or more.
    pub min_size: i64,
    /// The most nodes, 1 or more.
    pub max_size: i64,
    /// The nodes to run, from `min_size` to `max_size`.
    pub desired_size: i64,
}

impl Scaling {
    /// The bounds EKS and Auto Scaling both require, at the resource's `scaling`.
    pub fn check(&self, rules: &mut dyn super::FieldRules) {
        let s = self;
        if s.max_size < 1
            || s.min_size < 0
            || s.min_size > s.desired_size
            || s.desired_size > s.max_size
        {
            rules.error("scaling", format!(
                "scaling needs 0 ≤ min_size ≤ desired_size ≤ max_size and max_size ≥ 1 (got min {}, desired {}, max {})",
                s.min_size, s.desired_size, s.max_size
            ));
        }
    }
}

impl Default for Scaling {
    // EKS's own defaults for create-nodegroup without --scaling-config.
    fn default() -> Self {
        Scaling {
            min_size: 1,
            max_size: 2,
            desired_size: 2,
        }
    }
}

const MIME_BOUNDARY: &str = "//";

/// What a self-managed node needs to find its cluster, which EKS adds itself to the user
/// data of a managed nodegroup (EKS API DescribeCluster: `endpoint`,
/// `certificateAuthority.data`, `kubernetesNetworkConfig.serviceIpv4Cidr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCluster {
    pub name: String,
    pub endpoint: String,
    /// Base64 PEM, as DescribeCluster gives it.
    pub certificate_authority: String,
    pub service_cidr: String,
}

/// The user data that gives the kubelet `max_pods`, in the family's own format. With
/// `cluster` (self-managed nodes) it also says where the cluster is: AL2023's `NodeConfig`
/// `spec.cluster` (name, apiServerEndpoint, certificateAuthority, cidr), Bottlerocket's
/// `settings.kubernetes` api-server, cluster-certificate and cluster-name (EKS user guide,
/// launch-templates; Bottlerocket settings reference).
pub fn user_data(family: AmiFamily, max_pods: u32) -> String {
    node_user_data(family, max_pods, None)
}

/// `user_data`, with the cluster's part for nodes EKS does not bootstrap.
pub fn node_user_data(family: AmiFamily, max_pods: u32, cluster: Option<&NodeCluster>) -> String {
    match family {
        // MIME multipart, as EKS requires of a managed nodegroup's launch template user
        // data: EKS adds its own NodeConfig part (cluster endpoint, CA) ahead of this one.
        AmiFamily::Al2023 => {
            let cluster_part = cluster.map_or(String::new(), |c| {
                format!(
                    "\x20 cluster:\n\
                     \x20   name: {}\n\
                     \x20   apiServerEndpoint: {}\n\
                     \x20   certificateAuthority: {}\n\
                     \x20   cidr: {}\n",
                    c.name, c.endpoint, c.certificate_authority, c.service_cidr
                )
            });
            format!(
                "MIME-Version: 1.0\n\
                 Content-Type: multipart/mixed; boundary=\"{MIME_BOUNDARY}\"\n\
                 \n\
                 --{MIME_BOUNDARY}\n\
                 Content-Type: application/node.eks.aws\n\
                 \n\
                 ---\n\
                 apiVersion: node.eks.aws/v1alpha1\n\
                 kind: NodeConfig\n\
                 spec:\n\
                 {cluster_part}\
                 \x20 kubelet:\n\
                 \x20   config:\n\
                 \x20     maxPods: {max_pods}\n\
                 \n\
                 --{MIME_BOUNDARY}--\n"
            )
        }
        AmiFamily::Bottlerocket => {
            let cluster_part = cluster.map_or(String::new(), |c| {
                format!(
                    "api-server = \"{}\"\ncluster-certificate = \"{}\"\ncluster-name = \"{}\"\n",
                    c.endpoint, c.certificate_authority, c.name
                )
            });
            format!("[settings.kubernetes]\n{cluster_part}max-pods = {max_pods}\n")
        }
    }
}

/// What user data says, read back: its family and max pods, when it is in a shape eksnet
/// writes (anything else, edited outside eksnet, reads as `None`: a change to set back).
pub fn parse_user_data(text: &str) -> (Option<AmiFamily>, Option<u32>) {
    let value_after = |key: &str| {
        text.lines().find_map(|l| {
            let rest = l.trim().strip_prefix(key)?;
            rest.trim_start_matches([' ', ':', '='].as_slice())
                .trim()
                .parse::<u32>()
                .ok()
        })
    };
    if text.contains("application/node.eks.aws") {
        (Some(AmiFamily::Al2023), value_after("maxPods"))
    } else if text.trim_start().starts_with("[settings") {
        (Some(AmiFamily::Bottlerocket), value_after("max-pods"))
    } else {
        (None, None)
    }
}

/// Launch template names: 3 to 128 characters.
pub const TEMPLATE_NAME_MAX: usize = 128;

/// The name eksnet gives the template of a nodegroup: `eksnet-CLUSTER-NODEGROUP`, shortened
/// with a digest of the whole when it would pass the 128-character limit.
pub fn template_name(cluster: &str, nodegroup: &str) -> String {
    let full = format!("eksnet-{cluster}-{nodegroup}");
    if full.len() <= TEMPLATE_NAME_MAX {
        return full;
    }
    let digest = crate::base::value::digest(&full);
    let keep = TEMPLATE_NAME_MAX - digest.len() - 1;
    let cut = (0..=keep)
        .rev()
        .find(|i| full.is_char_boundary(*i))
        .unwrap_or(0);
    format!("{}-{digest}", &full[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> NodeCluster {
        NodeCluster {
            name: "demo".into(),
            endpoint: "https://ABC.gr7.us-west-2.eks.amazonaws.com".into(),
            certificate_authority: "LS0tLS1CRUdJTg==".into(),
            service_cidr: "10.100.0.0/16".into(),
        }
    }

    #[test]
    fn self_managed_al2023_user_data_says_where_the_cluster_is() {
        let text = node_user_data(AmiFamily::Al2023, 17, Some(&cluster()));
        assert!(
            text.contains(
                "spec:\n  cluster:\n    name: demo\n    apiServerEndpoint: https://ABC.gr7.us-west-2.eks.amazonaws.com\n    certificateAuthority: LS0tLS1CRUdJTg==\n    cidr: 10.100.0.0/16\n  kubelet:\n    config:\n      maxPods: 17\n"
            ),
            "{text}"
        );
        assert_eq!(parse_user_data(&text), (Some(AmiFamily::Al2023), Some(17)));
    }

    #[test]
    fn self_managed_bottlerocket_user_data_has_the_cluster_settings() {
        let text = node_user_data(AmiFamily::Bottlerocket, 17, Some(&cluster()));
        assert_eq!(
            text,
            "[settings.kubernetes]\napi-server = \"https://ABC.gr7.us-west-2.eks.amazonaws.com\"\ncluster-certificate = \"LS0tLS1CRUdJTg==\"\ncluster-name = \"demo\"\nmax-pods = 17\n"
        );
        assert_eq!(
            parse_user_data(&text),
            (Some(AmiFamily::Bottlerocket), Some(17))
        );
        // Managed nodegroups' templates are unchanged: EKS adds the cluster part itself.
        assert_eq!(
            user_data(AmiFamily::Bottlerocket, 17),
            "[settings.kubernetes]\nmax-pods = 17\n"
        );
    }
}
