//! EKS clusters and nodegroups as the proxy reports them: listed by moto, described through
//! [`Pass::reported`] (so a nodegroup in its CREATING window is `CREATING`, and one updated
//! to another launch template version shows that version).

use std::collections::BTreeMap;

use bytes::Bytes;
use hyper::Method;
use serde_json::{Map, Value};

use crate::core::emulator::Pass;
use crate::core::scopes::Scope;
use crate::shared::form_encode;

/// What the data plane needs of a cluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cluster {
    pub name: String,
    pub status: String,
    /// `resourcesVpcConfig.clusterSecurityGroupId`, when the answer has one (moto's has not;
    /// the proxy adds it with `eks_cluster_fields`).
    pub security_group: Option<String>,
    /// `resourcesVpcConfig.vpcId` (the proxy adds it to moto's answer).
    pub vpc_id: Option<String>,
    /// `computeConfig.enabled`: EKS Auto Mode runs its nodes (the proxy keeps the field,
    /// `cluster_compute.rs`).
    pub compute_enabled: bool,
    /// What a node's bootstrap needs: `endpoint`, `certificateAuthority.data`,
    /// `kubernetesNetworkConfig.serviceIpv4Cidr`.
    pub endpoint: Option<String>,
    pub certificate_authority: Option<String>,
    pub service_cidr: Option<String>,
}

impl Cluster {
    /// Whether nodes can register with it: its API server is up.
    pub fn serving(&self) -> bool {
        matches!(self.status.as_str(), "ACTIVE" | "UPDATING")
    }
}

/// A nodegroup's `launchTemplate`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TemplateRef {
    pub id: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
}

/// What the data plane needs of a managed nodegroup.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Nodegroup {
    pub cluster: String,
    pub name: String,
    pub arn: String,
    pub status: String,
    pub desired_size: usize,
    pub subnets: Vec<String>,
    pub instance_types: Vec<String>,
    pub capacity_type: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Value>,
    pub launch_template: Option<TemplateRef>,
    /// `resources.autoScalingGroups[0].name`: which incarnation of the name the instances
    /// belong to (a nodegroup deleted and made again under its name gets a new one).
    pub group_name: String,
    /// `updateConfig`: a number, or a percentage of the desired size.
    pub max_unavailable: Option<u64>,
    pub max_unavailable_percentage: Option<u64>,
    /// `nodeRole`: the role of its instances' instance profile.
    pub node_role: Option<String>,
}

impl Nodegroup {
    fn from_json(cluster: &str, v: &Map<String, Value>) -> Option<Nodegroup> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let strings = |k: &str| -> Vec<String> {
            v.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let name = s("nodegroupName")?;
        let arn = s("nodegroupArn").unwrap_or_default();
        let desired_size = v
            .get("scalingConfig")
            .and_then(|c| c.get("desiredSize"))
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0);
        let labels = v
            .get("labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let launch_template = v.get("launchTemplate").and_then(Value::as_object).map(|t| {
            let ts = |k: &str| t.get(k).and_then(Value::as_str).map(str::to_string);
            TemplateRef {
                id: ts("id"),
                name: ts("name"),
                version: ts("version"),
            }
        });
        // moto's group name; else the nodegroup's id, the last part of its ARN.
        let group_name = v
            .get("resources")
            .and_then(|r| r.get("autoScalingGroups"))
            .and_then(Value::as_array)
            .and_then(|groups| groups.first())
            .and_then(|g| g.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| arn.rsplit('/').next().unwrap_or_default().to_string());
        let update = v.get("updateConfig");
        let update_field = |k: &str| update.and_then(|u| u.get(k)).and_then(Value::as_u64);
        Some(Nodegroup {
            cluster: cluster.to_string(),
            name,
            arn,
            status: s("status").unwrap_or_default(),
            desired_size,
            subnets: strings("subnets"),
            instance_types: strings("instanceTypes"),
            capacity_type: s("capacityType").unwrap_or_else(|| "ON_DEMAND".to_string()),
            labels,
            taints: v
                .get("taints")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            launch_template,
            group_name,
            max_unavailable: update_field("maxUnavailable"),
            max_unavailable_percentage: update_field("maxUnavailablePercentage"),
            node_role: s("nodeRole"),
        })
    }
}

/// EKS in one scope.
pub struct Eks<'a> {
    pub pass: &'a Pass<'a>,
    pub scope: &'a Scope,
}

