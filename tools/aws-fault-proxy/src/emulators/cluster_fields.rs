//! Option `eks_cluster_fields`: the parts of an EKS cluster moto leaves out.
//!
//! Real EKS answers CreateCluster, DescribeCluster and DeleteCluster with
//! `cluster.resourcesVpcConfig.clusterSecurityGroupId` (a security group EKS
//! creates in the cluster's VPC) and `resourcesVpcConfig.vpcId`; moto gives
//! neither. With the option on, the proxy finds the VPC of the cluster's first
//! subnet, makes a real group in moto the way EKS names, describes and tags
//! it, injects both fields, and deletes the group with the cluster.
//!
//! It also gives each cluster an OIDC issuer of its own (`identity.oidc.issuer`, EKS API
//! reference, `OIDC`): moto 5.2 draws one `https://oidc.eks.<region>.amazonaws.com/id/<10
//! characters>` when it starts and gives it to every cluster, where EKS gives each cluster
//! its own, with 32 hex digits (`https://oidc.eks.region-code.amazonaws.com/id/
//! EXAMPLED539D4633E53DE1B71EXAMPLE`, EKS user guide `networking/cni-iam-role.adoc`). Two
//! clusters would otherwise share one IAM OIDC provider. The id is derived from the cluster's
//! ARN and creation time: the same for every answer about one cluster, another for a cluster
//! made again under the name.
//!
//! The proxy's EC2 calls carry the client's access key with the credential scope
//! `<region>/ec2`, go straight to moto, and are not counted, faulted or delayed. If a step
//! fails the answer goes out as moto gave it, and a line on stderr says why.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use hyper::header::HeaderMap;
use serde_json::Value;

use crate::core::emulator::{Answer, BoxFuture, Call, Emulator, Host};
use crate::core::faults::Reply;
use crate::core::ops::{OpInfo, Protocol};
use crate::core::upstream::ec2_headers;
use crate::shared::{form_encode, lock, xml_first};

/// The description EKS gives the cluster security group.
const DESCRIPTION: &str = "EKS created security group applied to ENI that is attached to \
     EKS Control Plane master nodes, as well as any managed workloads.";

/// The tag EKS puts on the group; its value is the cluster name.
const CLUSTER_TAG: &str = "aws:eks:cluster-name";

const EC2_VERSION: &str = "2016-11-15";

/// A security group the proxy made to be a cluster's security group.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ClusterSg {
    group_id: String,
    vpc_id: String,
}

/// What the `cluster` object of an answer lacks, and what it has to go on.
#[derive(Debug, PartialEq, Eq)]
struct Missing {
    cluster: String,
    /// `resourcesVpcConfig.subnetIds[0]`, if any.
    first_subnet: Option<String>,
    /// The fields when already present (then they are kept as they are).
    group_id: Option<String>,
    vpc_id: Option<String>,
}

/// `None` unless `body` is an EKS answer with a `cluster` object whose
/// `resourcesVpcConfig` lacks `clusterSecurityGroupId` or `vpcId`.
fn missing(body: &[u8]) -> Option<Missing> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let cluster = v.get("cluster")?.as_object()?;
    let name = cluster.get("name")?.as_str()?.to_string();
    let vpc_config = cluster.get("resourcesVpcConfig")?.as_object()?;
    let text = |key: &str| {
        vpc_config
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let group_id = text("clusterSecurityGroupId");
    let vpc_id = text("vpcId");
    if group_id.is_some() && vpc_id.is_some() {
        return None;
    }
    let first_subnet = vpc_config
        .get("subnetIds")
        .and_then(Value::as_array)
        .and_then(|ids| ids.first())
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    Some(Missing {
        cluster: name,
        first_subnet,
        group_id,
        vpc_id,
    })
}

/// Sets `clusterSecurityGroupId` and `vpcId` in `cluster.resourcesVpcConfig`
/// where they are missing or empty; `None` if the body is not that shape.
fn inject(body: &[u8], group_id: &str, vpc_id: &str) -> Option<Bytes> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let vpc_config = v
        .get_mut("cluster")?
        .get_mut("resourcesVpcConfig")?
        .as_object_mut()?;
    for (key, value) in [("clusterSecurityGroupId", group_id), ("vpcId", vpc_id)] {
        let present = vpc_config
            .get(key)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        if !present {
            vpc_config.insert(key.into(), Value::String(value.into()));
        }
    }
    serde_json::to_vec(&v).ok().map(Bytes::from)
}

