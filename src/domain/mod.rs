//! Rules that span kinds, one domain place each, below the kinds and the stages that use
//! them: `cni` (the VPC CNI: which resource carries its settings, whether custom networking
//! is on, the handover from the `aws_node` patch to the add-on) and `ordering` (the graph's
//! domain edges: what AWS needs first that a spec need not say). They name kinds and
//! attributes, never a stage: the spec checks, the graph, the planner and node sizing ask
//! them instead of knowing the CNI themselves.

pub mod cni;
pub mod ordering;
