//! Who a node's VPC CNI acts as in AWS, and whether that identity may do what the CNI does.
//!
//! - **At pod creation** the cluster's webhooks give a pod its AWS identity, in env, and never
//!   change a running pod's (EKS user guide, `networking/cni-iam-role.adoc` Step 2: "The
//!   annotation is not applied to Pods that are currently running"): for a service account
//!   with an EKS Pod Identity association, `AWS_CONTAINER_CREDENTIALS_FULL_URI` and
//!   `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (`manage-access/aws-access/pod-id-how-it-works.adoc`);
//!   for one annotated `eks.amazonaws.com/role-arn`, `AWS_ROLE_ARN` and
//!   `AWS_WEB_IDENTITY_TOKEN_FILE` (`pod-configuration.adoc`). [`Credentials::admit`] does this
//!   for the pods the data plane's DaemonSet controller makes.
//! - **The CNI's credentials** are then those of its `aws-node` pod on the node, by the AWS
//!   SDK's credential chain: a web identity first (IRSA's role), then the container provider
//!   (Pod Identity: the association's role, which the agent asks EKS for each time, so it is
//!   read live; without the `eks-pod-identity-agent` add-on there is no agent to answer and
//!   no credentials at all, amazon-vpc-cni-k8s #3840), else the instance profile (the
//!   nodegroup's node role). A node whose `aws-node` pod is not there yet is judged by what
//!   its pod will get.
//! - **Permission**: the role must have the AWS managed policy `AmazonEKS_CNI_Policy`
//!   attached (ListAttachedRolePolicies in moto, by the policy's name). A role moto does not
//!   hold (a test that names a role it never made) is not judged: EKS would not have made
//!   the nodegroup, and there is nothing to read. A customer or inline
//!   policy granting the same actions is not looked at: IAM policy evaluation is not
//!   emulated. Without it, the CNI makes no ENI and assigns no address (EC2 answers it
//!   `UnauthorizedOperation`): pods get addresses from the pool it already has and no more;
//!   the others stay `ContainerCreating` (the CNI plugin's "failed to assign an IP address to
//!   container", amazon-vpc-cni-k8s `cmd/routed-eni-cni-plugin/cni.go`).
//!
//! Everything is read once a pass and kept for the pass only: a cluster's associations and
//! agent, a role's policies.

use std::collections::HashMap;

use bytes::Bytes;
use hyper::Method;
use serde_json::{json, Value};

use crate::core::emulator::Pass;
use crate::core::scopes::Scope;
use crate::shared::{form_encode, xml_first};

use super::ec2::Instance;
use super::kube::Kube;
use super::objects::{name_of, now_rfc3339};
use super::{DataPlane, KubeSide, Observed};

/// The EKS add-on that runs the EKS Pod Identity Agent.
const AGENT_ADDON: &str = "eks-pod-identity-agent";
/// The AWS managed policy with the VPC CNI's permissions.
pub const CNI_POLICY: &str = "AmazonEKS_CNI_Policy";
/// The service account annotation IRSA's webhook reads.
const ROLE_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

/// The env the Pod Identity webhook adds (`pod-id-how-it-works.adoc`).
const POD_IDENTITY_ENV: [(&str, &str); 2] = [
    (
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token",
    ),
    (
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "http://169.254.170.23/v1/credentials",
    ),
];
/// The token file IRSA's webhook mounts (`pod-configuration.adoc`).
const WEB_IDENTITY_TOKEN: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token";

/// Who a pod acts as, from its env.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// `AWS_ROLE_ARN`: IRSA.
    WebIdentity(String),
    /// `AWS_CONTAINER_CREDENTIALS_FULL_URI`: EKS Pod Identity.
    PodIdentity,
    /// Neither: the instance profile.
    InstanceProfile,
}

/// The source the SDK's credential chain picks from a container's env.
pub fn source_of(env: &[Value]) -> Source {
    let get = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str())
    };
    if let Some(role) = get("AWS_ROLE_ARN").filter(|r| !r.is_empty()) {
        return Source::WebIdentity(role.to_string());
    }
    if get("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some() {
        return Source::PodIdentity;
    }
    Source::InstanceProfile
}

