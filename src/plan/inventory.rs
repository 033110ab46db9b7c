//! What was read before planning, in one value: the planner's only view of the world besides
//! the spec and the state. Reads fill it and make no verdicts; the planner judges all of it.

use crate::base::addr::ResourceAddr;
use crate::domain::routing::RoutingReads;
use crate::nodes::sizing::SizingReads;
use crate::resources::ObservedState;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct Inventory {
    /// Address → the live object, or `None` when it was looked up and is absent (refresh).
    pub resources: ObservedState,
    /// Address → what the kind's `inspect` read for its live checks (an add-on's versions and
    /// configuration schema), judged by the kind's `judge` in the planner.
    pub inspections: BTreeMap<ResourceAddr, Value>,
    /// The instance types' network limits and the subnets' free addresses, for node sizing;
    /// `None` when nothing was sized (a destroy, or no nodegroup with known instance types).
    pub sizing: Option<SizingReads>,
    /// The route tables of the VPCs the pod subnets are in, for what the plan says of their
    /// routes; `None` when nothing was read (a destroy, or no ENIConfig in the spec).
    pub routing: Option<RoutingReads>,
}

impl Inventory {
    /// Only the refresh's observations (as `import` and destroy have them).
    pub fn of_resources(resources: ObservedState) -> Inventory {
        Inventory {
            resources,
            ..Inventory::default()
        }
    }
}
