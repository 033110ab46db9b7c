//! A concurrent graph walker: each node starts as soon as all its dependencies succeeded, at
//! most `parallelism` at work at once. A node that is only waiting (`idle`: the pause between
//! two polls of a nodegroup on its way to `ACTIVE`) gives its slot back meanwhile, so twenty
//! nodegroup waits run side by side under the default bound instead of in waves. When a node
//! fails, its transitive dependents are skipped (and reported once, naming the failure),
//! while independent branches run to completion.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

/// The slot of the node running in this task: its permit, held while the node works.
#[derive(Clone)]
struct Slot {
    semaphore: Arc<Semaphore>,
    held: Arc<Mutex<Option<OwnedSemaphorePermit>>>,
    /// How many `idle` calls are under way in the task: only the outermost gives the slot
    /// back and takes it again (a wait may sit inside a request that is idle already).
    idling: Arc<AtomicUsize>,
}

impl Slot {
    fn new(semaphore: Arc<Semaphore>) -> Slot {
        Slot {
            semaphore,
            held: Arc::new(Mutex::new(None)),
            idling: Arc::new(AtomicUsize::new(0)),
        }
    }

    async fn take(&self) {
        // The semaphore is never closed; were it, the node would run unbounded.
        let permit = self.semaphore.clone().acquire_owned().await.ok();
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = permit;
    }

    fn give_back(&self) {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

tokio::task_local! {
    static SLOT: Slot;
}

/// Runs `pause` (a sleep between two polls or retries, or a request that holds no lock)
/// without holding the current node's slot, and takes the slot again before going on.
/// Outside a walk it only runs `pause`. Never idle while holding a lock that other nodes
/// may wait for with their slots: taking the slot back could then wait for ever.
pub async fn idle<T>(pause: impl Future<Output = T>) -> T {
    let Ok(slot) = SLOT.try_with(Slot::clone) else {
        return pause.await;
    };
    if slot.idling.fetch_add(1, Ordering::SeqCst) == 0 {
        slot.give_back();
    }
    let out = pause.await;
    if slot.idling.fetch_sub(1, Ordering::SeqCst) == 1 {
        slot.take().await;
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<N, E> {
    Succeeded,
    Failed(E),
    /// Not run, for this reason.
    Skipped {
        because: SkipReason<N>,
    },
}

/// Why a node was not run: the node itself, not its rendering, so that callers can name it
/// however they name nodes (a destroy step is displayed with a suffix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason<N> {
    /// This node failed; it is a dependency of the skipped one, directly or through other
    /// skipped nodes (the first failure is named, not the chain).
    DependencyFailed(N),
    /// The task of a dependency panicked, a bug: it has no outcome to name.
    InternalError,
}

impl<N: std::fmt::Display> std::fmt::Display for SkipReason<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::DependencyFailed(n) => write!(f, "{n} failed"),
            SkipReason::InternalError => write!(f, "of an internal error"),
        }
    }
}

