//! `self_managed_node_group`: nodes eksnet starts itself, as the EKS user guide's
//! self-managed node CloudFormation stack does, from one table: an IAM instance profile for
//! the node role, a launch template (the AMI, the instance type, and user data that says
//! where the cluster is and gives the kubelet `max_pods`), an Auto Scaling group over the
//! node subnets, and an EKS access entry of type `EC2_LINUX` for the node role, without which
//! the nodes' kubelets are refused (EKS user guide, access entries: "creating an access entry
//! of type EC2_LINUX ... for self-managed nodes").
//!
//! One kind making four objects rather than four kinds: none of them is of use alone, each is
//! named after the Auto Scaling group (the instance profile by the group's name, the template
//! `eksnet-CLUSTER-GROUP`), and every step of `create` first finds what an earlier, crashed
//! attempt made, so the intent row the engine writes before `create` is all crash-safety needs
//! and the plan shows one line per group. The cloud id is the group's name.
//!
//! Replacement (a new AMI, instance type, max pods, role or security groups: what the
//! instances are made with) is create-before-destroy as for managed nodegroups: the new group
//! takes the name or the name + `-cbd`, and its create returns once each of its instances is
//! a Ready Node. Only then does the old group go, and Auto Scaling drains nothing (EKS does
//! for a managed nodegroup, Auto Scaling never does): its Nodes are cordoned, then drained
//! one at a time with the drain `eksnet roll` uses (evictions, PodDisruptionBudgets
//! honoured), then the group is scaled to 0 and deleted. A destroy drains the same way when
//! a Ready node outside the group can take the pods. The access entry belongs to the role,
//! not the group: a group going away deletes it only when no other group of eksnet's on the
//! cluster uses the role.

use super::eks::{node_user_data, parse_user_data, template_name, AmiFamily, NodeCluster, Scaling};
use super::drain::{self, Drainer};
use super::BuildCtx;
use super::{
    aws_error, req_str, split_tags, str_list, wait_until, Change, Ctx, FieldRules, ImportId,
    KindFacts, Lookup, Observed, Poll, ResourceError, ResourceKind, Shape, Unique,
};
use crate::base::addr::{Kind, ResourceAddr};
use crate::base::events::Event;
use crate::base::instance_types;
use crate::base::value::is_ref;
use aws_sdk_autoscaling::types::{AutoScalingGroup, LaunchTemplateSpecification, Tag};
use aws_sdk_ec2::types::{
    LaunchTemplateIamInstanceProfileSpecificationRequest, RequestLaunchTemplateData, ResourceType,
    TagSpecification,
};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Self-managed nodes of one cluster: an Auto Scaling group eksnet makes with its launch
/// template, instance profile and access entry.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelfManagedNodeGroupConfig {
    /// The cluster's name, usually `${cluster.NAME.name}`.
    pub cluster_name: String,
    /// The Auto Scaling group's name (also the instance profile's).
    pub name: String,
    /// The nodes' IAM role ARN, usually `${iam_role.NAME.arn}`.
    pub node_role_arn: String,
    /// The subnets the nodes run in, at least one.
    pub subnet_ids: Vec<String>,
    /// The EC2 instance type.
    pub instance_type: String,
    /// An AL2023 or Bottlerocket EKS AMI type (`AL2023_x86_64_STANDARD`,
    /// `AL2023_ARM_64_STANDARD`, `BOTTLEROCKET_x86_64`, `BOTTLEROCKET_ARM_64`): the format of
    /// the user data.
    pub ami_type: String,
    /// The AMI, an EKS-optimized one of `ami_type`'s family and the cluster's version.
    pub ami_id: String,
    /// Max pods per node, given to the kubelet in the user data.
    #[schemars(range(min = 1))]
    pub max_pods: u32,
    /// The node counts, `{ min_size, max_size, desired_size }`.
    #[serde(default)]
    pub scaling: Scaling,
    /// The nodes' security groups; absent: the cluster security group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_group_ids: Option<Vec<String>>,
    /// Tags of the Auto Scaling group (propagated to the instances) and the template.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// Auto Scaling group names: 1 to 255 characters; instance profiles take 128, and the
/// group's name is the profile's.
const MAX_NAME: usize = 128;
/// The spec's name on a group whose name differs from it (a replacement's).
const TAG_NAME: &str = "eksnet:name";
/// The node role on the group, so that a group going away can tell whether another group of
/// the cluster still needs the role's access entry.
const TAG_ROLE: &str = "eksnet:node-role";
/// What the cluster autoscaler and the EKS user guide's node template tag a cluster's nodes
/// with (EKS user guide, nodes/worker.adoc): `owned`, propagated to the instances.
const CLUSTER_TAG_PREFIX: &str = "kubernetes.io/cluster/";
/// The access entry type of Linux nodes (EKS API CreateAccessEntry, `type`).
const ACCESS_ENTRY_TYPE: &str = "EC2_LINUX";