/// 32 hex digits (upper case, as EKS's) derived from `seed`: FNV-1a, twice.
fn issuer_id(seed: &str) -> String {
    let fnv = |basis: u64| {
        seed.bytes().fold(basis, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    };
    format!(
        "{:016X}{:016X}",
        fnv(0xcbf2_9ce4_8422_2325),
        fnv(0x84222325_cbf29ce4)
    )
}

/// The answer with the cluster's own issuer in `cluster.identity.oidc.issuer`, when it has an
/// issuer that is not EKS-shaped (see the module's comment); `None` otherwise.
fn own_issuer(body: &[u8]) -> Option<Bytes> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let cluster = v.get_mut("cluster")?;
    let arn = cluster.get("arn")?.as_str()?.to_string();
    let created = cluster
        .get("createdAt")
        .map(Value::to_string)
        .unwrap_or_default();
    let issuer = cluster.pointer_mut("/identity/oidc/issuer")?;
    let (base, id) = issuer.as_str()?.rsplit_once("/id/")?;
    let shaped = id.len() == 32
        && id
            .chars()
            .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c));
    if shaped {
        return None;
    }
    *issuer = Value::String(format!(
        "{base}/id/{}",
        issuer_id(&format!("{arn}@{created}"))
    ));
    serde_json::to_vec(&v).ok().map(Bytes::from)
}

/// The answer with `cluster.kubernetesNetworkConfig.serviceIpv4Cidr` when moto left it out of
/// an IPv4 cluster's; `None` otherwise. EKS always reports it (EKS API reference,
/// `KubernetesNetworkConfigResponse`); without one in the request, "Kubernetes assigns
/// addresses from either the 10.100.0.0/16 or 172.20.0.0/16 CIDR blocks" (the latter when the
/// VPC uses 10.0.0.0/8). The proxy gives 10.100.0.0/16 without looking at the VPC: the
/// sandbox's VPCs are outside 10.0.0.0/8. Self-managed nodes need it (nodeadm's `cidr`).
fn service_cidr(body: &[u8]) -> Option<Bytes> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let cluster = v.get_mut("cluster")?.as_object_mut()?;
    let net = cluster
        .entry("kubernetesNetworkConfig")
        .or_insert_with(|| Value::Object(serde_json::Map::new()))
        .as_object_mut()?;
    let ipv6 = net.get("ipFamily").and_then(Value::as_str) == Some("ipv6");
    if ipv6 || net.get("serviceIpv4Cidr").is_some_and(|c| !c.is_null()) {
        return None;
    }
    net.insert("serviceIpv4Cidr".into(), Value::from("10.100.0.0/16"));
    serde_json::to_vec(&v).ok().map(Bytes::from)
}

/// `eks-cluster-sg-<cluster>-<10 digits>`, the pattern of EKS's own names.
fn group_name(cluster: &str) -> String {
    // The global generator, not the proxy's seeded one: a group name must not
    // shift a reproducible fault sequence.
    let suffix = fastrand::u64(1_000_000_000..10_000_000_000);
    format!("eks-cluster-sg-{cluster}-{suffix}")
}

fn describe_subnet_body(subnet_id: &str) -> String {
    format!(
        "Action=DescribeSubnets&Version={EC2_VERSION}&SubnetId.1={}",
        form_encode(subnet_id)
    )
}

fn create_group_body(group_name: &str, vpc_id: &str, cluster: &str) -> String {
    format!(
        "Action=CreateSecurityGroup&Version={EC2_VERSION}&GroupName={}&GroupDescription={}\
         &VpcId={}&TagSpecification.1.ResourceType=security-group\
         &TagSpecification.1.Tag.1.Key={}&TagSpecification.1.Tag.1.Value={}",
        form_encode(group_name),
        form_encode(DESCRIPTION),
        form_encode(vpc_id),
        form_encode(CLUSTER_TAG),
        form_encode(cluster)
    )
}

fn delete_group_body(group_id: &str) -> String {
    format!(
        "Action=DeleteSecurityGroup&Version={EC2_VERSION}&GroupId={}",
        form_encode(group_id)
    )
}

