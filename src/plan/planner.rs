//! The planner: a pure function from (spec, prior state, observed live resources) to a plan.
//! No I/O, no clock, no randomness — so every planning behaviour is tested from files.

use crate::base::addr::{Kind, ResourceAddr};
use crate::base::diag::{Diagnostic, Diagnostics};
use crate::base::value;
use crate::domain::{cni, identity, network, pod_security_groups, routing, ChangeView};
use crate::plan::graph::DependencyGraph;
use crate::plan::inventory::Inventory;
use crate::plan::{Action, Forgotten, Plan, PlannedChange, Reason, PLAN_FORMAT};
use crate::resources::{self, Observed, ObservedState};
use crate::spec::Spec;
use crate::state::{ResourceStatus, StateSnapshot};
use serde_json::Value;
use std::collections::HashMap;

#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub destroy: bool,
    /// Resources to recreate even without a change (`apply --replace ADDR`).
    pub replace: Vec<ResourceAddr>,
}

/// A value as compared: the kind's set-valued attributes sorted (AWS may return them in
/// another order).
fn normalize(kind: Kind, key: &str, v: &Value) -> Value {
    match v {
        Value::Array(items) if resources::facts(kind).set_valued.contains(&key) => {
            let mut items = items.clone();
            items.sort_by_key(|a| a.to_string());
            Value::Array(items)
        }
        other => other.clone(),
    }
}

/// An EKS cluster or nodegroup whose deletion is under way.
fn being_deleted(obs: &Observed) -> bool {
    obs.outputs.get("status").and_then(Value::as_str) == Some("DELETING")
}

/// Null, or an empty string, list or table: what an absent optional field amounts to.
fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// `--replace` must name resources of the spec; one message per address that does not.
pub fn unknown_replacements(spec: &Spec, replace: &[ResourceAddr]) -> Vec<String> {
    replace
        .iter()
        .filter(|r| !spec.resources.contains_key(r))
        .map(|r| format!("--replace {r}: no such resource in the spec"))
        .collect()
}

pub fn plan(
    spec: &Spec,
    graph: &DependencyGraph,
    state: &StateSnapshot,
    inventory: &Inventory,
    opts: &PlanOptions,
) -> Result<Plan, Diagnostics> {
    if let Some(d) = foreign_state(spec, state) {
        return Err(d);
    }
    // A Karpenter node class without `max_pods` under custom networking gets the value its
    // pools' smallest type holds (see `nodes::with_karpenter_max_pods`), before the diff.
    let filled = inventory
        .sizing
        .as_ref()
        .filter(|_| !opts.destroy)
        .and_then(|reads| super::nodes::with_karpenter_max_pods(spec, reads));
    let spec = filled.as_ref().unwrap_or(spec);
    let observed = &inventory.resources;
    let mut diags = if opts.destroy {
        Diagnostics::default()
    } else {
        judge_inspections(spec, state, inventory)
    };
    for message in unknown_replacements(spec, &opts.replace) {
        diags.push(Diagnostic::error(message));
    }
    let mut changes = if opts.destroy {
        plan_destroy(graph, state, observed)
    } else {
        plan_apply(spec, graph, state, observed, opts, &mut diags)
    };
    check_protected(spec, state, &changes, &mut diags);
    order_handovers(&mut changes);
    if diags.has_errors() {
        return Err(diags);
    }
    let mut plan = Plan {
        format: PLAN_FORMAT,
        destroy: opts.destroy,
        spec_path: spec.path.display().to_string(),
        spec_source: spec.source.clone(),
        state_lineage: state.lineage.clone(),
        state_serial: state.serial,
        changes,
        warnings: diags.warnings().cloned().collect(),
        sizing: None,
        pod_subnet_routes: Vec::new(),
    };
    if !opts.destroy {
        super::routes::attach(spec, &mut plan, inventory.routing.as_ref());
    }
    if let Some(reads) = inventory.sizing.as_ref().filter(|_| !opts.destroy) {
        if let Err(errors) = super::nodes::attach(spec, &mut plan, reads) {
            // The warnings found so far still say what else is wrong.
            let mut all = Diagnostics(plan.warnings.clone());
            all.extend(errors);
            return Err(all);
        }
    }
    Ok(plan)
}

