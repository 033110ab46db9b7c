//! EC2 instance type facts known without a call: the processor architecture, the
//! accelerators, and the ENI and IPv4 limits, from EC2's DescribeInstanceTypes (the table
//! `instance_types.tsv` beside this file, written by `scripts/refresh-instance-types`; see
//! that script for how to refresh it). A type the table does not know (one newer than it) is
//! judged by EC2's naming conventions where they are certain, and otherwise left alone.

use std::collections::HashMap;
use std::sync::OnceLock;

/// A processor architecture, as DescribeInstanceTypes names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Arm64,
    /// Mac instances (`x86_64_mac`, `arm64_mac`), for which EKS has no AMI.
    Mac,
}

impl Arch {
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
            Arch::Mac => "mac",
        }
    }
}

/// What `validate` needs of one instance type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceFacts {
    pub arch: Arch,
    /// NetworkInfo.MaximumNetworkInterfaces (all network cards).
    pub max_enis: u32,
    /// NetworkInfo.Ipv4AddressesPerInterface.
    pub ipv4_per_eni: u32,
    /// VCpuInfo.DefaultVCpus.
    pub vcpus: u32,
    /// Nitro hypervisor or bare metal: prefix delegation can apply.
    pub nitro: bool,
    /// NVIDIA GPUs (GpuInfo).
    pub nvidia_gpu: bool,
    /// AWS Inferentia or Trainium (NeuronInfo).
    pub neuron: bool,
}

/// aws-node and kube-proxy run on the host network: they count against max pods but take
/// no pod address.
const HOST_NETWORK_PODS: u32 = 2;
/// Addresses in one delegated /28 prefix.
const PREFIX_ADDRESSES: u32 = 16;

impl InstanceFacts {
    /// The most pods any VPC CNI setting lets this type run: every ENI's slots (all but the
    /// ENI's own address) as /28 prefixes where prefix delegation applies (Nitro), plus the
    /// host-network pods. Custom networking and the calculator's 110/250 cap only lower it.
    /// (`nodes::sizing::max_pods` under prefix delegation gives the same figure uncapped.)
    pub fn most_pods(&self) -> u32 {
        let per_slot = if self.nitro { PREFIX_ADDRESSES } else { 1 };
        let addresses = u64::from(self.max_enis)
            * u64::from(self.ipv4_per_eni.saturating_sub(1))
            * u64::from(per_slot);
        u32::try_from(addresses)
            .unwrap_or(u32::MAX)
            .saturating_add(HOST_NETWORK_PODS)
    }
}

const TABLE: &str = include_str!("instance_types.tsv");

fn table() -> &'static HashMap<&'static str, InstanceFacts> {
    static T: OnceLock<HashMap<&'static str, InstanceFacts>> = OnceLock::new();
    T.get_or_init(|| {
        TABLE
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                let [name, arch, enis, ips, vcpus, hv, gpu, neuron] = f.as_slice() else {
                    return None;
                };
                let arch = match *arch {
                    "x86_64" => Arch::X86_64,
                    "arm64" => Arch::Arm64,
                    _ => Arch::Mac,
                };
                Some((
                    *name,
                    InstanceFacts {
                        arch,
                        max_enis: enis.parse().ok()?,
                        ipv4_per_eni: ips.parse().ok()?,
                        vcpus: vcpus.parse().ok()?,
                        nitro: *hv == "nitro",
                        nvidia_gpu: gpu.split(',').any(|g| g == "nvidia"),
                        neuron: *neuron == "neuron",
                    },
                ))
            })
            .collect()
    })
}

/// The facts of a type the table knows.
pub fn lookup(instance_type: &str) -> Option<&'static InstanceFacts> {
    table().get(instance_type)
}

/// How many types the table knows (for the tests and the docs).
pub fn known_count() -> usize {
    table().len()
}

/// The architecture of a type: the table's, else EC2's naming conventions (a family is a
/// series, a generation and options; the option `g` right after the generation means AWS
/// Graviton, and `a1` is the first Graviton), else `None`.
pub fn arch(instance_type: &str) -> Option<Arch> {
    if let Some(f) = lookup(instance_type) {
        return Some(f.arch);
    }
    let family = instance_type.split('.').next()?;
    if family == "a1" {
        return Some(Arch::Arm64);
    }
    let series_end = family.find(|c: char| c.is_ascii_digit())?;
    let rest = &family[series_end..];
    let options = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    if options.starts_with('g') {
        Some(Arch::Arm64)
    } else if family.starts_with("mac") {
        None
    } else {
        Some(Arch::X86_64)
    }
}