pub struct SelfManagedNodeGroupKind;

const FACTS: KindFacts = KindFacts {
    // What the instances are made with: new instances, so a new group beside the old.
    force_new: &[
        "cluster_name",
        "name",
        "node_role_arn",
        "instance_type",
        "ami_id",
        "ami_family",
        "max_pods",
        "security_group_ids",
    ],
    outputs: &["name", "launch_template_name", "instance_profile_name"],
    mirrored_outputs: &[],
    identity: &["name"],
    lookup_key: &["name"],
    create_only: &[],
    set_valued: &["subnet_ids", "security_group_ids"],
    default_timeout: Duration::from_secs(20 * 60),
    kubernetes: false,
    import_id: ImportId::Plain,
    replacement: Some(replacement),
    compared_when_unset: &[],
    updated_outputs: &[],
    derived: false,
    unique: Some(Unique {
        field: "name",
        one_per: None,
    }),
    output_shapes: &[],
    restricted_tags: None,
    parent: Some(Kind::Cluster),
    patches_existing: false,
    checked_only: &[],
    kubernetes_endpoint: false,
    puts_back: &[],
};

/// Create-before-destroy naming, as for nodegroups.
fn replacement(attrs: &Value, old_cloud_id: &str) -> Option<(Value, String)> {
    super::replacement_named(attrs, old_cloud_id, MAX_NAME)
}

/// The role name of a role ARN (`arn:aws:iam::1:role/path/NAME` → `NAME`).
fn role_name(arn: &str) -> Result<&str, ResourceError> {
    arn.rsplit_once(":role/")
        .map(|(_, n)| n.rsplit('/').next().unwrap_or(n))
        .ok_or_else(|| ResourceError::MissingAttribute("node_role_arn".into()))
}

fn max_pods_attr(attrs: &Value) -> Result<u32, ResourceError> {
    attrs
        .get("max_pods")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| ResourceError::MissingAttribute("max_pods".into()))
}

fn family_attr(attrs: &Value) -> Result<AmiFamily, ResourceError> {
    serde_json::from_value(attrs.get("ami_family").cloned().unwrap_or(Value::Null))
        .map_err(|_| ResourceError::MissingAttribute("ami_family".into()))
}

/// Where the cluster is and its security group, for the user data and the default groups.
async fn describe_cluster(ctx: &Ctx, name: &str) -> Result<(NodeCluster, String), ResourceError> {
    let out = ctx
        .aws
        .eks
        .describe_cluster()
        .name(name)
        .send()
        .await
        .map_err(|e| aws_error("DescribeCluster", e))?;
    let missing = |what: &str| ResourceError::NotReadBack {
        what: format!("the {what} of cluster {name}"),
    };
    let c = out.cluster().ok_or_else(|| missing("description"))?;
    let node = NodeCluster {
        name: name.to_string(),
        endpoint: c.endpoint().ok_or_else(|| missing("endpoint"))?.to_string(),
        certificate_authority: c
            .certificate_authority()
            .and_then(|a| a.data())
            .ok_or_else(|| missing("certificate authority"))?
            .to_string(),
        service_cidr: c
            .kubernetes_network_config()
            .and_then(|k| k.service_ipv4_cidr())
            .ok_or_else(|| missing("service CIDR"))?
            .to_string(),
    };
    let group = c
        .resources_vpc_config()
        .and_then(|v| v.cluster_security_group_id())
        .unwrap_or_default()
        .to_string();
    Ok((node, group))
}

async fn describe_group(ctx: &Ctx, name: &str) -> Result<Option<AutoScalingGroup>, ResourceError> {
    let out = ctx
        .aws
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .map_err(|e| aws_error("DescribeAutoScalingGroups", e))?;
    Ok(out.auto_scaling_groups().first().cloned())
}

fn group_tag<'a>(g: &'a AutoScalingGroup, key: &str) -> Option<&'a str> {
    g.tags()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// Reads one group with its launch template's default version. `None`: no such group.