/// Writes the handovers into the plan, so that the executor only follows them: the
/// `aws_node` patch of a cluster moving to the `vpc-cni` add-on is undone before the add-on
/// takes its settings over; a route table giving a subnet up lets go of it before the table
/// taking it associates it. A removal hands over (`PlannedChange::hands_over_to`); a table
/// that stays and only lets go of the subnet comes first as a dependency of the one taking
/// it (unless that would close a cycle: two tables swapping subnets, which apply then
/// refuses with the subnet's table named).
fn order_handovers(changes: &mut [PlannedChange]) {
    let (settings, subnets) = {
        let views: Vec<ChangeView<'_>> = changes.iter().map(change_view).collect();
        (cni::handovers(&views), routing::handovers(&views))
    };
    for (old, new) in settings {
        hand_over(changes, &old, new);
    }
    for (old, new) in subnets {
        let removed = changes
            .iter()
            .find(|c| c.addr == old)
            .is_some_and(|c| change_view(c).removed());
        if removed {
            hand_over(changes, &old, new);
            continue;
        }
        let cycle = depends_on(changes, &old, &new);
        if let Some(c) = changes.iter_mut().find(|c| c.addr == new) {
            if !cycle && !c.dependencies.contains(&old) {
                c.dependencies.push(old);
            }
        }
    }
}

/// Whether `a` depends on `b`, directly or through others, among the planned changes.
fn depends_on(changes: &[PlannedChange], a: &ResourceAddr, b: &ResourceAddr) -> bool {
    let mut seen: Vec<&ResourceAddr> = Vec::new();
    let mut todo = vec![a];
    while let Some(x) = todo.pop() {
        if x == b {
            return true;
        }
        if seen.contains(&x) {
            continue;
        }
        seen.push(x);
        if let Some(c) = changes.iter().find(|c| &c.addr == x) {
            todo.extend(c.dependencies.iter());
        }
    }
    false
}

fn hand_over(changes: &mut [PlannedChange], old: &ResourceAddr, new: ResourceAddr) {
    if let Some(c) = changes.iter_mut().find(|c| &c.addr == old) {
        if !c.hands_over_to.contains(&new) {
            c.hands_over_to.push(new);
        }
    }
}

/// Fills in what a plan of an older format leaves out and the executor needs: the
/// handovers (format 1 had the executor find them itself).
pub fn upgrade(plan: &mut Plan) {
    if plan.format < 2 {
        order_handovers(&mut plan.changes);
    }
    plan.format = PLAN_FORMAT;
}

/// The verdicts on the live inspections (see `ResourceKind::judge`), at the spec's keys.
fn judge_inspections(spec: &Spec, state: &StateSnapshot, inventory: &Inventory) -> Diagnostics {
    let facts = spec_facts(spec, state);
    let mut diags = Diagnostics::default();
    for (addr, inspection) in &inventory.inspections {
        let Some(r) = spec.get(addr) else {
            continue;
        };
        for f in resources::judge(addr, &inspected_attrs(spec, r), &facts, inspection) {
            let key = format!("{addr}.{}", f.key);
            diags.push(if f.error {
                spec.error_at(key, f.message)
            } else {
                spec.warning_at(key, f.message)
            });
        }
    }
    diags
}

/// A resource's desired attributes as its live inspection sees them: references to outputs
/// mirrored from the spec (a cluster's name) resolved.
pub fn inspected_attrs(spec: &Spec, r: &crate::spec::ResourceSpec) -> Value {
    let mut attrs = r.attrs.clone();
    if let Value::Object(m) = &mut attrs {
        for v in m.values_mut() {
            if let Value::String(text) = v {
                *text = spec.resolved_name(text);
            }
        }
    }
    attrs
}

/// What the spec and the state say of other resources that a kind's inspection and judgement
/// need (cluster versions, installed add-on versions).
pub fn spec_facts(spec: &Spec, state: &StateSnapshot) -> resources::SpecFacts {
    resources::SpecFacts::gather(
        spec.resources.values().map(|r| (&r.addr, &r.attrs)),
        state.resources.iter().map(|(a, r)| (a, &r.outputs)),
        |name| spec.resolved_name(name),
    )
}

/// A state none of whose resources is in the spec was written for another spec (a wrong
/// `--state`, or two specs with one stem in one directory): planning with it would destroy
/// everything it holds. An empty spec is left to its own warning: emptying a spec is how
/// some remove everything.
pub fn foreign_state(spec: &Spec, snapshot: &StateSnapshot) -> Option<Diagnostics> {
    if spec.resources.is_empty()
        || snapshot.resources.is_empty()
        || snapshot
            .resources
            .keys()
            .any(|a| spec.resources.contains_key(a))
    {
        return None;
    }
    let mut held: Vec<String> = snapshot.resources.keys().map(|a| a.to_string()).collect();
    let n = held.len();
    held.truncate(5);
    let mut d = Diagnostics::default();
    d.push(Diagnostic::error(format!(
        "the state (lineage {}) was written for another spec: none of its {n} resources ({}{}) is in `{}`; give this spec its own state with --state, or use the spec that made it (`eksnet destroy` with that spec removes its resources)",
        snapshot.lineage,
        held.join(", "),
        if n > held.len() { ", …" } else { "" },
        spec.path.display()
    )));
    Some(d)
}

