//! The data plane's own EC2 calls to moto (not counted, faulted or delayed), and what it
//! reads from their answers.

use std::collections::BTreeMap;

use crate::core::emulator::Host;
use crate::core::scopes::Scope;
use crate::shared::form_encode;

use super::xml::Element;

const VERSION: &str = "2016-11-15";

/// An EC2 Query list: `PREFIX.1`, `PREFIX.2`, … (EC2 API reference, "Query parameters").
fn numbered<'a>(
    prefix: &str,
    items: impl IntoIterator<Item = &'a String>,
) -> Vec<(String, String)> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| (format!("{prefix}.{}", i + 1), v.clone()))
        .collect()
}

/// EC2 filters `(name, values)` as `Filter.N.Name` / `Filter.N.Value.M`.
fn filter_params(filters: &[(&str, Vec<String>)]) -> Vec<(String, String)> {
    let mut params = Vec::new();
    for (i, (name, values)) in filters.iter().enumerate() {
        params.push((format!("Filter.{}.Name", i + 1), name.to_string()));
        params.extend(numbered(&format!("Filter.{}.Value", i + 1), values));
    }
    params
}

/// Tags given at creation: one `TagSpecification` for `resource_type` with each tag as
/// `Tag.N.Key` / `Tag.N.Value`.
fn tag_spec(resource_type: &str, tags: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut params = vec![(
        "TagSpecification.1.ResourceType".to_string(),
        resource_type.to_string(),
    )];
    for (i, (k, v)) in tags.iter().enumerate() {
        params.push((format!("TagSpecification.1.Tag.{}.Key", i + 1), k.clone()));
        params.push((format!("TagSpecification.1.Tag.{}.Value", i + 1), v.clone()));
    }
    params
}

/// EC2's instance states that are gone for good, or going: such an instance's Node is
/// deleted, and it no longer counts in its nodegroup.
pub fn is_ending(state: &str) -> bool {
    matches!(state, "shutting-down" | "terminated")
}

/// One instance, as DescribeInstances or RunInstances report it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Instance {
    pub id: String,
    /// `pending`, `running`, `shutting-down`, `terminated`, `stopping`, `stopped`.
    pub state: String,
    pub instance_type: String,
    pub image_id: String,
    pub subnet_id: String,
    pub availability_zone: String,
    pub private_ip: String,
    pub private_dns_name: String,
    /// `launchTime` as EC2 writes it (ISO 8601, so it sorts as time).
    pub launch_time: String,
    pub tags: BTreeMap<String, String>,
}

impl Instance {
    fn from_xml(item: &Element) -> Option<Instance> {
        let text = |path: &[&str]| item.text_at(path).unwrap_or_default().to_string();
        let tags = item
            .items("tagSet")
            .filter_map(|t| {
                let key = t.text_at(&["key"])?;
                let value = t.text_at(&["value"]).unwrap_or_default();
                Some((key.to_string(), value.to_string()))
            })
            .collect();
        Some(Instance {
            id: item.text_at(&["instanceId"])?.to_string(),
            state: text(&["instanceState", "name"]),
            instance_type: text(&["instanceType"]),
            image_id: text(&["imageId"]),
            subnet_id: text(&["subnetId"]),
            availability_zone: text(&["placement", "availabilityZone"]),
            private_ip: text(&["privateIpAddress"]),
            private_dns_name: text(&["privateDnsName"]),
            launch_time: text(&["launchTime"]),
            tags,
        })
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }
}

/// What the data plane needs of an instance type (DescribeInstanceTypes).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InstanceType {
    pub name: String,
    /// `NetworkInfo.MaximumNetworkInterfaces` (all network cards).
    pub max_enis: u32,
    /// `MaximumNetworkInterfaces` of the default network card, when the answer lists cards.
    pub default_card_enis: Option<u32>,
    pub ipv4_per_eni: u32,
    pub vcpus: u32,
    /// `nitro`, `xen`, ... (empty for bare metal, whose answer has no hypervisor).
    pub hypervisor: String,
    /// `SupportedArchitectures`: `x86_64`, `arm64`, `i386`, ...
    pub architectures: Vec<String>,
}

