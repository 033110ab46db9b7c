//! IAM propagation delay (option `iam_propagation_ms`): for a while after CreateRole, real
//! EKS cannot assume the new role yet and refuses a CreateCluster (`roleArn`) or
//! CreateNodegroup (`nodeRole`) naming it; moto's roles are usable at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::core::emulator::{ready, Answer, BoxFuture, Call, Emulator};
use crate::core::faults::{self, Reply};
use crate::core::ops::Protocol;
use crate::shared::{deadline, json_str, lock, xml_first};

#[derive(Default)]
pub struct IamPropagation {
    /// IAM role name -> end of its propagation window. IAM is global and
    /// role names are unique per account, so the name is the key.
    roles: Mutex<HashMap<String, Instant>>,
}

/// Role name from an IAM role ARN (`arn:aws:iam::1:role/some/path/NAME`).
fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// EKS's answer while IAM has not yet propagated a new role.
fn role_not_assumable(arn: &str) -> Reply {
    faults::eks_error(
        400,
        "InvalidParameterException",
        &format!(
            "Role with arn: {arn}, could not be assumed because it does not exist or the \
             trusted entity is not correct"
        ),
    )
}

impl Emulator for IamPropagation {
    fn intercept(&self, call: &Call<'_>) -> Option<(Reply, &'static str)> {
        let field = match (call.info.protocol, call.info.op.as_str()) {
            (Protocol::RestJson, "CreateCluster") => "roleArn",
            (Protocol::RestJson, "CreateNodegroup") => "nodeRole",
            _ => return None,
        };
        let now = Instant::now();
        let arn = json_str(call.body, None, field)?;
        let until = *lock(&self.roles).get(role_name(&arn))?;
        (now < until).then(|| (role_not_assumable(&arn), "iam_propagation"))
    }

    fn rewrite<'a>(&'a self, call: &'a Call<'a>, answer: &'a mut Answer) -> BoxFuture<'a, ()> {
        let (info, cfg) = (call.info, call.cfg);
        if info.protocol == Protocol::AwsQuery
            && info.op == "CreateRole"
            && cfg.iam_propagation_ms > 0
        {
            let text = String::from_utf8_lossy(&answer.reply.body);
            let name =
                xml_first(&text, "RoleName").or_else(|| info.param("RoleName").map(str::to_string));
            if let Some(name) = name {
                lock(&self.roles).insert(name, deadline(cfg.iam_propagation_ms));
            }
        }
        ready(())
    }

    fn reset(&self) {
        lock(&self.roles).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_arns() {
        assert_eq!(role_name("arn:aws:iam::1:role/p/q/r1"), "r1");
        assert_eq!(role_name("r1"), "r1");
    }
}