/// The change planned for one resource, even when the plan as a whole has errors elsewhere
/// (e.g. other resources not imported yet): what `eksnet import` reports about the resource
/// it just recorded.
pub fn change_for(
    spec: &Spec,
    graph: &DependencyGraph,
    state: &StateSnapshot,
    inventory: &Inventory,
    addr: &ResourceAddr,
) -> Option<PlannedChange> {
    let mut diags = Diagnostics::default();
    plan_apply(
        spec,
        graph,
        state,
        &inventory.resources,
        &PlanOptions::default(),
        &mut diags,
    )
    .into_iter()
    .find(|c| &c.addr == addr)
}

fn plan_destroy(
    graph: &DependencyGraph,
    state: &StateSnapshot,
    observed: &ObservedState,
) -> Vec<PlannedChange> {
    let mut out = Vec::new();
    for addr in graph.reversed().topological() {
        let Some(prior) = state.resources.get(&addr) else {
            continue;
        };
        let live = observed.get(&addr).cloned().flatten();
        out.push(removal(&addr, prior, live.as_ref(), false));
    }
    out
}

/// The change that takes a resource out: deleted; only forgotten when eksnet must not (an
/// adopted VPC, an existing cluster) or cannot (already gone) delete it; or, for an adopted
/// object eksnet changed in part (an existing add-on), put back as it was before eksnet and
/// then forgotten.
fn removal(
    addr: &ResourceAddr,
    prior: &crate::state::StateResource,
    live: Option<&Observed>,
    removed_from_spec: bool,
) -> PlannedChange {
    let adopted = resources::is_adopted(addr, &prior.attrs);
    let puts_back = !resources::puts_back(addr, &prior.attrs).is_empty();
    let forgotten = if adopted && !puts_back {
        Some(Forgotten::Adopted)
    } else if live.is_none() {
        Some(Forgotten::AlreadyGone)
    } else {
        None
    };
    let action = match forgotten {
        Some(_) => Action::Forget,
        None if puts_back => Action::PutBack,
        None => Action::Delete,
    };
    let reason = if removed_from_spec {
        Some(Reason::RemovedFromSpec { forgotten })
    } else {
        forgotten.map(|forgotten| Reason::Forgotten { forgotten })
    };
    PlannedChange {
        addr: addr.clone(),
        action,
        cloud_id: live
            .map(|o| o.cloud_id.clone())
            .or_else(|| prior.cloud_id.clone()),
        before: Some(prior.attrs.clone()),
        after: None,
        replace_because: vec![],
        drift: vec![],
        reason,
        dependencies: prior.dependencies.clone(),
        // What is put back is among them (see `KindFacts::puts_back`), for the plan to show.
        observed_outputs: live
            .filter(|_| action == Action::PutBack)
            .map(|o| o.outputs.clone()),
        prevent_destroy: prior.prevent_destroy,
        create_before_destroy: false,
        deposed: deposed_ids(Some(prior)),
        hands_over_to: vec![],
    }
}

fn plan_apply(
    spec: &Spec,
    graph: &DependencyGraph,
    state: &StateSnapshot,
    observed: &ObservedState,
    opts: &PlanOptions,
    diags: &mut Diagnostics,
) -> Vec<PlannedChange> {
    // Outputs of resources that exist and stay, by which later references resolve.
    let mut known: HashMap<ResourceAddr, Value> = HashMap::new();
    let mut out = Vec::new();
    for addr in graph.topological() {
        let prior = state.resources.get(&addr);
        let mut live = observed.get(&addr).cloned().flatten();
        // A cluster or nodegroup still being deleted (an interrupted destroy) cannot be
        // taken back: it is created again, and the create waits for the old one to go.
        let going = spec.get(&addr).is_some() && live.as_ref().is_some_and(being_deleted);
        if going {
            live = None;
        }
        let Some(r) = spec.get(&addr) else {
            // Removed from the spec: delete what the state holds.
            let Some(prior) = prior else { continue };
            out.push(removal(&addr, prior, live.as_ref(), true));
            continue;
        };
        let desired = desired_now(spec, r, &known, &out);
        check_desired(spec, &addr, &desired, &known, &out, diags);
        let mut change = PlannedChange {
            addr: addr.clone(),
            action: Action::NoOp,
            cloud_id: None,
            before: None,
            after: Some(desired.clone()),
            replace_because: vec![],
            drift: vec![],
            reason: None,
            dependencies: graph.dependencies(&addr),
            observed_outputs: None,
            prevent_destroy: r.lifecycle.prevent_destroy,
            create_before_destroy: false,
            deposed: deposed_ids(prior),
            hands_over_to: vec![],
        };
        match live {
            None => plan_absent(spec, r, prior, going, &mut change, diags),
            Some(obs) => {
                check_ownership(spec, state, r, prior, &obs, diags);
                // Ignored attributes are wanted as they are: the live value (else the last
                // applied one) stands in for the spec's, in what is compared, shown and
                // sent, and in the last applied values drift is measured against.
                let ignored = &r.lifecycle.ignore_changes;
                let kept;
                let prior = if ignored.is_empty() {
                    prior
                } else {
                    change.after = Some(keep_live(
                        &desired,
                        &obs.attrs,
                        prior.map(|p| &p.attrs),
                        ignored,
                    ));
                    kept = prior.map(|p| crate::state::StateResource {
                        attrs: keep_live(&p.attrs, &obs.attrs, None, ignored),
                        ..p.clone()
                    });
                    kept.as_ref()
                };
                plan_present(spec, r, prior, &obs, &out, opts, &mut change, diags);
                if matches!(change.action, Action::NoOp | Action::Update | Action::Adopt) {
                    let mut outputs = obs.outputs.clone();
                    // What the update itself changes is known after it (a new version).
                    if let (Action::Update, Value::Object(m)) = (change.action, &mut outputs) {
                        for k in updated_outputs(&change) {
                            m.remove(k);
                        }
                    }
                    known.insert(addr.clone(), outputs);
                }
            }
        }
        if change.action == Action::Create && !change.deposed.is_empty() {
            change.reason = Some(Reason::ResumesReplacement);
        }
        choose_create_before_destroy(spec, prior, &out, &mut change, diags);
        out.push(change);
    }
    let views: Vec<ChangeView<'_>> = out.iter().map(change_view).collect();
    network::check_plan(spec, &views, &known, diags);
    routing::check_plan(spec, &views, &known, diags);
    cni::check_plan(spec, &views, &network::subnet_azs(&known), diags);
    pod_security_groups::check_plan(spec, &views, diags);
    identity::check_plan(spec, &views, diags);
    crate::domain::access::check_plan(spec, &views, diags);
    out
}

