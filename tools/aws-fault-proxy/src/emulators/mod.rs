//! The emulated parts of AWS, each in a module of its own behind the core's
//! [`Emulator`](crate::core::emulator::Emulator) interface. They name only the core and
//! `shared`, never each other; what two of them must both see (a nodegroup's windows) is
//! the core's.
//!
//! To add one: a new module here implementing `Emulator`, and one line in [`all`].

mod access_entries;
mod addons;
mod cluster_compute;
mod cluster_fields;
mod data_plane;
mod dependency_violation;
mod eks_states;
mod iam_oidc;
mod iam_propagation;
mod nodegroup_version;
mod s3;
mod stack_states;

use crate::core::emulator::Emulator;

/// Every emulator, in the order the core calls their hooks. The order matters where two
/// act on one answer: `nodegroup_version`, `cluster_fields` and `cluster_compute` rewrite answers before
/// `eks_states` snapshots them for a DELETING window (the replayed snapshot keeps the
/// launch template version and the cluster fields); `eks_states` refuses a name still in
/// use before `iam_propagation` looks at the role.
pub fn all() -> Vec<Box<dyn Emulator>> {
    vec![
        Box::new(access_entries::AccessEntries::default()),
        Box::new(addons::Addons::default()),
        Box::new(nodegroup_version::NodegroupVersion::default()),
        Box::new(cluster_fields::ClusterFields::default()),
        Box::new(cluster_compute::ClusterCompute::default()),
        Box::new(eks_states::EksStates),
        Box::new(stack_states::StackStates::default()),
        Box::new(iam_propagation::IamPropagation::default()),
        Box::new(iam_oidc::IamOidc::default()),
        Box::new(dependency_violation::DependencyViolation::default()),
        Box::new(s3::S3),
        Box::new(data_plane::DataPlane::default()),
    ]
}
