//! The executor: carries out a plan exactly, making no decisions of its own. Each change
//! becomes one or two walker nodes (a replace is a destroy node then an apply node); creates
//! follow dependencies, destroys go in reverse. Before the first request the intent of every
//! create is stored (`announce`), and the state is written after each finished step, so a
//! crash never loses a created resource.

use crate::base::addr::{Kind, ResourceAddr};
use crate::base::events::Event;
use crate::base::value;
use crate::base::walker::{self, Outcome, SkipReason};
use crate::plan::{Action, Plan, PlannedChange};
use crate::resources::{self, Ctx, ResourceError};
use crate::state::{Deposed, ResourceStatus, StateError, StateResource, StateSnapshot};
use crate::state::{Durability, StateStore};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A saved plan no longer matches the state.
    #[error("the saved plan is stale: it was made for {}, but the state is now {}; run `eksnet plan` again", describe_state(plan_lineage, *plan_serial), describe_state(lineage, *serial))]
    StalePlan {
        plan_lineage: String,
        plan_serial: i64,
        lineage: String,
        serial: i64,
    },
    #[error(transparent)]
    State(#[from] StateError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    Destroy,
    Apply,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Step {
    pub addr: ResourceAddr,
    pub phase: Phase,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.phase {
            Phase::Apply => write!(f, "{}", self.addr),
            Phase::Destroy => write!(f, "{} (destroy)", self.addr),
        }
    }
}

/// How one apply went, per resource.
#[derive(Debug, Default)]
pub struct ApplyReport {
    pub succeeded: Vec<Step>,
    pub failed: Vec<(Step, String)>,
    pub skipped: Vec<(Step, SkipReason<Step>)>,
}

impl ApplyReport {
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.skipped.is_empty()
    }
}

/// The walk's dependency map for a plan (see module docs).
pub fn steps(plan: &Plan, state: &StateSnapshot) -> BTreeMap<Step, BTreeSet<Step>> {
    let mut deps: BTreeMap<Step, BTreeSet<Step>> = BTreeMap::new();
    let by_addr: HashMap<&ResourceAddr, &PlannedChange> =
        plan.changes.iter().map(|c| (&c.addr, c)).collect();
    for c in &plan.changes {
        for p in phases(c) {
            deps.entry(Step {
                addr: c.addr.clone(),
                phase: *p,
            })
            .or_default();
        }
        let apply = Step {
            addr: c.addr.clone(),
            phase: Phase::Apply,
        };
        let destroy = Step {
            addr: c.addr.clone(),
            phase: Phase::Destroy,
        };
        // Destroy-first replacement: the old goes, then the new comes. Otherwise, a destroy
        // step beside an apply step deletes old objects once the new one is ready.
        match phases(c) {
            [Phase::Destroy, Phase::Apply] => {
                deps.entry(apply).or_default().insert(destroy);
            }
            [Phase::Apply, Phase::Destroy] => {
                deps.entry(destroy).or_default().insert(apply);
            }
            _ => {}
        }
    }
    // For each "b depends on a": apply a before apply b; destroy b before destroy a.
    let mut pairs: BTreeSet<(ResourceAddr, ResourceAddr)> = BTreeSet::new();
    for c in &plan.changes {
        for d in &c.dependencies {
            pairs.insert((d.clone(), c.addr.clone()));
        }
        if let Some(s) = state.resources.get(&c.addr) {
            for d in &s.dependencies {
                pairs.insert((d.clone(), c.addr.clone()));
            }
        }
    }
    let hands_over = |a: &ResourceAddr| by_addr.get(a).is_some_and(|c| !c.hands_over_to.is_empty());
    for (a, b) in pairs {
        let (Some(ca), Some(cb)) = (by_addr.get(&a), by_addr.get(&b)) else {
            continue;
        };
        if phases(ca).contains(&Phase::Apply) && phases(cb).contains(&Phase::Apply) {
            deps.entry(Step {
                addr: b.clone(),
                phase: Phase::Apply,
            })
            .or_default()
            .insert(Step {
                addr: a.clone(),
                phase: Phase::Apply,
            });
        }
        // A removal that hands over waits for nothing to be deleted: it only gives something
        // back (and waiting could close a cycle through what takes over).
        if phases(ca).contains(&Phase::Destroy)
            && phases(cb).contains(&Phase::Destroy)
            && !hands_over(&a)
        {
            deps.entry(Step {
                addr: a.clone(),
                phase: Phase::Destroy,
            })
            .or_default()
            .insert(Step {
                addr: b.clone(),
                phase: Phase::Destroy,
            });
        }
        // A dependent that stays must let go of what is deleted before it goes (e.g. a
        // cluster updated away from a subnet that is removed).
        // Nothing refers to a removal that hands over (its edges are orderings, not
        // references), and what takes over — so everything after it — waits for it.
        if phases(cb) == [Phase::Apply] && phases(ca) == [Phase::Destroy] && !hands_over(&a) {
            deps.entry(Step {
                addr: a.clone(),
                phase: Phase::Destroy,
            })
            .or_default()
            .insert(Step {
                addr: b.clone(),
                phase: Phase::Apply,
            });
        }
    }
    for old in plan
        .changes
        .iter()
        .filter(|c| phases(c).contains(&Phase::Destroy))
    {
        for new in &old.hands_over_to {
            deps.entry(Step {
                addr: new.clone(),
                phase: Phase::Apply,
            })
            .or_default()
            .insert(Step {
                addr: old.addr.clone(),
                phase: Phase::Destroy,
            });
        }
    }
    deps
}