/// A planned change as the domain rules see it.
fn change_view(c: &PlannedChange) -> ChangeView<'_> {
    ChangeView {
        addr: &c.addr,
        action: c.action,
        before: c.before.as_ref(),
        after: c.after.as_ref(),
        observed: c.observed_outputs.as_ref(),
    }
}

/// The cloud ids a row's interrupted replacement left to delete.
fn deposed_ids(prior: Option<&crate::state::StateResource>) -> Vec<String> {
    prior
        .map(|p| p.deposed.iter().map(|d| d.cloud_id.clone()).collect())
        .unwrap_or_default()
}

/// A replacement of a kind that can live twice at once (`KindFacts::replacement`) creates the
/// new object first, so that the old one serves until the new one is ready. Not when
/// something it uses is itself replaced destroy-first: that dependency's old object must go
/// before its new one comes, the old nodegroup before it, so the new nodegroup could not come
/// first without a cycle; it is replaced destroy-first then, with a warning.
fn choose_create_before_destroy(
    spec: &Spec,
    prior: Option<&crate::state::StateResource>,
    planned: &[PlannedChange],
    change: &mut PlannedChange,
    diags: &mut Diagnostics,
) {
    if change.action != Action::Replace || resources::facts(change.addr.kind).replacement.is_none()
    {
        return;
    }
    let uses: Vec<&ResourceAddr> = change
        .dependencies
        .iter()
        .chain(prior.into_iter().flat_map(|p| p.dependencies.iter()))
        .collect();
    let blocking = planned.iter().find(|d| {
        uses.contains(&&d.addr) && d.action == Action::Replace && !d.create_before_destroy
    });
    match blocking {
        None => change.create_before_destroy = true,
        // A nodegroup cannot outlive its cluster: nothing to warn about.
        Some(d) if resources::facts(change.addr.kind).parent == Some(d.addr.kind) => {}
        Some(d) => diags.push(spec.warning_at(
            change.addr.to_string(),
            format!(
                "replaced destroy-first, not create-before-destroy: it uses {}, which is replaced destroy-first too, so the old {} must be gone before that one goes; the cluster has none of this {}'s nodes until the new one is ready (to keep nodes throughout, add a second {} that uses the new {} first, then remove this one)",
                d.addr, change.addr.kind, change.addr.kind, change.addr.kind, d.addr.kind
            ),
        )),
    }
}

/// `desired` with each ignored path set to its live value, else to `last` (what was applied,
/// for attributes AWS does not report), else left out.
fn keep_live(desired: &Value, live: &Value, last: Option<&Value>, paths: &[String]) -> Value {
    let mut out = desired.clone();
    for path in paths {
        let segments: Vec<&str> = path.split('.').collect();
        let found = lookup(live, &segments).or_else(|| last.and_then(|l| lookup(l, &segments)));
        set_path(&mut out, &segments, found.cloned());
    }
    out
}

fn lookup<'v>(v: &'v Value, segments: &[&str]) -> Option<&'v Value> {
    segments.iter().try_fold(v, |v, s| v.get(*s))
}