impl InstanceType {
    fn from_xml(item: &Element) -> Option<InstanceType> {
        let num = |path: &[&str]| item.text_at(path).and_then(|t| t.parse::<u32>().ok());
        let default_card = num(&["networkInfo", "defaultNetworkCardIndex"]).unwrap_or(0);
        let default_card_enis = item
            .at(&["networkInfo"])
            .into_iter()
            .flat_map(|n| n.items("networkCards"))
            .find(|card| {
                card.text_at(&["networkCardIndex"])
                    .and_then(|i| i.parse::<u32>().ok())
                    == Some(default_card)
            })
            .and_then(|card| card.text_at(&["maximumNetworkInterfaces"]))
            .and_then(|n| n.parse().ok());
        Some(InstanceType {
            name: item.text_at(&["instanceType"])?.to_string(),
            max_enis: num(&["networkInfo", "maximumNetworkInterfaces"])?,
            default_card_enis,
            ipv4_per_eni: num(&["networkInfo", "ipv4AddressesPerInterface"])?,
            vcpus: num(&["vCpuInfo", "defaultVCpus"]).unwrap_or(0),
            hypervisor: item
                .text_at(&["hypervisor"])
                .unwrap_or_default()
                .to_string(),
            architectures: item
                .at(&["processorInfo"])
                .into_iter()
                .flat_map(|p| p.items("supportedArchitectures"))
                .map(|a| a.text.trim().to_string())
                .collect(),
        })
    }
}

/// A launch template version (DescribeLaunchTemplateVersions): what a nodegroup's
/// instances are launched from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TemplateVersion {
    pub template_id: String,
    pub number: String,
    /// A custom AMI: EKS then merges no user data and computes no max pods.
    pub image_id: Option<String>,
    pub instance_type: Option<String>,
    /// Base64, as EC2 keeps it.
    pub user_data: Option<String>,
    pub security_group_ids: Vec<String>,
}

/// What to launch.
#[derive(Clone, Debug, Default)]
pub struct Launch {
    pub subnet_id: String,
    pub instance_type: String,
    /// Set when the launch template (if any) has no AMI.
    pub image_id: Option<String>,
    /// (template id, version number)
    pub template: Option<(String, String)>,
    /// Set when the launch template (if any) has no security groups.
    pub security_group_ids: Vec<String>,
    pub tags: BTreeMap<String, String>,
    /// Base64, as RunInstances takes it (EC2 API reference, `UserData`).
    pub user_data: Option<String>,
}

/// EC2 in one scope.
pub struct Ec2<'a> {
    pub host: &'a Host,
    pub scope: &'a Scope,
}