async fn read(ctx: &Ctx, name: &str) -> Result<Option<Observed>, ResourceError> {
    let Some(g) = describe_group(ctx, name).await? else {
        return Ok(None);
    };
    let template = g
        .launch_template()
        .and_then(|t| t.launch_template_name())
        .map(String::from);
    let data = match &template {
        Some(t) => ctx
            .aws
            .ec2
            .describe_launch_template_versions()
            .launch_template_name(t)
            .versions("$Default")
            .send()
            .await
            .ok()
            .and_then(|o| o.launch_template_versions().first().cloned())
            .and_then(|v| v.launch_template_data().cloned()),
        None => None,
    };
    let text = data
        .as_ref()
        .and_then(|d| d.user_data())
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    let (family, max_pods) = parse_user_data(&text);
    let cluster = g
        .tags()
        .iter()
        .find_map(|t| t.key()?.strip_prefix(CLUSTER_TAG_PREFIX))
        .unwrap_or_default();
    let subnets: Vec<&str> = g
        .vpc_zone_identifier()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let (tags, managed_by) = split_tags(
        g.tags()
            .iter()
            .filter(|t| !t.key().is_some_and(|k| k.starts_with(CLUSTER_TAG_PREFIX)))
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))),
    );
    let live_name = g.auto_scaling_group_name().unwrap_or(name);
    let groups: Vec<&str> = data
        .as_ref()
        .map(|d| d.security_group_ids().iter().map(String::as_str).collect())
        .unwrap_or_default();
    Ok(Some(Observed {
        cloud_id: live_name.to_string(),
        attrs: json!({
            "name": group_tag(&g, TAG_NAME).unwrap_or(live_name),
            "cluster_name": cluster,
            "node_role_arn": group_tag(&g, TAG_ROLE),
            "subnet_ids": subnets,
            "instance_type": data.as_ref().and_then(|d| d.instance_type()).map(|t| t.as_str()),
            "ami_id": data.as_ref().and_then(|d| d.image_id()),
            "ami_family": family,
            "max_pods": max_pods,
            "scaling": {
                "min_size": g.min_size(), "max_size": g.max_size(),
                "desired_size": g.desired_capacity(),
            },
            "security_group_ids": groups,
            "tags": tags,
        }),
        outputs: json!({
            "name": live_name,
            "launch_template_name": template,
            "instance_profile_name": live_name,
        }),
        managed_by,
    }))
}

async fn read_back(ctx: &Ctx, name: &str) -> Result<Observed, ResourceError> {
    read(ctx, name)
        .await?
        .ok_or_else(|| ResourceError::NotReadBack {
            what: format!("Auto Scaling group {name}"),
        })
}

/// The instance profile named `name` holding the role; what exists already is kept.
async fn ensure_instance_profile(ctx: &Ctx, name: &str, role: &str) -> Result<(), ResourceError> {
    let iam = &ctx.aws.iam;
    match iam
        .create_instance_profile()
        .instance_profile_name(name)
        .send()
        .await
    {
        Ok(_) => {}
        Err(e) => {
            let err = aws_error("CreateInstanceProfile", e);
            if err.code() != Some("EntityAlreadyExists") {
                return Err(err);
            }
        }
    }
    let profile = iam
        .get_instance_profile()
        .instance_profile_name(name)
        .send()
        .await
        .map_err(|e| aws_error("GetInstanceProfile", e))?;
    let has_role = profile
        .instance_profile()
        .is_some_and(|p| p.roles().iter().any(|r| r.role_name() == role));
    if !has_role {
        iam.add_role_to_instance_profile()
            .instance_profile_name(name)
            .role_name(role)
            .send()
            .await
            .map_err(|e| aws_error("AddRoleToInstanceProfile", e))?;
    }
    Ok(())
}

async fn ensure_access_entry(
    ctx: &Ctx,
    cluster: &str,
    role_arn: &str,
) -> Result<(), ResourceError> {
    done_unless(
        ctx.aws
            .eks
            .create_access_entry()
            .cluster_name(cluster)
            .principal_arn(role_arn)
            .r#type(ACCESS_ENTRY_TYPE)
            .send()
            .await
            .map_err(|e| aws_error("CreateAccessEntry", e)),
        // EKS: "The specified access entry resource is already in use on this cluster."
        &["ResourceInUseException"],
    )
}

fn template_data(
    attrs: &Value,
    cluster: &NodeCluster,
    profile: &str,
    groups: Vec<String>,
) -> Result<RequestLaunchTemplateData, ResourceError> {
    let text = node_user_data(family_attr(attrs)?, max_pods_attr(attrs)?, Some(cluster));
    Ok(RequestLaunchTemplateData::builder()
        .image_id(req_str(attrs, "ami_id")?)
        .instance_type(req_str(attrs, "instance_type")?.into())
        .iam_instance_profile(
            LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                .name(profile)
                .build(),
        )
        .set_security_group_ids(Some(groups))
        .user_data(STANDARD.encode(text))
        .build())
}