/// The groups the proxy made; forgotten by `POST /__proxy/reset`.
#[derive(Default)]
struct Groups {
    /// (region, cluster) -> the security group the proxy made in moto to be
    /// the cluster's `clusterSecurityGroupId`.
    current: HashMap<(String, String), ClusterSg>,
    /// (region, cluster) -> when the proxy deleted that group with the
    /// cluster, and the group. An answer sent to moto before then describes
    /// the deleted cluster: it gets the old group rather than a new one.
    deleted: HashMap<(String, String), (Instant, ClusterSg)>,
}

#[derive(Default)]
pub struct ClusterFields {
    groups: Mutex<Groups>,
    /// Held while a cluster security group is made or deleted, so that concurrent answers
    /// about one new cluster share one group. Only ever held across moto calls.
    making: tokio::sync::Mutex<()>,
}

impl Emulator for ClusterFields {
    /// Before the windows' rewriting (this emulator comes first in the list), so that a
    /// DeleteCluster snapshot replayed during its deleting window has the fields too.
    fn rewrite<'a>(&'a self, call: &'a Call<'a>, answer: &'a mut Answer) -> BoxFuture<'a, ()> {
        let host = call.host;
        Box::pin(async move {
            if call.cfg.eks_cluster_fields && call.info.protocol == Protocol::RestJson {
                if let Some(body) = own_issuer(&answer.reply.body) {
                    answer.reply.body = body;
                }
                if let Some(body) = service_cidr(&answer.reply.body) {
                    answer.reply.body = body;
                }
                self.add_fields(host, call.info, call.headers, answer).await;
            }
        })
    }

    fn after_answer<'a>(&'a self, call: &'a Call<'a>, _reply: &'a Reply) -> BoxFuture<'a, ()> {
        let host = call.host;
        Box::pin(async move {
            if call.info.protocol == Protocol::RestJson && call.info.op == "DeleteCluster" {
                self.delete_group(host, call).await;
            }
        })
    }

    fn reset(&self) {
        *lock(&self.groups) = Groups::default();
    }
}

impl ClusterFields {
    /// Adds `clusterSecurityGroupId` and `vpcId` to an EKS answer with a `cluster` object
    /// that lacks them, making the group in moto the first time. On any failure the answer
    /// stays as moto gave it.
    async fn add_fields(
        &self,
        host: &Host,
        info: &OpInfo,
        client_headers: &HeaderMap,
        answer: &mut Answer,
    ) {
        let Some(missing) = missing(&answer.reply.body) else {
            return;
        };
        let headers = ec2_headers(client_headers, &info.region);
        let sg = match missing.group_id.clone() {
            // Already EKS-shaped as far as the group goes; only vpcId lacks.
            Some(group_id) => cluster_vpc(host, &headers, &missing)
                .await
                .map(|vpc_id| ClusterSg { group_id, vpc_id }),
            None => {
                self.ensure_group(host, info, &headers, &missing, answer.sent)
                    .await
            }
        };
        let Some(sg) = sg else {
            return;
        };
        if let Some(body) = inject(&answer.reply.body, &sg.group_id, &sg.vpc_id) {
            answer.reply.body = body;
        }
    }

    /// The cluster's security group: the cached one, or a new one in the VPC of
    /// its first subnet, tagged and described as EKS does.
    async fn ensure_group(
        &self,
        host: &Host,
        info: &OpInfo,
        headers: &HeaderMap,
        missing: &Missing,
        sent: Instant,
    ) -> Option<ClusterSg> {
        let key = (info.region.clone(), missing.cluster.clone());
        if let Some(sg) = lock(&self.groups).current.get(&key) {
            return Some(sg.clone());
        }
        let _making = self.making.lock().await;
        {
            // Another answer may have made it while this one waited.
            let groups = lock(&self.groups);
            if let Some(sg) = groups.current.get(&key) {
                return Some(sg.clone());
            }
            if let Some((deleted_at, sg)) = groups.deleted.get(&key) {
                if *deleted_at > sent {
                    return Some(sg.clone());
                }
            }
        }
        let vpc_id = cluster_vpc(host, headers, missing).await?;
        let name = group_name(&missing.cluster);
        let body = create_group_body(&name, &vpc_id, &missing.cluster);
        let text = host
            .upstream
            .ec2_call(headers, body)
            .await
            .map_err(|e| warning(&missing.cluster, &format!("CreateSecurityGroup: {e}")))
            .ok()?;
        let Some(group_id) = xml_first(&text, "groupId") else {
            warning(&missing.cluster, "no groupId in CreateSecurityGroup answer");
            return None;
        };
        let sg = ClusterSg { group_id, vpc_id };
        lock(&self.groups).current.insert(key, sg.clone());
        Some(sg)
    }

