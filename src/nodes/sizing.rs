//! Node sizing under the cluster's VPC CNI settings: how many pods each instance type can run
//! (the arithmetic of amazon-eks-ami's max-pods calculator), and whether the pod subnets of
//! each AZ hold enough addresses for the nodegroups that can land there.
//!
//! Pure: the caller reads the instance types (DescribeInstanceTypes), the subnets
//! (DescribeSubnets or the spec) and the aws-node environment, and this module only counts.

use crate::base::addr::ResourceAddr;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// aws-node and kube-proxy run on the host network, so they count against max pods but take no
/// pod address; the calculator adds them on top of the addresses.
const HOST_NETWORK_PODS: u32 = 2;
/// Addresses in one delegated /28 prefix.
const PREFIX_ADDRESSES: u32 = 16;
/// The calculator's ceilings: kubelet and the CNI are only tested up to these densities.
const LOW_CPU_CAP: u32 = 110;
const HIGH_CPU_CAP: u32 = 250;
const HIGH_CPU_FROM_VCPUS: u32 = 30;
/// AWS keeps the network address, the router, DNS, a future address and the broadcast address
/// of every subnet.
const AWS_RESERVED_ADDRESSES: u64 = 5;

/// What node sizing reads from AWS (alongside the refresh): the instance types' network
/// limits and the pod subnets' free addresses.
#[derive(Debug, Default, Clone)]
pub struct SizingReads {
    pub types: BTreeMap<String, InstanceNetwork>,
    /// Subnet id → `AvailableIpAddressCount`.
    pub available: std::collections::HashMap<String, u32>,
    /// Why a read failed: the assessment is skipped for what it needed, the plan goes on.
    pub problems: Vec<String>,
    /// Cluster name → the node sources of a cluster the spec only reads (`existing = true`)
    /// that the spec does not declare: their nodes take pod addresses too.
    pub outside: BTreeMap<String, Vec<OutsideGroup>>,
}

/// A source of nodes eksnet does not own (another tool's managed nodegroup, an Auto Scaling
/// group, Karpenter, unknown), as read from the live cluster. Pure data: the planner sizes it
/// under the cluster's CNI settings as it sizes the spec's nodegroups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutsideGroup {
    /// How the plan names it, e.g. "managed nodegroup `ng-1`".
    pub label: String,
    /// The managed nodegroup's name, so one the spec declares is not counted twice.
    pub nodegroup: Option<String>,
    /// The group's max size; `None` when nothing bounds it (Karpenter, unknown owners): then
    /// its nodes are counted where they run now (`nodes_per_az`).
    pub max_size: Option<u32>,
    pub azs: Vec<String>,
    pub instance_types: Vec<String>,
    /// Its nodes now, per AZ.
    pub nodes_per_az: BTreeMap<String, u32>,
}

/// The network limits of one instance type, from DescribeInstanceTypes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceNetwork {
    pub instance_type: String,
    /// NetworkInfo.MaximumNetworkInterfaces
    pub max_enis: u32,
    /// NetworkInfo.Ipv4AddressesPerInterface
    pub ipv4_per_eni: u32,
    /// VCpuInfo.DefaultVCpus
    pub vcpus: u32,
    /// Hypervisor == "nitro" (prefix delegation needs Nitro)
    pub nitro: bool,
}

impl InstanceNetwork {
    /// The limits as DescribeInstanceTypes gives them (a conversion, no request); `None`
    /// without a type name.
    pub fn from_ec2(t: &aws_sdk_ec2::types::InstanceTypeInfo) -> Option<InstanceNetwork> {
        let name = t.instance_type()?.as_str().to_string();
        let net = t.network_info();
        let n = |v: Option<i32>| v.and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
        Some(InstanceNetwork {
            instance_type: name,
            max_enis: n(net.and_then(|x| x.maximum_network_interfaces())),
            ipv4_per_eni: n(net.and_then(|x| x.ipv4_addresses_per_interface())),
            vcpus: n(t.v_cpu_info().and_then(|v| v.default_v_cpus())),
            nitro: t.hypervisor().map(|h| h.as_str()) == Some("nitro"),
        })
    }
}

/// The VPC CNI settings that change how many addresses a node holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CniMode {
    /// AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true
    pub custom_networking: bool,
    /// ENABLE_PREFIX_DELEGATION=true
    pub prefix_delegation: bool,
    pub warm: WarmPool,
    /// ENABLE_POD_ENI=true (security groups for pods): a type that can have a trunk
    /// interface gives one ENI to it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pod_eni: bool,
}

/// How many spare addresses the CNI keeps attached to a node beyond those its pods use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WarmPool {
    /// WARM_ENI_TARGET (default 1 when nothing else is set): whole spare ENIs.
    Eni { warm_enis: u32 },
    /// WARM_IP_TARGET and/or MINIMUM_IP_TARGET set (either may be 0 = unset).
    Ip { warm_ips: u32, minimum_ips: u32 },
    /// Under prefix delegation: WARM_PREFIX_TARGET (default 1), or WARM_IP_TARGET/MINIMUM_IP_TARGET
    /// which then count addresses and are rounded up to whole /28 prefixes.
    Prefix {
        warm_prefixes: u32,
        warm_ips: u32,
        minimum_ips: u32,
    },
}

impl Default for WarmPool {
    /// The CNI's own default: one whole spare ENI.
    fn default() -> Self {
        WarmPool::Eni { warm_enis: 1 }
    }
}

/// Go's `strconv.ParseBool`, which is how the CNI reads its flags; anything else (and an
/// empty value, which the CNI treats as unset) gives the default.
fn env_bool(env: &BTreeMap<String, String>, name: &str, default: bool) -> bool {
    match env.get(name).map(String::as_str) {
        Some("1" | "t" | "T" | "TRUE" | "true" | "True") => true,
        Some("0" | "f" | "F" | "FALSE" | "false" | "False") => false,
        _ => default,
    }
}

/// Go's `strconv.Atoi` followed by the CNI's "negative means unset": `None` when missing, not a
/// number, or negative, so the caller applies the CNI's default.
fn env_count(env: &BTreeMap<String, String>, name: &str) -> Option<u32> {
    let n: i64 = env.get(name)?.parse().ok()?;
    if n < 0 {
        return None;
    }
    // A value past u32 is already far beyond any ENI's room; saturating keeps the meaning.
    Some(u32::try_from(n).unwrap_or(u32::MAX))
}

impl CniMode {
    /// The mode as the VPC CNI (aws-node) derives it from its environment.
    pub fn from_env(env: &BTreeMap<String, String>) -> CniMode {
        let custom_networking = env_bool(env, "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", false);
        let prefix_delegation = env_bool(env, "ENABLE_PREFIX_DELEGATION", false);
        let pod_eni = env_bool(env, "ENABLE_POD_ENI", false);
        // 0 is how the CNI spells "not set" for both targets.
        let warm_ips = env_count(env, "WARM_IP_TARGET").unwrap_or(0);
        let minimum_ips = env_count(env, "MINIMUM_IP_TARGET").unwrap_or(0);
        let ip_targets = warm_ips > 0 || minimum_ips > 0;
        let warm = if prefix_delegation {
            // The IP targets take precedence over WARM_PREFIX_TARGET when either is set.
            let warm_prefixes = if ip_targets {
                0
            } else {
                // 1 is the value the aws-node manifest ships with.
                env_count(env, "WARM_PREFIX_TARGET").unwrap_or(1)
            };
            WarmPool::Prefix {
                warm_prefixes,
                warm_ips,
                minimum_ips,
            }
        } else if ip_targets {
            WarmPool::Ip {
                warm_ips,
                minimum_ips,
            }
        } else {
            WarmPool::Eni {
                warm_enis: env_count(env, "WARM_ENI_TARGET").unwrap_or(1),
            }
        };
        CniMode {
            custom_networking,
            prefix_delegation,
            warm,
            pod_eni,
        }
    }
}