/// The launch template, made unless an earlier attempt made it.
async fn ensure_template(
    ctx: &Ctx,
    name: &str,
    data: RequestLaunchTemplateData,
    tags: &BTreeMap<String, String>,
) -> Result<(), ResourceError> {
    done_unless(
        ctx.aws
            .ec2
            .create_launch_template()
            .launch_template_name(name)
            .launch_template_data(data)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::LaunchTemplate)
                    .set_tags(Some(super::ec2_tags(tags.clone())))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| aws_error("CreateLaunchTemplate", e)),
        &["InvalidLaunchTemplateName.AlreadyExistsException"],
    )
}

/// `Ok` also when AWS answers one of `codes`: made already by an earlier attempt, or gone.
fn done_unless<T>(result: Result<T, ResourceError>, codes: &[&str]) -> Result<(), ResourceError> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.code().is_some_and(|c| codes.contains(&c)) => Ok(()),
        Err(e) => Err(e),
    }
}

fn asg_tag(group: &str, key: &str, value: &str, propagate: bool) -> Tag {
    Tag::builder()
        .resource_id(group)
        .resource_type("auto-scaling-group")
        .key(key)
        .value(value)
        .propagate_at_launch(propagate)
        .build()
}

fn scaling_of(attrs: &Value) -> (i32, i32, i32) {
    let n = |k: &str| {
        attrs
            .get("scaling")
            .and_then(|s| s.get(k))
            .and_then(Value::as_i64)
            .and_then(|v| i32::try_from(v).ok())
            .unwrap_or(0)
    };
    (n("min_size"), n("max_size"), n("desired_size"))
}

/// Waits until the group has `desired` instances in service (0: none left at all).
async fn wait_in_service(
    ctx: &Ctx,
    addr: &ResourceAddr,
    name: &str,
    desired: usize,
) -> Result<(), ResourceError> {
    let timeout = ctx.timeout(Kind::SelfManagedNodeGroup);
    wait_until(ctx, addr, "Auto Scaling group", timeout, || async {
        let Some(g) = describe_group(ctx, name).await? else {
            return Ok(if desired == 0 {
                Poll::Done(())
            } else {
                Poll::Pending("not found".into())
            });
        };
        let instances = g.instances();
        let in_service = instances
            .iter()
            .filter(|i| i.lifecycle_state().map(|s| s.as_str()) == Some("InService"))
            .count();
        let done = if desired == 0 {
            instances.is_empty()
        } else {
            in_service >= desired
        };
        Ok(if done {
            Poll::Done(())
        } else {
            Poll::Pending(format!("{in_service} of {desired} instances in service"))
        })
    })
    .await
}

/// Deletes the access entry of `role_arn` unless another group of eksnet's on the cluster
/// (other than `group`) still runs nodes with the role.
async fn release_access_entry(
    ctx: &Ctx,
    cluster: &str,
    role_arn: &str,
    group: &str,
) -> Result<(), ResourceError> {
    let out = ctx
        .aws
        .autoscaling
        .describe_auto_scaling_groups()
        .filters(
            aws_sdk_autoscaling::types::Filter::builder()
                .name(format!("tag:{TAG_ROLE}"))
                .values(role_arn)
                .build(),
        )
        .send()
        .await
        .map_err(|e| aws_error("DescribeAutoScalingGroups", e))?;
    let shared = out.auto_scaling_groups().iter().any(|g| {
        g.auto_scaling_group_name() != Some(group)
            && group_tag(g, &format!("{CLUSTER_TAG_PREFIX}{cluster}")).is_some()
    });
    if shared {
        return Ok(());
    }
    done_unless(
        ctx.aws
            .eks
            .delete_access_entry()
            .cluster_name(cluster)
            .principal_arn(role_arn)
            .send()
            .await
            .map_err(|e| aws_error("DeleteAccessEntry", e)),
        &["ResourceNotFoundException"],
    )
}

/// The ids of the group's instances; `in_service`: only those `InService`.
async fn instance_ids(
    ctx: &Ctx,
    name: &str,
    in_service: bool,
) -> Result<BTreeSet<String>, ResourceError> {
    Ok(describe_group(ctx, name)
        .await?
        .iter()
        .flat_map(|g| g.instances())
        .filter(|i| !in_service || i.lifecycle_state().map(|s| s.as_str()) == Some("InService"))
        .filter_map(|i| i.instance_id().map(String::from))
        .collect())
}

/// The cluster's Nodes by the instance of their `providerID`.
async fn nodes_by_instance(client: &kube::Client) -> Result<BTreeMap<String, Node>, ResourceError> {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| crate::cloud::kube::error("list nodes", e))?;
    Ok(nodes
        .items
        .into_iter()
        .filter_map(|n| Some((drain::provider_instance(&n)?.1, n)))
        .collect())
}