/// The steps of one change, in the order they run.
fn phases(c: &PlannedChange) -> &'static [Phase] {
    match c.action {
        Action::Create | Action::Update | Action::Adopt | Action::NoOp if c.deposed.is_empty() => {
            &[Phase::Apply]
        }
        Action::Create | Action::Update | Action::Adopt | Action::NoOp => {
            &[Phase::Apply, Phase::Destroy]
        }
        Action::Replace if c.create_before_destroy => &[Phase::Apply, Phase::Destroy],
        Action::Replace => &[Phase::Destroy, Phase::Apply],
        Action::Delete | Action::Forget | Action::PutBack => &[Phase::Destroy],
    }
}

struct Shared {
    state: StateStore,
    /// Identities held: those of the state's rows this apply keeps, and those it creates as
    /// their values become known; a delete gives its own up.
    claims: Mutex<Claims>,
    outputs: Mutex<HashMap<ResourceAddr, Value>>,
    changes: HashMap<ResourceAddr, PlannedChange>,
    prior: StateSnapshot,
    /// Creates whose intent was stored before the walk (`announce`), and those of them whose
    /// step has started.
    announced: BTreeSet<ResourceAddr>,
    started: Mutex<BTreeSet<ResourceAddr>>,
}

/// A state as a stale-plan message names it; a plan made before any state existed has none.
fn describe_state(lineage: &str, serial: i64) -> String {
    if lineage.is_empty() {
        "no state (none existed yet)".to_string()
    } else {
        format!("lineage {lineage} serial {serial}")
    }
}

/// Checks that a saved plan was made against the current state.
pub fn check_fresh(plan: &Plan, state: &StateStore) -> Result<(), ApplyError> {
    let lineage = state.lineage()?;
    let serial = state.serial()?;
    if plan.state_lineage != lineage || plan.state_serial != serial {
        return Err(ApplyError::StalePlan {
            plan_lineage: plan.state_lineage.clone(),
            plan_serial: plan.state_serial,
            lineage,
            serial,
        });
    }
    Ok(())
}

pub async fn apply(
    ctx: &Ctx,
    plan: &Plan,
    state: &StateStore,
    parallelism: usize,
) -> Result<ApplyReport, ApplyError> {
    // Nothing is sent to AWS on a state read that turned out stale.
    state.verified().await?;
    let prior = state.snapshot()?;
    let outputs: HashMap<ResourceAddr, Value> = prior
        .resources
        .iter()
        .filter(|(_, r)| r.status == ResourceStatus::Present)
        .map(|(a, r)| (a.clone(), r.outputs.clone()))
        .chain(
            plan.changes
                .iter()
                .filter_map(|c| Some((c.addr.clone(), c.observed_outputs.clone()?))),
        )
        .collect();
    let deps = steps(plan, &prior);
    let leaving = |a: &ResourceAddr| {
        plan.changes.iter().any(|c| {
            &c.addr == a && matches!(c.action, Action::Delete | Action::Forget | Action::PutBack)
        })
    };
    let mut claims = Claims::default();
    for (a, r) in prior.resources.iter().filter(|(a, _)| !leaving(a)) {
        // Two rows with one identity are a problem of an older state; the next create of
        // either is refused.
        let _ = claims.claim(a, &r.attrs);
    }
    let announced = announce(state, plan, &outputs).await?;
    let shared = Arc::new(Shared {
        state: state.clone(),
        claims: Mutex::new(claims),
        outputs: Mutex::new(outputs),
        changes: plan
            .changes
            .iter()
            .map(|c| (c.addr.clone(), c.clone()))
            .collect(),
        prior,
        announced,
        started: Mutex::new(BTreeSet::new()),
    });
    let outcomes = walker::walk(deps, parallelism, |step: Step| {
        let shared = shared.clone();
        let ctx = ctx.clone();
        async move {
            let Some(change) = shared.changes.get(&step.addr).cloned() else {
                return Err(format!("no planned change for {}", step.addr));
            };
            let start = Instant::now();
            let verb = verb(change.action, step.phase);
            let reportable = change.action != Action::NoOp || step.phase == Phase::Destroy;
            if reportable {
                ctx.reporter.event(Event::Started {
                    addr: step.addr.clone(),
                    action: verb.to_string(),
                });
            }
            match run_step(&ctx, &shared, &change, step.phase).await {
                Ok(cloud_id) => {
                    if reportable {
                        ctx.reporter.event(Event::Finished {
                            addr: step.addr.clone(),
                            action: verb.to_string(),
                            elapsed: start.elapsed(),
                            cloud_id,
                        });
                    }
                    Ok(())
                }
                Err(e) => {
                    let msg = e.to_string();
                    ctx.reporter.event(Event::Failed {
                        addr: step.addr.clone(),
                        action: verb.to_string(),
                        error: msg.clone(),
                    });
                    Err(msg)
                }
            }
        }
    })
    .await;
    let mut report = ApplyReport::default();
    for (step, outcome) in outcomes {
        match outcome {
            Outcome::Succeeded => report.succeeded.push(step),
            Outcome::Failed(e) => report.failed.push((step, e)),
            Outcome::Skipped { because } => {
                // Every skipped step gets its event, a destroy step's too: the reason is the
                // failed step itself, whose address is named whatever its phase.
                if let SkipReason::DependencyFailed(failed) = &because {
                    ctx.reporter.event(Event::Skipped {
                        addr: step.addr.clone(),
                        because: failed.addr.clone(),
                    });
                }
                report.skipped.push((step, because));
            }
        }
    }
    withdraw_unstarted(&shared).await?;
    drop(shared);
    // Results still waiting to be stored (a shared state) are stored before the apply ends.
    state.flush().await?;
    Ok(report)
}