impl Ec2<'_> {
    async fn call(&self, action: &str, params: &[(String, String)]) -> Result<Element, String> {
        let mut body = format!("Action={action}&Version={VERSION}");
        for (k, v) in params {
            body.push('&');
            body.push_str(&form_encode(k));
            body.push('=');
            body.push_str(&form_encode(v));
        }
        let headers = self.scope.headers("ec2");
        let text = self
            .host
            .upstream
            .ec2_call(&headers, body)
            .await
            .map_err(|e| format!("{action}: {e}"))?;
        Element::parse(&text).map_err(|e| format!("{action}: {e}"))
    }

    /// Every instance of the scope that is not terminated. EC2 lists terminated instances
    /// for a while after (moto keeps them): asking for them would make each pass's look grow
    /// with every instance the scope ever had.
    pub async fn live_instances(&self) -> Result<Vec<Instance>, String> {
        let states = ["pending", "running", "shutting-down", "stopping", "stopped"];
        self.instances_where(&[("instance-state-name", states.map(String::from).to_vec())])
            .await
    }

    /// The instances matching EC2 filters `(name, values)`, in every state.
    pub async fn instances_where(
        &self,
        filters: &[(&str, Vec<String>)],
    ) -> Result<Vec<Instance>, String> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut params = vec![("MaxResults".to_string(), "1000".to_string())];
            params.extend(filter_params(filters));
            if let Some(t) = &token {
                params.push(("NextToken".to_string(), t.clone()));
            }
            let root = self.call("DescribeInstances", &params).await?;
            for reservation in root.items("reservationSet") {
                out.extend(
                    reservation
                        .items("instancesSet")
                        .filter_map(Instance::from_xml),
                );
            }
            match root.text_at(&["nextToken"]) {
                Some(t) if token.as_deref() != Some(t) => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    pub async fn instance_types(&self, names: &[String]) -> Result<Vec<InstanceType>, String> {
        let params = numbered("InstanceType", names);
        let root = self.call("DescribeInstanceTypes", &params).await?;
        Ok(root
            .items("instanceTypeSet")
            .filter_map(InstanceType::from_xml)
            .collect())
    }

    /// A version of a launch template given by id or name; `version` is a number,
    /// `$Default` or `$Latest`.
    pub async fn template_version(
        &self,
        id: Option<&str>,
        name: Option<&str>,
        version: &str,
    ) -> Result<TemplateVersion, String> {
        let mut params = vec![("LaunchTemplateVersion.1".to_string(), version.to_string())];
        match (id, name) {
            (Some(id), _) => params.push(("LaunchTemplateId".to_string(), id.to_string())),
            (None, Some(name)) => params.push(("LaunchTemplateName".to_string(), name.to_string())),
            (None, None) => return Err("a launch template without id or name".to_string()),
        }
        let root = self.call("DescribeLaunchTemplateVersions", &params).await?;
        let item = root
            .items("launchTemplateVersionSet")
            .next()
            .ok_or_else(|| format!("launch template version {version} not found"))?;
        let data = item.child("launchTemplateData");
        let text = |path: &[&str]| data.and_then(|d| d.text_at(path)).map(str::to_string);
        let mut security_group_ids: Vec<String> = data
            .into_iter()
            .flat_map(|d| d.items("securityGroupIdSet"))
            .map(|g| g.text.trim().to_string())
            .filter(|g| !g.is_empty())
            .collect();
        // Security groups given on the template's network interface instead.
        for nic in data
            .into_iter()
            .flat_map(|d| d.items("networkInterfaceSet"))
        {
            security_group_ids.extend(
                nic.items("groupSet")
                    .map(|g| g.text.trim().to_string())
                    .filter(|g| !g.is_empty()),
            );
        }
        Ok(TemplateVersion {
            template_id: item
                .text_at(&["launchTemplateId"])
                .unwrap_or_default()
                .to_string(),
            number: item
                .text_at(&["versionNumber"])
                .ok_or("a launch template version without a number")?
                .to_string(),
            image_id: text(&["imageId"]),
            instance_type: text(&["instanceType"]),
            user_data: text(&["userData"]),
            security_group_ids,
        })
    }

    /// The availability zone of each subnet that exists.
    pub async fn subnet_zones(&self, ids: &[String]) -> Result<BTreeMap<String, String>, String> {
        Ok(self
            .subnet_places(ids)
            .await?
            .into_iter()
            .map(|(id, (zone, _))| (id, zone))
            .collect())
    }

    /// (availability zone, VPC) of each subnet that exists.
    pub async fn subnet_places(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, (String, String)>, String> {
        let params = numbered("SubnetId", ids);
        let root = self.call("DescribeSubnets", &params).await?;
        Ok(root
            .items("subnetSet")
            .filter_map(|s| {
                Some((
                    s.text_at(&["subnetId"])?.to_string(),
                    (
                        s.text_at(&["availabilityZone"])?.to_string(),
                        s.text_at(&["vpcId"]).unwrap_or_default().to_string(),
                    ),
                ))
            })
            .collect())
    }

    /// Launches one instance, tagged at launch (so that it is never seen untagged).
    pub async fn run(&self, launch: &Launch) -> Result<Instance, String> {
        let mut params: Vec<(String, String)> = vec![
            ("MinCount".into(), "1".into()),
            ("MaxCount".into(), "1".into()),
            ("SubnetId".into(), launch.subnet_id.clone()),
            ("InstanceType".into(), launch.instance_type.clone()),
        ];
        if let Some(image) = &launch.image_id {
            params.push(("ImageId".into(), image.clone()));
        }
        if let Some((id, version)) = &launch.template {
            params.push(("LaunchTemplate.LaunchTemplateId".into(), id.clone()));
            params.push(("LaunchTemplate.Version".into(), version.clone()));
        }
        params.extend(numbered("SecurityGroupId", &launch.security_group_ids));
        if let Some(data) = &launch.user_data {
            params.push(("UserData".into(), data.clone()));
        }
        params.extend(tag_spec("instance", &launch.tags));
        let root = self.call("RunInstances", &params).await?;
        let instance = root.items("instancesSet").find_map(Instance::from_xml);
        instance.ok_or_else(|| "RunInstances: no instance in the answer".to_string())
    }

    pub async fn terminate(&self, ids: &[String]) -> Result<(), String> {
        if ids.is_empty() {
            return Ok(());
        }
        let params = numbered("InstanceId", ids);
        self.call("TerminateInstances", &params).await.map(|_| ())
    }

    /// An instance's user data (base64), if it has any.
    pub async fn user_data(&self, id: &str) -> Result<Option<String>, String> {
        let params = vec![
            ("InstanceId".to_string(), id.to_string()),
            ("Attribute".to_string(), "userData".to_string()),
        ];
        let root = self.call("DescribeInstanceAttribute", &params).await?;
        Ok(root.text_at(&["userData", "value"]).map(str::to_string))
    }
}

/// One network interface (DescribeNetworkInterfaces).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Eni {
    pub id: String,
    pub subnet_id: String,
    /// `available`, `in-use`, ...
    pub status: String,
    pub description: String,
    pub attachment_id: Option<String>,
    pub instance_id: Option<String>,
    pub device_index: Option<u32>,
    /// (address, primary)
    pub private_ips: Vec<(String, bool)>,
    pub groups: Vec<String>,
    pub tags: BTreeMap<String, String>,
    pub mac: String,
}