/// Whether a node of this type has a trunk interface: security groups for pods are on and the
/// type can have one (`base::instance_types::can_have_trunk`). The trunk is attached by the
/// VPC resource controller and takes an ENI slot ipamd then leaves alone: "the trunk counts
/// against the ENI limit" (EKS user guide, `networking/security-groups-pods-deployment.adoc`;
/// amazon-vpc-cni-k8s `pkg/ipamd/ipamd.go`, `hasRoomForEni` keeps a slot for it).
fn has_trunk(it: &InstanceNetwork, mode: &CniMode) -> bool {
    mode.pod_eni && crate::base::instance_types::can_have_trunk(&it.instance_type, it.nitro)
}

/// The ENIs whose addresses can go to pods: under custom networking the primary ENI stays in
/// the node subnet and serves no pods, and the trunk interface of security groups for pods
/// serves none either (its branch interfaces give the pods a policy selects addresses of their
/// own, which this count leaves out: it is the floor every pod can rely on).
fn pod_enis(it: &InstanceNetwork, mode: &CniMode) -> u32 {
    let mut enis = it.max_enis;
    if mode.custom_networking {
        enis = enis.saturating_sub(1);
    }
    if has_trunk(it, mode) {
        enis = enis.saturating_sub(1);
    }
    enis
}

/// Address (or prefix) slots per ENI left for pods: the ENI's own primary address takes one.
fn slots_per_eni(it: &InstanceNetwork) -> u32 {
    it.ipv4_per_eni.saturating_sub(1)
}

/// Whether this type really gets /28 prefixes: on a non-Nitro type the CNI logs a warning and
/// falls back to secondary addresses.
fn uses_prefixes(it: &InstanceNetwork, mode: &CniMode) -> bool {
    mode.prefix_delegation && it.nitro
}

fn saturate_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The max-pods figure of one instance type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaxPods {
    pub instance_type: String,
    /// After the cap.
    pub max_pods: u32,
    pub uncapped: u32,
    pub cap: u32,
    /// Addresses (or, under PD, prefix slots × 16) the ENIs can give pods.
    pub pod_addresses: u32,
    /// E.g. non-Nitro fallback, no pod ENI.
    pub note: Option<String>,
}

/// Max pods for one instance type, as amazon-eks-ami's max-pods calculator counts them.
pub fn max_pods(it: &InstanceNetwork, mode: &CniMode) -> MaxPods {
    let enis = pod_enis(it, mode);
    let slots = slots_per_eni(it);
    let per_slot = if uses_prefixes(it, mode) {
        PREFIX_ADDRESSES
    } else {
        1
    };
    let pod_addresses = saturate_u32(u64::from(enis) * u64::from(slots) * u64::from(per_slot));
    let uncapped = pod_addresses.saturating_add(HOST_NETWORK_PODS);
    let cap = if it.vcpus < HIGH_CPU_FROM_VCPUS {
        LOW_CPU_CAP
    } else {
        HIGH_CPU_CAP
    };

    let mut notes = Vec::new();
    if mode.prefix_delegation && !it.nitro {
        notes.push(format!(
            "{} is not a Nitro instance type, so prefix delegation does not apply: the VPC CNI \
             falls back to individual secondary addresses",
            it.instance_type
        ));
    }
    if enis == 0 {
        notes.push(format!(
            "pods cannot get addresses: {} has {} ENI(s){}, so only the {HOST_NETWORK_PODS} \
             host-network pods can run",
            it.instance_type,
            it.max_enis,
            match (mode.custom_networking, has_trunk(it, mode)) {
                (true, true) => " and custom networking keeps the primary ENI for the node, the trunk interface of security groups for pods another",
                (true, false) => " and custom networking keeps the primary ENI for the node",
                (false, true) => " and the trunk interface of security groups for pods takes one",
                (false, false) => "",
            }
        ));
    } else if slots == 0 {
        notes.push(format!(
            "pods cannot get addresses: the ENIs of {} hold only their own primary address, so \
             only the {HOST_NETWORK_PODS} host-network pods can run",
            it.instance_type
        ));
    }

    MaxPods {
        instance_type: it.instance_type.clone(),
        max_pods: uncapped.min(cap),
        uncapped,
        cap,
        pod_addresses,
        note: if notes.is_empty() {
            None
        } else {
            Some(notes.join("; "))
        },
    }
}

/// Max pods of a nodegroup that may launch any of several instance types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodegroupPods {
    pub per_type: Vec<MaxPods>,
    /// The lowest max_pods: EKS gives every node of the group the lowest (0 for no types).
    pub effective: u32,
    /// Some when per-type values differ.
    pub mixed_warning: Option<String>,
    /// The nodegroup's own max_pods setting, if any.
    pub explicit: Option<u32>,
    /// Some when `explicit` is more than the ENIs of some type can give.
    pub explicit_error: Option<String>,
    /// Some when EKS would compute a max pods that counts the trunk's interface (no
    /// `explicit`, security groups for pods on a trunk-capable type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunk_warning: Option<String>,
}

impl NodegroupPods {
    /// The max pods each node is configured with. An explicit value over the ENI limit is still
    /// what kubelet is given (the error reports it); the address demand stays bounded because
    /// `capacity` never counts more than the ENIs can hold.
    pub fn pods_per_node(&self) -> u32 {
        self.explicit.unwrap_or(self.effective)
    }