fn verb(action: Action, phase: Phase) -> &'static str {
    match (action, phase) {
        (Action::Create | Action::Update | Action::Adopt | Action::NoOp, Phase::Destroy) => {
            "destroy old object"
        }
        (Action::Create, _) => "create",
        (Action::Update, _) => "update",
        (Action::Replace, Phase::Destroy) => "destroy (replace)",
        (Action::Replace, Phase::Apply) => "create (replace)",
        (Action::Delete, _) => "destroy",
        (Action::Adopt, _) => "adopt",
        (Action::Forget, _) => "forget",
        (Action::PutBack, _) => "put back",
        (Action::NoOp, _) => "refresh",
    }
}

#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Resource(#[from] ResourceError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{0}")]
    Unresolved(String),
    #[error("{0}")]
    Conflict(String),
}

/// Intents (`Durability::Now`) are stored before the request they announce; results
/// (`Soon`) ride with the next intent, so a shared state adds one round trip per resource.
async fn put(
    shared: &Shared,
    addr: &ResourceAddr,
    r: &StateResource,
    durability: Durability,
) -> Result<(), StateError> {
    shared.state.put(addr, r, durability).await
}

async fn remove(shared: &Shared, addr: &ResourceAddr) -> Result<(), StateError> {
    shared.state.remove(addr, Durability::Soon).await
}

/// Stores the intent of every create of the plan in one write, before the first request:
/// with a shared state, a write is a round trip, and one per create would lie on the
/// critical path (a create cannot be sent before its intent is stored). An intent only says
/// "this may exist now": a resource that is not found after a crash is looked up by its
/// natural key from the spec, intent or not, so announcing a create that is then never
/// started costs nothing but a second look. Values known only after other creates stay
/// unresolved in the announcement; the create's own step stores them. A replace is not
/// announced: its row still names the object it replaces.
async fn announce(
    state: &StateStore,
    plan: &Plan,
    known: &HashMap<ResourceAddr, Value>,
) -> Result<BTreeSet<ResourceAddr>, StateError> {
    let mut announced = BTreeSet::new();
    // A create that resumes a replacement keeps its row, which lists the old object still to
    // delete; its step stores its intent (`Durability::Now`) itself.
    for c in plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Create && c.deposed.is_empty())
    {
        let attrs = value::resolve_known(c.after.as_ref().unwrap_or(&Value::Null), known);
        state
            .put(&c.addr, &intent(attrs, c), Durability::Soon)
            .await?;
        announced.insert(c.addr.clone());
    }
    if !announced.is_empty() {
        state.flush().await?;
    }
    Ok(announced)
}

/// Takes back the announcements of creates that never started (a dependency failed): their
/// rows go back to what the state held before the apply, so the next plan does not look
/// for them twice.
async fn withdraw_unstarted(shared: &Shared) -> Result<(), StateError> {
    let started = shared
        .started
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    for a in shared.announced.difference(&started) {
        match shared.prior.resources.get(a) {
            Some(r) => shared.state.put(a, r, Durability::Soon).await?,
            None => shared.state.remove(a, Durability::Soon).await?,
        }
    }
    Ok(())
}