/// Waits until each instance in service in the group has a Node in the cluster (its
/// `providerID` names the instance) that is Ready. An instance in service is only EC2's view:
/// its kubelet may not have registered yet, or its CNI not started, and a group being
/// replaced must not go before the new one can take its pods.
async fn wait_nodes_ready(
    ctx: &Ctx,
    addr: &ResourceAddr,
    cluster: &str,
    name: &str,
) -> Result<(), ResourceError> {
    let Some(client) = ctx.kube.client(&ctx.aws, cluster).await? else {
        return Err(ResourceError::NotReadBack {
            what: format!("cluster {cluster} for the Nodes of group {name}"),
        });
    };
    let timeout = ctx.timeout(Kind::SelfManagedNodeGroup);
    wait_until(ctx, addr, "the group's Nodes", timeout, || {
        let client = client.clone();
        async move {
            let ids = instance_ids(ctx, name, true).await?;
            let nodes = nodes_by_instance(&client).await?;
            let registered = ids.iter().filter(|i| nodes.contains_key(*i)).count();
            let ready = ids
                .iter()
                .filter(|i| nodes.get(*i).is_some_and(drain::is_ready))
                .count();
            Ok(if ready == ids.len() {
                Poll::Done(())
            } else {
                Poll::Pending(format!(
                    "{registered} of {} instances registered as Nodes, {ready} Ready",
                    ids.len()
                ))
            })
        }
    })
    .await
}

/// One step of taking a group's nodes away, in the order `delete` takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// All the group's Nodes unschedulable first: a pod evicted from one must not land on
    /// another that goes next.
    Cordon,
    /// One Node at a time: evictions, PodDisruptionBudgets honoured, until its pods run
    /// elsewhere.
    Drain,
    /// Desired capacity 0: Auto Scaling terminates the instances (no drain of its own).
    ScaleToZero,
    /// DeleteAutoScalingGroup, once no instance is left.
    DeleteGroup,
}

/// The steps of a group's delete. Auto Scaling ends instances without any look at their
/// pods (EC2 Auto Scaling API reference, DeleteAutoScalingGroup: ForceDelete "terminates all
/// instances"; a lowered desired capacity terminates instances too), so the drain comes
/// before either; without a node outside the group for the pods (`drain` false) the pods end
/// with their instances.
fn delete_steps(drain: bool) -> Vec<Step> {
    let mut steps = Vec::new();
    if drain {
        steps.extend([Step::Cordon, Step::Drain]);
    }
    steps.extend([Step::ScaleToZero, Step::DeleteGroup]);
    steps
}

/// The group's Nodes, and whether a Ready, schedulable Node outside the group is left to take
/// their pods. `None`: the cluster is gone (nothing to drain).
async fn group_nodes(
    ctx: &Ctx,
    cluster: &str,
    name: &str,
) -> Result<Option<(kube::Client, Vec<String>, bool)>, ResourceError> {
    let Some(client) = ctx.kube.client(&ctx.aws, cluster).await? else {
        return Ok(None);
    };
    let ids = instance_ids(ctx, name, false).await?;
    let nodes = nodes_by_instance(&client).await?;
    let ours: Vec<String> = nodes
        .iter()
        .filter(|(i, _)| ids.contains(*i))
        .filter_map(|(_, n)| n.metadata.name.clone())
        .collect();
    let elsewhere = nodes.iter().any(|(i, n)| {
        !ids.contains(i)
            && drain::is_ready(n)
            && !n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false)
    });
    Ok(Some((client, ours, elsewhere)))
}

/// Cordons or drains the group's Nodes (one at a time), within the kind's timeout; the
/// timeout's error names what the drain waited for (a PodDisruptionBudget refusing an
/// eviction, pods with no room elsewhere).
async fn drain_nodes(
    ctx: &Ctx,
    addr: &ResourceAddr,
    client: &kube::Client,
    nodes: &[String],
    step: Step,
) -> Result<(), ResourceError> {
    let started = std::time::Instant::now();
    let last = std::sync::Mutex::new(String::from("its first eviction"));
    let say = |status: String| {
        ctx.reporter.event(Event::Waiting {
            addr: addr.clone(),
            status,
            elapsed: started.elapsed(),
        })
    };
    let drainer = Drainer {
        client: client.clone(),
        pause: ctx.poll_cap.min(Duration::from_secs(5)),
        say: Box::new(say),
        waiting: Box::new(|node: &str, what: String| {
            if let Ok(mut l) = last.lock() {
                *l = format!("{node}: {what}");
            }
        }),
    };
    let timeout = ctx.timeout(Kind::SelfManagedNodeGroup);
    let work = async {
        for node in nodes {
            if step == Step::Cordon {
                drainer.cordon(node).await?;
                continue;
            }
            say(format!("draining {node} (the group's Nodes cordoned)"));
            drainer.drain(node).await?;
            say(format!("{node} drained"));
        }
        Ok::<_, ResourceError>(())
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(done) => done,
        Err(_) => Err(ResourceError::Timeout {
            what: format!("the drain of the group's Nodes {}", nodes.join(", ")),
            waited_secs: started.elapsed().as_secs(),
            status: last.lock().map(|l| l.clone()).unwrap_or_default(),
            kind: addr.kind.as_str(),
        }),
    }
}