    /// Each type's max pods, e.g. "m5.large 29, m5.4xlarge 110 (capped from 234)".
    pub fn per_type_text(&self) -> String {
        self.per_type
            .iter()
            .map(|m| {
                if m.max_pods < m.uncapped {
                    format!(
                        "{} {} (capped from {})",
                        m.instance_type, m.max_pods, m.uncapped
                    )
                } else {
                    format!("{} {}", m.instance_type, m.max_pods)
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Max pods for a nodegroup over its instance types, with the group's own setting checked.
pub fn nodegroup_pods(
    types: &[InstanceNetwork],
    mode: &CniMode,
    explicit: Option<u32>,
) -> NodegroupPods {
    let per_type: Vec<MaxPods> = types.iter().map(|it| max_pods(it, mode)).collect();
    let effective = per_type.iter().map(|m| m.max_pods).min().unwrap_or(0);

    let distinct: BTreeSet<u32> = per_type.iter().map(|m| m.max_pods).collect();
    let mixed_warning = (distinct.len() > 1).then(|| {
        let listed: Vec<String> = per_type
            .iter()
            .map(|m| format!("{} {}", m.instance_type, m.max_pods))
            .collect();
        format!(
            "the instance types allow different max pods ({}); EKS sets the lowest, {effective}, \
             on every node of the group, so the larger types run fewer pods than they could",
            listed.join(", ")
        )
    });

    // The cap (110/250) is a recommendation a nodegroup may override; the ENIs are not, so the
    // check is against what the tightest type's ENIs can really give.
    let tightest = per_type.iter().min_by_key(|m| m.uncapped);
    let explicit_error = match (explicit, tightest) {
        (Some(value), Some(t)) if value > t.uncapped => Some(format!(
            "max_pods = {value} is more than {} can run: its ENIs give pods {} addresses, so at \
             most {} pods (with the {HOST_NETWORK_PODS} host-network pods); pods past that would \
             wait for an address forever",
            t.instance_type, t.pod_addresses, t.uncapped
        )),
        _ => None,
    };

    // Without `max_pods` EKS works the value out with the max-pods calculator, which knows
    // custom networking and prefix delegation but not the trunk interface of security groups
    // for pods (amazon-eks-ami's max-pods-calculator.sh has no option for it; EKS user guide
    // `nodes/create-managed-node-group.adoc`): the kubelet then admits more pods than the
    // ENIs left for ipamd can give addresses to.
    let trunk_warning = match explicit {
        Some(_) => None,
        None => {
            let without_trunk = CniMode {
                pod_eni: false,
                ..*mode
            };
            let eks = types
                .iter()
                .map(|it| max_pods(it, &without_trunk).max_pods)
                .min()
                .unwrap_or(0);
            (eks > effective).then(|| {
                format!(
                    "EKS works out this nodegroup's max pods without the trunk interface of \
                     security groups for pods: its nodes would admit {eks} pods while their \
                     other interfaces give addresses for {effective}, and pods past that wait \
                     for an address; set `max_pods = {effective}`"
                )
            })
        }
    };

    NodegroupPods {
        per_type,
        effective,
        mixed_warning,
        explicit,
        explicit_error,
        trunk_warning,
    }
}

/// A subnet pods take addresses from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodSubnet {
    /// What the table names: the spec address (e.g. "subnet.pod_a") or the subnet id.
    pub label: String,
    pub az: String,
    pub cidr: Ipv4Net,
    /// AvailableIpAddressCount from DescribeSubnets when the subnet exists; None for a subnet
    /// not created yet (then the free count is the CIDR's size minus AWS's 5 reserved addresses).
    pub available: Option<u32>,
}

/// A nodegroup at its largest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodegroupDemand {
    /// E.g. "nodegroup.main".
    pub label: String,
    /// The AZs of its (node) subnets, deduplicated.
    pub azs: Vec<String>,
    pub max_size: u32,
    /// `NodegroupPods::pods_per_node`.
    pub pods_per_node: u32,
    /// The type used for the warm-pool arithmetic: of a group's types, the one whose node
    /// takes the most addresses at `pods_per_node` (`node_demand`), the worst case.
    pub instance: InstanceNetwork,
}

/// What the capacity figures count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    Addresses,
    Prefixes,
}

impl Unit {
    /// The unit as prose names it.
    pub fn noun(self) -> &'static str {
        match self {
            Unit::Addresses => "addresses",
            Unit::Prefixes => "/28 prefixes",
        }
    }
}

/// Pod address supply and demand per AZ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    pub unit: Unit,
    /// Sorted by AZ.
    pub zones: Vec<ZoneCapacity>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneCapacity {
    pub az: String,
    /// Labels of the pod subnets in the AZ.
    pub subnets: Vec<String>,
    pub free: u64,
    /// The free count is an optimistic estimate (prefixes derived from free addresses).
    pub estimate: bool,
    /// The most nodes that can land in the AZ (sum over groups).
    pub nodes: u64,
    pub demand: u64,
    /// (group label, nodes here, demand here)
    pub groups: Vec<(String, u64, u64)>,
    /// demand − free when positive, else 0.
    pub shortfall: u64,
}

/// How the CNI decides how much to hold, resolved against whether this node really uses
/// prefixes.
enum Policy {
    /// Fill whole ENIs, plus this many spare ENIs.
    WholeEnis(u64),
    /// Hold pod IPs + `warm` addresses, at least `minimum` addresses.
    Target { warm: u64, minimum: u64 },
    /// Hold the prefixes the pods need plus this many spare prefixes.
    WarmPrefixes(u64),
}

fn policy(warm: WarmPool, prefixes: bool) -> Policy {
    // What the CNI does when no target applies to the mode actually in force on this node.
    let unset = if prefixes {
        Policy::WarmPrefixes(1)
    } else {
        Policy::WholeEnis(1)
    };
    match warm {
        // Under prefix delegation WARM_ENI_TARGET keeps whole ENIs' worth of prefixes; the
        // per-slot unit in `node_demand` takes care of that.
        WarmPool::Eni { warm_enis } => Policy::WholeEnis(u64::from(warm_enis)),
        WarmPool::Ip {
            warm_ips,
            minimum_ips,
        }
        | WarmPool::Prefix {
            warm_ips,
            minimum_ips,
            ..
        } if warm_ips > 0 || minimum_ips > 0 => Policy::Target {
            warm: u64::from(warm_ips),
            minimum: u64::from(minimum_ips),
        },
        WarmPool::Prefix { warm_prefixes, .. } if prefixes => {
            Policy::WarmPrefixes(u64::from(warm_prefixes))
        }
        // A non-Nitro node under prefix delegation runs in secondary-address mode, where
        // WARM_PREFIX_TARGET means nothing; the Prefix variant does not carry WARM_ENI_TARGET,
        // so the CNI's default of one spare ENI applies. `Ip` with both targets 0 (only a
        // hand-built mode; from_env makes `Eni` then) means no target is set.
        WarmPool::Ip { .. } | WarmPool::Prefix { .. } => unset,
    }
}

/// What one node at `pods_per_node` takes from its AZ's pod subnets, in the capacity's unit.
///
/// Besides the pods' slots, every ENI that lives in the pod subnet takes its own primary
/// address from it (under custom networking the secondary ENIs are created in the pod subnet;
/// without it the node's primary ENI and its primary address, the node's IP, are in the node
/// subnet, which is then the pod subnet). Under prefix delegation those single addresses are
/// counted as one /28 each, and so are the individual addresses of a non-Nitro node that fell
/// back to secondary addresses: a lone address in a free /28 block keeps the block from being
/// delegated, and where AWS places it is not ours to know, so the worst case is counted.
pub fn node_demand(it: &InstanceNetwork, mode: &CniMode, pods_per_node: u32) -> u64 {
    let prefixes = uses_prefixes(it, mode);
    let per_slot = if prefixes {
        u64::from(PREFIX_ADDRESSES)
    } else {
        1
    };
    let pod_ips = u64::from(pods_per_node.saturating_sub(HOST_NETWORK_PODS));
    let slots = u64::from(slots_per_eni(it));
    let enis_for_pods = u64::from(pod_enis(it, mode));
    let room = enis_for_pods * slots;

    let (used_slots, mut enis) = if slots == 0 || enis_for_pods == 0 {
        // No ENI can hold a pod address: the CNI has nothing to allocate for pods.
        (0, 0)
    } else {
        match policy(mode.warm, prefixes) {
            Policy::WholeEnis(spare) => {
                let enis = (pod_ips.div_ceil(per_slot).div_ceil(slots) + spare).min(enis_for_pods);
                (enis * slots, enis)
            }
            Policy::Target { warm, minimum } => {
                let addresses = (pod_ips + warm).max(minimum);
                let used = addresses.div_ceil(per_slot).min(room);
                (used, used.div_ceil(slots))
            }
            Policy::WarmPrefixes(spare) => {
                let used = (pod_ips.div_ceil(per_slot) + spare).min(room);
                (used, used.div_ceil(slots))
            }
        }
    };
    if !mode.custom_networking && it.max_enis > 0 {
        // The primary ENI is always there, and its primary address is the node's own.
        enis = enis.max(1);
    }
    if has_trunk(it, mode) {
        // The trunk is made in the pod subnet (the ENIConfig's, or the node's without custom
        // networking: amazon-vpc-resource-controller-k8s `pkg/aws/ec2/instance.go`) and takes
        // its primary address there.
        enis += 1;
    }
    used_slots + enis
}

/// Free pod addresses (or /28 prefixes) of one subnet, and whether the figure is an estimate.
fn subnet_free(s: &PodSubnet, unit: Unit) -> (u64, bool) {
    let len = u32::from(s.cidr.prefix_len());
    match (unit, s.available) {
        (Unit::Addresses, Some(available)) => (u64::from(available), false),
        (Unit::Addresses, None) => {
            let size = 1u64 << (32 - len.min(32));
            (size.saturating_sub(AWS_RESERVED_ADDRESSES), false)
        }
        // Free addresses say nothing about how they are spread over /28 blocks, so this is the
        // most that could be free.
        (Unit::Prefixes, Some(available)) => {
            (u64::from(available) / u64::from(PREFIX_ADDRESSES), true)
        }
        (Unit::Prefixes, None) => {
            // AWS's reserved addresses are the first four and the last: they sit in the first
            // and the last /28, which can never be delegated. A subnet that is a single /28
            // holds them all in its only block, so it has no free prefix (saturating 1 − 2 to
            // 0 says exactly that); one smaller than a /28 has no block at all.
            let blocks = if len > 28 { 0 } else { 1u64 << (28 - len) };
            (blocks.saturating_sub(2), false)
        }
    }
}

/// Pod address supply and demand per AZ.
///
/// A nodegroup is an Auto Scaling group, which balances its instances across its AZs; with
/// `max_size` N over k AZs at most ceil(N / k) nodes land in any one AZ. The ceiling is the
/// worst case for each AZ taken alone (the AZs together can then exceed N), which is the right
/// question for "can this AZ's subnets run out".
pub fn capacity(subnets: &[PodSubnet], groups: &[NodegroupDemand], mode: &CniMode) -> Capacity {
    let unit = if mode.prefix_delegation {
        Unit::Prefixes
    } else {
        Unit::Addresses
    };
    let mut zones: BTreeMap<String, ZoneCapacity> = BTreeMap::new();
    let zone = |zones: &mut BTreeMap<String, ZoneCapacity>, az: &str| -> ZoneCapacity {
        zones.remove(az).unwrap_or_else(|| ZoneCapacity {
            az: az.to_string(),
            subnets: Vec::new(),
            free: 0,
            estimate: false,
            nodes: 0,
            demand: 0,
            groups: Vec::new(),
            shortfall: 0,
        })
    };

    for s in subnets {
        let mut z = zone(&mut zones, &s.az);
        let (free, estimate) = subnet_free(s, unit);
        z.subnets.push(s.label.clone());
        z.free += free;
        z.estimate |= estimate;
        zones.insert(s.az.clone(), z);
    }

    for g in groups {
        // Deduplicated again: a repeated AZ would otherwise halve the nodes per AZ.
        let azs: BTreeSet<&str> = g.azs.iter().map(String::as_str).collect();
        if azs.is_empty() {
            continue;
        }
        let per_az = u64::from(g.max_size).div_ceil(azs.len() as u64);
        let per_node = node_demand(&g.instance, mode, g.pods_per_node);
        for az in azs {
            let mut z = zone(&mut zones, az);
            z.nodes += per_az;
            z.demand += per_az * per_node;
            z.groups.push((g.label.clone(), per_az, per_az * per_node));
            zones.insert(az.to_string(), z);
        }
    }

    let zones = zones
        .into_values()
        .map(|mut z| {
            z.shortfall = z.demand.saturating_sub(z.free);
            z
        })
        .collect();
    Capacity { unit, zones }
}

impl Capacity {
    /// One warning per AZ that can run short, and one per AZ where nodes land with no pod
    /// subnet at all (that one instead of the shortfall, which would only restate it).
    pub fn warnings(&self) -> Vec<String> {
        let unit = self.unit.noun();
        let mut out = Vec::new();
        for z in &self.zones {
            let groups: Vec<String> = z
                .groups
                .iter()
                .filter(|(_, nodes, _)| *nodes > 0)
                .map(|(label, nodes, _)| format!("{label} up to {nodes}"))
                .collect();
            if z.subnets.is_empty() {
                if z.nodes > 0 {
                    out.push(format!(
                        "nodes in {} would get no pod addresses: no pod subnet there (nodes that \
                         can land there: {}); add a pod subnet in {} or keep the nodegroups out \
                         of it",
                        z.az,
                        groups.join(", "),
                        z.az
                    ));
                }
                continue;
            }
            if z.shortfall == 0 {
                continue;
            }
            let remedy = match self.unit {
                Unit::Addresses => {
                    "give the AZ a larger pod subnet (from a larger secondary CIDR), lower \
                     max_size, or enable prefix delegation"
                }
                Unit::Prefixes => {
                    "give the AZ a larger pod subnet (from a larger secondary CIDR) or lower \
                     max_size"
                }
            };
            out.push(format!(
                "{} can run out of pod {unit}: its pod subnets ({}) have {}{} free {unit}, but \
                 the nodes that can land there ({}) can take {}; short by {} {unit}. To fix: \
                 {remedy}",
                z.az,
                z.subnets.join(", "),
                if z.estimate { "at most " } else { "" },
                z.free,
                groups.join(", "),
                z.demand,
                z.shortfall,
            ));
        }
        out
    }