/// The env a new pod of service account `namespace/account` gets from the webhooks.
pub fn webhook_env(cluster: &ClusterIdentity, namespace: &str, account: &str) -> Vec<Value> {
    let mut env = Vec::new();
    if cluster.role_of(namespace, account).is_some() {
        env.extend(
            POD_IDENTITY_ENV
                .iter()
                .map(|(k, v)| json!({"name": k, "value": v})),
        );
    }
    if let Some(role) = cluster
        .annotated
        .get(&(namespace.to_string(), account.to_string()))
    {
        env.push(json!({"name": "AWS_ROLE_ARN", "value": role}));
        env.push(json!({"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": WEB_IDENTITY_TOKEN}));
    }
    env
}

/// Adds `env` to every container of a pod (not the init containers), leaving a variable the
/// container sets itself as it is.
pub fn inject(pod: &mut Value, env: &[Value]) {
    let Some(containers) = pod
        .pointer_mut("/spec/containers")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for c in containers {
        let list = c
            .as_object_mut()
            .map(|m| m.entry("env").or_insert_with(|| json!([])));
        let Some(Value::Array(list)) = list else {
            continue;
        };
        for e in env {
            if !list.iter().any(|x| x["name"] == e["name"]) {
                list.push(e.clone());
            }
        }
    }
}

/// What one cluster's identity machinery holds this pass.
#[derive(Clone, Debug, Default)]
pub struct ClusterIdentity {
    /// The `eks-pod-identity-agent` add-on runs.
    pub agent: bool,
    /// (namespace, service account) → role ARN, of the cluster's Pod Identity associations.
    pub associations: HashMap<(String, String), String>,
    /// (namespace, service account) → the role of its `eks.amazonaws.com/role-arn` annotation.
    pub annotated: HashMap<(String, String), String>,
}

impl ClusterIdentity {
    fn role_of(&self, namespace: &str, account: &str) -> Option<&String> {
        self.associations
            .get(&(namespace.to_string(), account.to_string()))
    }

    /// The role a pod of `namespace/account` whose env says `source` acts as; `None`: no
    /// credentials at all (Pod Identity without its agent, or without an association).
    pub fn role(
        &self,
        source: &Source,
        namespace: &str,
        account: &str,
        node_role: Option<&str>,
    ) -> Result<Option<String>, &'static str> {
        match source {
            Source::WebIdentity(role) => Ok(Some(role.clone())),
            Source::PodIdentity if !self.agent => {
                Err("no EKS Pod Identity Agent answers on the node")
            }
            Source::PodIdentity => self
                .role_of(namespace, account)
                .cloned()
                .map(Some)
                .ok_or("its Pod Identity association is gone"),
            Source::InstanceProfile => Ok(node_role.map(str::to_string)),
        }
    }
}

/// The role name in a role ARN.
fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// One pass's reads about identities, shared by the nodes.
#[derive(Default)]
pub struct Credentials {
    clusters: HashMap<(String, String), ClusterIdentity>,
    /// (region, role name) → whether `AmazonEKS_CNI_Policy` is attached; `None`: no such role.
    policies: HashMap<(String, String), Option<bool>>,
    /// Node name → what its cluster's webhooks know (the DaemonSet controller admits the
    /// pods it makes there with it); filled as the nodes are handled.
    pub node_clusters: HashMap<String, ClusterIdentity>,
}

