//! `eksnet roll SPEC`: moves the existing nodes of the spec's clusters onto custom networking
//! (see `nodes::roll`), under the state's lock, with its progress in the state.

use crate::cli::args::RollArgs;
use crate::cli::exit::{ExitStatus, Failure};
use crate::cli::lock;
use crate::cli::{output, session};
use crate::cloud::kube::KubeConnector;
use crate::nodes::{existing, roll};
use crate::resources::ResourceConfig;

pub async fn run(args: RollArgs) -> Result<ExitStatus, Failure> {
    let spec = session::load_spec(&args.spec)?;
    let clusters: Vec<String> = spec
        .resources
        .values()
        .filter_map(|r| match &r.config {
            ResourceConfig::Cluster(c) => Some(spec.resolved_name(&c.name)),
            _ => None,
        })
        .collect();
    if clusters.is_empty() {
        return Err(Failure::Message(format!(
            "{} declares no cluster: there are no nodes to roll",
            args.spec.display()
        )));
    }
    let aws = session::spec_clients(&spec).await?;
    let kube = KubeConnector::new(args.common.kube.access());
    let loc = session::state_location(&spec, &args.common.state)?;
    let (store, guard) = lock::lock(
        &loc,
        session::state_region(&spec),
        &format!("eksnet roll {}", args.spec.display()),
    )
    .await?;
    let work = async {
        let mut moved_all = Vec::new();
        for cluster in &clusters {
            let Some(client) = kube.client(&aws, cluster).await? else {
                return Err(Failure::Message(format!(
                    "cluster {cluster} was not found: there are no nodes to roll"
                )));
            };
            let survey =
                existing::survey(&spec, &aws, client.clone(), cluster, &existing::Aim::Onto)
                    .await?;
            let records = roll::records(&store, cluster).map_err(Failure::from)?;
            let order = roll::order(&survey, &records);
            let max = args.max_unavailable as usize;
            if args.dry_run {
                if args.common.json {
                    output::json_data(&order)?;
                } else {
                    output::data(&roll::render_order(cluster, &order, max));
                }
                continue;
            }
            let refusals = roll::refusals(
                &aws,
                &client,
                &survey,
                &order,
                &existing::Aim::Onto,
                args.max_unavailable as usize,
                !args.no_surge,
            )
            .await
            .map_err(Failure::from)?;
            if !refusals.is_empty() {
                for r in &refusals {
                    output::error(r);
                }
                return Err(Failure::Message(format!(
                    "roll of cluster {cluster} refused: {} reason(s) above; nothing was changed",
                    refusals.len()
                )));
            }
            if order.nodes.is_empty() && order.resumed.is_empty() {
                output::info(format!(
                    "cluster {cluster}: every node is on custom networking; nothing to roll"
                ));
                for n in &order.in_spec {
                    output::warning(format!(
                        "{} is a node of {} in this spec: `eksnet apply --replace {0}` replaces it",
                        n.name,
                        n.in_spec.as_deref().unwrap_or("?")
                    ));
                }
                continue;
            }
            output::text_only(&roll::render_order(cluster, &order, max));
            if !args.auto_approve && !session::confirm_roll().await? {
                return Err(Failure::Message("roll cancelled".into()));
            }
            let total = order.resumed.len() + order.nodes.len();
            let r = roll::Roll::new(
                roll::Target {
                    spec: &spec,
                    aws: &aws,
                    client,
                    store: &store,
                    cluster,
                },
                roll::Options {
                    max_unavailable: max,
                    surge: !args.no_surge,
                    node_timeout: args.node_timeout,
                    pause: std::time::Duration::from_secs(2).min(session::poll_cap()),
                },
                existing::Aim::Onto,
                &records,
                Box::new(output::info),
            );
            let started = std::time::Instant::now();
            match r.run(order).await {
                Ok(moved) => {
                    // Finished: the records have served their purpose.
                    roll::clear(&store, cluster).await.map_err(Failure::from)?;
                    output::info(format!(
                        "cluster {cluster}: {} node(s) moved in {:.0}s",
                        moved.len(),
                        started.elapsed().as_secs_f64()
                    ));
                    moved_all.extend(moved.into_iter().map(|(old, new)| {
                        serde_json::json!({"cluster": cluster, "old": old, "new": new})
                    }));
                }
                Err(e) => {
                    let left: Vec<String> = roll::records(&store, cluster)
                        .map_err(Failure::from)?
                        .into_values()
                        .filter(|r| r.phase != "done")
                        .map(|r| format!("{} ({})", r.node, r.phase))
                        .collect();
                    let done = roll::records(&store, cluster)
                        .map_err(Failure::from)?
                        .values()
                        .filter(|r| r.phase == "done")
                        .count();
                    output::error(&format!(
                        "roll of cluster {cluster} stopped: {done} of {total} node(s) moved; under way: {}; the others not started. Run `eksnet roll` again to go on from here.",
                        if left.is_empty() { "none".into() } else { left.join(", ") }
                    ));
                    return Err(Failure::from(e));
                }
            }
        }
        if !args.dry_run {
            if args.common.json {
                output::json_data(&moved_all)?;
            } else {
                let lines: Vec<String> = moved_all
                    .iter()
                    .map(|m| {
                        format!(
                            "{} → {}",
                            m["old"].as_str().unwrap_or("?"),
                            m["new"].as_str().unwrap_or("?")
                        )
                    })
                    .collect();
                if !lines.is_empty() {
                    output::data(&format!("{}\n", lines.join("\n")));
                }
            }
        }
        Ok::<_, Failure>(ExitStatus::Success)
    };
    guard.around(work).await
}