/// Sets (or, with `None`, removes) the value at a path, making the tables on the way.
fn set_path(v: &mut Value, segments: &[&str], new: Option<Value>) {
    let Some((last, parents)) = segments.split_last() else {
        return;
    };
    let mut here = v;
    for s in parents {
        let Value::Object(m) = here else { return };
        here = m
            .entry(s.to_string())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    if let Value::Object(m) = here {
        match new {
            Some(n) => {
                m.insert(last.to_string(), n);
            }
            None => {
                m.remove(*last);
            }
        }
    }
}

/// Refuses a plan that deletes or replaces a protected resource: protected by its block's
/// `lifecycle.prevent_destroy`, or, for a block removed from the spec, by the state row.
fn check_protected(
    spec: &Spec,
    state: &StateSnapshot,
    changes: &[PlannedChange],
    diags: &mut Diagnostics,
) {
    // Putting an existing add-on's values back is what destroying it amounts to: it may
    // turn custom networking off under running nodes, so the protection holds for it too.
    for c in changes
        .iter()
        .filter(|c| matches!(c.action, Action::Delete | Action::Replace | Action::PutBack))
    {
        let doing = match c.action {
            Action::Replace => "replace it",
            Action::PutBack => "put it back as it was before eksnet",
            _ => "destroy it",
        };
        match spec.get(&c.addr) {
            Some(r) if r.lifecycle.prevent_destroy => diags.push(spec.error_at(
                format!("{}.lifecycle.prevent_destroy", c.addr),
                format!(
                    "`{}` has `lifecycle.prevent_destroy = true` and this plan would {doing}\
                     {}; nothing was changed. To {doing}, set `prevent_destroy = false` in \
                     its block and run again",
                    c.addr,
                    why(c)
                ),
            )),
            Some(_) => {}
            None if state
                .resources
                .get(&c.addr)
                .is_some_and(|p| p.prevent_destroy) =>
            {
                diags.push(Diagnostic::error(format!(
                    "`{}` is protected by the state (`lifecycle.prevent_destroy` was set when \
                     it was last applied) and this plan would {doing}{}; nothing was \
                     changed. To {doing}, put its block back with `prevent_destroy = false`, \
                     apply, then remove the block; to keep it in AWS and only stop managing \
                     it, run `eksnet state rm {}`",
                    c.addr,
                    why(c),
                    c.addr
                )))
            }
            None => {}
        }
    }
}

fn why(c: &PlannedChange) -> String {
    if !c.replace_because.is_empty() {
        format!(" (a change of {} forces it)", c.replace_because.join(", "))
    } else if matches!(c.reason, Some(Reason::RemovedFromSpec { .. })) {
        " (its block was removed from the spec)".to_string()
    } else if matches!(c.reason, Some(Reason::ReplaceRequested)) {
        " (`--replace`)".to_string()
    } else {
        String::new()
    }
}

/// A resource's desired attributes with every reference resolved that can be at plan time.
/// What AWS has not told yet but the spec does (a new subnet's literal AZ, a role's name) is
/// shown, rather than "known after apply". Only for a resource created afresh: one being
/// replaced must keep its dependents' values unknown, which is how a replacement reaches them
/// (a nodegroup goes with its replaced cluster).
fn desired_now(
    spec: &Spec,
    r: &crate::spec::ResourceSpec,
    known: &HashMap<ResourceAddr, Value>,
    planned: &[PlannedChange],
) -> Value {
    let created = |a: &ResourceAddr| {
        planned
            .iter()
            .any(|c| &c.addr == a && c.action == Action::Create)
    };
    value::resolve(&r.attrs, &|x| {
        known
            .get(&x.addr)
            .and_then(|o| value::lookup_path(o, &x.path))
            .or_else(|| {
                created(&x.addr)
                    .then(|| spec.static_value(&x.raw).map(Value::String))
                    .flatten()
            })
    })
}

/// What the resolved values themselves get wrong: a tag or label that resolves to a list or
/// map, and a reference to a resource that exists and stays but lacks that output (apply could
/// never fill it in).
fn check_desired(
    spec: &Spec,
    addr: &ResourceAddr,
    desired: &Value,
    known: &HashMap<ResourceAddr, Value>,
    planned: &[PlannedChange],
    diags: &mut Diagnostics,
) {
    // An output its producer's update is about to change: known after apply, not missing.
    let updated = |x: &value::Reference| {
        planned.iter().any(|c| {
            c.addr == x.addr
                && c.action == Action::Update
                && updated_outputs(c).contains(&x.path_string().as_str())
        })
    };
    for key in ["tags", "labels"] {
        if let Some(Value::Object(m)) = desired.get(key) {
            for (k, v) in m.iter().filter(|(_, v)| !v.is_string()) {
                diags.push(spec.error_at(
                    format!("{addr}.{key}.{k}"),
                    format!("`{k}` resolves to {v}, which is not a string"),
                ));
            }
        }
    }
    for missing in value::references(desired)
        .iter()
        .filter(|x| known.contains_key(&x.addr) && !updated(x))
    {
        diags.push(spec.error_at(addr.to_string(), resources::missing_output(missing)));
    }
}

/// The outputs this update changes (see `KindFacts::updated_outputs`): those that move with
/// an attribute whose value the update changes.
fn updated_outputs(c: &PlannedChange) -> Vec<&'static str> {
    let attr = |v: &Option<Value>, k: &str| v.as_ref().and_then(|v| v.get(k)).cloned();
    resources::facts(c.addr.kind)
        .updated_outputs
        .iter()
        .filter(|(_, by)| by.iter().any(|k| attr(&c.before, k) != attr(&c.after, k)))
        .map(|(output, _)| *output)
        .collect()
}