/// Whether a type can have a trunk interface, which security groups for pods need: the VPC
/// resource controller attaches one only to a type its table marks `IsTrunkingCompatible`
/// (amazon-vpc-resource-controller-k8s `pkg/aws/vpc/limits.go`), and the EKS user guide
/// (`networking/security-groups-for-pods.adoc`) words it "most Nitro-based instance
/// families … The t3 instance family is not supported". The rule: Nitro (bare metal
/// included, which the table here marks `nitro`) and not a burstable `t` family (`t2`, `t3`,
/// `t3a`, `t4g`; `trn1` is not one). Checked against the controller's table of 2026-08: it
/// agrees on all 1151 types both know but `i4i.large`, `u-6tb1.56xlarge` and
/// `u-6tb1.112xlarge`, which the controller refuses although they are Nitro.
///
/// The one place this rule lives: validation (types by name, from the table here) and node
/// sizing (types as DescribeInstanceTypes gives them) both ask it.
pub fn can_have_trunk(instance_type: &str, nitro: bool) -> bool {
    const REFUSED_BY_THE_CONTROLLER: &[&str] =
        &["i4i.large", "u-6tb1.56xlarge", "u-6tb1.112xlarge"];
    let family = instance_type.split('.').next().unwrap_or_default();
    let burstable = family
        .strip_prefix('t')
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
    nitro && !burstable && !REFUSED_BY_THE_CONTROLLER.contains(&instance_type)
}

/// `can_have_trunk` for a type known by name: `None` for a type the table does not know
/// (unless it is burstable, which never can).
pub fn trunk_by_name(instance_type: &str) -> Option<bool> {
    match lookup(instance_type) {
        Some(f) => Some(can_have_trunk(instance_type, f.nitro)),
        None => (!can_have_trunk(instance_type, true)).then_some(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trunks_need_nitro_and_no_burstable_family() {
        assert_eq!(trunk_by_name("m5.large"), Some(true));
        assert_eq!(trunk_by_name("c5.4xlarge"), Some(true));
        assert_eq!(trunk_by_name("m5.metal"), Some(true));
        assert_eq!(trunk_by_name("trn1.2xlarge"), Some(true));
        assert_eq!(trunk_by_name("t3.medium"), Some(false));
        assert_eq!(trunk_by_name("t4g.medium"), Some(false));
        assert_eq!(trunk_by_name("m4.large"), Some(false), "Xen");
        assert_eq!(trunk_by_name("i4i.large"), Some(false));
        assert_eq!(trunk_by_name("t99.large"), Some(false));
        assert_eq!(trunk_by_name("m99.large"), None);
    }

    #[test]
    fn the_table_reads_and_knows_common_types() {
        assert!(known_count() > 1000, "{}", known_count());
        let t3 = lookup("t3.medium").expect("t3.medium");
        assert_eq!(
            (t3.arch, t3.max_enis, t3.ipv4_per_eni),
            (Arch::X86_64, 3, 6)
        );
        assert!(t3.nitro && !t3.nvidia_gpu && !t3.neuron);
        // 3 ENIs × 5 slots × 16 addresses + 2 host-network pods.
        assert_eq!(t3.most_pods(), 242);
        assert_eq!(
            lookup("m4.large").map(InstanceFacts::most_pods),
            Some(2 * 9 + 2)
        );
        assert!(lookup("g5g.xlarge").is_some_and(|g| g.arch == Arch::Arm64 && g.nvidia_gpu));
        assert!(lookup("inf2.xlarge").is_some_and(|i| i.neuron));
    }

    #[test]
    fn naming_conventions_cover_types_newer_than_the_table() {
        assert_eq!(arch("m99g.large"), Some(Arch::Arm64));
        assert_eq!(arch("c99gn.large"), Some(Arch::Arm64));
        assert_eq!(arch("g99dn.large"), Some(Arch::X86_64));
        assert_eq!(arch("m99i-flex.large"), Some(Arch::X86_64));
        assert_eq!(arch("a1.large"), Some(Arch::Arm64));
        assert_eq!(arch("t4g.medium"), Some(Arch::Arm64));
        assert_eq!(arch("x2gd.large"), Some(Arch::Arm64));
    }
}