/// The row stored before a create is sent.
fn intent(attrs: Value, change: &PlannedChange) -> StateResource {
    StateResource {
        status: ResourceStatus::Creating,
        cloud_id: None,
        attrs,
        outputs: Value::Object(Default::default()),
        dependencies: change.dependencies.clone(),
        prevent_destroy: change.prevent_destroy,
        deposed: vec![],
    }
}

/// Resolves "known after apply" values from the outputs produced so far.
fn resolve_after(shared: &Shared, change: &PlannedChange) -> Result<Value, StepError> {
    let after = change.after.clone().unwrap_or(Value::Null);
    let outputs = shared
        .outputs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let resolved = value::resolve(&after, &|r| {
        outputs
            .get(&r.addr)
            .and_then(|o| value::lookup_path(o, &r.path))
    });
    if value::is_unknown(&resolved) {
        let missing: Vec<String> = value::references(&resolved)
            .iter()
            .map(resources::missing_output)
            .collect();
        return Err(StepError::Unresolved(missing.join("; ")));
    }
    Ok(resolved)
}

async fn run_step(
    ctx: &Ctx,
    shared: &Shared,
    change: &PlannedChange,
    phase: Phase,
) -> Result<Option<String>, StepError> {
    let addr = &change.addr;
    let prior = shared.prior.resources.get(addr);
    match (change.action, phase) {
        (_, Phase::Destroy)
            if !matches!(change.action, Action::Delete | Action::PutBack)
                && !destroys_first(change) =>
        {
            // Old objects only (a create-before-destroy replacement's, or those an interrupted
            // one left): the address keeps its row, its new object and its outputs.
            let old = deposed_now(shared, addr)?;
            let last = old.last().map(|d| d.cloud_id.clone());
            delete_deposed(ctx, shared, addr, old).await?;
            if change.action == Action::Forget {
                remove(shared, addr).await?;
            }
            Ok(last)
        }
        // A put-back is carried out by the kind's `delete`, which puts an object made
        // elsewhere back as it was instead of deleting it; the row goes the same way.
        (Action::Delete | Action::Replace | Action::PutBack, Phase::Destroy) => {
            delete_deposed(ctx, shared, addr, deposed_now(shared, addr)?).await?;
            let prior = shared.state.snapshot()?.resources.get(addr).cloned();
            let prior = prior.as_ref();
            let Some(id) = change
                .cloud_id
                .clone()
                .or_else(|| prior.and_then(|p| p.cloud_id.clone()))
            else {
                remove(shared, addr).await?;
                return Ok(None);
            };
            let attrs = change
                .before
                .clone()
                .or_else(|| prior.map(|p| p.attrs.clone()))
                .unwrap_or(Value::Null);
            if let Some(p) = prior {
                put(
                    shared,
                    addr,
                    &StateResource {
                        status: ResourceStatus::Deleting,
                        ..p.clone()
                    },
                    Durability::Now,
                )
                .await?;
            }
            let prior_outputs = prior.map(|p| p.outputs.clone()).unwrap_or(Value::Null);
            resources::delete(ctx, addr, &id, &attrs, &prior_outputs).await?;
            remove(shared, addr).await?;
            // Gone from AWS: what it held may be taken by another address (two replaced
            // subnets swapping ranges).
            shared
                .claims
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .release(addr);
            shared
                .outputs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(addr);
            Ok(Some(id))
        }
        (Action::Create | Action::Replace, Phase::Apply) => {
            let attrs = resolve_after(shared, change)?;
            claim(shared, addr, &attrs)?;
            // What the new object must outlive: the old one of a create-before-destroy
            // replacement, or those an interrupted one left. Those left over go first when
            // there is a current object to serve meanwhile (they may hold the name wanted).
            // Read from the row as it is now: a destroy-first replacement's destroy step has
            // already deleted them with the row.
            let mut deposed = deposed_now(shared, addr)?;
            if change.create_before_destroy && change.action == Action::Replace {
                delete_deposed(ctx, shared, addr, std::mem::take(&mut deposed)).await?;
                if let Some(id) = &change.cloud_id {
                    deposed.push(Deposed {
                        cloud_id: id.clone(),
                        attrs: change
                            .before
                            .clone()
                            .or_else(|| prior.map(|p| p.attrs.clone()))
                            .unwrap_or(Value::Null),
                        outputs: change
                            .observed_outputs
                            .clone()
                            .or_else(|| prior.map(|p| p.outputs.clone()))
                            .unwrap_or(Value::Null),
                    });
                }
            }
            if let Some(old) = deposed.last() {
                let Some((create_attrs, id)) = resources::facts(addr.kind)
                    .replacement
                    .and_then(|name| name(&attrs, &old.cloud_id))
                else {
                    return Err(StepError::Conflict(format!(
                        "{addr}: no name for a replacement beside `{}`",
                        old.cloud_id
                    )));
                };
                // The old objects and the new one's cloud id are stored before the create is
                // sent: after a crash, the new one is looked for by that id, and the old ones
                // are still deleted.
                put(
                    shared,
                    addr,
                    &StateResource {
                        cloud_id: Some(id),
                        deposed: deposed.clone(),
                        ..intent(attrs.clone(), change)
                    },
                    Durability::Now,
                )
                .await?;
                let obs = resources::create(ctx, addr, &create_attrs).await?;
                let row = StateResource {
                    deposed,
                    ..present(shared, change, attrs, obs.cloud_id.clone(), obs.outputs)?
                };
                record(shared, change, row).await?;
                return Ok(Some(obs.cloud_id));
            }
            // Intent first: if we die between AWS's answer and the next write, the next refresh
            // looks this resource up by its natural key and adopts it. An announced create's
            // intent is stored already; its resolved values ride with the next write.
            let announced = change.action == Action::Create && shared.announced.contains(addr);
            if announced {
                shared
                    .started
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(addr.clone());
            }
            let durability = if announced {
                Durability::Soon
            } else {
                Durability::Now
            };
            put(shared, addr, &intent(attrs.clone(), change), durability).await?;
            let obs = resources::create(ctx, addr, &attrs).await?;
            let row = present(shared, change, attrs, obs.cloud_id.clone(), obs.outputs)?;
            record(shared, change, row).await?;
            Ok(Some(obs.cloud_id))
        }
        (Action::Update, _) => {
            let attrs = resolve_after(shared, change)?;
            let id = change.cloud_id.clone().unwrap_or_default();
            let before = change.before.clone().unwrap_or(Value::Null);
            let prior_outputs = match prior {
                Some(p) => p.outputs.clone(),
                // Found in place with no row yet (an existing add-on, aws-node's DaemonSet,
                // one found by its lineage tag after a crash): recorded as found, before the
                // update is sent, as a create's intent is. What refresh worked out from it as
                // it was (an existing add-on's configuration values from before eksnet, which
                // destroy puts back) then outlives a crash during the update.
                None => {
                    let found = change
                        .observed_outputs
                        .clone()
                        .unwrap_or_else(|| Value::Object(Default::default()));
                    let row = StateResource {
                        status: ResourceStatus::Present,
                        cloud_id: Some(id.clone()),
                        attrs: before.clone(),
                        outputs: found.clone(),
                        dependencies: change.dependencies.clone(),
                        prevent_destroy: change.prevent_destroy,
                        deposed: vec![],
                    };
                    put(shared, addr, &row, Durability::Now).await?;
                    found
                }
            };
            let obs = resources::update(
                ctx,
                addr,
                &id,
                resources::Change {
                    before: &before,
                    after: &attrs,
                    prior_outputs: &prior_outputs,
                },
            )
            .await?;
            let row = present(shared, change, attrs, obs.cloud_id.clone(), obs.outputs)?;
            record(shared, change, row).await?;
            Ok(Some(obs.cloud_id))
        }
        (Action::Adopt, _) | (Action::NoOp, _) => {
            let attrs = resolve_after(shared, change)
                .unwrap_or_else(|_| change.after.clone().unwrap_or(Value::Null));
            // Something found rather than created (after a crash) may still be on its way.
            let settled = match (change.action, &change.cloud_id) {
                (Action::Adopt, Some(id)) => resources::settle(ctx, addr, id, &attrs).await?,
                _ => None,
            };
            // Refreshed outputs win, but outputs eksnet computed itself and AWS cannot return
            // (aws-node's `previous_env`) must survive a no-op.
            let mut outputs = prior
                .map(|p| p.outputs.clone())
                .filter(Value::is_object)
                .unwrap_or_else(|| Value::Object(Default::default()));
            if let (Some(m), Some(Value::Object(live))) = (
                outputs.as_object_mut(),
                &settled
                    .map(|o| o.outputs)
                    .or_else(|| change.observed_outputs.clone()),
            ) {
                for (k, v) in live {
                    m.insert(k.clone(), v.clone());
                }
            }
            let same = prior.is_some_and(|p| {
                p.status == ResourceStatus::Present
                    && p.outputs == outputs
                    && p.dependencies == change.dependencies
                    && p.prevent_destroy == change.prevent_destroy
                    && p.attrs == attrs
            });
            if !same {
                let id = change.cloud_id.clone().unwrap_or_default();
                record(shared, change, present(shared, change, attrs, id, outputs)?).await?;
            }
            Ok(change.cloud_id.clone())
        }
        // Steps never built for these pairs (see `steps`).
        (Action::Delete | Action::Forget | Action::PutBack, Phase::Apply)
        | (Action::Create | Action::Forget, Phase::Destroy) => Ok(None),
    }
}