impl Eni {
    pub fn from_xml(item: &Element) -> Option<Eni> {
        let text = |path: &[&str]| item.text_at(path).map(str::to_string);
        Some(Eni {
            id: text(&["networkInterfaceId"])?,
            subnet_id: text(&["subnetId"]).unwrap_or_default(),
            status: text(&["status"]).unwrap_or_default(),
            description: text(&["description"]).unwrap_or_default(),
            attachment_id: text(&["attachment", "attachmentId"]),
            instance_id: text(&["attachment", "instanceId"]),
            device_index: text(&["attachment", "deviceIndex"]).and_then(|d| d.parse().ok()),
            private_ips: item
                .items("privateIpAddressesSet")
                .filter_map(|a| {
                    Some((
                        a.text_at(&["privateIpAddress"])?.to_string(),
                        a.text_at(&["primary"]) == Some("true"),
                    ))
                })
                .collect(),
            groups: item
                .items("groupSet")
                .filter_map(|g| g.text_at(&["groupId"]).map(str::to_string))
                .collect(),
            tags: item
                .items("tagSet")
                .filter_map(|t| {
                    Some((
                        t.text_at(&["key"])?.to_string(),
                        t.text_at(&["value"]).unwrap_or_default().to_string(),
                    ))
                })
                .collect(),
            mac: text(&["macAddress"]).unwrap_or_default(),
        })
    }