impl Credentials {
    /// A cluster's associations, agent and service account annotations, read once a pass
    /// (ListPodIdentityAssociations and DescribePodIdentityAssociation as the proxy answers
    /// them, DescribeAddon of the agent, the service accounts of `kube-system`).
    pub async fn cluster(
        &mut self,
        pass: &Pass<'_>,
        scope: &Scope,
        kube: &super::kube::Kube<'_>,
        cluster: &str,
    ) -> Result<ClusterIdentity, String> {
        let key = (scope.region.clone(), cluster.to_string());
        if let Some(c) = self.clusters.get(&key) {
            return Ok(c.clone());
        }
        let get = |path: String| async move {
            let reply = pass
                .reported(scope, "eks", Method::GET, &path, Bytes::new())
                .await?;
            let v: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            Ok::<_, String>((reply.status, v))
        };
        let base = format!("/clusters/{}", form_encode(cluster));
        let (status, agent) = get(format!("{base}/addons/{AGENT_ADDON}")).await?;
        let running = status == 200
            && matches!(
                agent.pointer("/addon/status").and_then(Value::as_str),
                Some("ACTIVE" | "UPDATING" | "DEGRADED")
            );
        let mut associations = HashMap::new();
        let (status, listed) =
            get(format!("{base}/pod-identity-associations?maxResults=100")).await?;
        if status == 200 {
            for a in listed["associations"].as_array().into_iter().flatten() {
                let Some(id) = a["associationId"].as_str() else {
                    continue;
                };
                let (status, one) = get(format!(
                    "{base}/pod-identity-associations/{}",
                    form_encode(id)
                ))
                .await?;
                let one = &one["association"];
                if let (200, Some(ns), Some(sa), Some(role)) = (
                    status,
                    one["namespace"].as_str(),
                    one["serviceAccount"].as_str(),
                    one["roleArn"].as_str(),
                ) {
                    associations.insert((ns.to_string(), sa.to_string()), role.to_string());
                }
            }
        }
        // The fake API server is the cluster's: its service accounts, where it serves them.
        let mut annotated = HashMap::new();
        for sa in kube
            .list("/api/v1/namespaces/kube-system/serviceaccounts")
            .await?
        {
            if let Some(role) = sa
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(ROLE_ANNOTATION))
                .and_then(Value::as_str)
            {
                annotated.insert(
                    ("kube-system".to_string(), super::objects::name_of(&sa)),
                    role.to_string(),
                );
            }
        }
        let found = ClusterIdentity {
            agent: running,
            associations,
            annotated,
        };
        self.clusters.insert(key, found.clone());
        Ok(found)
    }

    /// Whether role `arn` has `AmazonEKS_CNI_Policy` attached (moto's IAM, read once a pass
    /// per role); `None` when moto has no such role.
    pub async fn has_cni_policy(
        &mut self,
        pass: &Pass<'_>,
        scope: &Scope,
        arn: &str,
    ) -> Result<Option<bool>, String> {
        let name = role_name(arn).to_string();
        let key = (scope.region.clone(), name.clone());
        if let Some(b) = self.policies.get(&key) {
            return Ok(*b);
        }
        let body = format!(
            "Action=ListAttachedRolePolicies&Version=2010-05-08&RoleName={}",
            form_encode(&name)
        );
        let reply = pass
            .host
            .upstream
            .forward(&Method::POST, "/", &scope.headers("iam"), Bytes::from(body))
            .await?;
        let text = String::from_utf8_lossy(&reply.body);
        let has = if (200..300).contains(&reply.status) {
            Some(
                text.split("<PolicyName>")
                    .skip(1)
                    .any(|rest| rest.starts_with(&format!("{CNI_POLICY}<"))),
            )
        } else if xml_first(&text, "Code").as_deref() == Some("NoSuchEntity") {
            None
        } else {
            return Err(format!(
                "ListAttachedRolePolicies {name}: moto answered {}",
                reply.status
            ));
        };
        self.policies.insert(key, has);
        Ok(has)
    }
}

/// The cluster an instance's node belongs to: its nodegroup's, or the one it is tagged for
/// (`super::tagged_cluster`).
fn cluster_of(obs: &Observed<'_>, instance: &Instance) -> Option<String> {
    if let Some(ng) = obs.nodegroup_of(instance) {
        return Some(ng.cluster.clone());
    }
    super::tagged_cluster(instance)
}

impl DataPlane {
    /// Why the CNI on this node may not call EC2 this pass, or `None` when it may (see the
    /// module's comment). Also records the node's cluster for the DaemonSet controller.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn cni_denied(
        &self,
        pass: &Pass<'_>,
        side: &KubeSide<'_>,
        obs: &Observed<'_>,
        node: &Value,
        instance: &Instance,
        aws_node: Option<&Value>,
        pods_here: &[&Value],
        creds: &mut Credentials,
    ) -> Result<Option<String>, String> {
        let Some(cluster) = cluster_of(obs, instance) else {
            return Ok(None);
        };
        let ids = creds.cluster(pass, obs.scope, &side.kube, &cluster).await?;
        let name = name_of(node);
        creds.node_clusters.insert(name.clone(), ids.clone());
        let account = aws_node
            .and_then(|ds| ds.pointer("/spec/template/spec/serviceAccountName"))
            .and_then(Value::as_str)
            .unwrap_or("aws-node");
        // The running aws-node pod's env; none yet: what its pod will get.
        let running = pods_here.iter().find(|p| {
            super::objects::owned_by_daemonset(p)
                && p.pointer("/metadata/ownerReferences/0/name") == Some(&json!("aws-node"))
                && p.pointer("/metadata/deletionTimestamp").is_none()
        });
        let env: Vec<Value> = match running {
            Some(p) => p
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| c["name"] == "aws-node"))
                .and_then(|c| c["env"].as_array())
                .cloned()
                .unwrap_or_default(),
            None => webhook_env(&ids, "kube-system", account),
        };
        let source = source_of(&env);
        let node_role = obs
            .nodegroup_of(instance)
            .and_then(|ng| ng.node_role.clone());
        let role = match ids.role(&source, "kube-system", account, node_role.as_deref()) {
            Ok(Some(role)) => role,
            // A node whose role the data plane does not know (self-managed): not judged.
            Ok(None) => return Ok(None),
            Err(why) => {
                return Ok(Some(format!(
                    "the VPC CNI on {name} has no AWS credentials ({why}): it makes no ENI and assigns no address"
                )))
            }
        };
        if creds.has_cni_policy(pass, obs.scope, &role).await? != Some(false) {
            return Ok(None);
        }
        Ok(Some(format!(
            "the VPC CNI on {name} acts as {role}, which lacks {CNI_POLICY}: EC2 answers it UnauthorizedOperation, so it makes no ENI and assigns no address"
        )))
    }
}

