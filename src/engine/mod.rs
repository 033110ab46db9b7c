//! The engine's entry for planning: from a spec, a state snapshot and the clients to a plan
//! with its diagnostics. It reads everything the planner needs in one go — the refresh, the
//! kinds' live inspections (`ResourceKind::inspect`), node sizing's reads and the route
//! tables of the pod subnets' VPCs, side by side so they cost one round of requests — into
//! one `Inventory`, and hands it to the pure planner, which makes every verdict. Callers
//! (the CLI's commands, `import`, tests) never assemble these stages themselves.

pub mod refresh;

use crate::base::diag::Diagnostics;
use crate::nodes::capacity;
use crate::plan::graph::DependencyGraph;
use crate::plan::inventory::Inventory;
use crate::plan::planner::{self, PlanOptions};
use crate::plan::Plan;
use crate::resources::{self, Ctx};
use crate::spec::Spec;
use crate::state::StateSnapshot;
use refresh::RefreshError;
use std::collections::BTreeMap;

/// Why no plan was made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The spec, the state or what was read refuses the plan. Every diagnostic found is
    /// here, warnings included.
    #[error("{0}")]
    Refused(Diagnostics),
    /// AWS or Kubernetes could not be read.
    #[error(transparent)]
    Refresh(#[from] RefreshError),
}

/// Plans `spec` against the state and the live world: graph, one round of reads, the pure
/// planner. Nothing is read when the state belongs to another spec.
pub async fn plan(
    spec: &Spec,
    snapshot: &StateSnapshot,
    ctx: &Ctx,
    opts: &PlanOptions,
) -> Result<Plan, PlanError> {
    if let Some(d) = planner::foreign_state(spec, snapshot) {
        return Err(PlanError::Refused(d));
    }
    let graph = DependencyGraph::build(spec, Some(snapshot)).map_err(PlanError::Refused)?;
    let inventory = observe(ctx, spec, &graph, snapshot, opts.destroy).await?;
    planner::plan(spec, &graph, snapshot, &inventory, opts).map_err(PlanError::Refused)
}

/// Everything the planner needs to know of the live world. A destroy needs only the
/// refresh; otherwise the kinds' inspections and the sizing reads go out alongside it.
pub async fn observe(
    ctx: &Ctx,
    spec: &Spec,
    graph: &DependencyGraph,
    snapshot: &StateSnapshot,
    destroy: bool,
) -> Result<Inventory, RefreshError> {
    if destroy {
        let resources = refresh::refresh(ctx, spec, graph, snapshot).await?;
        return Ok(Inventory::of_resources(resources));
    }
    let sizing = async {
        if !capacity::wanted(spec) {
            return None;
        }
        let existing = capacity::existing_clusters(spec);
        let outside = async {
            let mut reads = crate::nodes::sizing::SizingReads::default();
            for cluster in &existing {
                crate::adopt::sizing_reads(ctx, cluster, &mut reads).await;
            }
            reads
        };
        let (mut reads, outside) = tokio::join!(capacity::read(ctx, spec, snapshot), outside);
        // The spec's types as EC2 described them win over the same types read for the
        // clusters' other nodes (which fall back to the embedded table).
        for (name, n) in outside.types {
            reads.types.entry(name).or_insert(n);
        }
        reads.outside = outside.outside;
        reads.problems.extend(outside.problems);
        Some(reads)
    };
    let routing = async {
        let vpcs = pod_subnet_vpcs(spec, snapshot)?;
        Some(crate::adopt::routing_reads(ctx, &vpcs).await)
    };
    let (resources, inspections, sizing, routing) = tokio::join!(
        refresh::refresh(ctx, spec, graph, snapshot),
        inspect(ctx, spec, snapshot),
        sizing,
        routing
    );
    Ok(Inventory {
        resources: resources?,
        inspections,
        sizing,
        routing,
    })
}

/// The VPCs whose route tables the plan reads to say which table each pod subnet uses (the
/// main one, when nothing associates it): those the spec names by id and those the state
/// recorded, so that the read goes out with the refresh, not after it. A VPC that does not
/// exist yet has no table to read. `None` when the spec has no pod subnet (no ENIConfig).
fn pod_subnet_vpcs(
    spec: &Spec,
    snapshot: &StateSnapshot,
) -> Option<std::collections::BTreeSet<String>> {
    use crate::base::addr::Kind;
    use crate::resources::str_attr;
    if !spec.resources.keys().any(|a| a.kind == Kind::EniConfig) {
        return None;
    }
    let is_vpc_id = |s: &&str| s.starts_with("vpc-") && !crate::base::value::is_ref(s);
    let mut vpcs = std::collections::BTreeSet::new();
    for r in spec.resources.values() {
        let key = if r.addr.kind == Kind::Vpc {
            "id"
        } else {
            "vpc_id"
        };
        vpcs.extend(str_attr(&r.attrs, key).filter(is_vpc_id).map(String::from));
    }
    for (addr, row) in &snapshot.resources {
        let key = if addr.kind == Kind::Vpc {
            "id"
        } else {
            "vpc_id"
        };
        vpcs.extend(
            str_attr(&row.outputs, key)
                .filter(is_vpc_id)
                .map(String::from),
        );
    }
    Some(vpcs)
}

/// The live inspections of every resource in the spec, concurrently. References to outputs
/// mirrored from the spec (a cluster's name) are resolved, as the planner resolves them when
/// it judges.
async fn inspect(
    ctx: &Ctx,
    spec: &Spec,
    snapshot: &StateSnapshot,
) -> BTreeMap<crate::base::addr::ResourceAddr, serde_json::Value> {
    let facts = planner::spec_facts(spec, snapshot);
    let facts = &facts;
    let reads = spec.resources.values().map(|r| async move {
        let attrs = planner::inspected_attrs(spec, r);
        let found = resources::inspect(ctx, &r.addr, &attrs, facts).await;
        found.map(|f| (r.addr.clone(), f))
    });
    futures::future::join_all(reads)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// What `eksnet import` reads: the refresh, with the resource to import read by the id given
/// (after its dependencies, so a reference such as a block's VPC resolves).
pub async fn observe_import(
    ctx: &Ctx,
    spec: &Spec,
    snapshot: &StateSnapshot,
    addr: &crate::base::addr::ResourceAddr,
    id: &str,
) -> Result<(DependencyGraph, Inventory), PlanError> {
    let graph = DependencyGraph::build(spec, Some(snapshot)).map_err(PlanError::Refused)?;
    let resources =
        refresh::refresh_importing(ctx, spec, &graph, snapshot, Some((addr, id))).await?;
    Ok((graph, Inventory::of_resources(resources)))
}