impl Eks<'_> {
    async fn get(&self, path: &str) -> Result<(u16, Value), String> {
        let reply = self
            .pass
            .reported(self.scope, "eks", Method::GET, path, Bytes::new())
            .await?;
        let value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        Ok((reply.status, value))
    }

    /// A list operation's names, all pages (`key`: `clusters`, `nodegroups`).
    async fn names(&self, path: &str, key: &str) -> Result<Vec<String>, String> {
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = match &token {
                Some(t) => format!("{path}?maxResults=100&nextToken={}", form_encode(t)),
                None => format!("{path}?maxResults=100"),
            };
            let (status, v) = self.get(&page).await?;
            if status != 200 {
                return Err(format!("GET {path}: {status} {v}"));
            }
            names.extend(
                v.get(key)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string),
            );
            match v.get("nextToken").and_then(Value::as_str) {
                Some(t) if !t.is_empty() && token.as_deref() != Some(t) => {
                    token = Some(t.to_string())
                }
                _ => return Ok(names),
            }
        }
    }

    /// Every cluster of the scope. One that vanished between the list and its describe is
    /// left out.
    pub async fn clusters(&self) -> Result<Vec<Cluster>, String> {
        let mut out = Vec::new();
        for name in self.names("/clusters", "clusters").await? {
            let (status, v) = self
                .get(&format!("/clusters/{}", form_encode(&name)))
                .await?;
            match status {
                200 => {}
                404 => continue,
                s => return Err(format!("DescribeCluster {name}: {s} {v}")),
            }
            let c = &v["cluster"];
            let text = |path: &str| c.pointer(path).and_then(Value::as_str).map(str::to_string);
            out.push(Cluster {
                name,
                status: c["status"].as_str().unwrap_or_default().to_string(),
                security_group: text("/resourcesVpcConfig/clusterSecurityGroupId"),
                vpc_id: text("/resourcesVpcConfig/vpcId"),
                compute_enabled: c.pointer("/computeConfig/enabled") == Some(&Value::Bool(true)),
                endpoint: text("/endpoint"),
                certificate_authority: text("/certificateAuthority/data"),
                service_cidr: text("/kubernetesNetworkConfig/serviceIpv4Cidr"),
            });
        }
        Ok(out)
    }

    /// Every nodegroup of a cluster, as described. One that vanished between the list and
    /// its describe is left out.
    pub async fn nodegroups(&self, cluster: &str) -> Result<Vec<Nodegroup>, String> {
        let base = format!("/clusters/{}/node-groups", form_encode(cluster));
        let mut out = Vec::new();
        for name in self.names(&base, "nodegroups").await? {
            let (status, v) = self.get(&format!("{base}/{}", form_encode(&name))).await?;
            match status {
                200 => {}
                404 => continue,
                s => return Err(format!("DescribeNodegroup {cluster}/{name}: {s} {v}")),
            }
            match v.get("nodegroup").and_then(Value::as_object) {
                Some(ng) => out.extend(Nodegroup::from_json(cluster, ng)),
                None => return Err(format!("DescribeNodegroup {cluster}/{name}: no nodegroup")),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_moto_nodegroups() {
        let v = json!({
            "nodegroupName": "ng", "nodegroupArn": "arn:aws:eks:r:1:nodegroup/c/ng/uuid-1",
            "status": "ACTIVE", "scalingConfig": {"minSize": 1, "maxSize": 5, "desiredSize": 3},
            "instanceTypes": ["m5.large"], "subnets": ["subnet-1", "subnet-2"],
            "labels": {"team": "a"}, "taints": [{"key": "k", "effect": "NO_SCHEDULE"}],
            "launchTemplate": {"id": "lt-1", "name": "t", "version": "2"},
            "resources": {"autoScalingGroups": [{"name": "eks-uuid-1"}]},
            "updateConfig": {"maxUnavailable": 2}
        });
        let ng = Nodegroup::from_json("c", v.as_object().unwrap()).unwrap();
        assert_eq!(ng.desired_size, 3);
        assert_eq!(ng.subnets.len(), 2);
        assert_eq!(
            ng.capacity_type, "ON_DEMAND",
            "moto always has one; EKS's default"
        );
        assert_eq!(ng.labels.get("team").map(String::as_str), Some("a"));
        assert_eq!(ng.group_name, "eks-uuid-1");
        assert_eq!(ng.max_unavailable, Some(2));
        assert_eq!(
            ng.launch_template
                .as_ref()
                .and_then(|t| t.version.as_deref()),
            Some("2")
        );
        let bare = json!({"nodegroupName": "n", "nodegroupArn": "arn:x/c/n/u-2"});
        let ng = Nodegroup::from_json("c", bare.as_object().unwrap()).unwrap();
        assert_eq!(ng.group_name, "u-2");
        assert!(ng.launch_template.is_none());
    }
}
