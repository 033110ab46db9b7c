//! Refresh: read what exists, before any planning. Reads are batched per kind and issued
//! concurrently in waves. The first wave has every resource the state knows by id (so a
//! no-change plan costs one round of requests) and every resource whose natural key (name,
//! VPC + CIDR) is written in the spec; later waves the resources whose keys reference
//! outputs of resources read in the wave before.

use crate::base::addr::{Kind, ResourceAddr};
use crate::base::events::Event;
use crate::base::value;
use crate::plan::graph::DependencyGraph;
use crate::resources::{self, Ctx, Lookup, ObservedState, ResourceError};
use crate::spec::Spec;
use crate::state::{ResourceStatus, StateSnapshot};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, thiserror::Error)]
#[error("refreshing {kind} resources: {source}")]
pub struct RefreshError {
    pub kind: Kind,
    #[source]
    pub source: ResourceError,
}

async fn read_kind(
    ctx: &Ctx,
    kind: Kind,
    items: Vec<Lookup>,
) -> Result<Vec<(ResourceAddr, Option<crate::resources::Observed>)>, RefreshError> {
    let found = resources::refresh(ctx, kind, &items)
        .await
        .map_err(|source| RefreshError { kind, source })?;
    Ok(items.into_iter().map(|i| i.addr).zip(found).collect())
}

/// One wave: each kind's reads run concurrently with the others'. The Kubernetes kinds go
/// after the clusters of the same wave, because a Kubernetes client needs the cluster's
/// endpoint, which the cluster's read supplies; started together they would each describe
/// the cluster, and the chain (DescribeCluster, then the Kubernetes GET) is the same length.
async fn refresh_batch(ctx: &Ctx, lookups: Vec<Lookup>) -> Result<ObservedState, RefreshError> {
    let mut by_kind: BTreeMap<Kind, Vec<Lookup>> = BTreeMap::new();
    for l in lookups {
        by_kind.entry(l.addr.kind).or_default().push(l);
    }
    let endpoint_kinds: Vec<Kind> = Kind::ALL
        .iter()
        .copied()
        .filter(|k| resources::facts(*k).kubernetes_endpoint)
        .collect();
    let clusters: Vec<(Kind, Vec<Lookup>)> = endpoint_kinds
        .iter()
        .filter_map(|k| Some((*k, by_kind.remove(k)?)))
        .collect();
    let kube: Vec<(Kind, Vec<Lookup>)> = Kind::ALL
        .iter()
        .filter(|k| resources::facts(**k).kubernetes)
        .filter_map(|k| Some((*k, by_kind.remove(k)?)))
        .collect();
    let aws_reads = futures::future::try_join_all(
        by_kind
            .into_iter()
            .map(|(kind, items)| read_kind(ctx, kind, items)),
    );
    let cluster_then_kube = async {
        let mut out = Vec::new();
        for batch in futures::future::try_join_all(
            clusters
                .into_iter()
                .map(|(kind, items)| read_kind(ctx, kind, items)),
        )
        .await?
        {
            out.extend(batch);
        }
        let kube_reads = kube
            .into_iter()
            .map(|(kind, items)| read_kind(ctx, kind, items));
        for batch in futures::future::try_join_all(kube_reads).await? {
            out.extend(batch);
        }
        Ok::<_, RefreshError>(out)
    };
    let (aws, clusters_and_kube) = futures::future::try_join(aws_reads, cluster_then_kube).await?;
    let mut out = ObservedState::new();
    for batch in aws {
        out.extend(batch);
    }
    out.extend(clusters_and_kube);
    Ok(out)
}

/// True when every key field is known. A missing field counts as known (it is optional or
/// the lookup does without it), an unresolved reference anywhere inside it does not.
fn key_known(kind: Kind, attrs: &Value) -> bool {
    resources::facts(kind)
        .lookup_key
        .iter()
        .all(|f| !contains_unknown(attrs.get(*f).unwrap_or(&Value::Null)))
}

fn contains_unknown(v: &Value) -> bool {
    value::is_unknown(v)
        || match v {
            Value::Array(items) => items.iter().any(contains_unknown),
            Value::Object(m) => m.values().any(contains_unknown),
            _ => false,
        }
}

pub async fn refresh(
    ctx: &Ctx,
    spec: &Spec,
    graph: &DependencyGraph,
    state: &StateSnapshot,
) -> Result<ObservedState, RefreshError> {
    refresh_importing(ctx, spec, graph, state, None).await
}