/// A resource in the spec that does not exist: created (an adopted VPC must exist).
fn plan_absent(
    spec: &Spec,
    r: &crate::spec::ResourceSpec,
    prior: Option<&crate::state::StateResource>,
    going: bool,
    change: &mut PlannedChange,
    diags: &mut Diagnostics,
) {
    if resources::is_adopted(&r.addr, &r.attrs) {
        // As resolved so far: a reference to the existing cluster's name is its name.
        let resolved = change.after.as_ref().unwrap_or(&r.attrs);
        let attr = |k: &str| resources::str_attr(resolved, k).unwrap_or("?");
        let (key, message) = match r.addr.kind {
            Kind::Cluster => (
                "existing",
                format!(
                    "cluster `{}` was not found; an existing cluster (`existing = true`) is only read, never created (check the name and the region)",
                    attr("name")
                ),
            ),
            Kind::Addon => (
                "existing",
                format!(
                    "add-on `{}` of cluster `{}` was not found; an existing add-on (`existing = true`) is never created (check `name`, `cluster_name` and the region, or leave `existing` out for eksnet to create it)",
                    attr("name"),
                    attr("cluster_name")
                ),
            ),
            Kind::RouteTable if value::is_unknown(resolved.get("id").unwrap_or(&Value::Null)) => (
                "id",
                format!(
                    "`{}` is known only after apply, but an existing route table (`existing = true`) must exist when the plan is made: apply once without this block, then add it (or leave `existing` and `id` out for eksnet to create a table)",
                    attr("id")
                ),
            ),
            Kind::RouteTable => (
                "id",
                format!(
                    "route table `{}` was not found; an existing route table (`existing = true`) is never created (check `id` and the region, or leave `existing` and `id` out for eksnet to create one)",
                    attr("id")
                ),
            ),
            _ => (
                "id",
                format!("VPC `{}` was not found; an adopted VPC must exist", attr("id")),
            ),
        };
        diags.push(spec.error_at(format!("{}.{key}", r.addr), message));
    }
    change.action = Action::Create;
    if going {
        change.reason = Some(Reason::StillBeingDeleted);
    } else if prior.is_some_and(|p| p.status == ResourceStatus::Present) {
        change.reason = Some(Reason::DeletedOutsideEksnet);
    }
}

/// Why `eksnet import` must not record `found` under `addr`, if it must not: one object under
/// two addresses would be changed, replaced or deleted for either, and an object another
/// eksnet state manages must stay its own (the same rule `check_ownership` applies to what
/// a plan finds by name).
pub fn import_refusal(
    state: &StateSnapshot,
    addr: &ResourceAddr,
    found: &Observed,
) -> Option<String> {
    if let Some((other, _)) = state.resources.iter().find(|(a, r)| {
        a.kind == addr.kind && r.cloud_id.as_deref() == Some(found.cloud_id.as_str())
    }) {
        return Some(format!(
            "{} `{}` is already in the state as `{other}`; one resource cannot be managed under two addresses (`eksnet state rm {other}` first to move it)",
            addr.kind, found.cloud_id
        ));
    }
    found
        .managed_by
        .as_deref()
        .filter(|l| *l != state.lineage)
        .map(|other| {
            format!(
                "{} `{}` is managed by another eksnet state (lineage {other}); two states must not manage one resource",
                addr.kind, found.cloud_id
            )
        })
}

