//! The facts of a typical cluster, for the unit tests of `decide` and `render`: the EKS
//! tutorial's VPC with one managed nodegroup of 2 t3.medium nodes (max 4) over two AZs, each
//! private subnet with its own NAT route table, and the self-managed aws-node.

use super::*;
use ipnet::Ipv4Net;
use std::collections::BTreeMap;

pub fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

pub fn subnet(id: &str, az: &str, cidr: &str) -> (String, SubnetInfo) {
    (
        id.to_string(),
        SubnetInfo {
            id: id.to_string(),
            availability_zone: az.to_string(),
            cidr: Some(net(cidr)),
        },
    )
}

pub fn node(name: &str, az: &str, subnet: &str, owner: NodeOwner) -> NodeInfo {
    NodeInfo {
        name: name.to_string(),
        zone: Some(az.to_string()),
        instance_type: Some("t3.medium".into()),
        instance_id: Some(format!("i-{name}")),
        subnet_id: Some(subnet.to_string()),
        owner,
    }
}

pub fn route(dest: &str, target: &str) -> RouteInfo {
    RouteInfo {
        destination: dest.to_string(),
        cidrs: dest.parse().map(|n| vec![n]).unwrap_or_default(),
        target: target.to_string(),
    }
}

/// The EKS tutorial's VPC with a cluster, one managed nodegroup of 2 t3.medium nodes
/// (max 4) over two AZs, each private subnet with its own NAT route table, and the
/// self-managed aws-node.
pub fn facts() -> ClusterFacts {
    let ng = NodeOwner::ManagedNodegroup("ng1".into());
    ClusterFacts {
        region: "us-west-2".into(),
        cluster: ClusterInfo {
            name: "demo".into(),
            version: Some("1.31".into()),
            status: Some("ACTIVE".into()),
            vpc_id: "vpc-0123456789abcdef0".into(),
            subnet_ids: vec!["subnet-a".into(), "subnet-b".into()],
            security_group_ids: vec![],
            cluster_security_group_id: Some("sg-0123456789abcdef0".into()),
            ip_family: "ipv4".into(),
            auto_mode: false,
        },
        vpc: VpcInfo {
            id: "vpc-0123456789abcdef0".into(),
            primary: Some(net("192.168.0.0/24")),
            blocks: vec![net("192.168.0.0/24")],
        },
        subnets: [
            subnet("subnet-a", "us-west-2a", "192.168.0.64/27"),
            subnet("subnet-b", "us-west-2b", "192.168.0.96/27"),
        ]
        .into_iter()
        .collect(),
        route_tables: vec![
            RouteTableInfo {
                id: "rtb-0000000f".into(),
                main: true,
                subnet_ids: vec![],
                routes: vec![route("192.168.0.0/24", "local")],
            },
            RouteTableInfo {
                id: "rtb-0000000a".into(),
                main: false,
                subnet_ids: vec!["subnet-a".into()],
                routes: vec![
                    route("192.168.0.0/24", "local"),
                    route("0.0.0.0/0", "nat-a"),
                ],
            },
            RouteTableInfo {
                id: "rtb-0000000b".into(),
                main: false,
                subnet_ids: vec!["subnet-b".into()],
                routes: vec![
                    route("192.168.0.0/24", "local"),
                    route("0.0.0.0/0", "nat-b"),
                ],
            },
        ],
        cni: CniInfo {
            addon: None,
            aws_node: Some(AwsNodeInfo {
                image: Some(
                    "602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni:v1.18.3-eksbuild.1"
                        .into(),
                ),
                env: [("WARM_ENI_TARGET".to_string(), "1".to_string())].into(),
            }),
        },
        eni_configs: vec![],
        nodegroups: vec![NodegroupInfo {
            name: "ng1".into(),
            min_size: 2,
            max_size: 4,
            desired_size: 2,
            instance_types: vec!["t3.medium".into()],
            subnet_ids: vec!["subnet-a".into(), "subnet-b".into()],
            launch_template: None,
            auto_scaling_groups: vec!["eks-ng1".into()],
        }],
        auto_scaling_groups: vec![],
        nodes: vec![
            node("n1", "us-west-2a", "subnet-a", ng.clone()),
            node("n2", "us-west-2b", "subnet-b", ng),
        ],
        instance_types: BTreeMap::new(),
        notes: vec![],
    }
}