/// Desired capacity 0, and the wait until the group holds no instance.
async fn scale_to_zero(ctx: &Ctx, addr: &ResourceAddr, name: &str) -> Result<(), ResourceError> {
    ctx.aws
        .autoscaling
        .update_auto_scaling_group()
        .auto_scaling_group_name(name)
        .min_size(0)
        .desired_capacity(0)
        .send()
        .await
        .map_err(|e| aws_error("UpdateAutoScalingGroup", e))?;
    wait_in_service(ctx, addr, name, 0).await
}

/// DeleteAutoScalingGroup, and the wait until the group is gone.
async fn delete_group(ctx: &Ctx, addr: &ResourceAddr, name: &str) -> Result<(), ResourceError> {
    if let Err(e) = ctx
        .aws
        .autoscaling
        .delete_auto_scaling_group()
        .auto_scaling_group_name(name)
        .force_delete(true)
        .send()
        .await
    {
        let err = aws_error("DeleteAutoScalingGroup", e);
        // Gone already (a delete sent by a run that died before its answer).
        if !(err.code() == Some("ValidationError") && describe_group(ctx, name).await?.is_none())
        {
            return Err(err);
        }
    }
    let timeout = ctx.timeout(Kind::SelfManagedNodeGroup);
    wait_until(ctx, addr, "Auto Scaling group", timeout, || async {
        Ok(match describe_group(ctx, name).await? {
            None => Poll::Done(()),
            Some(_) => Poll::Pending("deleting".into()),
        })
    })
    .await
}

impl ResourceKind for SelfManagedNodeGroupKind {
    const FACTS: &'static KindFacts = &FACTS;
    type Config = SelfManagedNodeGroupConfig;

    fn check_shape(n: &Self::Config, rules: &mut dyn FieldRules) {
        n.scaling.check(rules);
        if n.subnet_ids.is_empty() {
            rules.error(
                "subnet_ids",
                "a node group needs at least one subnet".into(),
            );
        }
        if n.max_pods < 1 {
            rules.error("max_pods", "`max_pods` must be 1 or more".into());
        }
    }

    fn check_fields(n: &Self::Config, rules: &mut dyn FieldRules) {
        rules.shaped("cluster_name", &n.cluster_name, Shape::ClusterName);
        rules.shaped("node_role_arn", &n.node_role_arn, Shape::RoleArn);
        for (i, s) in n.subnet_ids.iter().enumerate() {
            rules.shaped(&format!("subnet_ids.{i}"), s, Shape::SubnetId);
        }
        for (i, g) in n.security_group_ids.iter().flatten().enumerate() {
            rules.shaped(
                &format!("security_group_ids.{i}"),
                g,
                Shape::SecurityGroupId,
            );
        }
        if !is_ref(&n.name) && (n.name.is_empty() || n.name.len() > MAX_NAME) {
            rules.error("name", format!("the group's name (also its instance profile's) takes 1 to {MAX_NAME} characters"));
        }
        if !is_ref(&n.instance_type) {
            rules.instance_type("instance_type", &n.instance_type);
            if let Some(f) = instance_types::lookup(&n.instance_type) {
                let most = f.most_pods();
                if n.max_pods > most {
                    rules.error("max_pods", format!("max_pods = {} is more than `{}` can ever run: even with prefix delegation on every ENI it holds {most} pods (EC2's ENI and IPv4 limits per type); pods past that would wait for an address forever", n.max_pods, n.instance_type));
                }
            }
        }
    }

    fn desired_attrs(
        c: &Self::Config,
        _build: &BuildCtx,
    ) -> Result<Value, Vec<(&'static str, String)>> {
        let family = AmiFamily::of(Some(&c.ami_type)).map_err(|e| vec![("ami_type", e)])?;
        let mut attrs = json!({
            "cluster_name": c.cluster_name, "name": c.name, "node_role_arn": c.node_role_arn,
            "subnet_ids": c.subnet_ids, "instance_type": c.instance_type, "ami_id": c.ami_id,
            "ami_family": family, "max_pods": c.max_pods, "scaling": c.scaling, "tags": c.tags,
        });
        if let (Some(m), Some(g)) = (attrs.as_object_mut(), &c.security_group_ids) {
            m.insert("security_group_ids".into(), json!(g));
        }
        Ok(attrs)
    }