    /// After a successful DeleteCluster: deletes the group made for the cluster,
    /// as EKS does. moto's errors are ignored (the group may be in use).
    async fn delete_group(&self, host: &Host, call: &Call<'_>) {
        let info = call.info;
        let Some(name) = info.segment(1) else {
            return;
        };
        let key = (info.region.clone(), name.to_string());
        // A group exists only if the option was on; with it off, and no group,
        // there is nothing to wait for.
        if !call.cfg.eks_cluster_fields && !lock(&self.groups).current.contains_key(&key) {
            return;
        }
        let _deleting = self.making.lock().await;
        let sg = {
            let mut groups = lock(&self.groups);
            let sg = groups.current.remove(&key);
            if let Some(sg) = &sg {
                groups.deleted.insert(key, (Instant::now(), sg.clone()));
            }
            sg
        };
        let Some(sg) = sg else {
            return;
        };
        let headers = ec2_headers(call.headers, &info.region);
        let result = host
            .upstream
            .ec2_call(&headers, delete_group_body(&sg.group_id))
            .await;
        if let (Err(e), true) = (result, host.verbose) {
            eprintln!(
                "aws-fault-proxy: eks_cluster_fields: {name}: DeleteSecurityGroup {}: {e}",
                sg.group_id
            );
        }
    }
}

/// VPC of the cluster: as given, or that of its first subnet.
async fn cluster_vpc(host: &Host, headers: &HeaderMap, missing: &Missing) -> Option<String> {
    if let Some(vpc_id) = &missing.vpc_id {
        return Some(vpc_id.clone());
    }
    let Some(subnet) = &missing.first_subnet else {
        warning(&missing.cluster, "no subnet in resourcesVpcConfig");
        return None;
    };
    let text = host
        .upstream
        .ec2_call(headers, describe_subnet_body(subnet))
        .await
        .map_err(|e| warning(&missing.cluster, &format!("DescribeSubnets {subnet}: {e}")))
        .ok()?;
    let vpc_id = xml_first(&text, "vpcId");
    if vpc_id.is_none() {
        warning(&missing.cluster, &format!("no vpcId for subnet {subnet}"));
    }
    vpc_id
}