/// Walks `deps` (node → nodes it waits for). Nodes missing from `deps` as keys are ignored;
/// dependencies on nodes not in the walk are treated as satisfied.
pub async fn walk<N, E, F, Fut>(
    deps: BTreeMap<N, BTreeSet<N>>,
    parallelism: usize,
    run: F,
) -> BTreeMap<N, Outcome<N, E>>
where
    N: Ord + Clone + Hash + Send + Sync + std::fmt::Display + 'static,
    E: Send + 'static,
    F: Fn(N) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
{
    let deps: BTreeMap<N, BTreeSet<N>> = deps
        .iter()
        .map(|(n, ds)| {
            (
                n.clone(),
                ds.iter()
                    .filter(|d| deps.contains_key(*d) && *d != n)
                    .cloned()
                    .collect(),
            )
        })
        .collect();
    let mut waiting: BTreeMap<N, BTreeSet<N>> = deps.clone();
    let mut outcomes: BTreeMap<N, Outcome<N, E>> = BTreeMap::new();
    let semaphore = Arc::new(Semaphore::new(parallelism.max(1)));
    let mut running: JoinSet<(N, Result<(), E>)> = JoinSet::new();
    loop {
        // Start every node whose dependencies all succeeded; skip those with a failed one.
        let mut progressed = true;
        while progressed {
            progressed = false;
            let nodes: Vec<N> = waiting.keys().cloned().collect();
            for n in nodes {
                let Some(ds) = waiting.get(&n) else { continue };
                if let Some(bad) = ds.iter().find(|d| {
                    matches!(
                        outcomes.get(*d),
                        Some(Outcome::Failed(_)) | Some(Outcome::Skipped { .. })
                    )
                }) {
                    let because = match outcomes.get(bad) {
                        Some(Outcome::Skipped { because }) => because.clone(),
                        _ => SkipReason::DependencyFailed(bad.clone()),
                    };
                    waiting.remove(&n);
                    outcomes.insert(n, Outcome::Skipped { because });
                    progressed = true;
                } else if ds
                    .iter()
                    .all(|d| matches!(outcomes.get(d), Some(Outcome::Succeeded)))
                {
                    waiting.remove(&n);
                    let fut = run(n.clone());
                    let slot = Slot::new(semaphore.clone());
                    running.spawn(async move {
                        slot.take().await;
                        let result = SLOT.scope(slot.clone(), fut).await;
                        slot.give_back();
                        (n, result)
                    });
                }
            }
        }
        match running.join_next().await {
            Some(Ok((n, result))) => {
                outcomes.insert(
                    n,
                    match result {
                        Ok(()) => Outcome::Succeeded,
                        Err(e) => Outcome::Failed(e),
                    },
                );
            }
            // A panicking task is a bug; its node stays without outcome and its dependents
            // are reported as skipped below.
            Some(Err(_)) => {}
            None => break,
        }
    }
    for n in waiting.into_keys() {
        outcomes.insert(
            n,
            Outcome::Skipped {
                because: SkipReason::InternalError,
            },
        );
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    fn graph(
        edges: &[(&'static str, &'static str)],
        nodes: &[&'static str],
    ) -> BTreeMap<&'static str, BTreeSet<&'static str>> {
        let mut g: BTreeMap<&str, BTreeSet<&str>> =
            nodes.iter().map(|n| (*n, BTreeSet::new())).collect();
        for (before, after) in edges {
            g.entry(after).or_default().insert(before);
        }
        g
    }

    /// With one slot, two nodes that each wait for the other to have started can only both
    /// finish if waiting gives the slot back; and never do two work at once.
    #[tokio::test]
    async fn a_waiting_node_gives_its_slot_to_another() {
        let started = Arc::new(AtomicUsize::new(0));
        let working = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let g = graph(&[], &["a", "b"]);
        let walked = tokio::time::timeout(
            Duration::from_secs(10),
            walk(g, 1, |_n| {
                let (started, working, most) = (started.clone(), working.clone(), most.clone());
                async move {
                    let now = working.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    started.fetch_add(1, Ordering::SeqCst);
                    working.fetch_sub(1, Ordering::SeqCst);
                    idle(async {
                        while started.load(Ordering::SeqCst) < 2 {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    })
                    .await;
                    let now = working.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    working.fetch_sub(1, Ordering::SeqCst);
                    Ok::<(), ()>(())
                }
            }),
        )
        .await
        .expect("both nodes finish: the first one's wait lets the second start");
        assert!(
            walked.values().all(|o| *o == Outcome::Succeeded),
            "{walked:?}"
        );
        assert_eq!(most.load(Ordering::SeqCst), 1, "one node at work at a time");
    }

    /// A wait inside a request that is idle already (a retry inside a create): only the
    /// outer one gives the slot back and takes it again; with one slot, taking it twice would
    /// wait for ever.
    #[tokio::test]
    async fn nested_idles_take_the_slot_back_once() {
        let g = graph(&[], &["a", "b"]);
        let walked = tokio::time::timeout(
            Duration::from_secs(10),
            walk(g, 1, |_n| async move {
                idle(async {
                    idle(tokio::time::sleep(Duration::from_millis(5))).await;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                })
                .await;
                Ok::<(), ()>(())
            }),
        )
        .await
        .expect("no node waits for a slot it holds");
        assert!(
            walked.values().all(|o| *o == Outcome::Succeeded),
            "{walked:?}"
        );
    }

    #[tokio::test]
    async fn runs_in_dependency_order_and_in_parallel() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let g = graph(
            &[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")],
            &["a", "b", "c", "d"],
        );
        let out = walk(g, 4, |n| {
            let (order, in_flight, max) = (order.clone(), in_flight.clone(), max.clone());
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(30)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                order.lock().unwrap().push(n);
                Ok::<(), String>(())
            }
        })
        .await;
        assert!(out.values().all(|o| *o == Outcome::Succeeded));
        let order = order.lock().unwrap().clone();
        assert_eq!(order.first(), Some(&"a"));
        assert_eq!(order.last(), Some(&"d"));
        assert_eq!(max.load(Ordering::SeqCst), 2, "b and c run at once");
    }

    #[tokio::test]
    async fn failure_skips_dependents_only() {
        let g = graph(
            &[("a", "b"), ("b", "c"), ("x", "y")],
            &["a", "b", "c", "x", "y"],
        );
        let out = walk(g, 1, |n| async move {
            if n == "a" {
                Err("boom".to_string())
            } else {
                Ok(())
            }
        })
        .await;
        assert_eq!(out["a"], Outcome::Failed("boom".into()));
        assert_eq!(
            out["b"],
            Outcome::Skipped {
                because: SkipReason::DependencyFailed("a")
            }
        );
        assert_eq!(
            out["c"],
            Outcome::Skipped {
                because: SkipReason::DependencyFailed("a")
            }
        );
        assert_eq!(out["x"], Outcome::Succeeded);
        assert_eq!(out["y"], Outcome::Succeeded);
    }

    #[tokio::test]
    async fn parallelism_bounds_concurrency() {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let g = graph(&[], &["a", "b", "c", "d", "e"]);
        walk(g, 2, |_| {
            let (in_flight, max) = (in_flight.clone(), max.clone());
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok::<(), String>(())
            }
        })
        .await;
        assert_eq!(max.load(Ordering::SeqCst), 2);
    }
}
