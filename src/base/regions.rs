//! Region and zone names as AWS writes them, checked without a call.

/// `us-west-2`, `eu-central-1`, `us-gov-west-1`, `cn-north-1`, `ap-southeast-5`,
/// `eusc-de-east-1` (the European Sovereign Cloud).
pub fn is_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && (2..=4).contains(&parts[0].len())
        && parts[0].chars().all(|c| c.is_ascii_lowercase())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok_and(|n| n >= 1)
}

/// An availability zone (`us-west-2a`) or a Local Zone (`us-west-2-lax-1a`) name, in `region`
/// when it is known.
pub fn is_zone(z: &str, region: Option<&str>) -> bool {
    // An AZ (`us-west-2a`), a Local Zone (`us-west-2-lax-1a`) or a Wavelength Zone
    // (`us-east-1-wl1-bos-wlz-1`): a region, maybe more `-` segments, then the zone's mark.
    let (base, bare_region_ok) = match z.rsplit_once("-wlz-") {
        Some((base, n)) => {
            if n.is_empty() || !n.chars().all(|c| c.is_ascii_digit()) {
                return false;
            }
            (base, false)
        }
        None => {
            let Some(last) = z.chars().last().filter(|c| c.is_ascii_lowercase()) else {
                return false;
            };
            (&z[..z.len() - last.len_utf8()], true)
        }
    };
    let segment = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    let in_region = |r: &str| {
        (bare_region_ok && base == r)
            || base
                .strip_prefix(r)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|rest| rest.split('-').all(segment))
    };
    match region {
        Some(r) => in_region(r),
        // Any region: some prefix of the name that is one.
        None => (3..=base.split('-').count()).any(|k| {
            let cand = base.split('-').take(k).collect::<Vec<_>>().join("-");
            is_region(&cand) && in_region(&cand)
        }),
    }
}

/// A zone name of any region: an AZ, a Local Zone or a Wavelength Zone.
pub fn is_zone_name(z: &str) -> bool {
    is_zone(z, None)
}

/// An availability zone proper (`us-west-2a`: the region and one letter), not a Local Zone
/// (`us-west-2-lax-1a`) or a Wavelength Zone.
pub fn is_availability_zone(z: &str) -> bool {
    z.strip_suffix(|c: char| c.is_ascii_lowercase())
        .is_some_and(is_region)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_and_local_zones() {
        assert!(is_availability_zone("us-west-2a"));
        assert!(is_availability_zone("cn-north-1b"));
        assert!(!is_availability_zone("us-west-2-lax-1a"));
        assert!(!is_availability_zone("us-east-1-wl1-bos-wlz-1"));
        assert!(is_zone_name("us-west-2-lax-1a"));
        assert!(is_zone_name("us-east-1-wl1-bos-wlz-1"));
        assert!(!is_zone_name("pods-a"));
    }
}