/// Never take over something this state did not create: a resource found by name or CIDR
/// without a state row must carry our lineage tag. aws_node only sets entries on a DaemonSet
/// EKS itself installed.
fn check_ownership(
    spec: &Spec,
    state: &StateSnapshot,
    r: &crate::spec::ResourceSpec,
    prior: Option<&crate::state::StateResource>,
    obs: &Observed,
    diags: &mut Diagnostics,
) {
    let addr = &r.addr;
    // The new object of a create-before-destroy replacement is looked for under the name it
    // was to be created with: only ours if it carries our lineage.
    let cbd_intent =
        prior.is_some_and(|p| p.status == ResourceStatus::Creating && !p.deposed.is_empty());
    let owned = (prior.is_some() && !cbd_intent)
        || resources::is_adopted(addr, &r.attrs)
        || resources::facts(addr.kind).patches_existing
        || obs.managed_by.as_deref() == Some(state.lineage.as_str());
    if owned {
        return;
    }
    let by = obs
        .managed_by
        .as_deref()
        .map(|l| format!("by another eksnet state (lineage {l})"))
        .unwrap_or_else(|| "outside eksnet".into());
    // Only something no eksnet state manages may be imported.
    // Blocks and subnets are found by their range, the rest by name.
    let elsewhere = if resources::facts(addr.kind).identity.contains(&"cidr_block") {
        "choose another CIDR in the spec"
    } else {
        "rename it in the spec"
    };
    let way_out = if obs.managed_by.is_some() {
        format!("{elsewhere}, or delete it")
    } else {
        format!(
            "{elsewhere}, delete it, or take it over with `eksnet import {} {addr} {}`",
            spec.path.display(),
            obs.cloud_id
        )
    };
    diags.push(spec.error_at(
        addr.to_string(),
        format!(
            "{} `{}` already exists and was created {by}; eksnet will not take it over — {way_out}",
            addr.kind, obs.cloud_id
        ),
    ));
}

/// The desired attributes that differ from what exists: compared with AWS's value, or with
/// the last applied one for what AWS does not return (a stack's template).
fn changed_attributes(
    kind: Kind,
    desired: &Value,
    obs: &Observed,
    prior: Option<&crate::state::StateResource>,
) -> Vec<String> {
    let mut changed = Vec::new();
    let Value::Object(want) = desired else {
        return changed;
    };
    for (key, want_v) in want {
        // Neither AWS nor the last apply has it: AWS leaves an unset optional field out (a
        // role's description), so it is a change unless the spec asks for nothing either.
        // Skipping it would record it as applied.
        let Some(have) = compare_base(key, obs, prior) else {
            if value::is_unknown(want_v) || !is_empty_value(want_v) {
                changed.push(key.clone());
            }
            continue;
        };
        if value::is_unknown(want_v) || normalize(kind, key, want_v) != normalize(kind, key, &have)
        {
            changed.push(key.clone());
        }
    }
    // Left out of the spec, but set on the object: unset is the change wanted.
    for key in resources::facts(kind).compared_when_unset {
        if !want.contains_key(*key)
            && compare_base(key, obs, prior).is_some_and(|have| !is_empty_value(&have))
        {
            changed.push(key.to_string());
        }
    }
    changed
}

/// What an attribute is now: AWS's value, else the last applied one.
fn compare_base(
    key: &str,
    obs: &Observed,
    prior: Option<&crate::state::StateResource>,
) -> Option<Value> {
    obs.attrs
        .get(key)
        .cloned()
        .or_else(|| prior.and_then(|p| p.attrs.get(key).cloned()))
}

/// Attributes whose live value differs from what eksnet last applied.
fn drifted_attributes(
    kind: Kind,
    obs: &Observed,
    prior: Option<&crate::state::StateResource>,
) -> Vec<String> {
    let Some(Value::Object(last)) = prior
        .filter(|p| p.status == ResourceStatus::Present)
        .map(|p| &p.attrs)
    else {
        return Vec::new();
    };
    last.iter()
        .filter(|(key, last_v)| {
            obs.attrs
                .get(*key)
                .is_some_and(|live_v| normalize(kind, key, live_v) != normalize(kind, key, last_v))
        })
        .map(|(key, _)| key.clone())
        .collect()
}

/// Create-only attributes are never a change of an existing resource: AWS neither reports
/// nor changes them. One that the spec now sets otherwise than it was created gets a warning,
/// on every plan until the spec and the resource agree again.
fn settle_create_only(
    spec: &Spec,
    addr: &ResourceAddr,
    desired: &Value,
    prior: Option<&crate::state::StateResource>,
    changed: &mut Vec<String>,
    diags: &mut Diagnostics,
) {
    let create_only = resources::facts(addr.kind).create_only;
    changed.retain(|key| {
        if !create_only.contains(&key.as_str()) {
            return true;
        }
        let want = desired.get(key.as_str());
        let had = prior.and_then(|p| p.attrs.get(key.as_str()));
        // Created before eksnet knew of it (imported, or the field is newer than the row):
        // what it was created with is unknown, and a value the spec does not write is only
        // eksnet's default, not a wish to change anything.
        let written = spec.locations.contains_key(&format!("{addr}.{key}"));
        if had.is_none() && !written {
            return false;
        }
        if want.is_some_and(|w| !w.is_null()) && want != had {
            let had = had.map_or("it was created without it, with AWS's default".to_string(), |v| {
                format!("it was created with {v}")
            });
            diags.push(spec.warning_at(
                format!("{addr}.{key}"),
                format!(
                    "`{key}` only takes effect when the {} is created ({had}); nothing changes now — `eksnet apply --replace {addr}` recreates it",
                    addr.kind
                ),
            ));
        }
        false
    });
}