/// The answer goes out without the fields; say why, once per answer.
fn warning(cluster: &str, why: &str) {
    eprintln!("aws-fault-proxy: eks_cluster_fields: cluster {cluster}: {why}; answer left as is");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster(vpc_config: Value) -> Vec<u8> {
        json!({"cluster": {"name": "c1", "status": "ACTIVE", "resourcesVpcConfig": vpc_config}})
            .to_string()
            .into_bytes()
    }

    /// moto's issuer (one for all clusters) becomes each cluster's own, EKS-shaped, stable
    /// for one cluster and new for one made again under the name; an EKS-shaped one stays.
    #[test]
    fn each_cluster_gets_an_issuer_of_its_own() {
        let answer = |arn: &str, created: f64, issuer: &str| {
            json!({"cluster": {"name": "c", "arn": arn, "createdAt": created,
                "identity": {"oidc": {"issuer": issuer}}}})
            .to_string()
            .into_bytes()
        };
        let issuer = |body: Bytes| -> String {
            let v: Value = serde_json::from_slice(&body).unwrap_or_default();
            v["cluster"]["identity"]["oidc"]["issuer"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        let moto = "https://oidc.eks.us-west-2.amazonaws.com/id/AbCdEfGh12";
        let a = "arn:aws:eks:us-west-2:123456789012:cluster/a";
        let b = "arn:aws:eks:us-west-2:123456789012:cluster/b";
        let first = issuer(own_issuer(&answer(a, 1.0, moto)).expect("rewritten"));
        let (base, id) = first.rsplit_once("/id/").expect("an id");
        assert_eq!(base, "https://oidc.eks.us-west-2.amazonaws.com");
        assert!(
            id.len() == 32
                && id
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()),
            "{id}"
        );
        assert_eq!(
            issuer(own_issuer(&answer(a, 1.0, moto)).expect("rewritten")),
            first
        );
        assert_ne!(
            issuer(own_issuer(&answer(b, 1.0, moto)).expect("rewritten")),
            first
        );
        assert_ne!(
            issuer(own_issuer(&answer(a, 2.0, moto)).expect("rewritten")),
            first
        );
        assert_eq!(own_issuer(&answer(a, 1.0, &first)), None);
        assert_eq!(
            own_issuer(&cluster(json!({}))),
            None,
            "no issuer, nothing to do"
        );
    }

    #[test]
    fn an_ipv4_cluster_gets_a_service_cidr_unless_it_has_one() {
        let got = |v: Value| {
            service_cidr(v.to_string().as_bytes())
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|v| {
                    v.pointer("/cluster/kubernetesNetworkConfig/serviceIpv4Cidr")
                        .cloned()
                })
        };
        assert_eq!(
            got(json!({"cluster": {"name": "c"}})),
            Some(json!("10.100.0.0/16"))
        );
        assert_eq!(
            got(
                json!({"cluster": {"kubernetesNetworkConfig": {"serviceIpv4Cidr": "172.20.0.0/16"}}})
            ),
            None
        );
        assert_eq!(
            got(json!({"cluster": {"kubernetesNetworkConfig": {"ipFamily": "ipv6"}}})),
            None
        );
    }

    #[test]
    fn finds_what_is_missing() {
        let body = cluster(json!({"subnetIds": ["subnet-a", "subnet-b"]}));
        assert_eq!(
            missing(&body),
            Some(Missing {
                cluster: "c1".into(),
                first_subnet: Some("subnet-a".into()),
                group_id: None,
                vpc_id: None,
            })
        );
        let body = cluster(json!({"subnetIds": [], "vpcId": "vpc-1"}));
        let m = missing(&body).unwrap();
        assert_eq!(m.first_subnet, None);
        assert_eq!(m.vpc_id.as_deref(), Some("vpc-1"));
        let full = cluster(json!({"clusterSecurityGroupId": "sg-1", "vpcId": "vpc-1"}));
        assert_eq!(missing(&full), None);
        assert_eq!(missing(br#"{"clusters": ["c1"]}"#), None);
        assert_eq!(missing(br#"{"cluster": {"name": "c1"}}"#), None);
        assert_eq!(missing(b"<xml/>"), None);
    }

    #[test]
    fn injects_only_missing_fields() {
        let body = cluster(json!({"subnetIds": ["subnet-a"], "vpcId": "vpc-keep"}));
        let out: Value =
            serde_json::from_slice(&inject(&body, "sg-1", "vpc-new").unwrap()).unwrap();
        let cfg = &out["cluster"]["resourcesVpcConfig"];
        assert_eq!(cfg["clusterSecurityGroupId"], "sg-1");
        assert_eq!(cfg["vpcId"], "vpc-keep");
        assert_eq!(cfg["subnetIds"], json!(["subnet-a"]));
        assert_eq!(out["cluster"]["status"], "ACTIVE");
        assert!(inject(br#"{"update": {}}"#, "sg-1", "vpc-1").is_none());
    }

    #[test]
    fn query_bodies_and_names() {
        let name = group_name("c1");
        let suffix = name.strip_prefix("eks-cluster-sg-c1-").unwrap();
        assert_eq!(suffix.len(), 10);
        assert!(suffix.bytes().all(|b| b.is_ascii_digit()));
        let body = create_group_body("g", "vpc-1", "c 1");
        let params = crate::core::ops::form_decode(&body);
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("Action"), Some("CreateSecurityGroup"));
        assert_eq!(get("GroupDescription"), Some(DESCRIPTION));
        assert_eq!(get("VpcId"), Some("vpc-1"));
        assert_eq!(get("TagSpecification.1.Tag.1.Key"), Some(CLUSTER_TAG));
        assert_eq!(get("TagSpecification.1.Tag.1.Value"), Some("c 1"));
        assert!(describe_subnet_body("subnet-1").ends_with("&SubnetId.1=subnet-1"));
        assert!(delete_group_body("sg-1").ends_with("&GroupId=sg-1"));
    }
}
