//! A cluster made OUTSIDE eksnet, the way Terraform, eksctl or the console leave one: the
//! VPC from AWS's EKS VPC template (`examples/vpc-private-subnets.yaml`: two public and two
//! private subnets, a NAT route table per private subnet), a cluster role, the EKS cluster on
//! the private subnets, a node role and one managed nodegroup, all made with the AWS SDK in a
//! sandbox (`sandbox::Sandbox`). With the sandbox's data plane on, the nodegroup's instances
//! join the fake Kubernetes API server as Ready Nodes before [`build`] returns.
//!
//! For the tests of `eksnet init` and `eksnet roll`: they start from what [`ExistingCluster`]
//! says was made, and may add to it (an Auto Scaling group of their own, a route, a block).

use super::sandbox::Sandbox;
use eksnet::cloud::aws::AwsClients;
use std::time::{Duration, Instant};

/// What to make.
#[derive(Clone, Debug)]
pub struct ExistingClusterOptions {
    /// The EKS cluster's name; the VPC stack, roles and nodegroup are named after it.
    pub name: String,
    /// `ipv4` (default) or `ipv6` (kubernetesNetworkConfig.ipFamily).
    pub ip_family: Option<String>,
    /// The managed nodegroup; `None` for a cluster without nodes.
    pub nodegroup: Option<NodegroupOptions>,
}

#[derive(Clone, Debug)]
pub struct NodegroupOptions {
    pub name: String,
    pub instance_types: Vec<String>,
    pub min_size: i32,
    pub max_size: i32,
    pub desired_size: i32,
}

impl Default for ExistingClusterOptions {
    /// The EKS tutorial's shape: one nodegroup of 2 t3.medium nodes (max 3), on both private
    /// subnets.
    fn default() -> Self {
        ExistingClusterOptions {
            name: "existing".into(),
            ip_family: None,
            nodegroup: Some(NodegroupOptions {
                name: "workers".into(),
                instance_types: vec!["t3.medium".into()],
                min_size: 1,
                max_size: 3,
                desired_size: 2,
            }),
        }
    }
}

/// What was made, for the test to check against.
#[derive(Clone, Debug)]
pub struct ExistingCluster {
    pub cluster: String,
    pub region: String,
    pub vpc_id: String,
    /// The VPC's primary block.
    pub vpc_cidr: String,
    pub stack_name: String,
    /// PrivateSubnet01, PrivateSubnet02: the cluster's and the nodegroup's subnets.
    pub private_subnets: Vec<String>,
    pub public_subnets: Vec<String>,
    /// The AZs of the private subnets, in the same order.
    pub availability_zones: Vec<String>,
    /// PrivateRouteTable01, 02 (each with a NAT route), one per private subnet, in order.
    pub private_route_tables: Vec<String>,
    pub cluster_role_arn: String,
    pub node_role_arn: String,
    pub nodegroup: Option<String>,
    /// The nodegroup's Nodes' names, once Ready (empty without a nodegroup or data plane).
    pub nodes: Vec<String>,
}

/// The template's parameters: the tutorial's blocks, the AZs as parameters (moto cannot
/// resolve `Fn::GetAZs`).
const STACK_PARAMETERS: &[(&str, &str)] = &[
    ("VpcBlock", "192.168.0.0/24"),
    ("PublicSubnet01Block", "192.168.0.0/27"),
    ("PublicSubnet02Block", "192.168.0.32/27"),
    ("PrivateSubnet01Block", "192.168.0.64/27"),
    ("PrivateSubnet02Block", "192.168.0.96/27"),
    ("AvailabilityZone01", "us-west-2a"),
    ("AvailabilityZone02", "us-west-2b"),
];

const WAIT: Duration = Duration::from_secs(120);

/// Polls `check` every 200 ms until it returns `Some`, or panics with `what`.
async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < WAIT, "{what}: not so after {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// SDK clients for the sandbox (its proxy, in front of moto).
pub async fn clients(sandbox: &Sandbox) -> AwsClients {
    super::sdk(&sandbox.endpoint).await
}