/// The kubelet's event for a pod its CNI gave no address: `FailedCreatePodSandBox` with the
/// CNI plugin's error (amazon-vpc-cni-k8s `cmd/routed-eni-cni-plugin/cni.go`). Named after
/// the pod, so a pass that repeats it gets a 409 and no second event.
pub async fn no_address(kube: &Kube<'_>, pod: &Value, node: &str) -> Result<(), String> {
    let ns = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let name = name_of(pod);
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{name}.no-address"), "namespace": ns},
        "involvedObject": {"kind": "Pod", "namespace": ns, "name": name,
            "uid": pod.pointer("/metadata/uid").cloned().unwrap_or(Value::Null)},
        "reason": "FailedCreatePodSandBox",
        "message": "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox: plugin type=\"aws-cni\" name=\"aws-cni\" failed (add): add cmd: failed to assign an IP address to container",
        "type": "Warning",
        "source": {"component": "kubelet", "host": node},
        "firstTimestamp": now_rfc3339(),
        "lastTimestamp": now_rfc3339(),
        "count": 1,
    });
    kube.post(
        &format!("/api/v1/namespaces/{}/events", form_encode(ns)),
        &event,
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(agent: bool) -> ClusterIdentity {
        let mut c = ClusterIdentity {
            agent,
            ..ClusterIdentity::default()
        };
        c.associations.insert(
            ("kube-system".into(), "aws-node".into()),
            "arn:aws:iam::1:role/cni".into(),
        );
        c
    }

    /// The webhooks' env at creation, and the SDK's choice from it: IRSA before Pod Identity
    /// before the instance profile; Pod Identity without its agent gives nothing.
    #[test]
    fn a_pod_acts_as_what_its_env_says() {
        let c = cluster(true);
        let env = webhook_env(&c, "kube-system", "aws-node");
        assert_eq!(source_of(&env), Source::PodIdentity);
        assert!(webhook_env(&c, "kube-system", "other").is_empty());
        let mut pod = json!({"spec": {"initContainers": [{"name": "init"}],
            "containers": [{"name": "aws-node", "env": [{"name": "A", "value": "1"}]}, {"name": "agent"}]}});
        inject(&mut pod, &env);
        let cs = pod["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(cs
            .iter()
            .all(|c| source_of(c["env"].as_array().unwrap_or(&vec![])) == Source::PodIdentity));
        assert!(pod["spec"]["initContainers"][0].get("env").is_none());
        let role = |c: &ClusterIdentity, s: &Source| {
            c.role(
                s,
                "kube-system",
                "aws-node",
                Some("arn:aws:iam::1:role/node"),
            )
        };
        assert_eq!(
            role(&c, &Source::PodIdentity),
            Ok(Some("arn:aws:iam::1:role/cni".into()))
        );
        assert!(
            role(&cluster(false), &Source::PodIdentity).is_err(),
            "no agent, no credentials"
        );
        assert_eq!(
            role(&c, &Source::InstanceProfile),
            Ok(Some("arn:aws:iam::1:role/node".into()))
        );
        let irsa = json!([{"name": "AWS_CONTAINER_CREDENTIALS_FULL_URI", "value": "x"},
            {"name": "AWS_ROLE_ARN", "value": "arn:aws:iam::1:role/irsa"}]);
        let irsa = source_of(irsa.as_array().unwrap_or(&vec![]));
        assert_eq!(irsa, Source::WebIdentity("arn:aws:iam::1:role/irsa".into()));
        assert_eq!(role_name("arn:aws:iam::1:role/path/x"), "x");
    }
}