/// Refuses to create an object another address already holds. Validation catches this when
/// the spec spells out both identities; this catches what only AWS could tell, such as two
/// ENIConfigs named after subnets that turn out to be in the same AZ.
fn claim(shared: &Shared, addr: &ResourceAddr, attrs: &Value) -> Result<(), StepError> {
    shared
        .claims
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .claim(addr, attrs)
        .map_err(StepError::Conflict)
}

/// Which address holds each object identity (`resources::identity`).
#[derive(Debug, Default)]
struct Claims(HashMap<(Kind, String), ResourceAddr>);

impl Claims {
    /// Takes the identity `attrs` give `addr`, unless another address holds it. An identity
    /// not known yet claims nothing.
    fn claim(&mut self, addr: &ResourceAddr, attrs: &Value) -> Result<(), String> {
        let Some(id) = resources::identity(addr.kind, attrs) else {
            return Ok(());
        };
        match self.0.get(&(addr.kind, id.clone())) {
            Some(other) if other != addr => Err(format!(
                "`{addr}` and `{other}` are the same {} (`{id}`): nothing was created for \
                 `{addr}`; change one of them in the spec",
                addr.kind
            )),
            _ => {
                self.0.insert((addr.kind, id), addr.clone());
                Ok(())
            }
        }
    }