    /// Its secondary addresses (the ones pods can get).
    pub fn secondary_ips(&self) -> impl Iterator<Item = &str> {
        self.private_ips
            .iter()
            .filter(|(_, primary)| !primary)
            .map(|(ip, _)| ip.as_str())
    }
}

/// One subnet (DescribeSubnets).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Subnet {
    pub id: String,
    pub cidr: String,
    pub zone: String,
}

impl Ec2<'_> {
    /// Network interfaces matching EC2 filters `(name, values)`.
    pub async fn enis(&self, filters: &[(&str, Vec<String>)]) -> Result<Vec<Eni>, String> {
        let params = filter_params(filters);
        let root = self.call("DescribeNetworkInterfaces", &params).await?;
        Ok(root
            .items("networkInterfaceSet")
            .filter_map(Eni::from_xml)
            .collect())
    }

    pub async fn subnet(&self, id: &str) -> Result<Option<Subnet>, String> {
        let params = vec![("SubnetId.1".to_string(), id.to_string())];
        let root = match self.call("DescribeSubnets", &params).await {
            Ok(r) => r,
            Err(e) if e.contains("InvalidSubnetID.NotFound") => return Ok(None),
            Err(e) => return Err(e),
        };
        let found = root.items("subnetSet").find_map(|s| {
            Some(Subnet {
                id: s.text_at(&["subnetId"])?.to_string(),
                cidr: s.text_at(&["cidrBlock"])?.to_string(),
                zone: s
                    .text_at(&["availabilityZone"])
                    .unwrap_or_default()
                    .to_string(),
            })
        });
        Ok(found)
    }

    /// CreateNetworkInterface with its primary address given (moto picks one at random
    /// otherwise, which may be taken); (id, MAC address).
    pub async fn create_eni(
        &self,
        subnet: &str,
        primary_ip: &str,
        groups: &[String],
        description: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(String, String), String> {
        let mut params = vec![
            ("SubnetId".to_string(), subnet.to_string()),
            ("PrivateIpAddress".to_string(), primary_ip.to_string()),
            ("Description".to_string(), description.to_string()),
        ];
        params.extend(numbered("SecurityGroupId", groups));
        params.extend(tag_spec("network-interface", tags));
        let root = self.call("CreateNetworkInterface", &params).await?;
        let id = root
            .text_at(&["networkInterface", "networkInterfaceId"])
            .ok_or_else(|| "CreateNetworkInterface: no id in the answer".to_string())?;
        let mac = root
            .text_at(&["networkInterface", "macAddress"])
            .unwrap_or_default();
        Ok((id.to_string(), mac.to_string()))
    }

    /// AttachNetworkInterface; the attachment id.
    pub async fn attach_eni(
        &self,
        eni: &str,
        instance: &str,
        index: u32,
    ) -> Result<String, String> {
        let params = vec![
            ("NetworkInterfaceId".to_string(), eni.to_string()),
            ("InstanceId".to_string(), instance.to_string()),
            ("DeviceIndex".to_string(), index.to_string()),
        ];
        let root = self.call("AttachNetworkInterface", &params).await?;
        root.text_at(&["attachmentId"])
            .map(str::to_string)
            .ok_or_else(|| "AttachNetworkInterface: no attachment id".to_string())
    }

    /// Sets the attachment's DeleteOnTermination, as the CNI does after attaching
    /// (amazon-vpc-cni-k8s `pkg/awsutils/awsutils.go`). moto 5.2.5 accepts and ignores it.
    pub async fn delete_on_termination(&self, eni: &str, attachment: &str) -> Result<(), String> {
        let params = vec![
            ("NetworkInterfaceId".to_string(), eni.to_string()),
            (
                "Attachment.AttachmentId".to_string(),
                attachment.to_string(),
            ),
            (
                "Attachment.DeleteOnTermination".to_string(),
                "true".to_string(),
            ),
        ];
        self.call("ModifyNetworkInterfaceAttribute", &params)
            .await
            .map(|_| ())
    }

    pub async fn detach_eni(&self, attachment: &str) -> Result<(), String> {
        let params = vec![
            ("AttachmentId".to_string(), attachment.to_string()),
            ("Force".to_string(), "true".to_string()),
        ];
        self.call("DetachNetworkInterface", &params)
            .await
            .map(|_| ())
    }

    /// DeleteNetworkInterface; one already gone is fine.
    pub async fn delete_eni(&self, eni: &str) -> Result<(), String> {
        let params = vec![("NetworkInterfaceId".to_string(), eni.to_string())];
        match self.call("DeleteNetworkInterface", &params).await {
            Ok(_) => Ok(()),
            Err(e) if e.contains("NotFound") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// AssignPrivateIpAddresses with explicit addresses (`PrivateIpAddress.N`).
    pub async fn assign_ips(&self, eni: &str, ips: &[String]) -> Result<(), String> {
        if ips.is_empty() {
            return Ok(());
        }
        let mut params = vec![("NetworkInterfaceId".to_string(), eni.to_string())];
        for (i, ip) in ips.iter().enumerate() {
            params.push((format!("PrivateIpAddress.{}", i + 1), ip.clone()));
        }
        self.call("AssignPrivateIpAddresses", &params)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_moto_shapes() {
        let doc = r#"<DescribeInstancesResponse><reservationSet><item><instancesSet><item>
<instanceId>i-1</instanceId><instanceState><code>16</code><name>running</name></instanceState>
<instanceType>t3.medium</instanceType><imageId>ami-1</imageId><subnetId>subnet-1</subnetId>
<placement><availabilityZone>us-east-1a</availabilityZone></placement>
<privateIpAddress>10.0.1.5</privateIpAddress><privateDnsName>ip-10-0-1-5.ec2.internal</privateDnsName>
<launchTime>2026-01-01T00:00:00.000Z</launchTime>
<tagSet><item><key>eks:nodegroup-name</key><value>ng</value></item></tagSet>
<networkInterfaceSet><item><subnetId>subnet-x</subnetId></item></networkInterfaceSet>
</item></instancesSet></item></reservationSet></DescribeInstancesResponse>"#;
        let root = Element::parse(doc).unwrap();
        let reservation = root.items("reservationSet").next().unwrap();
        let i = reservation
            .items("instancesSet")
            .find_map(Instance::from_xml)
            .unwrap();
        assert_eq!(i.id, "i-1");
        assert_eq!(i.state, "running");
        assert_eq!(
            i.subnet_id, "subnet-1",
            "the instance's, not its interface's"
        );
        assert_eq!(i.availability_zone, "us-east-1a");
        assert_eq!(i.tag("eks:nodegroup-name"), Some("ng"));

        let doc = r#"<R><instanceTypeSet><item><instanceType>m5.large</instanceType>
<hypervisor>nitro</hypervisor><processorInfo><supportedArchitectures><item>x86_64</item>
</supportedArchitectures></processorInfo><vCpuInfo><defaultVCpus>2</defaultVCpus></vCpuInfo>
<networkInfo><maximumNetworkInterfaces>3</maximumNetworkInterfaces><defaultNetworkCardIndex>0</defaultNetworkCardIndex>
<networkCards><item><networkCardIndex>0</networkCardIndex><maximumNetworkInterfaces>3</maximumNetworkInterfaces></item></networkCards>
<ipv4AddressesPerInterface>10</ipv4AddressesPerInterface></networkInfo></item></instanceTypeSet></R>"#;
        let root = Element::parse(doc).unwrap();
        let t = root
            .items("instanceTypeSet")
            .find_map(InstanceType::from_xml)
            .unwrap();
        assert_eq!(
            (t.max_enis, t.default_card_enis, t.ipv4_per_eni, t.vcpus),
            (3, Some(3), 10, 2)
        );
        assert_eq!(t.architectures, vec!["x86_64".to_string()]);
        assert!(is_ending("terminated") && is_ending("shutting-down") && !is_ending("running"));
    }
}
