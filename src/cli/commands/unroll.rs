//! The destroy of a spec for a running cluster, in stages.
//!
//! A spec for a cluster that already runs (`existing = true`) leaves its nodes to their
//! owners, but those nodes took pod ENIs in the spec's pod subnets once custom networking was
//! on, and EC2 deletes no subnet that still holds an interface. So when nodes eksnet does not
//! own have addresses in pod subnets the plan deletes, the destroy goes in three stages: the
//! CNI settings first (put back; the spec's own nodegroups go before them), then those nodes
//! are replaced as `eksnet roll` does, their new nodes coming up without custom networking,
//! then the rest of the plan (the ENIConfigs among it: until the old nodes are gone their
//! CNI still needs them to add pod ENIs, or the evicted pods would find no address and the
//! budgets would block the drain for ever).

use crate::base::addr::Kind;
use crate::cli::args::RunOpts;
use crate::cli::exit::{ExitStatus, Failure};
use crate::cli::{output, session};
use crate::nodes::existing::{self, Aim};
use crate::nodes::roll;
use crate::plan::planner::PlanOptions;
use crate::plan::{Action, Plan};
use crate::resources::{Ctx, ResourceConfig};
use crate::spec::Spec;
use crate::state::StateStore;

/// One cluster whose nodes are in the way of the subnets' deletion.
pub struct InTheWay {
    cluster: String,
    aim: Aim,
    count: usize,
}

/// The pod subnets the plan deletes, by block.
fn deleted_pod_blocks(plan: &Plan) -> Vec<ipnet::Ipv4Net> {
    plan.changes
        .iter()
        .filter(|c| c.addr.kind == Kind::Subnet && c.action == Action::Delete)
        .filter_map(|c| c.before.as_ref()?.get("cidr_block")?.as_str()?.parse().ok())
        .collect()
}

/// Nodes not owned by the spec with pods or CNI ENIs in the pod subnets the plan deletes;
/// printed as a section of the plan.
pub async fn nodes_in_the_way(
    spec: &Spec,
    ctx: &Ctx,
    plan: &Plan,
    json: bool,
) -> Result<Vec<InTheWay>, Failure> {
    let blocks = deleted_pod_blocks(plan);
    if blocks.is_empty() {
        return Ok(vec![]);
    }
    let aim = Aim::Off(blocks);
    let mut out = Vec::new();
    for r in spec.resources.values() {
        let ResourceConfig::Cluster(c) = &r.config else {
            continue;
        };
        let cluster = spec.resolved_name(&c.name);
        // The cluster itself goes in this plan: its nodes go with it.
        if plan
            .changes
            .iter()
            .any(|ch| ch.addr == r.addr && ch.action == Action::Delete)
        {
            continue;
        }
        let Some(client) = ctx.kube.client(&ctx.aws, &cluster).await? else {
            continue;
        };
        let survey = existing::survey(spec, &ctx.aws, client, &cluster, &aim).await?;
        let moving: Vec<&existing::ExistingNode> = survey
            .nodes
            .iter()
            .filter(|n| n.needs_move() && n.in_spec.is_none())
            .collect();
        if moving.is_empty() {
            continue;
        }
        let mut text = format!(
            "\nNodes of cluster {cluster} that hold addresses in the pod subnets this destroy deletes ({}):\n",
            moving.len()
        );
        for n in &moving {
            text.push_str(&format!(
                "  ~ {} ({}, {}): {}\n",
                n.name,
                n.instance_id.as_deref().unwrap_or("no instance"),
                n.owner,
                n.reasons.join("; ")
            ));
        }
        text.push_str("  → after the CNI settings are put back, destroy replaces them one at a time as `eksnet roll` does (cordon, evict honouring PodDisruptionBudgets, terminate, wait for the new node), then deletes the subnets\n");
        if json {
            // stdout holds the plan's JSON alone: the section goes out as a warning event.
            output::warning(text.trim().to_string());
        } else {
            output::data(&text);
        }
        out.push(InTheWay {
            cluster,
            aim: aim.clone(),
            count: moving.len(),
        });
    }
    Ok(out)
}

/// The destroy in three stages (see the module's doc).
pub async fn staged(
    spec: &Spec,
    ctx: &Ctx,
    plan: &Plan,
    store: &StateStore,
    run: &RunOpts,
    in_the_way: Vec<InTheWay>,
) -> Result<ExitStatus, Failure> {
    let first_kinds = [
        Kind::Nodegroup,
        Kind::LaunchTemplate,
        Kind::AwsNode,
        Kind::Addon,
    ];
    let mut first = plan.clone();
    first.changes.retain(|c| first_kinds.contains(&c.addr.kind));
    output::info(
        "destroy, stage 1 of 3: the CNI settings put back (after the spec's own nodegroups)",
    );
    let first_report = crate::apply::apply(ctx, &first, store, run.parallelism).await?;
    if !first_report.ok() {
        return Ok(super::summary::summarise(&first, &first_report));
    }
    for w in &in_the_way {
        output::info(format!(
            "destroy, stage 2 of 3: moving {} node(s) of cluster {} off the pod subnets",
            w.count, w.cluster
        ));
        let Some(client) = ctx.kube.client(&ctx.aws, &w.cluster).await? else {
            continue;
        };
        let survey = existing::survey(spec, &ctx.aws, client.clone(), &w.cluster, &w.aim).await?;
        let records = roll::records(store, &w.cluster).map_err(Failure::from)?;
        let mut order = roll::order(&survey, &records);
        // The spec's own nodegroups are gone with stage 1.
        order.in_spec.clear();
        let refusals = roll::refusals(&ctx.aws, &client, &survey, &order, &w.aim, 1, true)
            .await
            .map_err(Failure::from)?;
        if !refusals.is_empty() {
            for r in &refusals {
                output::error(r);
            }
            return Err(Failure::Message(format!(
                "destroy stopped after stage 1: the nodes of cluster {} cannot be moved off the pod subnets ({} reason(s) above); fix them and run destroy again",
                w.cluster,
                refusals.len()
            )));
        }
        let r = roll::Roll::new(
            roll::Target {
                spec,
                aws: &ctx.aws,
                client,
                store,
                cluster: &w.cluster,
            },
            roll::Options {
                max_unavailable: 1,
                surge: true,
                node_timeout: std::time::Duration::from_secs(30 * 60),
                pause: std::time::Duration::from_secs(2).min(session::poll_cap()),
            },
            w.aim.clone(),
            &records,
            Box::new(output::info),
        );
        r.run(order).await.map_err(|e| {
            Failure::Message(format!(
                "destroy stopped in stage 2 (nodes of cluster {} still in the pod subnets): {}; run destroy again to go on",
                w.cluster,
                Failure::from(e)
            ))
        })?;
        roll::clear(store, &w.cluster)
            .await
            .map_err(Failure::from)?;
    }
    output::info("destroy, stage 3 of 3: the rest of the plan");
    let snapshot = store.snapshot()?;
    let rest = session::make_plan(
        spec,
        &snapshot,
        ctx,
        &PlanOptions {
            destroy: true,
            replace: vec![],
        },
    )
    .await?;
    let report = crate::apply::apply(ctx, &rest, store, run.parallelism).await?;
    // Counted over the whole destroy: what stage 1 did is in the first plan.
    let mut whole = plan.clone();
    whole.changes.retain(|c| {
        first.changes.iter().any(|f| f.addr == c.addr)
            || rest.changes.iter().any(|r| r.addr == c.addr)
    });
    let mut all = report;
    all.succeeded.extend(first_report.succeeded);
    Ok(super::summary::summarise(&whole, &all))
}
