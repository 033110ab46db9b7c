//! Rules that span kinds, one domain place each: `access` (cluster access: the authentication
//! mode access entries need, the entries nodes need to join), `auto_mode` (EKS Auto Mode: its cluster
//! role, no custom networking on it, a NodeClass's pod subnets), `identity` (who the VPC CNI acts as in AWS:
//! its own role or the node role), `cni` (the VPC CNI: which resource carries
//! its settings, whether custom networking is on, its spec and plan checks, the handover from
//! the `aws_node` patch to the add-on), `network` (the VPC's CIDR arithmetic: secondary
//! blocks, pod subnets, their AZs), `pod_security_groups` (security groups for pods: the
//! policies, `ENABLE_POD_ENI`, the cluster role's policy, trunk-capable nodes), `identity`
//! (who the VPC CNI acts as), `ordering` (the graph's domain edges: what AWS needs first that
//! a spec need not say) and `routing` (the pod subnets' route tables and the SNAT settings
//! against their routes). They sit above the kinds and the parsed spec and below
//! the stages that ask them (validate, the graph, the planner), which therefore name no kind
//! themselves. A planned change reaches them as a `ChangeView`, since the plan is a stage
//! above them.

pub mod access;
pub mod auto_mode;
pub mod cni;
pub mod identity;
pub mod karpenter;
pub mod network;
pub mod ordering;
pub mod pod_security_groups;
pub mod routing;

use crate::base::action::Action;
use crate::base::addr::ResourceAddr;
use serde_json::Value;

/// One planned change, as far as the domain rules need it (the plan's own type is a stage
/// above them).
pub struct ChangeView<'a> {
    pub addr: &'a ResourceAddr,
    pub action: Action,
    pub before: Option<&'a Value>,
    pub after: Option<&'a Value>,
    /// The outputs refresh read.
    pub observed: Option<&'a Value>,
}

impl ChangeView<'_> {
    /// Deleted, only forgotten, or put back as it was before eksnet: eksnet no longer has it
    /// after the apply.
    pub fn removed(&self) -> bool {
        matches!(
            self.action,
            Action::Delete | Action::Forget | Action::PutBack
        )
    }
}