    /// Gives up what `addr` held: it is gone from AWS.
    fn release(&mut self, addr: &ResourceAddr) {
        self.0.retain(|_, holder| holder != addr);
    }
}

/// The row of an object that exists as `change` left it. Old objects still to delete stay
/// listed, as the row has them now, until the destroy step that deletes them.
fn present(
    shared: &Shared,
    change: &PlannedChange,
    attrs: Value,
    cloud_id: String,
    outputs: Value,
) -> Result<StateResource, StateError> {
    let deposed = deposed_now(shared, &change.addr)?;
    Ok(StateResource {
        status: ResourceStatus::Present,
        cloud_id: Some(cloud_id),
        attrs,
        outputs,
        dependencies: change.dependencies.clone(),
        prevent_destroy: change.prevent_destroy,
        deposed,
    })
}

async fn record(
    shared: &Shared,
    change: &PlannedChange,
    row: StateResource,
) -> Result<(), StateError> {
    put(shared, &change.addr, &row, Durability::Soon).await?;
    shared
        .outputs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(change.addr.clone(), row.outputs);
    Ok(())
}

/// The old objects `addr`'s row lists now (steps before this one may have changed them).
fn deposed_now(shared: &Shared, addr: &ResourceAddr) -> Result<Vec<Deposed>, StateError> {
    Ok(shared
        .state
        .snapshot()?
        .resources
        .get(addr)
        .map(|r| r.deposed.clone())
        .unwrap_or_default())
}

/// A replacement that deletes the current object before it creates the new one.
fn destroys_first(change: &PlannedChange) -> bool {
    change.action == Action::Replace && !change.create_before_destroy
}