    /// A plain-text table, one row per AZ.
    pub fn render(&self) -> String {
        let any_estimate = self.zones.iter().any(|z| z.estimate);
        let header = [
            "AZ".to_string(),
            "POD SUBNETS".to_string(),
            format!("FREE {}", self.unit.noun().to_uppercase()),
            "MAX NODES".to_string(),
            "DEMAND".to_string(),
            "STATUS".to_string(),
        ];
        let mut rows = vec![header];
        for z in &self.zones {
            let subnets = if z.subnets.is_empty() {
                "-".to_string()
            } else {
                z.subnets.join(", ")
            };
            // The mark sits after the number; unmarked rows get a space there so the digits
            // stay aligned.
            let free = match (any_estimate, z.estimate) {
                (false, _) => z.free.to_string(),
                (true, true) => format!("{}*", z.free),
                (true, false) => format!("{} ", z.free),
            };
            let status = if z.subnets.is_empty() && z.nodes > 0 {
                "no pod subnet".to_string()
            } else if z.shortfall > 0 {
                format!("short by {}", z.shortfall)
            } else {
                "ok".to_string()
            };
            rows.push([
                z.az.clone(),
                subnets,
                free,
                z.nodes.to_string(),
                z.demand.to_string(),
                status,
            ]);
        }

        let mut widths = [0usize; 6];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        // Counts read best right-aligned; names left-aligned.
        let numeric = [false, false, true, true, true, false];
        let mut out = String::new();
        for row in &rows {
            let cells: Vec<String> = row
                .iter()
                .zip(widths)
                .zip(numeric)
                .map(|((cell, w), right)| {
                    if right {
                        format!("{cell:>w$}")
                    } else {
                        format!("{cell:<w$}")
                    }
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        if any_estimate {
            out.push_str(
                "* estimate: free addresses / 16; addresses in use can break up /28 blocks, so \
                 fewer may be free\n",
            );
        }
        out
    }
}

/// One cluster's sizing, as the plan shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterSizing {
    pub cluster: String,
    pub mode: CniMode,
    pub nodegroups: Vec<NodegroupSizing>,
    /// The node sources of a cluster the spec only reads that it does not declare.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outside: Vec<OutsideSizing>,
    /// Per-AZ room of the pod subnets; `None` without custom networking (pods then take the
    /// node subnets' addresses, which eksnet does not manage).
    pub capacity: Option<Capacity>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodegroupSizing {
    pub addr: ResourceAddr,
    pub max_size: u32,
    pub pods: NodegroupPods,
}

/// A node source the spec does not declare, sized (see [`OutsideGroup`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutsideSizing {
    pub label: String,
    /// `None`: nothing bounds it; its nodes are counted where they run now.
    pub max_size: Option<u32>,
    /// Its nodes now.
    pub nodes: u32,
    pub pods: NodegroupPods,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sizing {
    pub clusters: Vec<ClusterSizing>,
}

impl Sizing {
    /// Whether the pod subnets of some AZ cannot hold the pods of the nodes that may land
    /// there at their groups' max size.
    pub fn short(&self) -> bool {
        self.clusters
            .iter()
            .filter_map(|c| c.capacity.as_ref())
            .any(|c| c.zones.iter().any(|z| z.shortfall > 0))
    }

    /// The plan's sizing section, plain text.
    pub fn render(&self) -> String {
        let s = self;
        let mut out = String::new();
        for c in &s.clusters {
            let mut mode = vec![if c.mode.custom_networking {
                "custom networking"
            } else {
                "no custom networking"
            }];
            if c.mode.prefix_delegation {
                mode.push("prefix delegation");
            }
            if c.mode.pod_eni {
                mode.push("security groups for pods");
            }
            out.push_str(&format!(
                "Node sizing for cluster {} ({}):\n",
                c.cluster,
                mode.join(", ")
            ));
            for g in &c.nodegroups {
                out.push_str(&format!(
                    "  {}: max pods {} per node ({}), up to {} nodes\n",
                    g.addr,
                    g.pods.pods_per_node(),
                    g.pods.per_type_text(),
                    g.max_size
                ));
            }
            for g in &c.outside {
                let now = match g.nodes {
                    1 => "1 node now".to_string(),
                    n => format!("{n} nodes now"),
                };
                let size = match g.max_size {
                    Some(max) => format!("{now}, up to {max}"),
                    None => format!("{now}, no max size known"),
                };
                out.push_str(&format!(
                    "  {} (not in the spec): max pods {} per node ({}), {size}\n",
                    g.label,
                    g.pods.pods_per_node(),
                    g.pods.per_type_text(),
                ));
            }
            if let Some(cap) = &c.capacity {
                out.push_str("  Pod subnet capacity at max_size:\n");
                for line in cap.render().lines() {
                    out.push_str(&format!("    {line}\n"));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn it(name: &str, max_enis: u32, ipv4_per_eni: u32, vcpus: u32) -> InstanceNetwork {
        InstanceNetwork {
            instance_type: name.to_string(),
            max_enis,
            ipv4_per_eni,
            vcpus,
            nitro: true,
        }
    }

    fn t3_medium() -> InstanceNetwork {
        it("t3.medium", 3, 6, 2)
    }
    fn m5_large() -> InstanceNetwork {
        it("m5.large", 3, 10, 2)
    }

    fn mode(custom: bool, pd: bool) -> CniMode {
        CniMode {
            custom_networking: custom,
            prefix_delegation: pd,
            warm: if pd {
                WarmPool::Prefix {
                    warm_prefixes: 1,
                    warm_ips: 0,
                    minimum_ips: 0,
                }
            } else {
                WarmPool::default()
            },
            pod_eni: false,
        }
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn max_pods_table_under_all_four_modes() {
        // (type, custom, pd, uncapped, max_pods), each worked by hand:
        //   t3.medium: 3 ENIs, 5 slots.  3*5+2=17; 2*5+2=12; 3*5*16+2=242; 2*5*16+2=162; cap 110.
        //   m5.large: 3 ENIs, 9 slots.   3*9+2=29; 2*9+2=20; 3*9*16+2=434; 2*9*16+2=290; cap 110.
        //   m5.24xlarge: 15 ENIs, 49 slots, 96 vCPU so cap 250.
        //                15*49+2=737; 14*49+2=688; 15*49*16+2=11762; 14*49*16+2=10978.
        //   t3.nano: 2 ENIs, 1 slot.     2*1+2=4; 1*1+2=3; 2*16+2=34; 1*16+2=18.
        let cases = [
            (t3_medium(), false, false, 17, 17),
            (t3_medium(), true, false, 12, 12),
            (t3_medium(), false, true, 242, 110),
            (t3_medium(), true, true, 162, 110),
            (m5_large(), false, false, 29, 29),
            (m5_large(), true, false, 20, 20),
            (m5_large(), false, true, 434, 110),
            (m5_large(), true, true, 290, 110),
            (it("m5.24xlarge", 15, 50, 96), false, false, 737, 250),
            (it("m5.24xlarge", 15, 50, 96), true, false, 688, 250),
            (it("m5.24xlarge", 15, 50, 96), false, true, 11762, 250),
            (it("m5.24xlarge", 15, 50, 96), true, true, 10978, 250),
            (it("t3.nano", 2, 2, 2), false, false, 4, 4),
            (it("t3.nano", 2, 2, 2), true, false, 3, 3),
            (it("t3.nano", 2, 2, 2), false, true, 34, 34),
            (it("t3.nano", 2, 2, 2), true, true, 18, 18),
        ];
        for (t, custom, pd, uncapped, max) in cases {
            let m = max_pods(&t, &mode(custom, pd));
            let what = format!("{} custom={custom} pd={pd}", t.instance_type);
            assert_eq!(m.uncapped, uncapped, "uncapped of {what}");
            assert_eq!(m.max_pods, max, "max pods of {what}");
            assert_eq!(m.pod_addresses, uncapped - 2, "pod addresses of {what}");
            assert_eq!(m.instance_type, t.instance_type);
            assert_eq!(m.note, None, "{what}");
        }
    }

    /// Security groups for pods: a type that can have a trunk gives it one ENI, on top of the
    /// primary ENI custom networking keeps; one that cannot (`t3`, Xen) keeps all of them; and
    /// the trunk's own address is taken from the pod subnet.
    #[test]
    fn the_trunk_of_security_groups_for_pods_takes_an_eni() {
        let sgp = |custom: bool| CniMode {
            pod_eni: true,
            ..mode(custom, false)
        };
        // m5.large: 3 ENIs, 9 slots. (3-1-1)*9+2 = 11 with custom networking, (3-1)*9+2 = 20
        // without; t3.medium has no trunk: 12 and 17 as before.
        assert_eq!(max_pods(&m5_large(), &sgp(true)).max_pods, 11);
        assert_eq!(max_pods(&m5_large(), &sgp(false)).max_pods, 20);
        assert_eq!(max_pods(&t3_medium(), &sgp(true)).max_pods, 12);
        assert_eq!(max_pods(&t3_medium(), &sgp(false)).max_pods, 17);
        let xen = InstanceNetwork {
            nitro: false,
            ..it("m4.large", 2, 10, 2)
        };
        assert_eq!(max_pods(&xen, &sgp(true)).max_pods, 11);
        // A Nitro type with 2 ENIs: custom networking and the trunk leave pods none.
        let tight = max_pods(&it("x.two", 2, 10, 2), &sgp(true));
        assert_eq!(tight.max_pods, 2);
        assert!(
            tight
                .note
                .as_deref()
                .unwrap_or_default()
                .contains("trunk interface"),
            "{tight:?}"
        );
        // The trunk takes one address more from the pod subnet: at 11 pods, 9 pod addresses on
        // one ENI (WARM_ENI_TARGET=1 wants no second ENI past the last one), its primary and
        // the trunk's.
        assert_eq!(node_demand(&m5_large(), &sgp(true), 11), 9 + 1 + 1);
        assert_eq!(node_demand(&m5_large(), &mode(true, false), 11), 18 + 2);
        assert!(CniMode::from_env(&env(&[("ENABLE_POD_ENI", "true")])).pod_eni);
    }

    #[test]
    fn cap_switches_at_30_vcpus() {
        // Enough ENI room that only the cap decides: 8 ENIs × 29 slots + 2 = 234.
        let at_29 = max_pods(&it("x.29", 8, 30, 29), &CniMode::default());
        assert_eq!((at_29.cap, at_29.uncapped, at_29.max_pods), (110, 234, 110));
        let at_30 = max_pods(&it("x.30", 8, 30, 30), &CniMode::default());
        assert_eq!((at_30.cap, at_30.uncapped, at_30.max_pods), (250, 234, 234));
    }

    #[test]
    fn prefix_delegation_on_non_nitro_falls_back_to_addresses() {
        let m4 = InstanceNetwork {
            nitro: false,
            ..it("m4.large", 2, 10, 2)
        };
        let m = max_pods(&m4, &mode(false, true));
        // 2 ENIs × 9 addresses + 2, not 2 × 9 × 16 + 2 = 290.
        assert_eq!((m.pod_addresses, m.uncapped, m.max_pods), (18, 20, 20));
        let note = m.note.unwrap_or_default();
        assert!(
            note.contains("m4.large") && note.contains("Nitro"),
            "{note}"
        );
        // Without prefix delegation there is nothing to fall back from.
        assert_eq!(max_pods(&m4, &mode(false, false)).note, None);
    }

    #[test]
    fn one_eni_under_custom_networking_leaves_no_pod_addresses() {
        let m = max_pods(&it("x.one", 1, 4, 2), &mode(true, false));
        assert_eq!((m.pod_addresses, m.uncapped, m.max_pods), (0, 2, 2));
        let note = m.note.unwrap_or_default();
        assert!(note.contains("pods cannot get addresses"), "{note}");
        // The same type without custom networking gives its 3 secondaries to pods.
        let plain = max_pods(&it("x.one", 1, 4, 2), &mode(false, false));
        assert_eq!((plain.max_pods, plain.note), (5, None));
    }

    #[test]
    fn mixed_types_take_the_lowest() {
        let ng = nodegroup_pods(&[t3_medium(), m5_large()], &CniMode::default(), None);
        assert_eq!(ng.effective, 17);
        assert_eq!(ng.pods_per_node(), 17);
        assert_eq!(ng.per_type.len(), 2);
        let w = ng.mixed_warning.unwrap_or_default();
        assert!(
            w.contains("t3.medium 17") && w.contains("m5.large 29"),
            "{w}"
        );
        assert!(w.contains("lowest, 17"), "{w}");
        assert_eq!(ng.explicit_error, None);

        // Same max pods (both capped at 110 under PD): no warning.
        let pd = nodegroup_pods(&[t3_medium(), m5_large()], &mode(false, true), None);
        assert_eq!((pd.effective, pd.mixed_warning), (110, None));
    }

    #[test]
    fn explicit_max_pods_within_and_above_the_eni_limit() {
        let types = [t3_medium(), m5_large()];
        // Below the lowest type's 17: valid and used.
        let ok = nodegroup_pods(&types, &CniMode::default(), Some(15));
        assert_eq!((ok.explicit_error.clone(), ok.pods_per_node()), (None, 15));
        // Exactly the limit is still valid.
        let edge = nodegroup_pods(&types, &CniMode::default(), Some(17));
        assert_eq!(edge.explicit_error, None);
        // 20 fits m5.large (29) but not t3.medium (17).
        let bad = nodegroup_pods(&types, &CniMode::default(), Some(20));
        let e = bad.explicit_error.unwrap_or_default();
        assert!(
            e.contains("t3.medium") && e.contains("20") && e.contains("17"),
            "{e}"
        );
        assert!(!e.contains("m5.large"), "{e}");

        // Above the 250 cap but within the ENIs' 737: allowed.
        let big = [it("m5.24xlarge", 15, 50, 96)];
        let over_cap = nodegroup_pods(&big, &CniMode::default(), Some(300));
        assert_eq!(over_cap.effective, 250);
        assert_eq!(
            (over_cap.explicit_error.clone(), over_cap.pods_per_node()),
            (None, 300)
        );
        assert!(nodegroup_pods(&big, &CniMode::default(), Some(738))
            .explicit_error
            .is_some());
    }

    #[test]
    fn from_env_defaults_and_flags() {
        assert_eq!(CniMode::from_env(&env(&[])), CniMode::default());
        assert_eq!(
            CniMode::default().warm,
            WarmPool::Eni { warm_enis: 1 },
            "the CNI's default warm pool"
        );

        let custom = CniMode::from_env(&env(&[
            ("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "true"),
            ("WARM_ENI_TARGET", "2"),
        ]));
        assert!(custom.custom_networking && !custom.prefix_delegation);
        assert_eq!(custom.warm, WarmPool::Eni { warm_enis: 2 });

        let pd = CniMode::from_env(&env(&[("ENABLE_PREFIX_DELEGATION", "true")]));
        assert!(pd.prefix_delegation && !pd.custom_networking);
        assert_eq!(
            pd.warm,
            WarmPool::Prefix {
                warm_prefixes: 1,
                warm_ips: 0,
                minimum_ips: 0
            }
        );
        let pd2 = CniMode::from_env(&env(&[
            ("ENABLE_PREFIX_DELEGATION", "true"),
            ("WARM_PREFIX_TARGET", "3"),
        ]));
        assert_eq!(
            pd2.warm,
            WarmPool::Prefix {
                warm_prefixes: 3,
                warm_ips: 0,
                minimum_ips: 0
            }
        );
    }

    #[test]
    fn from_env_ip_targets() {
        let ip = CniMode::from_env(&env(&[
            ("WARM_IP_TARGET", "5"),
            ("MINIMUM_IP_TARGET", "10"),
            ("WARM_ENI_TARGET", "3"),
        ]));
        assert_eq!(
            ip.warm,
            WarmPool::Ip {
                warm_ips: 5,
                minimum_ips: 10
            }
        );
        // Only one of them set is enough.
        let min_only = CniMode::from_env(&env(&[("MINIMUM_IP_TARGET", "8")]));
        assert_eq!(
            min_only.warm,
            WarmPool::Ip {
                warm_ips: 0,
                minimum_ips: 8
            }
        );
        // Under prefix delegation they override WARM_PREFIX_TARGET.
        let pd = CniMode::from_env(&env(&[
            ("ENABLE_PREFIX_DELEGATION", "true"),
            ("WARM_PREFIX_TARGET", "2"),
            ("WARM_IP_TARGET", "5"),
        ]));
        assert_eq!(
            pd.warm,
            WarmPool::Prefix {
                warm_prefixes: 0,
                warm_ips: 5,
                minimum_ips: 0
            }
        );
        // 0 means unset: back to whole ENIs.
        let zero = CniMode::from_env(&env(&[("WARM_IP_TARGET", "0")]));
        assert_eq!(zero.warm, WarmPool::Eni { warm_enis: 1 });
    }

    #[test]
    fn from_env_bad_values_fall_back_to_defaults() {
        let bad = CniMode::from_env(&env(&[
            ("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "yes"),
            ("ENABLE_PREFIX_DELEGATION", ""),
            ("WARM_ENI_TARGET", "-1"),
            ("WARM_IP_TARGET", "five"),
            ("MINIMUM_IP_TARGET", " 3"),
        ]));
        assert_eq!(bad, CniMode::default());
        let bad_prefix = CniMode::from_env(&env(&[
            ("ENABLE_PREFIX_DELEGATION", "True"),
            ("WARM_PREFIX_TARGET", "1.5"),
        ]));
        assert_eq!(
            bad_prefix.warm,
            WarmPool::Prefix {
                warm_prefixes: 1,
                warm_ips: 0,
                minimum_ips: 0
            }
        );
        // Go's ParseBool spellings are accepted, as the CNI accepts them.
        assert!(
            CniMode::from_env(&env(&[("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "1")]))
                .custom_networking
        );
        assert!(
            !CniMode::from_env(&env(&[("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "FALSE")]))
                .custom_networking
        );
    }

    fn subnet(label: &str, az: &str, cidr: &str, available: Option<u32>) -> PodSubnet {
        PodSubnet {
            label: label.to_string(),
            az: az.to_string(),
            cidr: cidr.parse().unwrap(),
            available,
        }
    }

    fn group(
        label: &str,
        azs: &[&str],
        max_size: u32,
        t: InstanceNetwork,
        m: &CniMode,
    ) -> NodegroupDemand {
        NodegroupDemand {
            label: label.to_string(),
            azs: azs.iter().map(|a| a.to_string()).collect(),
            max_size,
            pods_per_node: nodegroup_pods(std::slice::from_ref(&t), m, None).pods_per_node(),
            instance: t,
        }
    }

    fn tutorial() -> Capacity {
        let m = mode(true, false);
        capacity(
            &[
                subnet("subnet.pod_a", "us-west-2a", "100.64.0.0/19", None),
                subnet("subnet.pod_b", "us-west-2b", "100.64.32.0/19", None),
            ],
            &[group(
                "nodegroup.main",
                &["us-west-2a", "us-west-2b"],
                2,
                t3_medium(),
                &m,
            )],
            &m,
        )
    }

    #[test]
    fn capacity_of_the_tutorial() {
        // t3.medium, custom networking: 12 max pods, so 10 pod IPs. Default warm pool:
        // ceil(10/5) + 1 = 3 ENIs, capped at the 2 pod ENIs; 2 × 5 secondaries = 10, plus each
        // of the 2 ENIs' own primary address from the pod subnet = 12 per node.
        // max_size 2 over 2 AZs: ceil(2/2) = 1 node per AZ.
        // A /19 not created yet: 8192 − 5 = 8187 free.
        let c = tutorial();
        assert_eq!(c.unit, Unit::Addresses);
        assert_eq!(c.zones.len(), 2);
        for (z, az, sn) in [
            (&c.zones[0], "us-west-2a", "subnet.pod_a"),
            (&c.zones[1], "us-west-2b", "subnet.pod_b"),
        ] {
            assert_eq!(z.az, az);
            assert_eq!(z.subnets, vec![sn.to_string()]);
            assert_eq!((z.free, z.estimate), (8187, false));
            assert_eq!((z.nodes, z.demand, z.shortfall), (1, 12, 0));
            assert_eq!(z.groups, vec![("nodegroup.main".to_string(), 1, 12)]);
        }
        assert!(c.warnings().is_empty());
    }

    #[test]
    fn capacity_shortfall() {
        // m5.large, custom networking: 20 max pods, 18 pod IPs; ceil(18/9) + 1 = 3 ENIs, capped
        // at 2; 2 × 9 + 2 ENI primaries = 20 per node. 6 nodes in the one AZ: 120.
        // A /27: 32 − 5 = 27 free. Short by 120 − 27 = 93.
        let m = mode(true, false);
        let c = capacity(
            &[subnet("subnet.pod_a", "us-west-2a", "100.64.0.0/27", None)],
            &[group("nodegroup.big", &["us-west-2a"], 6, m5_large(), &m)],
            &m,
        );
        let z = &c.zones[0];
        assert_eq!((z.free, z.nodes, z.demand, z.shortfall), (27, 6, 120, 93));
        // `capacity --detailed-exitcode` exits 2 on it; a cluster without pod subnets, or
        // with room, is not short.
        let cluster = |capacity: Option<Capacity>| ClusterSizing {
            cluster: "c".into(),
            mode: m,
            nodegroups: vec![],
            outside: vec![],
            capacity,
        };
        let mut roomy = c.clone();
        roomy.zones[0].shortfall = 0;
        assert!(!Sizing::default().short());
        assert!(!Sizing {
            clusters: vec![cluster(None), cluster(Some(roomy.clone()))]
        }
        .short());
        assert!(Sizing {
            clusters: vec![cluster(Some(roomy)), cluster(Some(c.clone()))]
        }
        .short());
        let w = c.warnings();
        assert_eq!(w.len(), 1);
        for part in [
            "us-west-2a",
            "subnet.pod_a",
            "27 free addresses",
            "can take 120",
            "short by 93 addresses",
            "larger pod subnet",
            "max_size",
            "prefix delegation",
            "nodegroup.big up to 6",
        ] {
            assert!(w[0].contains(part), "missing {part:?} in {}", w[0]);
        }
    }

    #[test]
    fn nodes_per_az_round_up() {
        // 5 nodes over 2 AZs: up to 3 in each; 1 node over 3 AZs: up to 1 in each.
        let m = mode(true, false);
        let c = capacity(
            &[],
            &[
                group("nodegroup.a", &["az1", "az2", "az1"], 5, t3_medium(), &m),
                group("nodegroup.b", &["az1", "az2", "az3"], 1, t3_medium(), &m),
            ],
            &m,
        );
        let nodes: Vec<(&str, u64)> = c.zones.iter().map(|z| (z.az.as_str(), z.nodes)).collect();
        assert_eq!(nodes, vec![("az1", 4), ("az2", 4), ("az3", 1)]);
        // 12 per node as in the tutorial.
        assert_eq!(c.zones[0].demand, 4 * 12);
    }

    #[test]
    fn warm_ip_targets_and_no_custom_networking() {
        // m5.large without custom networking: 29 max pods, 27 pod IPs.
        let t = m5_large();
        let eni = CniMode::default();
        // ceil(27/9) + 1 = 4 ENIs, capped at 3; 3 × 9 + 3 primaries (one is the node's IP) = 30.
        assert_eq!(node_demand(&t, &eni, 29), 30);
        // WARM_IP_TARGET 2, MINIMUM_IP_TARGET 0: 27 + 2 = 29 addresses, capped at the 27 the
        // ENIs hold; 3 ENIs: 30. With only 10 pods: 8 + 2 = 10 addresses on 2 ENIs: 12.
        let ip = CniMode {
            warm: WarmPool::Ip {
                warm_ips: 2,
                minimum_ips: 0,
            },
            ..eni
        };
        assert_eq!(node_demand(&t, &ip, 29), 30);
        assert_eq!(node_demand(&t, &ip, 10), 12);
        // MINIMUM_IP_TARGET 20 dominates 8 + 2: 20 addresses on ceil(20/9) = 3 ENIs: 23.
        let min = CniMode {
            warm: WarmPool::Ip {
                warm_ips: 2,
                minimum_ips: 20,
            },
            ..eni
        };
        assert_eq!(node_demand(&t, &min, 10), 23);
        // No pods needing an IP (pods_per_node 2) still costs the node its own address.
        let none = CniMode {
            warm: WarmPool::Ip {
                warm_ips: 0,
                minimum_ips: 0,
            },
            ..eni
        };
        assert_eq!(
            node_demand(&t, &none, 2),
            9 + 1,
            "unset targets: one whole ENI"
        );
    }

    #[test]
    fn prefix_demand() {
        // t3.medium, custom networking + PD: 110 pods, 108 pod IPs → ceil(108/16) = 7 prefixes
        // + 1 warm = 8 (room 2 × 5 = 10); ceil(8/5) = 2 ENIs, each primary counted as a /28: 10.
        let m = mode(true, true);
        assert_eq!(node_demand(&t3_medium(), &m, 110), 10);
        // WARM_IP_TARGET 20 instead: ceil((108 + 20)/16) = 8 prefixes, 2 ENIs: 10.
        // MINIMUM_IP_TARGET 200: ceil(200/16) = 13, capped at the room of 10; 2 ENIs: 12.
        let ip = |warm_ips, minimum_ips| CniMode {
            warm: WarmPool::Prefix {
                warm_prefixes: 0,
                warm_ips,
                minimum_ips,
            },
            ..m
        };
        assert_eq!(node_demand(&t3_medium(), &ip(20, 0), 110), 10);
        assert_eq!(node_demand(&t3_medium(), &ip(0, 200), 110), 12);
        // With 20 pods: ceil(18/16) = 2 + 1 warm = 3 prefixes on 1 ENI: 4.
        assert_eq!(node_demand(&t3_medium(), &m, 20), 4);
    }

    #[test]
    fn prefix_supply_from_the_cidr() {
        let m = mode(true, true);
        let c = capacity(
            &[
                // 512 /28 blocks, minus the first and the last that hold the reserved addresses.
                subnet("subnet.pod_a", "us-west-2a", "100.64.0.0/19", None),
                // A single /28 holds the reserved addresses in its only block: 0 free.
                subnet("subnet.tiny", "us-west-2b", "100.64.32.0/28", None),
                // Smaller than a /28: no block at all.
                subnet("subnet.tinier", "us-west-2c", "100.64.32.16/29", None),
                // 2 blocks, both holding reserved addresses.
                subnet("subnet.small", "us-west-2d", "100.64.33.0/27", None),
            ],
            &[],
            &m,
        );
        assert_eq!(c.unit, Unit::Prefixes);
        let free: Vec<(u64, bool)> = c.zones.iter().map(|z| (z.free, z.estimate)).collect();
        assert_eq!(free, vec![(510, false), (0, false), (0, false), (0, false)]);
        assert!(c.warnings().is_empty(), "no nodes, no warnings");
    }

    #[test]
    fn prefix_supply_from_available_is_an_estimate() {
        let m = mode(true, true);
        let c = capacity(
            &[
                // 8000 / 16 = 500, and 4000 / 16 = 250, summed in the AZ.
                subnet("subnet.pod_a", "us-west-2a", "100.64.0.0/19", Some(8000)),
                subnet("subnet.pod_c", "us-west-2a", "100.64.64.0/20", Some(4000)),
                subnet("subnet.pod_b", "us-west-2b", "100.64.32.0/19", None),
            ],
            &[],
            &m,
        );
        let z = &c.zones[0];
        assert_eq!((z.free, z.estimate), (750, true));
        assert_eq!(z.subnets, vec!["subnet.pod_a", "subnet.pod_c"]);
        assert_eq!((c.zones[1].free, c.zones[1].estimate), (510, false));
        // Address mode takes `available` as exact.
        let plain = capacity(
            &[subnet(
                "subnet.pod_a",
                "us-west-2a",
                "100.64.0.0/19",
                Some(8000),
            )],
            &[],
            &mode(true, false),
        );
        assert_eq!(
            (plain.zones[0].free, plain.zones[0].estimate),
            (8000, false)
        );
    }

    #[test]
    fn tiny_subnets_saturate_at_zero_addresses() {
        let c = capacity(
            &[
                subnet("a", "az1", "10.0.0.0/29", None),
                subnet("b", "az2", "10.0.0.8/30", None),
                subnet("c", "az3", "10.0.0.12/32", None),
            ],
            &[],
            &CniMode::default(),
        );
        let free: Vec<u64> = c.zones.iter().map(|z| z.free).collect();
        assert_eq!(free, vec![3, 0, 0]);
    }

    #[test]
    fn nodes_in_an_az_without_pod_subnet() {
        let m = mode(true, false);
        let c = capacity(
            &[
                subnet("subnet.pod_a", "us-west-2a", "100.64.0.0/19", None),
                subnet("subnet.pod_b", "us-west-2b", "100.64.32.0/19", None),
            ],
            &[group(
                "nodegroup.main",
                &["us-west-2a", "us-west-2b", "us-west-2c"],
                3,
                t3_medium(),
                &m,
            )],
            &m,
        );
        let azs: Vec<&str> = c.zones.iter().map(|z| z.az.as_str()).collect();
        assert_eq!(azs, vec!["us-west-2a", "us-west-2b", "us-west-2c"]);
        let z = &c.zones[2];
        assert!(z.subnets.is_empty());
        assert_eq!((z.free, z.nodes, z.demand, z.shortfall), (0, 1, 12, 12));
        let w = c.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("nodes in us-west-2c would get no pod addresses: no pod subnet there"),
            "{}",
            w[0]
        );
        assert!(w[0].contains("nodegroup.main up to 1"), "{}", w[0]);
    }

    #[test]
    fn prefix_shortfall_warning_does_not_suggest_prefix_delegation() {
        // m5.large, custom + PD: 110 pods, 108 pod IPs: 7 + 1 = 8 prefixes (room 18) on
        // ceil(8/9) = 1 ENI: 9 per node. A /26 has 4 blocks − 2 = 2 free. 1 node: short by 7.
        let m = mode(true, true);
        let c = capacity(
            &[subnet("subnet.pod_a", "us-west-2a", "100.64.0.0/26", None)],
            &[group("nodegroup.main", &["us-west-2a"], 1, m5_large(), &m)],
            &m,
        );
        assert_eq!(c.zones[0].shortfall, 7);
        let w = c.warnings();
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("short by 7 /28 prefixes"), "{}", w[0]);
        assert!(!w[0].contains("prefix delegation"), "{}", w[0]);
    }

    #[test]
    fn non_nitro_under_prefix_delegation_counts_each_address_as_a_block() {
        // m4.large (not Nitro), custom + PD: falls back to addresses. 1 pod ENI × 9 + 2 = 11
        // max pods, 9 pod IPs; one spare ENI by default: ceil(9/9) + 1 = 2, capped at the 1 pod
        // ENI: 9 addresses + its 1 primary = 10, each counted as a /28.
        let m4 = InstanceNetwork {
            nitro: false,
            ..it("m4.large", 2, 10, 2)
        };
        let m = mode(true, true);
        assert_eq!(max_pods(&m4, &m).max_pods, 11);
        assert_eq!(node_demand(&m4, &m, 11), 10);
    }

    #[test]
    fn render_exact_table() {
        let m = mode(true, true);
        let c = capacity(
            &[
                subnet("subnet.pod_a", "us-west-2a", "100.64.0.0/19", Some(8000)),
                subnet("subnet.pod_b", "us-west-2b", "100.64.32.0/26", None),
            ],
            &[group(
                "nodegroup.main",
                &["us-west-2a", "us-west-2b", "us-west-2c"],
                3,
                m5_large(),
                &m,
            )],
            &m,
        );
        // Per node 9 /28s (see prefix_shortfall_warning...); one node per AZ.
        let expected = "\
AZ          POD SUBNETS   FREE /28 PREFIXES  MAX NODES  DEMAND  STATUS
us-west-2a  subnet.pod_a               500*          1       9  ok
us-west-2b  subnet.pod_b                 2           1       9  short by 7
us-west-2c  -                            0           1       9  no pod subnet
* estimate: free addresses / 16; addresses in use can break up /28 blocks, so fewer may be free
";
        assert_eq!(c.render(), expected);
        assert!(c.render().lines().all(|l| l == l.trim_end()));
    }

    #[test]
    fn render_without_estimates_has_no_mark() {
        let r = tutorial().render();
        let expected = "\
AZ          POD SUBNETS   FREE ADDRESSES  MAX NODES  DEMAND  STATUS
us-west-2a  subnet.pod_a            8187          1      12  ok
us-west-2b  subnet.pod_b            8187          1      12  ok
";
        assert_eq!(r, expected);
    }

    #[test]
    fn serializes_unit_lowercase() {
        let v = serde_json::to_value(tutorial()).unwrap();
        assert_eq!(v["unit"], "addresses");
        assert_eq!(v["zones"][0]["groups"][0][2], 12);
        assert_eq!(serde_json::to_value(Unit::Prefixes).unwrap(), "prefixes");
    }
}

/// EKS Auto Mode's max pods per node (EKS user guide, `automode/auto-choosing-instance-type`
/// ... "a maximum of 110 pods per node").
pub const AUTO_MODE_MAX_PODS: u32 = 110;

/// What one Auto Mode pod subnet holds: its whole /28 prefixes, and the nodes whose pods fit
/// in them at Auto Mode's max pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoModeSubnet {
    pub prefixes: u32,
    pub prefixes_per_node: u32,
    pub nodes: u32,
}

/// Auto Mode gives pods addresses from /28 prefixes (create-node-class: the default), so a pod
/// subnet is counted in whole /28 blocks: AWS reserves the first four addresses and the last of
/// every subnet, which takes the first and the last /28 out. A node at 110 pods needs
/// ceil(110 / 16) = 7 prefixes, plus one /28 slot for the primary address of its interface
/// in the pod subnet (it may fall in a block that would otherwise be free). Kept that simple:
/// fragments left by other interfaces are not counted.
pub fn auto_mode_subnet(prefix_len: u8) -> AutoModeSubnet {
    let blocks = if prefix_len > 28 {
        0
    } else {
        1u32.checked_shl(u32::from(28 - prefix_len))
            .unwrap_or(u32::MAX)
    };
    let prefixes = blocks.saturating_sub(2);
    let prefixes_per_node = AUTO_MODE_MAX_PODS.div_ceil(PREFIX_ADDRESSES) + 1;
    AutoModeSubnet {
        prefixes,
        prefixes_per_node,
        nodes: prefixes / prefixes_per_node,
    }
}

#[cfg(test)]
mod auto_mode_tests {
    use super::*;

    /// A /27 has two /28 blocks, both holding reserved addresses: no prefix at all. A /19 has
    /// 512 blocks, 510 usable, 63 nodes of 8 slots.
    #[test]
    fn pod_subnets_count_in_whole_prefixes() {
        assert_eq!(auto_mode_subnet(27).prefixes, 0);
        assert_eq!(auto_mode_subnet(28).nodes, 0);
        assert_eq!(auto_mode_subnet(32).prefixes, 0);
        let s = auto_mode_subnet(19);
        assert_eq!((s.prefixes, s.prefixes_per_node, s.nodes), (510, 8, 63));
        assert_eq!(auto_mode_subnet(24).nodes, 1);
    }
}
