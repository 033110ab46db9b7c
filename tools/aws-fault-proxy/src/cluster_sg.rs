//! Option `eks_cluster_fields`: the parts of an EKS cluster moto leaves out.
//!
//! Real EKS answers CreateCluster, DescribeCluster and DeleteCluster with
//! `cluster.resourcesVpcConfig.clusterSecurityGroupId` (a security group EKS
//! creates in the cluster's VPC) and `resourcesVpcConfig.vpcId`; moto gives
//! neither. With the option on, the proxy finds the VPC of the cluster's first
//! subnet, makes a real group in moto the way EKS names, describes and tags
//! it, injects both fields, and deletes the group with the cluster.
//!
//! This module holds the pure parts (reading and editing answers, building
//! the EC2 Query requests); `proxy.rs` sends them.

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde_json::Value;

use crate::state::form_encode;

/// The description EKS gives the cluster security group.
pub const DESCRIPTION: &str = "EKS created security group applied to ENI that is attached to \
     EKS Control Plane master nodes, as well as any managed workloads.";

/// The tag EKS puts on the group; its value is the cluster name.
pub const CLUSTER_TAG: &str = "aws:eks:cluster-name";

const EC2_VERSION: &str = "2016-11-15";

/// A security group the proxy made to be a cluster's security group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSg {
    pub group_id: String,
    pub vpc_id: String,
}

/// What the `cluster` object of an answer lacks, and what it has to go on.
#[derive(Debug, PartialEq, Eq)]
pub struct Missing {
    pub cluster: String,
    /// `resourcesVpcConfig.subnetIds[0]`, if any.
    pub first_subnet: Option<String>,
    /// The fields when already present (then they are kept as they are).
    pub group_id: Option<String>,
    pub vpc_id: Option<String>,
}

/// `None` unless `body` is an EKS answer with a `cluster` object whose
/// `resourcesVpcConfig` lacks `clusterSecurityGroupId` or `vpcId`.
pub fn missing(body: &[u8]) -> Option<Missing> {
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
pub fn inject(body: &[u8], group_id: &str, vpc_id: &str) -> Option<Bytes> {
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

/// `eks-cluster-sg-<cluster>-<10 digits>`, the pattern of EKS's own names.
pub fn group_name(cluster: &str) -> String {
    // The global generator, not the proxy's seeded one: a group name must not
    // shift a reproducible fault sequence.
    let suffix = fastrand::u64(1_000_000_000..10_000_000_000);
    format!("eks-cluster-sg-{cluster}-{suffix}")
}

pub fn describe_subnet_body(subnet_id: &str) -> String {
    format!(
        "Action=DescribeSubnets&Version={EC2_VERSION}&SubnetId.1={}",
        form_encode(subnet_id)
    )
}

pub fn create_group_body(group_name: &str, vpc_id: &str, cluster: &str) -> String {
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

pub fn delete_group_body(group_id: &str) -> String {
    format!(
        "Action=DeleteSecurityGroup&Version={EC2_VERSION}&GroupId={}",
        form_encode(group_id)
    )
}

/// Headers for an EC2 Query request the proxy sends to moto on behalf of an
/// EKS request. moto picks service and region from the credential scope of
/// `Authorization` (it checks no signature), and the account from the access
/// key, so the client's key and date are kept with `REGION/ec2` as scope.
pub fn ec2_headers(client: &HeaderMap, region: &str) -> HeaderMap {
    let amz_date = client
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (key, date) = client
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(key_and_date)
        .unwrap_or_else(|| {
            let date = amz_date
                .as_deref()
                .and_then(|d| d.get(..8))
                .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
                .unwrap_or("20240101");
            ("AKIDEXAMPLE".to_string(), date.to_string())
        });
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={key}/{date}/{region}/ec2/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date, Signature={}",
        "0".repeat(64)
    );
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&auth) {
        headers.insert(AUTHORIZATION, v);
    }
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
    );
    for name in ["x-amz-date", "x-amz-security-token"] {
        if let Some(v) = client.get(name) {
            headers.insert(HeaderName::from_static(name), v.clone());
        }
    }
    headers
}

/// Access key and date of a SigV4 `Authorization` credential, if both are
/// plain tokens (anything else would not survive into a new header).
fn key_and_date(auth: &str) -> Option<(String, String)> {
    let cred = auth.split("Credential=").nth(1)?;
    let cred = cred.split([',', ' ']).next()?;
    let mut parts = cred.split('/');
    let key = parts.next()?;
    let date = parts.next()?;
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
    (plain(key) && plain(date)).then(|| (key.to_string(), date.to_string()))
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
        let params = crate::ops::form_decode(&body);
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("Action"), Some("CreateSecurityGroup"));
        assert_eq!(get("GroupDescription"), Some(DESCRIPTION));
        assert_eq!(get("VpcId"), Some("vpc-1"));
        assert_eq!(get("TagSpecification.1.Tag.1.Key"), Some(CLUSTER_TAG));
        assert_eq!(get("TagSpecification.1.Tag.1.Value"), Some("c 1"));
        assert!(describe_subnet_body("subnet-1").ends_with("&SubnetId.1=subnet-1"));
        assert!(delete_group_body("sg-1").ends_with("&GroupId=sg-1"));
    }

    #[test]
    fn ec2_headers_rescope_the_client_credential() {
        let mut client = HeaderMap::new();
        client.insert(
            AUTHORIZATION,
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=ASIAKEY/20260102/eu-west-1/eks/aws4_request, \
                 SignedHeaders=host, Signature=abc",
            ),
        );
        client.insert("x-amz-security-token", HeaderValue::from_static("tok"));
        let h = ec2_headers(&client, "eu-west-1");
        assert_eq!(
            crate::ops::credential_scope(&h),
            Some(("eu-west-1".to_string(), "ec2".to_string()))
        );
        let auth = h.get(AUTHORIZATION).unwrap().to_str().unwrap();
        assert!(auth.contains("Credential=ASIAKEY/20260102/eu-west-1/ec2/aws4_request"));
        assert_eq!(h.get("x-amz-security-token").unwrap(), "tok");
        assert!(h.get("host").is_none(), "the client's Host names EKS");

        let h = ec2_headers(&HeaderMap::new(), "us-west-2");
        assert_eq!(
            crate::ops::credential_scope(&h),
            Some(("us-west-2".to_string(), "ec2".to_string()))
        );
    }
}
