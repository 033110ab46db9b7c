//! Refresh: read what exists, before any planning. Reads are batched per kind and issued
//! concurrently: first every resource the state knows by id (one wave, so a no-change plan
//! costs one round of requests), then resources found by natural key (name, VPC + CIDR) level
//! by level, because their keys may reference outputs of resources read in the level before.

use crate::addr::{Kind, ResourceAddr};
use crate::events::Event;
use crate::graph::DependencyGraph;
use crate::planner::{resolve_attrs, ObservedState};
use crate::resources::{self, Ctx, Lookup, ResourceError};
use crate::spec::Spec;
use crate::state::{ResourceStatus, StateSnapshot};
use crate::value;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Debug, thiserror::Error)]
#[error("refreshing {kind} resources: {source}")]
pub struct RefreshError {
    pub kind: Kind,
    #[source]
    pub source: ResourceError,
}

async fn refresh_batch(ctx: &Ctx, lookups: Vec<Lookup>) -> Result<ObservedState, RefreshError> {
    let mut by_kind: BTreeMap<Kind, Vec<Lookup>> = BTreeMap::new();
    for l in lookups {
        by_kind.entry(l.addr.kind).or_default().push(l);
    }
    let reads = by_kind.into_iter().map(|(kind, items)| async move {
        let found = resources::refresh(ctx, kind, &items)
            .await
            .map_err(|source| RefreshError { kind, source })?;
        Ok::<_, RefreshError>(
            items
                .into_iter()
                .map(|i| i.addr)
                .zip(found)
                .collect::<Vec<_>>(),
        )
    });
    let mut out = ObservedState::new();
    for batch in futures::future::try_join_all(reads).await? {
        out.extend(batch);
    }
    Ok(out)
}

pub async fn refresh(
    ctx: &Ctx,
    spec: &Spec,
    graph: &DependencyGraph,
    state: &StateSnapshot,
) -> Result<ObservedState, RefreshError> {
    let all: Vec<ResourceAddr> = graph.topological();
    ctx.reporter.event(Event::Refreshing {
        resources: all.len(),
    });
    let desired_raw = |a: &ResourceAddr| -> Value {
        spec.get(a)
            .map(|r| r.attrs.clone())
            .or_else(|| state.resources.get(a).map(|s| s.attrs.clone()))
            .unwrap_or(Value::Null)
    };
    // Wave 1: everything with a cloud id in the state.
    let first: Vec<Lookup> = all
        .iter()
        .filter_map(|a| {
            let s = state.resources.get(a)?;
            let id = s.cloud_id.clone()?;
            Some(Lookup {
                addr: a.clone(),
                cloud_id: Some(id),
                attrs: s.attrs.clone(),
            })
        })
        .collect();
    let mut observed = refresh_batch(ctx, first).await?;

    // Later waves: by natural key, once the dependencies are settled.
    let mut pending: Vec<ResourceAddr> = all
        .iter()
        .filter(|a| !observed.contains_key(*a))
        .cloned()
        .collect();
    while !pending.is_empty() {
        let settled: HashSet<&ResourceAddr> = observed.keys().collect();
        let (ready, rest): (Vec<ResourceAddr>, Vec<ResourceAddr>) = pending
            .iter()
            .cloned()
            .partition(|a| graph.dependencies(a).iter().all(|d| settled.contains(d)));
        if ready.is_empty() {
            // Cannot happen in an acyclic graph; never loop forever on a bug.
            for a in rest {
                observed.insert(a, None);
            }
            break;
        }
        let known: HashMap<ResourceAddr, Value> = observed
            .iter()
            .filter_map(|(a, o)| Some((a.clone(), o.as_ref()?.outputs.clone())))
            .collect();
        let mut lookups = Vec::new();
        for a in ready {
            let attrs = resolve_attrs(&desired_raw(&a), &known);
            // Only resources in the spec can be found by key, and only with a resolvable key.
            let key_known = match a.kind {
                Kind::Vpc => {
                    !value::is_unknown(attrs.get("id").unwrap_or(&Value::Null))
                        && !value::is_unknown(attrs.get("stack_name").unwrap_or(&Value::Null))
                }
                Kind::Subnet | Kind::CidrBlock => {
                    !value::is_unknown(attrs.get("vpc_id").unwrap_or(&Value::Null))
                }
                Kind::Nodegroup | Kind::AwsNode => {
                    !value::is_unknown(attrs.get("cluster_name").unwrap_or(&Value::Null))
                }
                // No Kubernetes connection is attempted for a cluster that does not exist yet:
                // its name (or the ENIConfig's) is then still "known after apply".
                Kind::EniConfig => {
                    !value::is_unknown(attrs.get("cluster_name").unwrap_or(&Value::Null))
                        && !value::is_unknown(attrs.get("name").unwrap_or(&Value::Null))
                }
                _ => !value::is_unknown(attrs.get("name").unwrap_or(&Value::Null)),
            };
            if spec.get(&a).is_none() || !key_known {
                observed.insert(a, None);
            } else {
                lookups.push(Lookup {
                    addr: a,
                    cloud_id: None,
                    attrs,
                });
            }
        }
        observed.extend(refresh_batch(ctx, lookups).await?);
        pending = rest;
    }
    recheck_intents(ctx, spec, state, &mut observed).await?;
    Ok(observed)
}

/// Resources a crashed run had started creating (state rows in `creating`) that were not found
/// may just not be visible yet: AWS reads are eventually consistent, and a create sent right
/// before the crash may still be in progress. Look again, with backoff, before the planner
/// concludes they are absent and plans a second create.
async fn recheck_intents(
    ctx: &Ctx,
    spec: &Spec,
    state: &StateSnapshot,
    observed: &mut ObservedState,
) -> Result<(), RefreshError> {
    let mut missing: Vec<ResourceAddr> = observed
        .iter()
        .filter(|(a, o)| {
            o.is_none()
                && spec.get(a).is_some()
                && state
                    .resources
                    .get(*a)
                    .is_some_and(|r| r.status == ResourceStatus::Creating)
        })
        .map(|(a, _)| a.clone())
        .collect();
    for delay_ms in [500u64, 1000, 2000, 4000] {
        if missing.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
        let known: HashMap<ResourceAddr, Value> = observed
            .iter()
            .filter_map(|(a, o)| Some((a.clone(), o.as_ref()?.outputs.clone())))
            .collect();
        let lookups: Vec<Lookup> = missing
            .iter()
            .filter_map(|a| {
                let attrs = resolve_attrs(&spec.get(a)?.attrs, &known);
                Some(Lookup {
                    addr: a.clone(),
                    cloud_id: None,
                    attrs,
                })
            })
            .collect();
        let found = refresh_batch(ctx, lookups).await?;
        for (a, o) in found {
            if o.is_some() {
                observed.insert(a, o);
            }
        }
        missing.retain(|a| observed.get(a).is_some_and(|o| o.is_none()));
    }
    Ok(())
}