/// Deletes old objects of `addr` (see `StateResource::deposed`), one by one, each struck
/// from the row once gone; "not found" counts as gone, so a delete a crash interrupted is
/// simply sent again.
async fn delete_deposed(
    ctx: &Ctx,
    shared: &Shared,
    addr: &ResourceAddr,
    old: Vec<Deposed>,
) -> Result<(), StepError> {
    for d in old {
        resources::delete(ctx, addr, &d.cloud_id, &d.attrs, &d.outputs).await?;
        if let Some(mut row) = shared.state.snapshot()?.resources.get(addr).cloned() {
            row.deposed.retain(|x| x.cloud_id != d.cloud_id);
            put(shared, addr, &row, Durability::Soon).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eni(name: &str) -> ResourceAddr {
        ResourceAddr::new(Kind::EniConfig, name)
    }

    fn change(
        addr: &str,
        action: Action,
        before: Option<Value>,
        after: Option<Value>,
    ) -> PlannedChange {
        PlannedChange {
            addr: addr.parse().expect("address"),
            action,
            cloud_id: None,
            before,
            after,
            replace_because: vec![],
            drift: vec![],
            reason: None,
            dependencies: vec![],
            observed_outputs: None,
            prevent_destroy: false,
            create_before_destroy: false,
            deposed: vec![],
            hands_over_to: vec![],
        }
    }

    fn plan_of(changes: Vec<PlannedChange>) -> Plan {
        Plan {
            format: 1,
            destroy: false,
            spec_path: String::new(),
            spec_source: String::new(),
            state_lineage: String::new(),
            state_serial: 0,
            changes,
            warnings: vec![],
            sizing: None,
            pod_subnet_routes: vec![],
        }
    }

    #[test]
    fn a_removed_aws_node_is_undone_before_its_clusters_vpc_cni_addon_is_applied() {
        let on = |cluster: &str, name: &str| Some(json!({"cluster_name": cluster, "name": name}));
        let plan = plan_of(vec![
            change("addon.vpc_cni", Action::Create, None, on("c1", "vpc-cni")),
            change("addon.other_cni", Action::Create, None, on("c2", "vpc-cni")),
            // CoreDNS on the nodes of a nodegroup renamed in the same apply: the old one
            // (made after aws_node) goes, the new one (after the add-on) comes.
            PlannedChange {
                dependencies: vec![
                    "nodegroup.n1".parse().expect("address"),
                    "nodegroup.n2".parse().expect("address"),
                ],
                ..change(
                    "addon.coredns",
                    Action::Update,
                    on("c1", "coredns"),
                    on("c1", "coredns"),
                )
            },
            PlannedChange {
                dependencies: vec!["aws_node.main".parse().expect("address")],
                ..change("nodegroup.n1", Action::Delete, on("c1", "n1"), None)
            },
            PlannedChange {
                dependencies: vec!["addon.vpc_cni".parse().expect("address")],
                ..change("nodegroup.n2", Action::Create, None, on("c1", "n2"))
            },
            change("aws_node.main", Action::Delete, on("c1", "aws-node"), None),
            // Ordered after both when they were made; unchanged now.
            PlannedChange {
                dependencies: vec![
                    "aws_node.main".parse().expect("address"),
                    "addon.vpc_cni".parse().expect("address"),
                ],
                ..change(
                    "eni_config.pod_a",
                    Action::NoOp,
                    on("c1", "a"),
                    on("c1", "a"),
                )
            },
        ]);
        // The planner writes the handovers into the plan (here as it fills them into a plan
        // saved before it did); the executor only follows them.
        let mut plan = plan;
        crate::plan::planner::upgrade(&mut plan);
        assert_eq!(
            plan.changes
                .iter()
                .find(|c| c.addr.to_string() == "aws_node.main")
                .map(|c| c.hands_over_to.clone()),
            Some(vec!["addon.vpc_cni".parse().expect("address")]),
            "only the add-on of the same cluster takes over"
        );
        let deps = steps(&plan, &StateSnapshot::default());
        let needs = |addr: &str| -> BTreeSet<Step> {
            deps.get(&Step {
                addr: addr.parse().expect("address"),
                phase: Phase::Apply,
            })
            .cloned()
            .unwrap_or_default()
        };
        let undo = Step {
            addr: "aws_node.main".parse().expect("address"),
            phase: Phase::Destroy,
        };
        assert!(needs("addon.vpc_cni").contains(&undo), "{deps:?}");
        // Another cluster's CNI and another add-on of the cluster are not held back.
        assert!(!needs("addon.other_cni").contains(&undo), "{deps:?}");
        assert!(!needs("addon.coredns").contains(&undo), "{deps:?}");
        // And the walk has an order: no step waits for itself.
        let mut left = deps.clone();
        while !left.is_empty() {
            let ready: Vec<Step> = left
                .iter()
                .filter(|(_, d)| d.iter().all(|x| !left.contains_key(x)))
                .map(|(s, _)| s.clone())
                .collect();
            assert!(!ready.is_empty(), "cycle among {left:?}");
            for s in ready {
                left.remove(&s);
            }
        }
    }

    #[test]
    fn a_create_before_destroy_replacement_deletes_the_old_object_after_the_new_one_is_made() {
        let ng = |cluster: &str| Some(json!({"cluster_name": cluster, "name": "workers"}));
        let plan = plan_of(vec![
            PlannedChange {
                create_before_destroy: true,
                dependencies: vec!["subnet.old".parse().expect("address")],
                ..change("nodegroup.cbd", Action::Replace, ng("c"), ng("c"))
            },
            change("nodegroup.first", Action::Replace, ng("c"), ng("c")),
            // Left by an interrupted replacement: the old object goes after the step.
            PlannedChange {
                deposed: vec!["c/workers".into()],
                ..change("nodegroup.left", Action::NoOp, ng("c"), ng("c"))
            },
            change("subnet.old", Action::Delete, Some(json!({})), None),
        ]);
        let deps = steps(&plan, &StateSnapshot::default());
        let step = |addr: &str, phase| Step {
            addr: addr.parse().expect("address"),
            phase,
        };
        let needs = |s: &Step| deps.get(s).cloned().unwrap_or_default();
        assert!(needs(&step("nodegroup.cbd", Phase::Destroy))
            .contains(&step("nodegroup.cbd", Phase::Apply)));
        assert!(!needs(&step("nodegroup.cbd", Phase::Apply))
            .contains(&step("nodegroup.cbd", Phase::Destroy)));
        assert!(needs(&step("nodegroup.first", Phase::Apply))
            .contains(&step("nodegroup.first", Phase::Destroy)));
        assert!(needs(&step("nodegroup.left", Phase::Destroy))
            .contains(&step("nodegroup.left", Phase::Apply)));
        // A subnet the old nodegroup used goes only once that nodegroup is gone.
        assert!(needs(&step("subnet.old", Phase::Destroy))
            .contains(&step("nodegroup.cbd", Phase::Destroy)));
    }

    #[test]
    fn one_identity_has_one_holder_until_it_is_released() {
        let mut claims = Claims::default();
        let in_2a = json!({"cluster_name": "demo", "name": "us-west-2a"});
        assert_eq!(claims.claim(&eni("a"), &in_2a), Ok(()));
        // The same address again (a replace) is no conflict.
        assert_eq!(claims.claim(&eni("a"), &in_2a), Ok(()));
        let refused = claims.claim(&eni("b"), &in_2a).unwrap_err();
        assert!(
            refused.starts_with(
                "`eni_config.b` and `eni_config.a` are the same eni_config (`demo/us-west-2a`)"
            ),
            "{refused}"
        );
        // Another cluster, another name, or one still unknown: no clash.
        assert_eq!(
            claims.claim(
                &eni("c"),
                &json!({"cluster_name": "other", "name": "us-west-2a"})
            ),
            Ok(())
        );
        assert_eq!(
            claims.claim(
                &eni("d"),
                &json!({"cluster_name": "demo", "name": "${subnet.x.availability_zone}"})
            ),
            Ok(())
        );
        // Once `a` is deleted, `b` may take the name (a swap within one apply).
        claims.release(&eni("a"));
        assert_eq!(claims.claim(&eni("b"), &in_2a), Ok(()));
    }

    /// A subnet moving between route tables in one apply: AWS associates a subnet with one
    /// table at a time, so the table letting go (updated, or removed) goes first, as the
    /// planner writes it into the plan; a swap closes no cycle.
    #[test]
    fn a_subnet_moving_between_route_tables_is_let_go_of_first() {
        let table = |subnets: &[&str]| Some(json!({"vpc_id": "vpc-1", "subnet_ids": subnets}));
        let mut plan = plan_of(vec![
            // `pods` drops subnet-b, which `nodes` (an existing table) takes.
            change(
                "route_table.pods",
                Action::Update,
                table(&["subnet-a", "subnet-b"]),
                table(&["subnet-a"]),
            ),
            change(
                "route_table.nodes",
                Action::Update,
                table(&[]),
                table(&["subnet-b", "subnet-c"]),
            ),
            // `old` is removed; its subnet-c goes to `nodes` too.
            change(
                "route_table.old",
                Action::Delete,
                table(&["subnet-c"]),
                None,
            ),
            // `x` and `y` swap subnets: no order works, and none is written.
            change(
                "route_table.x",
                Action::Update,
                table(&["subnet-x"]),
                table(&["subnet-y"]),
            ),
            change(
                "route_table.y",
                Action::Update,
                table(&["subnet-y"]),
                table(&["subnet-x"]),
            ),
        ]);
        crate::plan::planner::upgrade(&mut plan);
        let get = |a: &str| {
            plan.changes
                .iter()
                .find(|c| c.addr.to_string() == a)
                .expect(a)
        };
        assert_eq!(
            get("route_table.nodes").dependencies,
            vec!["route_table.pods".parse().expect("address")]
        );
        assert_eq!(
            get("route_table.old").hands_over_to,
            vec!["route_table.nodes".parse().expect("address")]
        );
        assert!(get("route_table.pods").dependencies.is_empty());
        let swapped =
            get("route_table.x").dependencies.len() + get("route_table.y").dependencies.len();
        assert_eq!(swapped, 1, "one direction only");
        let deps = steps(&plan, &StateSnapshot::default());
        let needs = deps
            .get(&Step {
                addr: "route_table.nodes".parse().expect("address"),
                phase: Phase::Apply,
            })
            .cloned()
            .unwrap_or_default();
        for first in [
            ("route_table.pods", Phase::Apply),
            ("route_table.old", Phase::Destroy),
        ] {
            let step = Step {
                addr: first.0.parse().expect("address"),
                phase: first.1,
            };
            assert!(
                needs.contains(&step),
                "{step:?} before route_table.nodes: {deps:?}"
            );
        }
    }
}