    async fn refresh(ctx: &Ctx, items: &[Lookup]) -> Result<Vec<Option<Observed>>, ResourceError> {
        super::read_each_by_id_or_name(items, MAX_NAME, |n| async move { read(ctx, &n).await })
            .await
    }

    /// The instance profile, the access entry, the template, then the group, each found
    /// first if an earlier attempt made it; waits for the desired instances in service.
    async fn create(
        ctx: &Ctx,
        addr: &ResourceAddr,
        attrs: &Value,
    ) -> Result<Observed, ResourceError> {
        let name = req_str(attrs, "name")?;
        let cluster = req_str(attrs, "cluster_name")?;
        let role_arn = req_str(attrs, "node_role_arn")?;
        let (node_cluster, cluster_group) = describe_cluster(ctx, cluster).await?;
        ensure_instance_profile(ctx, name, role_name(role_arn)?).await?;
        // Before any instance: a kubelet without its entry is refused and never retried
        // into a Node on AL2023 until it restarts.
        ensure_access_entry(ctx, cluster, role_arn).await?;
        let groups = match attrs.get("security_group_ids") {
            Some(Value::Array(_)) => str_list(attrs, "security_group_ids"),
            _ => vec![cluster_group],
        };
        let mut tags = ctx.managed_tags(addr, attrs.get("tags").unwrap_or(&Value::Null));
        if let Some(spec_name) = super::str_attr(attrs, "spec_name") {
            tags.insert(TAG_NAME.into(), spec_name.to_string());
        }
        let template = template_name(cluster, name);
        let data = template_data(attrs, &node_cluster, name, groups)?;
        ensure_template(ctx, &template, data, &tags).await?;
        if describe_group(ctx, name).await?.is_none() {
            let (min, max, desired) = scaling_of(attrs);
            let mut asg_tags: Vec<Tag> = tags
                .iter()
                .map(|(k, v)| asg_tag(name, k, v, !k.starts_with("eksnet:")))
                .collect();
            asg_tags.push(asg_tag(
                name,
                &format!("{CLUSTER_TAG_PREFIX}{cluster}"),
                "owned",
                true,
            ));
            asg_tags.push(asg_tag(name, TAG_ROLE, role_arn, false));
            // A new instance profile may not be usable by EC2 for some seconds (IAM is
            // eventually consistent): the group's launches retry on their own.
            ctx.aws
                .autoscaling
                .create_auto_scaling_group()
                .auto_scaling_group_name(name)
                .launch_template(
                    LaunchTemplateSpecification::builder()
                        .launch_template_name(&template)
                        .version("$Default")
                        .build(),
                )
                .min_size(min)
                .max_size(max)
                .desired_capacity(desired)
                .vpc_zone_identifier(str_list(attrs, "subnet_ids").join(","))
                .set_tags(Some(asg_tags))
                .send()
                .await
                .map_err(|e| aws_error("CreateAutoScalingGroup", e))?;
        }
        let (_, _, desired) = scaling_of(attrs);
        wait_in_service(ctx, addr, name, usize::try_from(desired).unwrap_or(0)).await?;
        // As a managed nodegroup is ACTIVE only once its nodes joined: a replacement's old
        // group is drained and deleted after this returns, into these Nodes.
        wait_nodes_ready(ctx, addr, cluster, name).await?;
        read_back(ctx, name).await
    }

    /// Node counts and subnets in place; tags on the group.
    async fn update(
        ctx: &Ctx,
        addr: &ResourceAddr,
        cloud_id: &str,
        change: Change<'_>,
    ) -> Result<Observed, ResourceError> {
        let (before, after) = (change.before, change.after);
        if before.get("scaling") != after.get("scaling")
            || before.get("subnet_ids") != after.get("subnet_ids")
        {
            let (min, max, desired) = scaling_of(after);
            ctx.aws
                .autoscaling
                .update_auto_scaling_group()
                .auto_scaling_group_name(cloud_id)
                .min_size(min)
                .max_size(max)
                .desired_capacity(desired)
                .vpc_zone_identifier(str_list(after, "subnet_ids").join(","))
                .send()
                .await
                .map_err(|e| aws_error("UpdateAutoScalingGroup", e))?;
            wait_in_service(ctx, addr, cloud_id, usize::try_from(desired).unwrap_or(0)).await?;
        }
        if before.get("tags") != after.get("tags") {
            let (removed, set) = super::tag_changes(before, after);
            if !set.is_empty() {
                ctx.aws
                    .autoscaling
                    .create_or_update_tags()
                    .set_tags(Some(
                        set.iter()
                            .map(|(k, v)| asg_tag(cloud_id, k, v, true))
                            .collect(),
                    ))
                    .send()
                    .await
                    .map_err(|e| aws_error("CreateOrUpdateTags", e))?;
            }
            if !removed.is_empty() {
                ctx.aws
                    .autoscaling
                    .delete_tags()
                    .set_tags(Some(
                        removed
                            .iter()
                            .map(|k| {
                                Tag::builder()
                                    .resource_id(cloud_id)
                                    .resource_type("auto-scaling-group")
                                    .key(k.as_str())
                                    .build()
                            })
                            .collect(),
                    ))
                    .send()
                    .await
                    .map_err(|e| aws_error("DeleteTags", e))?;
            }
        }
        read_back(ctx, cloud_id).await
    }