/// Refresh, with one resource of the spec (not in the state) read by the cloud id the user
/// gave to `eksnet import` instead of by its natural key. It is read once its dependencies
/// are settled, with its spec attributes resolved, because some kinds need them for a read by
/// id (a block's VPC, an ENIConfig's cluster).
pub async fn refresh_importing(
    ctx: &Ctx,
    spec: &Spec,
    graph: &DependencyGraph,
    state: &StateSnapshot,
    import: Option<(&ResourceAddr, &str)>,
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
    // Everything with a cloud id in the state is read by that id, in the first wave.
    let mut by_id: Vec<Lookup> = all
        .iter()
        .filter_map(|a| {
            let s = state.resources.get(a)?;
            let id = s.cloud_id.clone()?;
            Some(Lookup {
                addr: a.clone(),
                cloud_id: Some(id),
                attrs: s.attrs.clone(),
                last_outputs: s.outputs.clone(),
            })
        })
        .collect();
    let mut observed = ObservedState::new();

    // The others by natural key, as soon as the key is known: those written in the spec in
    // the first wave too (after a crash, a state holds some ids and not others; one round
    // trip either way), those that reference other resources' outputs once these are read. A
    // resource whose key stays unknown once all its dependencies are settled (it depends on
    // something absent) cannot exist under that key yet, so it is absent.
    let mut pending: Vec<ResourceAddr> = all
        .iter()
        .filter(|a| !by_id.iter().any(|l| &l.addr == *a))
        .cloned()
        .collect();
    while !pending.is_empty() || !by_id.is_empty() {
        let known: HashMap<ResourceAddr, Value> = observed
            .iter()
            .filter_map(|(a, o)| Some((a.clone(), o.as_ref()?.outputs.clone())))
            .collect();
        let mut lookups = std::mem::take(&mut by_id);
        let mut rest = Vec::new();
        let mut decided = false;
        for a in pending {
            // Only resources in the spec can be found by key.
            if spec.get(&a).is_none() {
                observed.insert(a, None);
                decided = true;
                continue;
            }
            let attrs = value::resolve_known(&desired_raw(&a), &known);
            let deps_settled = || {
                graph
                    .dependencies(&a)
                    .iter()
                    .all(|d| observed.contains_key(d))
            };
            if let Some((_, id)) = import.filter(|(ia, _)| **ia == a) {
                if deps_settled() {
                    lookups.push(Lookup {
                        addr: a,
                        cloud_id: Some(id.to_string()),
                        attrs,
                        last_outputs: Value::Null,
                    });
                } else {
                    rest.push(a);
                }
                continue;
            }
            if key_known(a.kind, &attrs) {
                lookups.push(Lookup {
                    addr: a,
                    cloud_id: None,
                    attrs,
                    last_outputs: Value::Null,
                });
            } else if deps_settled() {
                observed.insert(a, None);
                decided = true;
            } else {
                rest.push(a);
            }
        }
        if lookups.is_empty() && !decided {
            // Cannot happen in an acyclic graph; never loop forever on a bug.
            for a in rest {
                observed.insert(a, None);
            }
            break;
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
    use crate::base::retry::{Backoff, Step, Stop};
    let known: HashMap<ResourceAddr, Value> = observed
        .iter()
        .filter_map(|(a, o)| Some((a.clone(), o.as_ref()?.outputs.clone())))
        .collect();
    // An intent whose natural key is still unknown (it needs the outputs of something absent)
    // was never sent: apply announces every create before the first one starts.
    let missing: Vec<ResourceAddr> = observed
        .iter()
        .filter(|(a, o)| {
            o.is_none()
                && spec
                    .get(a)
                    .is_some_and(|r| key_known(a.kind, &value::resolve_known(&r.attrs, &known)))
                && state
                    .resources
                    .get(*a)
                    .is_some_and(|r| r.status == ResourceStatus::Creating)
        })
        .map(|(a, _)| a.clone())
        .collect();
    // Each look reads `missing` and `observed` before its requests and updates them after;
    // the attempts run one at a time, so the lock is never contended.
    let looking = tokio::sync::Mutex::new((observed, missing));
    let result = crate::base::retry::run(
        &Backoff::recheck(),
        |attempt| {
            let looking = &looking;
            async move {
                let mut guard = looking.lock().await;
                let (observed, missing) = &mut *guard;
                // Attempt 1 is the refresh already made: only its result is looked at.
                if attempt > 1 {
                    let known: HashMap<ResourceAddr, Value> = observed
                        .iter()
                        .filter_map(|(a, o)| Some((a.clone(), o.as_ref()?.outputs.clone())))
                        .collect();
                    // An intent that names its cloud id (a create-before-destroy replacement,
                    // whose old object still holds the spec's name) is looked for by that id.
                    let lookups: Vec<Lookup> = missing
                        .iter()
                        .filter_map(|a| {
                            let attrs = value::resolve_known(&spec.get(a)?.attrs, &known);
                            Some(Lookup {
                                addr: a.clone(),
                                cloud_id: state.resources.get(a).and_then(|r| r.cloud_id.clone()),
                                attrs,
                                last_outputs: Value::Null,
                            })
                        })
                        .collect();
                    let found = match refresh_batch(ctx, lookups).await {
                        Ok(found) => found,
                        Err(e) => return Step::Fail(e),
                    };
                    for (a, o) in found {
                        if o.is_some() {
                            observed.insert(a, o);
                        }
                    }
                    missing.retain(|a| observed.get(a).is_some_and(|o| o.is_none()));
                }
                if missing.is_empty() {
                    Step::Done(())
                } else {
                    Step::Retry(())
                }
            }
        },
        |_, _| {},
    )
    .await;
    match result {
        // Still missing after the last look: absent, and the planner plans their create.
        Ok(()) | Err(Stop::Exhausted { .. }) => Ok(()),
        Err(Stop::Failed(e)) => Err(e),
    }
}
