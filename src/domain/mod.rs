//! Rules that span kinds, one domain place each, below the kinds and the stages that use
//! them: `cni` (the VPC CNI: which resource carries its settings, whether custom networking
//! is on, the handover from the `aws_node` patch to the add-on) and `ordering` (the graph's
//! domain edges: what AWS needs first that a spec need not say) and `network` (the VPC's
//! CIDR arithmetic: secondary blocks, pod subnets, their AZs). They name kinds and
//! attributes, never a stage: the spec checks, the graph, the planner and node sizing ask
//! them instead of knowing the CNI themselves.

pub mod cni;
pub mod network;
pub mod ordering;

use crate::base::addr::ResourceAddr;
use serde_json::Value;

/// One planned change, as far as the domain rules need it (the plan's own type is a stage
/// above them).
pub struct ChangeView<'a> {
    pub addr: &'a ResourceAddr,
    /// Deleted or forgotten.
    pub removed: bool,
    /// Deleted.
    pub deleted: bool,
    /// A new object is made (created, or replaced).
    pub creates: bool,
    /// Replaced.
    pub replaced: bool,
    /// Exists and stays (no-op, update in place, adopted).
    pub kept: bool,
    pub before: Option<&'a Value>,
    pub after: Option<&'a Value>,
    /// The outputs refresh read.
    pub observed: Option<&'a Value>,
}
