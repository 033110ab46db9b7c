//! `eksnet plan SPEC`: refresh, then show what apply would change; never writes the state.

use crate::cli::args::PlanArgs;
use crate::cli::exit::{ExitStatus, Failure};
use crate::cli::{output, session};
use crate::plan::planner::PlanOptions;

pub async fn run(args: PlanArgs) -> Result<ExitStatus, Failure> {
    let spec = session::load_spec(&args.spec)?;
    session::check_replace(&spec, &args.replace)?;
    let loc = session::state_location(&spec, &args.common.state)?;
    let snapshot = session::read_snapshot(&loc, session::state_region(&spec)).await?;
    let ctx = session::make_ctx(&spec, snapshot.lineage.clone(), &args.common, false).await?;
    let opts = PlanOptions {
        destroy: args.destroy,
        replace: args.replace,
    };
    let plan = session::make_plan(&spec, &snapshot, &ctx, &opts).await?;
    output::plan(&plan, args.common.json)?;
    if !args.destroy {
        existing_nodes(&spec, &ctx, args.common.json).await;
    }
    if let Some(f) = args.out {
        let text = serde_json::to_string_pretty(&plan)?;
        std::fs::write(&f, text)
            .map_err(|e| Failure::Message(format!("cannot write plan `{}`: {e}", f.display())))?;
        output::info(format!(
            "Saved the plan to {}; apply it with: eksnet apply {}",
            f.display(),
            f.display()
        ));
    }
    Ok(if args.detailed_exitcode && plan.has_changes() {
        ExitStatus::Changes
    } else {
        ExitStatus::Success
    })
}

/// The nodes the existing clusters run whose pods keep node-subnet addresses, by owner (see
/// `nodes::existing`): what `roll` (or `apply --replace` for the spec's own nodegroups) moves.
/// Only read, and never a reason for the plan to fail: a cluster not made yet has none.
async fn existing_nodes(spec: &crate::spec::Spec, ctx: &crate::resources::Ctx, json: bool) {
    for r in spec.resources.values() {
        // A cluster made elsewhere: its nodes are others' (a cluster the spec makes has its
        // own nodegroups, which the plan's existing-nodes warning covers, at no extra request).
        let crate::resources::ResourceConfig::Cluster(c) = &r.config else {
            continue;
        };
        if !c.existing {
            continue;
        }
        let cluster = spec.resolved_name(&c.name);
        let survey = async {
            let Some(client) = ctx.kube.client(&ctx.aws, &cluster).await? else {
                return Ok(None);
            };
            crate::nodes::existing::survey(
                spec,
                &ctx.aws,
                client,
                &cluster,
                &crate::nodes::existing::Aim::Onto,
            )
            .await
            .map(Some)
        };
        match survey.await {
            Ok(Some(s)) if json => {
                for (owner, nodes) in s.to_move() {
                    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
                    output::warning(format!(
                        "cluster {cluster}: nodes of {owner} keep node-subnet addresses: {}",
                        names.join(", ")
                    ));
                }
            }
            Ok(Some(s)) => {
                let text = crate::nodes::existing::render(&s);
                if !text.is_empty() {
                    output::data(&format!("\n{text}"));
                }
            }
            Ok(None) => {}
            Err(e) => output::warning(format!(
                "cluster {cluster}: its existing nodes could not be read ({e}); the plan does not list them"
            )),
        }
    }
}
