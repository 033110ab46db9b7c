//! `eksnet import SPEC ADDR ID`: reads the resource by the id given (after its dependencies,
//! so a reference such as a block's VPC resolves), refuses what another eksnet state manages,
//! writes its state row, and says what the next plan would do with it.

use crate::base::addr::Kind;
use crate::cli::args::ImportArgs;
use crate::cli::exit::{ExitStatus, Failure};
use crate::cli::lock;
use crate::cli::{output, session};
use crate::engine::{self, PlanError};
use crate::plan::planner;
use crate::plan::Action;
use crate::resources::{self, ImportId};
use crate::state::Durability;
use crate::state::{ResourceStatus, StateResource};

pub async fn run(args: ImportArgs) -> Result<ExitStatus, Failure> {
    let ImportArgs {
        spec: spec_path,
        addr,
        id,
        common,
    } = args;
    let spec = session::load_spec(&spec_path)?;
    let Some(resource) = spec.get(&addr) else {
        return Err(Failure::Message(format!(
            "`{addr}` is not in {}; add it to the spec first, then import it",
            spec_path.display()
        )));
    };
    match resources::facts(addr.kind).import_id {
        ImportId::Never(why) => return Err(Failure::Message(format!("`{addr}` {why}"))),
        ImportId::ClusterSlashName if !id.contains('/') => {
            return Err(Failure::Message(format!(
                "the id of a {} is CLUSTER/NAME, not `{id}`",
                addr.kind
            )))
        }
        ImportId::ClusterNamespaceName if id.split('/').filter(|p| !p.is_empty()).count() != 3 => {
            return Err(Failure::Message(format!(
                "the id of a {} is CLUSTER/NAMESPACE/NAME, not `{id}`",
                addr.kind
            )))
        }
        ImportId::Plain | ImportId::ClusterSlashName | ImportId::ClusterNamespaceName => {}
    }
    if resources::is_adopted(&addr, &resource.attrs) {
        return Err(Failure::Message(match addr.kind {
            Kind::Vpc => format!("`{addr}` adopts its VPC by `id` already; there is nothing to import"),
            kind => format!("`{addr}` is an existing {kind} (`existing = true`): eksnet takes it as it finds it, so there is nothing to import"),
        }));
    }
    let loc = session::state_location(&spec, &common.state)?;
    let (store, guard) = lock::lock(
        &loc,
        session::state_region(&spec),
        &format!("eksnet import {} {addr} {id}", spec_path.display()),
    )
    .await?;
    let work = async {
        let snapshot = store.snapshot()?;
        if let Some(row) = snapshot.resources.get(&addr) {
            return Err(Failure::Message(format!(
                "`{addr}` is already in the state (id {}); eksnet manages it already",
                row.cloud_id.as_deref().unwrap_or("not yet known")
            )));
        }
        let ctx = session::make_ctx(&spec, snapshot.lineage.clone(), &common, false).await?;
        let (graph, mut observed) = engine::observe_import(&ctx, &spec, &snapshot, &addr, &id)
            .await
            .map_err(|e| match e {
                PlanError::Refused(d) => output::diagnostics_failure(&d),
                PlanError::Refresh(e) => e.into(),
            })?;
        let Some(found) = observed.resources.get(&addr).cloned().flatten() else {
            return Err(Failure::Message(format!(
                "no {} with id `{id}` was found (for `{addr}`)",
                addr.kind
            )));
        };
        if let Some(refusal) = planner::import_refusal(&snapshot, &addr, &found) {
            return Err(Failure::Message(refusal));
        }
        let row = StateResource {
            status: ResourceStatus::Present,
            cloud_id: Some(found.cloud_id.clone()),
            attrs: found.attrs.clone(),
            outputs: found.outputs.clone(),
            dependencies: graph.dependencies(&addr),
            prevent_destroy: spec.get(&addr).is_some_and(|r| r.lifecycle.prevent_destroy),
            deposed: vec![],
        };
        store.put(&addr, &row, Durability::Now).await?;
        output::info(format!("Imported {addr} [id={}].", found.cloud_id));
        // What the next plan does with it, from what was just read: no further request.
        let mut after = snapshot.clone();
        after.resources.insert(addr.clone(), row);
        observed.resources.insert(addr.clone(), Some(found));
        let next =
            planner::change_for(&spec, &graph, &after, &observed, &addr).and_then(|c| {
                match c.action {
                    Action::Replace => Some(format!(
                        "the next apply would REPLACE it (it differs in {})",
                        if c.replace_because.is_empty() {
                            c.reason
                                .as_ref()
                                .map(crate::plan::render::reason)
                                .unwrap_or_default()
                        } else {
                            c.replace_because.join(", ")
                        }
                    )),
                    Action::Update => {
                        Some("the next apply would update it in place to match the spec".into())
                    }
                    _ => None,
                }
            });
        if let Some(next) = next {
            output::warning(format!(
                "{addr}: {next}; run `eksnet plan` to see the difference"
            ));
        }
        Ok::<_, Failure>(ExitStatus::Success)
    };
    guard.around(work).await
}
