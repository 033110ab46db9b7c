//! The data plane's own EC2 Auto Scaling calls to moto (not counted, faulted or delayed),
//! and what it reads from their answers (AWS Query protocol: lists of `<member>`).

use std::collections::{BTreeMap, BTreeSet};

use crate::core::emulator::Host;
use crate::core::scopes::Scope;
use crate::shared::form_encode;

use super::eks::TemplateRef;
use super::xml::Element;

const VERSION: &str = "2011-01-01";

/// One instance of a group, as DescribeAutoScalingGroups lists it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupInstance {
    pub id: String,
    pub zone: String,
    /// `Pending`, `InService`, `Standby`, `Terminating`, ...
    pub lifecycle: String,
    /// `Healthy` or `Unhealthy`.
    pub health: String,
}

/// What the data plane needs of an Auto Scaling group.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Group {
    pub name: String,
    pub desired: usize,
    /// `LaunchTemplate`, or the one of `MixedInstancesPolicy`; `None` for a group of a
    /// launch configuration.
    pub template: Option<TemplateRef>,
    /// `VPCZoneIdentifier`, in its order.
    pub subnets: Vec<String>,
    pub instances: Vec<GroupInstance>,
    /// `SuspendedProcesses` by name.
    pub suspended: BTreeSet<String>,
    /// The group's tags with `PropagateAtLaunch`.
    pub propagated_tags: BTreeMap<String, String>,
}

impl Group {
    fn from_xml(m: &Element) -> Option<Group> {
        let text = |path: &[&str]| m.text_at(path).map(str::to_string);
        let template = m
            .child("LaunchTemplate")
            .or_else(|| {
                m.at(&[
                    "MixedInstancesPolicy",
                    "LaunchTemplate",
                    "LaunchTemplateSpecification",
                ])
            })
            .map(|t| TemplateRef {
                id: t.text_at(&["LaunchTemplateId"]).map(str::to_string),
                name: t.text_at(&["LaunchTemplateName"]).map(str::to_string),
                version: t.text_at(&["Version"]).map(str::to_string),
            });
        Some(Group {
            name: text(&["AutoScalingGroupName"])?,
            desired: text(&["DesiredCapacity"])
                .and_then(|d| d.parse().ok())
                .unwrap_or(0),
            template,
            subnets: text(&["VPCZoneIdentifier"])
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            instances: m
                .members("Instances")
                .filter_map(|i| {
                    Some(GroupInstance {
                        id: i.text_at(&["InstanceId"])?.to_string(),
                        zone: i
                            .text_at(&["AvailabilityZone"])
                            .unwrap_or_default()
                            .to_string(),
                        lifecycle: i
                            .text_at(&["LifecycleState"])
                            .unwrap_or_default()
                            .to_string(),
                        health: i.text_at(&["HealthStatus"]).unwrap_or_default().to_string(),
                    })
                })
                .collect(),
            suspended: m
                .members("SuspendedProcesses")
                .filter_map(|p| p.text_at(&["ProcessName"]).map(str::to_string))
                .collect(),
            propagated_tags: m
                .members("Tags")
                .filter(|t| t.text_at(&["PropagateAtLaunch"]) == Some("true"))
                .filter_map(|t| {
                    Some((
                        t.text_at(&["Key"])?.to_string(),
                        t.text_at(&["Value"]).unwrap_or_default().to_string(),
                    ))
                })
                .collect(),
        })
    }
}

/// EC2 Auto Scaling in one scope.
pub struct Autoscaling<'a> {
    pub host: &'a Host,
    pub scope: &'a Scope,
}

/// An AWS Query list: `PREFIX.member.1`, `PREFIX.member.2`, …
fn members<'a>(prefix: &str, items: impl IntoIterator<Item = &'a String>) -> Vec<(String, String)> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| (format!("{prefix}.member.{}", i + 1), v.clone()))
        .collect()
}

