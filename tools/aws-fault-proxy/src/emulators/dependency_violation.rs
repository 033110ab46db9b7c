//! EC2's `DependencyViolation` on DeleteSubnet (option `dependency_violation_count`): real
//! EC2 refuses to delete a subnet while ENIs EKS made are still being cleaned up; moto
//! deletes at once. The first N DeleteSubnet of each subnet id are refused.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::core::emulator::{Call, Emulator};
use crate::core::faults::{self, Reply};
use crate::core::ops::Protocol;
use crate::shared::lock;

#[derive(Default)]
pub struct DependencyViolation {
    /// subnet id -> DependencyViolation answers given so far.
    subnet_failures: Mutex<HashMap<String, u64>>,
}

/// EC2's answer for a subnet that still has ENIs or instances in it.
fn subnet_dependency_violation(subnet_id: &str) -> Reply {
    faults::ec2_error(
        400,
        "DependencyViolation",
        &format!("The subnet '{subnet_id}' has dependencies and cannot be deleted."),
    )
}

impl Emulator for DependencyViolation {
    fn intercept(&self, call: &Call<'_>) -> Option<(Reply, &'static str)> {
        let (info, cfg) = (call.info, call.cfg);
        if info.protocol != Protocol::Ec2Query
            || info.op != "DeleteSubnet"
            || cfg.dependency_violation_count == 0
        {
            return None;
        }
        let subnet = info.param("SubnetId")?.to_string();
        let mut failures = lock(&self.subnet_failures);
        let seen = failures.entry(subnet.clone()).or_insert(0);
        if *seen < cfg.dependency_violation_count {
            *seen += 1;
            Some((subnet_dependency_violation(&subnet), "dependency_violation"))
        } else {
            None
        }
    }

    fn reset(&self) {
        lock(&self.subnet_failures).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_escaped() {
        let r = subnet_dependency_violation("a<b");
        assert!(String::from_utf8_lossy(&r.body).contains("The subnet 'a&lt;b' has dependencies"));
    }
}