/// A resource in the spec that exists: no change, an update in place, a replacement, or an
/// adoption into the state.
#[allow(clippy::too_many_arguments)]
fn plan_present(
    spec: &Spec,
    r: &crate::spec::ResourceSpec,
    prior: Option<&crate::state::StateResource>,
    obs: &Observed,
    planned: &[PlannedChange],
    opts: &PlanOptions,
    change: &mut PlannedChange,
    diags: &mut Diagnostics,
) {
    let addr = &r.addr;
    let adopted = resources::is_adopted(addr, &r.attrs);
    // An adopted object eksnet changes in part (an existing add-on): updated like any other,
    // but never replaced, created or deleted.
    let changes_in_part = !resources::puts_back(addr, &r.attrs).is_empty();
    let desired = change.after.clone().unwrap_or(Value::Null);
    let mut changed = changed_attributes(addr.kind, &desired, obs, prior);
    change.drift = drifted_attributes(addr.kind, obs, prior);
    // What is only checked against what exists (a VPC's `cidr_block`) is never set.
    for (key, what) in resources::facts(addr.kind).checked_only {
        if !changed.iter().any(|k| k == key) {
            continue;
        }
        diags.push(spec.error_at(
            format!("{addr}.{key}"),
            format!(
                "{what} is {}, not {}; fix `{key}` (it is only checked, never changed)",
                obs.attrs.get(*key).map(|v| v.to_string()).unwrap_or_default(),
                desired.get(*key).map(|v| v.to_string()).unwrap_or_default()
            ),
        ));
        changed.retain(|k| k != key);
    }
    settle_create_only(spec, addr, &desired, prior, &mut changed, diags);
    let forced: Vec<String> = changed
        .iter()
        .filter(|k| resources::facts(addr.kind).force_new.contains(&k.as_str()))
        .cloned()
        .collect();
    let mut before = obs.attrs.clone();
    if let (Value::Object(b), Some(p)) = (&mut before, prior) {
        // Attributes AWS does not return (a stack's template) show their last value.
        if let Value::Object(last) = &p.attrs {
            for (k, v) in last {
                b.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    // A set equal to what AWS has, in another order, is no change: show and send it in AWS's
    // order, so an update for another reason does not list it.
    if let Some(Value::Object(after)) = change.after.as_mut() {
        for key in resources::facts(addr.kind)
            .set_valued
            .iter()
            .filter(|k| !changed.iter().any(|c| c == *k))
        {
            if let (Some(slot), Some(have)) = (after.get_mut(*key), compare_base(key, obs, prior)) {
                *slot = have;
            }
        }
    }
    change.cloud_id = Some(obs.cloud_id.clone());
    change.before = Some(before);
    change.observed_outputs = Some(obs.outputs.clone());
    let replace_requested = opts.replace.contains(addr);
    change.action = if replace_requested && !adopted {
        change.reason = Some(Reason::ReplaceRequested);
        Action::Replace
    } else if !forced.is_empty() && !adopted {
        change.replace_because = forced.clone();
        Action::Replace
    } else if !changed.is_empty() {
        Action::Update
    } else if prior.is_none_or(|p| p.status != ResourceStatus::Present) {
        change.reason = Some(
            if changes_in_part || resources::facts(addr.kind).patches_existing {
                Reason::SettingsAlreadyInPlace
            } else if adopted && addr.kind == Kind::Cluster {
                Reason::ReadingExistingCluster
            } else if adopted {
                Reason::AdoptingExistingVpc
            } else {
                Reason::FoundAfterInterruptedRun
            },
        );
        Action::Adopt
    } else {
        Action::NoOp
    };
    // AWS cannot disassociate a block that still has subnets: a subnet inside a block being
    // replaced must go (and come back) with it, even if the subnet itself did not change.
    if matches!(change.action, Action::NoOp | Action::Update | Action::Adopt) {
        let views = planned.iter().map(change_view);
        if let Some(block) = network::replaced_block_holding(addr, views, &obs.attrs) {
            change.reason = Some(Reason::InReplacedBlock { block });
            change.action = Action::Replace;
        }
    }
    // What an adopted object is may not differ: all of one only read, the identity (the
    // kind's replacing attributes) of one changed in part.
    let fixed = if changes_in_part { &forced } else { &changed };
    if adopted && !fixed.is_empty() {
        let message = match addr.kind {
            Kind::Vpc => format!(
                "adopted VPC differs from the spec in {} and eksnet never modifies an adopted VPC",
                fixed.join(", ")
            ),
            kind => format!(
                "the existing {} `{}` differs from the spec in {}: it was made elsewhere (`existing = true`), so eksnet never replaces it; to move to another one, remove this block and apply (eksnet lets go of this one), then declare the other",
                if kind == Kind::Addon { "add-on".to_string() } else { kind.to_string() },
                obs.cloud_id,
                fixed.join(", ")
            ),
        };
        diags.push(spec.error_at(addr.to_string(), message));
    }
}