/// Makes the world; panics (failing the test) on any error, naming the step.
pub async fn build(sandbox: &Sandbox, opts: &ExistingClusterOptions) -> ExistingCluster {
    let aws = clients(sandbox).await;
    let name = &opts.name;
    let stack_name = format!("{name}-vpc");

    // 1. The VPC, from the template, as CloudFormation makes it.
    let template =
        std::fs::read_to_string(super::package_dir().join("examples/vpc-private-subnets.yaml"))
            .expect("read examples/vpc-private-subnets.yaml");
    let mut create = aws
        .cloudformation
        .create_stack()
        .stack_name(&stack_name)
        .template_body(template);
    for (k, v) in STACK_PARAMETERS {
        create = create.parameters(
            aws_sdk_cloudformation::types::Parameter::builder()
                .parameter_key(*k)
                .parameter_value(*v)
                .build(),
        );
    }
    create.send().await.expect("CreateStack");
    until("the VPC stack CREATE_COMPLETE", || async {
        let out = aws
            .cloudformation
            .describe_stacks()
            .stack_name(&stack_name)
            .send()
            .await
            .ok()?;
        let status = out.stacks().first()?.stack_status()?.as_str().to_string();
        assert!(
            !status.contains("FAILED") && !status.contains("ROLLBACK"),
            "stack {status}"
        );
        (status == "CREATE_COMPLETE").then_some(())
    })
    .await;
    let resources = aws
        .cloudformation
        .describe_stack_resources()
        .stack_name(&stack_name)
        .send()
        .await
        .expect("DescribeStackResources");
    let physical = |logical: &str| -> String {
        resources
            .stack_resources()
            .iter()
            .find(|r| r.logical_resource_id() == Some(logical))
            .and_then(|r| r.physical_resource_id())
            .unwrap_or_else(|| panic!("the stack has no {logical}"))
            .to_string()
    };
    let vpc_id = physical("VPC");
    let private_subnets = vec![physical("PrivateSubnet01"), physical("PrivateSubnet02")];
    let public_subnets = vec![physical("PublicSubnet01"), physical("PublicSubnet02")];
    let private_route_tables = vec![
        physical("PrivateRouteTable01"),
        physical("PrivateRouteTable02"),
    ];
    // The template associates each private subnet with its NAT route table
    // (`PrivateSubnet0NRouteTableAssociation`); moto's CloudFormation records the resource but
    // makes no association, so it is made here, as CloudFormation does on AWS.
    let tables = aws
        .ec2
        .describe_route_tables()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("vpc-id")
                .values(&vpc_id)
                .build(),
        )
        .send()
        .await
        .expect("DescribeRouteTables");
    for (subnet, table) in private_subnets.iter().zip(&private_route_tables) {
        let associated = tables.route_tables().iter().any(|t| {
            t.associations()
                .iter()
                .any(|a| a.subnet_id() == Some(subnet.as_str()))
        });
        if !associated {
            aws.ec2
                .associate_route_table()
                .route_table_id(table)
                .subnet_id(subnet)
                .send()
                .await
                .expect("AssociateRouteTable");
        }
    }
    let described = aws
        .ec2
        .describe_subnets()
        .set_subnet_ids(Some(private_subnets.clone()))
        .send()
        .await
        .expect("DescribeSubnets");
    let availability_zones: Vec<String> = private_subnets
        .iter()
        .map(|id| {
            described
                .subnets()
                .iter()
                .find(|s| s.subnet_id() == Some(id.as_str()))
                .and_then(|s| s.availability_zone())
                .unwrap_or_else(|| panic!("no AZ for {id}"))
                .to_string()
        })
        .collect();

    // 2. The roles.
    let trust = |service: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Service":"{service}"}},"Action":"sts:AssumeRole"}}]}}"#
        )
    };
    let role = |role_name: String, service: &'static str, policies: &'static [&'static str]| {
        let aws = aws.clone();
        let doc = trust(service);
        async move {
            let arn = aws
                .iam
                .create_role()
                .role_name(&role_name)
                .assume_role_policy_document(doc)
                .send()
                .await
                .unwrap_or_else(|e| panic!("CreateRole {role_name}: {e}"))
                .role
                .map(|r| r.arn)
                .unwrap_or_else(|| panic!("CreateRole {role_name}: no role"));
            for p in policies {
                aws.iam
                    .attach_role_policy()
                    .role_name(&role_name)
                    .policy_arn(format!("arn:aws:iam::aws:policy/{p}"))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("AttachRolePolicy {role_name} {p}: {e}"));
            }
            arn
        }
    };
    let cluster_role_arn = role(
        format!("{name}-cluster"),
        "eks.amazonaws.com",
        &["AmazonEKSClusterPolicy"],
    )
    .await;
    let node_role_arn = role(
        format!("{name}-node"),
        "ec2.amazonaws.com",
        &[
            "AmazonEKSWorkerNodePolicy",
            "AmazonEC2ContainerRegistryReadOnly",
            "AmazonEKS_CNI_Policy",
        ],
    )
    .await;

    // 3. The cluster, on the private subnets.
    let mut create = aws
        .eks
        .create_cluster()
        .name(name)
        .role_arn(&cluster_role_arn)
        .resources_vpc_config(
            aws_sdk_eks::types::VpcConfigRequest::builder()
                .set_subnet_ids(Some(private_subnets.clone()))
                .build(),
        );
    if let Some(family) = &opts.ip_family {
        create = create.kubernetes_network_config(
            aws_sdk_eks::types::KubernetesNetworkConfigRequest::builder()
                .ip_family(aws_sdk_eks::types::IpFamily::from(family.as_str()))
                .build(),
        );
    }
    create.send().await.expect("CreateCluster");
    until("the cluster ACTIVE", || async {
        let c = aws
            .eks
            .describe_cluster()
            .name(name)
            .send()
            .await
            .ok()?
            .cluster?;
        (c.status()?.as_str() == "ACTIVE").then_some(())
    })
    .await;

    // 4. The nodegroup, and its nodes Ready.
    let mut nodes = Vec::new();
    if let Some(ng) = &opts.nodegroup {
        aws.eks
            .create_nodegroup()
            .cluster_name(name)
            .nodegroup_name(&ng.name)
            .node_role(&node_role_arn)
            .set_subnets(Some(private_subnets.clone()))
            .set_instance_types(Some(ng.instance_types.clone()))
            .scaling_config(
                aws_sdk_eks::types::NodegroupScalingConfig::builder()
                    .min_size(ng.min_size)
                    .max_size(ng.max_size)
                    .desired_size(ng.desired_size)
                    .build(),
            )
            .send()
            .await
            .expect("CreateNodegroup");
        until("the nodegroup ACTIVE", || async {
            let g = aws
                .eks
                .describe_nodegroup()
                .cluster_name(name)
                .nodegroup_name(&ng.name)
                .send()
                .await
                .ok()?
                .nodegroup?;
            (g.status()?.as_str() == "ACTIVE").then_some(())
        })
        .await;
        if sandbox_has_data_plane(sandbox) {
            nodes = ready_nodes(sandbox, &ng.name, ng.desired_size as usize).await;
        }
    }
    ExistingCluster {
        cluster: name.clone(),
        region: aws.region.clone(),
        vpc_id,
        vpc_cidr: "192.168.0.0/24".into(),
        stack_name,
        private_subnets,
        public_subnets,
        availability_zones,
        private_route_tables,
        cluster_role_arn,
        node_role_arn,
        nodegroup: opts.nodegroup.as_ref().map(|n| n.name.clone()),
        nodes,
    }
}

