//! AWS partitions: which one a region is in, and what that changes in the names eksnet writes
//! or checks (ARNs, AWS managed policy ARNs, service principals).
//!
//! Source: the partitions table the AWS SDKs share (`partitions.json` of the SDKs' endpoint
//! rules: each partition's `regionRegex` and `dnsSuffix`), and for the EC2 service principal
//! per partition, the table eksctl keeps (`pkg/apis/eksctl.io/v1alpha5/partitions.go`). To
//! refresh: compare `PARTITIONS` with the newest `partitions.json` of any AWS SDK (for
//! example `aws-sdk-go-v2/internal/endpoints/awsrulesfn/partitions.json`); a new partition is
//! one more row.

/// One AWS partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Partition {
    /// As in ARNs: `aws`, `aws-cn`, `aws-us-gov`, …
    pub id: &'static str,
    /// The region name prefixes of the partition (its `regionRegex`), longest first.
    region_prefixes: &'static [&'static str],
    /// The DNS suffix of its endpoints, and of its service principals.
    pub dns_suffix: &'static str,
    /// Whether EKS offers IPv6 clusters here ("You can't specify ipv6 for clusters in China
    /// Regions", EKS API reference, KubernetesNetworkConfigRequest.ipFamily).
    pub eks_ipv6: bool,
}

pub const PARTITIONS: &[Partition] = &[
    Partition {
        id: "aws",
        region_prefixes: &[
            "us-", "eu-", "ap-", "sa-", "ca-", "me-", "af-", "il-", "mx-",
        ],
        dns_suffix: "amazonaws.com",
        eks_ipv6: true,
    },
    Partition {
        id: "aws-cn",
        region_prefixes: &["cn-"],
        dns_suffix: "amazonaws.com.cn",
        eks_ipv6: false,
    },
    Partition {
        id: "aws-us-gov",
        region_prefixes: &["us-gov-"],
        dns_suffix: "amazonaws.com",
        eks_ipv6: true,
    },
    Partition {
        id: "aws-iso",
        region_prefixes: &["us-iso-"],
        dns_suffix: "c2s.ic.gov",
        eks_ipv6: true,
    },
    Partition {
        id: "aws-iso-b",
        region_prefixes: &["us-isob-"],
        dns_suffix: "sc2s.sgov.gov",
        eks_ipv6: true,
    },
    Partition {
        id: "aws-iso-e",
        region_prefixes: &["eu-isoe-"],
        dns_suffix: "cloud.adc-e.uk",
        eks_ipv6: true,
    },
    Partition {
        id: "aws-iso-f",
        region_prefixes: &["us-isof-"],
        dns_suffix: "csp.hci.ic.gov",
        eks_ipv6: true,
    },
    Partition {
        id: "aws-eusc",
        region_prefixes: &["eusc-"],
        dns_suffix: "amazonaws.eu",
        eks_ipv6: true,
    },
];

impl Partition {
    /// The partition of a region name. A region no partition claims is in `aws`, as the
    /// SDKs resolve it.
    pub fn of_region(region: &str) -> &'static Partition {
        // The longest matching prefix wins (`us-gov-` over `us-`).
        PARTITIONS
            .iter()
            .flat_map(|p| p.region_prefixes.iter().map(move |pre| (p, pre)))
            .filter(|(_, pre)| region.starts_with(**pre))
            .max_by_key(|(_, pre)| pre.len())
            .map(|(p, _)| p)
            .unwrap_or(&PARTITIONS[0])
    }

    /// `aws`, where a region that is not known is assumed to be.
    pub fn commercial() -> &'static Partition {
        &PARTITIONS[0]
    }

    /// The partition with this ARN id.
    pub fn by_id(id: &str) -> Option<&'static Partition> {
        PARTITIONS.iter().find(|p| p.id == id)
    }

    /// `arn:PARTITION:iam::aws:policy/NAME`: an AWS managed policy.
    pub fn managed_policy_arn(&self, name: &str) -> String {
        format!("arn:{}:iam::aws:policy/{name}", self.id)
    }

    /// The EC2 service principal: in China it has the partition's own suffix
    /// (`ec2.amazonaws.com.cn`); in the other partitions it is `ec2.amazonaws.com` or the
    /// isolated partitions' suffix (eksctl's table).
    pub fn ec2_principal(&self) -> String {
        match self.id {
            "aws-cn" => "ec2.amazonaws.com.cn".into(),
            "aws-iso" | "aws-iso-b" => format!("ec2.{}", self.dns_suffix),
            _ => "ec2.amazonaws.com".into(),
        }
    }
}