impl Autoscaling<'_> {
    async fn call(&self, action: &str, params: &[(String, String)]) -> Result<Element, String> {
        let mut body = format!("Action={action}&Version={VERSION}");
        for (k, v) in params {
            body.push('&');
            body.push_str(&form_encode(k));
            body.push('=');
            body.push_str(&form_encode(v));
        }
        let headers = self.scope.headers("autoscaling");
        let text = self
            .host
            .upstream
            .ec2_call(&headers, body)
            .await
            .map_err(|e| format!("{action}: {e}"))?;
        Element::parse(&text).map_err(|e| format!("{action}: {e}"))
    }

    /// The groups of the scope (`names` empty: all of them).
    pub async fn groups(&self, names: &[String]) -> Result<Vec<Group>, String> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut params = vec![("MaxRecords".to_string(), "100".to_string())];
            params.extend(members("AutoScalingGroupNames", names));
            if let Some(t) = &token {
                params.push(("NextToken".to_string(), t.clone()));
            }
            let root = self.call("DescribeAutoScalingGroups", &params).await?;
            let Some(result) = root.child("DescribeAutoScalingGroupsResult") else {
                return Ok(out);
            };
            out.extend(
                result
                    .members("AutoScalingGroups")
                    .filter_map(Group::from_xml),
            );
            match result.text_at(&["NextToken"]) {
                Some(t) if token.as_deref() != Some(t) => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// The group and lifecycle state of each of `ids` that is in a group
    /// (DescribeAutoScalingInstances): (instance, group, lifecycle).
    pub async fn owners(&self, ids: &[String]) -> Result<Vec<(String, String, String)>, String> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let params = members("InstanceIds", ids);
        let root = self.call("DescribeAutoScalingInstances", &params).await?;
        Ok(root
            .child("DescribeAutoScalingInstancesResult")
            .into_iter()
            .flat_map(|r| r.members("AutoScalingInstances"))
            .filter_map(|i| {
                Some((
                    i.text_at(&["InstanceId"])?.to_string(),
                    i.text_at(&["AutoScalingGroupName"])?.to_string(),
                    i.text_at(&["LifecycleState"])
                        .unwrap_or_default()
                        .to_string(),
                ))
            })
            .collect())
    }

    /// SetInstanceHealth `Unhealthy`, as the EC2 health check marks an instance.
    pub async fn mark_unhealthy(&self, id: &str) -> Result<(), String> {
        let params = vec![
            ("InstanceId".to_string(), id.to_string()),
            ("HealthStatus".to_string(), "Unhealthy".to_string()),
            ("ShouldRespectGracePeriod".to_string(), "false".to_string()),
        ];
        self.call("SetInstanceHealth", &params).await.map(|_| ())
    }

    /// EnterStandby with ShouldDecrementDesiredCapacity: the instances stop counting, and
    /// the group's desired capacity falls by as many, so moto launches nothing for them.
    pub async fn standby(&self, group: &str, ids: &[String]) -> Result<(), String> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut params = vec![
            ("AutoScalingGroupName".to_string(), group.to_string()),
            (
                "ShouldDecrementDesiredCapacity".to_string(),
                "true".to_string(),
            ),
        ];
        params.extend(members("InstanceIds", ids));
        self.call("EnterStandby", &params).await.map(|_| ())
    }

    /// ExitStandby: the instances count again, and the desired capacity grows by as many.
    pub async fn exit_standby(&self, group: &str, ids: &[String]) -> Result<(), String> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut params = vec![("AutoScalingGroupName".to_string(), group.to_string())];
        params.extend(members("InstanceIds", ids));
        self.call("ExitStandby", &params).await.map(|_| ())
    }

    /// DetachInstances with ShouldDecrementDesiredCapacity.
    pub async fn detach(&self, group: &str, ids: &[String]) -> Result<(), String> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut params = vec![
            ("AutoScalingGroupName".to_string(), group.to_string()),
            (
                "ShouldDecrementDesiredCapacity".to_string(),
                "true".to_string(),
            ),
        ];
        params.extend(members("InstanceIds", ids));
        self.call("DetachInstances", &params).await.map(|_| ())
    }

    /// AttachInstances: the instances join the group, whose desired capacity grows by as
    /// many (moto tags them with the group's name).
    pub async fn attach(&self, group: &str, ids: &[String]) -> Result<(), String> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut params = vec![("AutoScalingGroupName".to_string(), group.to_string())];
        params.extend(members("InstanceIds", ids));
        self.call("AttachInstances", &params).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_moto_shapes() {
        let doc = r#"<DescribeAutoScalingGroupsResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><DescribeAutoScalingGroupsResult><AutoScalingGroups><member><AutoScalingGroupName>g</AutoScalingGroupName><LaunchTemplate><LaunchTemplateId>lt-1</LaunchTemplateId><LaunchTemplateName>t</LaunchTemplateName></LaunchTemplate><MinSize>0</MinSize><MaxSize>3</MaxSize><DesiredCapacity>1</DesiredCapacity><Instances><member><InstanceId>i-1</InstanceId><AvailabilityZone>us-east-1a</AvailabilityZone><LifecycleState>InService</LifecycleState><HealthStatus>Healthy</HealthStatus></member></Instances><SuspendedProcesses><member><ProcessName>AZRebalance</ProcessName><SuspensionReason/></member></SuspendedProcesses><VPCZoneIdentifier>subnet-a,subnet-b</VPCZoneIdentifier><Tags><member><ResourceId>g</ResourceId><Key>k</Key><Value>v</Value><PropagateAtLaunch>true</PropagateAtLaunch></member><member><Key>n</Key><Value>x</Value><PropagateAtLaunch>false</PropagateAtLaunch></member></Tags></member></AutoScalingGroups><NextToken/></DescribeAutoScalingGroupsResult></DescribeAutoScalingGroupsResponse>"#;
        let root = Element::parse(doc).unwrap();
        let result = root.child("DescribeAutoScalingGroupsResult").unwrap();
        let g = result
            .members("AutoScalingGroups")
            .find_map(Group::from_xml)
            .unwrap();
        assert_eq!(g.name, "g");
        assert_eq!(g.desired, 1);
        assert_eq!(
            g.template,
            Some(TemplateRef {
                id: Some("lt-1".into()),
                name: Some("t".into()),
                version: None
            })
        );
        assert_eq!(g.subnets, ["subnet-a", "subnet-b"]);
        assert_eq!(
            g.instances,
            [GroupInstance {
                id: "i-1".into(),
                zone: "us-east-1a".into(),
                lifecycle: "InService".into(),
                health: "Healthy".into()
            }]
        );
        assert!(g.suspended.contains("AZRebalance"));
        assert_eq!(
            g.propagated_tags,
            BTreeMap::from([("k".to_string(), "v".to_string())])
        );
        assert_eq!(result.text_at(&["NextToken"]), None);
    }
}