fn sandbox_has_data_plane(sandbox: &Sandbox) -> bool {
    let (_, text) = sandbox.status();
    !text.contains("data plane off")
}

/// Waits until `count` Nodes of nodegroup `ng` are Ready; their names, sorted.
pub async fn ready_nodes(sandbox: &Sandbox, ng: &str, count: usize) -> Vec<String> {
    let addr = sandbox.kube_url.trim_start_matches("http://").to_string();
    until(&format!("{count} Ready nodes of nodegroup {ng}"), || {
        let addr = addr.clone();
        async move {
            let (status, body) = super::http(&addr, "GET", "/api/v1/nodes", "");
            if status != 200 {
                return None;
            }
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            let mut names: Vec<String> = v["items"]
                .as_array()?
                .iter()
                .filter(|n| n["metadata"]["labels"]["eks.amazonaws.com/nodegroup"] == ng)
                .filter(|n| {
                    n["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                })
                .filter_map(|n| n["metadata"]["name"].as_str().map(String::from))
                .collect();
            names.sort();
            (names.len() >= count).then_some(names)
        }
    })
    .await
}

/// The first plan of a spec `eksnet init` wrote (`plan --json`) only adds: creates and
/// adoptions, an existing node route table that gains one pod subnet's association and no
/// more, and updates of the addresses `update_ok` allows (the CNI settings).
pub fn assert_plan_only_adds(plan: &serde_json::Value, update_ok: &dyn Fn(&str) -> bool) {
    let changes = plan["changes"].as_array().expect("changes");
    for c in changes {
        let addr = c["addr"].as_str().unwrap_or_default();
        let ok = match c["action"].as_str() {
            Some("adopt" | "create") => true,
            Some("update") if addr.starts_with("route_table.") => {
                c["before"]["subnet_ids"] == serde_json::json!([])
                    && c["after"]["subnet_ids"].as_array().map(Vec::len) == Some(1)
            }
            Some("update") => update_ok(addr),
            _ => false,
        };
        assert!(ok, "not an addition: {c}");
    }
}