/// The partition a service principal's suffix belongs to only: `….amazonaws.com.cn` is only
/// China's, `….c2s.ic.gov` only aws-iso's. `None` for `….amazonaws.com`, which every
/// partition accepts for some services (EKS is `eks.amazonaws.com` everywhere).
pub fn principal_partition(principal: &str) -> Option<&'static Partition> {
    PARTITIONS
        .iter()
        .filter(|p| p.dns_suffix != "amazonaws.com")
        .find(|p| principal.ends_with(&format!(".{}", p.dns_suffix)))
}

/// A service principal: a service name (lower-case DNS labels) and one of the partitions'
/// DNS suffixes (`eks.amazonaws.com`, `pods.eks.amazonaws.com`, `ec2.amazonaws.com.cn`).
pub fn is_service_principal(s: &str) -> bool {
    PARTITIONS.iter().any(|p| {
        s.strip_suffix(p.dns_suffix)
            .and_then(|rest| rest.strip_suffix('.'))
            .is_some_and(|name| {
                !name.is_empty()
                    && name.split('.').all(|l| {
                        !l.is_empty()
                            && l.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                            && l.chars()
                                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    })
            })
    })
}

/// The partition field of an ARN (`arn:PARTITION:…`).
pub fn arn_partition(arn: &str) -> Option<&str> {
    arn.strip_prefix("arn:")?.split(':').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_map_to_their_partitions() {
        for (region, id) in [
            ("us-west-2", "aws"),
            ("eu-central-1", "aws"),
            ("il-central-1", "aws"),
            ("cn-north-1", "aws-cn"),
            ("cn-northwest-1", "aws-cn"),
            ("us-gov-west-1", "aws-us-gov"),
            ("us-iso-east-1", "aws-iso"),
            ("us-isob-east-1", "aws-iso-b"),
            ("eu-isoe-west-1", "aws-iso-e"),
            ("us-isof-south-1", "aws-iso-f"),
            ("eusc-de-east-1", "aws-eusc"),
        ] {
            assert_eq!(Partition::of_region(region).id, id, "{region}");
        }
    }

    #[test]
    fn managed_policies_and_principals_follow_the_partition() {
        let cn = Partition::of_region("cn-north-1");
        assert_eq!(
            cn.managed_policy_arn("AmazonEKSClusterPolicy"),
            "arn:aws-cn:iam::aws:policy/AmazonEKSClusterPolicy"
        );
        assert_eq!(cn.ec2_principal(), "ec2.amazonaws.com.cn");
        assert_eq!(
            Partition::of_region("us-gov-west-1").ec2_principal(),
            "ec2.amazonaws.com"
        );
        assert!(is_service_principal("eks.amazonaws.com"));
        assert!(is_service_principal("pods.eks.amazonaws.com"));
        assert!(is_service_principal("ec2.amazonaws.com.cn"));
        assert!(!is_service_principal("ec2.amazonaws.co"));
        assert!(!is_service_principal("amazonaws.com"));
        assert!(!is_service_principal("EC2.amazonaws.com"));
        assert_eq!(
            principal_partition("ec2.amazonaws.com.cn").map(|p| p.id),
            Some("aws-cn")
        );
        assert_eq!(principal_partition("ec2.amazonaws.com"), None);
    }
}