    /// In reverse: the group scaled to 0 and its instances gone, the group, the template,
    /// the instance profile, then the access entry unless another group needs it.
    async fn delete(
        ctx: &Ctx,
        addr: &ResourceAddr,
        cloud_id: &str,
        attrs: &Value,
        _prior_outputs: &Value,
    ) -> Result<(), ResourceError> {
        let cluster = req_str(attrs, "cluster_name")?;
        let role_arn = req_str(attrs, "node_role_arn")?;
        if describe_group(ctx, cloud_id).await?.is_some() {
            let found = group_nodes(ctx, cluster, cloud_id).await?;
            let drained = match &found {
                Some((_, nodes, elsewhere)) if !nodes.is_empty() => {
                    if !elsewhere {
                        ctx.reporter.event(Event::Warning {
                            message: format!("{addr}: no Ready, schedulable node outside Auto Scaling group {cloud_id} to take its pods: its instances end without a drain, and their pods with them"),
                        });
                    }
                    *elsewhere
                }
                _ => false,
            };
            for step in delete_steps(drained) {
                match (step, &found) {
                    (Step::Cordon | Step::Drain, Some((client, nodes, _))) => {
                        drain_nodes(ctx, addr, client, nodes, step).await?;
                    }
                    (Step::Cordon | Step::Drain, None) => {}
                    (Step::ScaleToZero, _) => scale_to_zero(ctx, addr, cloud_id).await?,
                    (Step::DeleteGroup, _) => delete_group(ctx, addr, cloud_id).await?,
                }
            }
        }
        let template = template_name(cluster, cloud_id);
        done_unless(
            ctx.aws
                .ec2
                .delete_launch_template()
                .launch_template_name(&template)
                .send()
                .await
                .map_err(|e| aws_error("DeleteLaunchTemplate", e)),
            &[
                "InvalidLaunchTemplateName.NotFoundException",
                "InvalidLaunchTemplateId.NotFound",
            ],
        )?;
        let iam = &ctx.aws.iam;
        done_unless(
            iam.remove_role_from_instance_profile()
                .instance_profile_name(cloud_id)
                .role_name(role_name(role_arn)?)
                .send()
                .await
                .map_err(|e| aws_error("RemoveRoleFromInstanceProfile", e)),
            &["NoSuchEntity"],
        )?;
        done_unless(
            iam.delete_instance_profile()
                .instance_profile_name(cloud_id)
                .send()
                .await
                .map_err(|e| aws_error("DeleteInstanceProfile", e)),
            &["NoSuchEntity"],
        )?;
        release_access_entry(ctx, cluster, role_arn, cloud_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacements_alternate_names_and_keep_the_spec_name() {
        let attrs = json!({"name": "workers"});
        let (a, id) = replacement(&attrs, "workers").expect("replacement");
        assert_eq!(id, "workers-cbd");
        assert_eq!(a["spec_name"], "workers");
        let (_, back) = replacement(&attrs, "workers-cbd").expect("replacement");
        assert_eq!(back, "workers");
    }

    /// Auto Scaling ends instances on a scale to 0 or a ForceDelete: every drain step comes
    /// before both, the cordon of all the Nodes before the first eviction.
    #[test]
    fn the_nodes_are_drained_before_auto_scaling_ends_their_instances() {
        let steps = delete_steps(true);
        let at = |s: Step| steps.iter().position(|x| *x == s).expect("step present");
        assert!(at(Step::Cordon) < at(Step::Drain), "{steps:?}");
        assert!(at(Step::Drain) < at(Step::ScaleToZero), "{steps:?}");
        assert!(at(Step::ScaleToZero) < at(Step::DeleteGroup), "{steps:?}");
        assert_eq!(
            delete_steps(false),
            [Step::ScaleToZero, Step::DeleteGroup],
            "no drain when the pods have nowhere to go"
        );
    }

    #[test]
    fn role_names_come_from_arns_with_paths() {
        assert_eq!(role_name("arn:aws:iam::1:role/a/b/node").ok(), Some("node"));
        assert!(role_name("not-an-arn").is_err());
    }
}
