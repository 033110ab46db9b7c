//! Rendering of a plan for people, like Terraform's: one block per change, attribute lines
//! with `+ ~ -`. The plan itself is a value (`plan`); this is one view of it.

use crate::base::value;
use crate::plan::routes::{PodSubnetRoute, SnatPath, TableChoice};
use crate::plan::{Action, Forgotten, Plan, PlannedChange, Reason};
use serde_json::Value;
use std::fmt::Write;

/// Colours for the terminal; all empty when colour is off (`NO_COLOR`, not a terminal).
#[derive(Clone, Copy)]
pub struct Palette {
    pub green: &'static str,
    pub yellow: &'static str,
    pub red: &'static str,
    pub bold: &'static str,
    pub reset: &'static str,
}

impl Palette {
    pub const PLAIN: Palette = Palette {
        green: "",
        yellow: "",
        red: "",
        bold: "",
        reset: "",
    };
    pub const ANSI: Palette = Palette {
        green: "\x1b[32m",
        yellow: "\x1b[33m",
        red: "\x1b[31m",
        bold: "\x1b[1m",
        reset: "\x1b[0m",
    };
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) if value::is_unknown(v) && s.starts_with("${") && s.ends_with('}') => {
            "(known after apply)".to_string()
        }
        Value::String(s) if s.contains('\n') || s.len() > 120 => format!(
            "<{} lines, sha256:{}>",
            s.lines().count(),
            crate::base::value::digest(s)
        ),
        Value::Array(items) if value::is_unknown(v) => {
            let parts: Vec<String> = items.iter().map(show).collect();
            format!("[{}]", parts.join(", "))
        }
        // A document or table with a value known after apply inside (a trust policy naming a
        // provider made in the same apply, a route's target): that value says so, the rest
        // shows as it is.
        Value::Object(m) if value::is_unknown(v) => {
            let parts: Vec<String> = m
                .iter()
                .map(|(k, x)| format!("{}:{}", Value::String(k.clone()), show(x)))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        other => other.to_string(),
    }
}

/// Renders the plan like Terraform: one block per change, attribute lines with `+ ~ -`.
pub fn render(plan: &Plan, p: Palette) -> String {
    let mut out = render_changes(plan, p);
    if !plan.pod_subnet_routes.is_empty() {
        out.push('\n');
        out.push_str(&pod_subnet_routes(&plan.pod_subnet_routes));
    }
    // What the nodes can hold under these settings comes after what will change.
    if let Some(sizing) = &plan.sizing {
        out.push('\n');
        out.push_str(&sizing.render());
    }
    out
}

fn render_changes(plan: &Plan, p: Palette) -> String {
    let mut out = String::new();
    let drifted: Vec<&PlannedChange> = plan
        .changes
        .iter()
        .filter(|c| !c.drift.is_empty())
        .collect();
    if !drifted.is_empty() {
        let _ = writeln!(
            out,
            "{}Note: objects have changed outside of eksnet{}\n",
            p.bold, p.reset
        );
        for c in &drifted {
            let _ = writeln!(
                out,
                "  # {} ({}): {} changed outside eksnet",
                c.addr,
                c.cloud_id.as_deref().unwrap_or("-"),
                c.drift.join(", ")
            );
        }
        out.push('\n');
    }
    let changes: Vec<&PlannedChange> = plan.changes.iter().filter(|c| c.is_change()).collect();
    if changes.is_empty() {
        out.push_str("No changes. Your infrastructure matches the spec.\n");
        return out;
    }
    out.push_str("eksnet will perform the following actions:\n\n");
    for c in changes {
        let (color, verb) = match c.action {
            Action::Create => (p.green, "will be created".to_string()),
            Action::Update => (p.yellow, "will be updated in place".to_string()),
            Action::Replace if c.create_before_destroy => (
                p.yellow,
                "must be replaced, create before destroy (the new one is ready before the old one is deleted)"
                    .to_string(),
            ),
            Action::Replace => (p.red, "must be replaced".to_string()),
            Action::Delete => (p.red, "will be destroyed".to_string()),
            Action::Adopt => (
                p.green,
                "will be recorded in the state (no change in AWS)".to_string(),
            ),
            Action::Forget => (
                p.yellow,
                "will be removed from the state (no change in AWS)".to_string(),
            ),
            Action::PutBack => (
                p.yellow,
                "will be put back as it was before eksnet, then removed from the state (it stays in AWS)"
                    .to_string(),
            ),
            Action::NoOp => ("", "is unchanged".to_string()),
        };
        let reason = c
            .reason
            .as_ref()
            .map(|r| format!(" ({})", reason(r)))
            .unwrap_or_default();
        let _ = writeln!(out, "  {}# {}{} {verb}{reason}", p.bold, c.addr, p.reset);
        let id = c
            .cloud_id
            .as_deref()
            .map(|i| format!(" [id={i}]"))
            .unwrap_or_default();
        let _ = writeln!(out, "{color}{:>3}{} {}{id}", c.symbol(), p.reset, c.addr);
        match c.action {
            Action::NoOp => {}
            Action::PutBack => render_attrs(&mut out, &put_back_view(c), p),
            _ => render_attrs(&mut out, c, p),
        }
        let when = if matches!(c.action, Action::Delete | Action::Forget) {
            "with it"
        } else {
            "once this one is ready"
        };
        for old in &c.deposed {
            let _ = writeln!(
                out,
                "{}  -{} {} old object [id={old}]: left by an interrupted replacement, destroyed {when}",
                p.red, p.reset, c.addr
            );
        }
        out.push('\n');
    }
    let (add, change, replace, destroy) = plan.counts();
    let _ = writeln!(
        out,
        "{}Plan:{} {add} to add, {change} to change, {replace} to replace, {destroy} to destroy.",
        p.bold, p.reset
    );
    out
}

/// Which route table each pod subnet uses once applied, one line each:
/// `  SUBNET: TABLE; ROUTES; SNAT`.
pub fn pod_subnet_routes(lines: &[PodSubnetRoute]) -> String {
    let mut out =
        String::from("Pod subnet routes (the table each pod subnet uses once applied):\n");
    for l in lines {
        let table = match &l.table {
            TableChoice::Spec { address, id } => format!(
                "{address} ({})",
                id.as_deref().unwrap_or("created by this apply")
            ),
            TableChoice::Associated { id } => {
                format!("route table {id} (associated outside eksnet)")
            }
            TableChoice::Main { id } => format!(
                "the VPC's main route table{} (implicit association, as the EKS guide warns)",
                id.as_deref().map(|i| format!(" {i}")).unwrap_or_default()
            ),
        };
        let routes = match &l.routes_out {
            None => "routes known after apply".to_string(),
            Some(hops) if hops.is_empty() => "no route out of the VPC (local only)".to_string(),
            Some(hops) => format!(
                "out of the VPC: {}",
                hops.iter()
                    .map(|h| format!(
                        "{} → {} ({})",
                        h.destination,
                        if value::is_unknown(&Value::String(h.target.clone())) {
                            "(known after apply)"
                        } else {
                            h.target.as_str()
                        },
                        h.kind.describe()
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let snat = match l.snat {
            SnatPath::NodePrimaryInterface => {
                "pod traffic leaves the VPC through the node's primary interface (SNAT)"
            }
            SnatPath::PodSubnet => {
                "pod traffic leaves the VPC from this subnet, untranslated (external SNAT)"
            }
        };
        let _ = writeln!(out, "  {}: {table}; {routes}; {snat}", l.subnet);
    }
    out
}

/// A put-back as the update it makes: each attribute the kind puts back (see
/// `KindFacts::puts_back`), from its last value to the one the state kept from before eksnet
/// (among the outputs refresh read).
fn put_back_view(c: &PlannedChange) -> PlannedChange {
    let (mut before, mut after) = (serde_json::Map::new(), serde_json::Map::new());
    for (attr, kept_in) in crate::resources::facts(c.addr.kind).puts_back {
        let now = c.before.as_ref().and_then(|b| b.get(*attr));
        let kept = c.observed_outputs.as_ref().and_then(|o| o.get(*kept_in));
        if let (Some(now), Some(kept)) = (now, kept) {
            before.insert(attr.to_string(), now.clone());
            after.insert(attr.to_string(), kept.clone());
        }
    }
    PlannedChange {
        action: Action::Update,
        before: Some(Value::Object(before)),
        after: Some(Value::Object(after)),
        ..c.clone()
    }
}

fn render_attrs(out: &mut String, c: &PlannedChange, p: Palette) {
    let empty = serde_json::Map::new();
    let before = c
        .before
        .as_ref()
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let after = c
        .after
        .as_ref()
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    let width = keys.iter().map(|k| k.len()).max().unwrap_or(0);
    for key in keys {
        let (b, a) = (before.get(key), after.get(key));
        let forces = if c.replace_because.contains(key) {
            format!(" {}# forces replacement{}", p.red, p.reset)
        } else {
            String::new()
        };
        match (c.action, b, a) {
            (Action::Create, _, Some(a)) => {
                let _ = writeln!(
                    out,
                    "      {}+{} {key:width$} = {}",
                    p.green,
                    p.reset,
                    show(a)
                );
            }
            (Action::Delete, Some(b), _) => {
                let _ = writeln!(
                    out,
                    "      {}-{} {key:width$} = {}",
                    p.red,
                    p.reset,
                    show(b)
                );
            }
            (_, Some(b), Some(a)) if b != a => match (b, a) {
                (Value::Object(bm), Value::Object(am)) if !value::is_unknown(a) => {
                    let _ = writeln!(
                        out,
                        "      {}~{} {key:width$} = {{{forces}",
                        p.yellow, p.reset
                    );
                    let mut ks: Vec<&String> = bm.keys().chain(am.keys()).collect();
                    ks.sort();
                    ks.dedup();
                    for k in ks {
                        match (bm.get(k), am.get(k)) {
                            (Some(x), Some(y)) if x != y => {
                                let _ = writeln!(
                                    out,
                                    "          {}~{} {:?} = {} -> {}",
                                    p.yellow,
                                    p.reset,
                                    k,
                                    show(x),
                                    show(y)
                                );
                            }
                            (None, Some(y)) => {
                                let _ = writeln!(
                                    out,
                                    "          {}+{} {:?} = {}",
                                    p.green,
                                    p.reset,
                                    k,
                                    show(y)
                                );
                            }
                            (Some(x), None) => {
                                let _ = writeln!(
                                    out,
                                    "          {}-{} {:?} = {}",
                                    p.red,
                                    p.reset,
                                    k,
                                    show(x)
                                );
                            }
                            _ => {}
                        }
                    }
                    let _ = writeln!(out, "        }}");
                }
                (Value::String(x), Value::String(y)) if x.contains('\n') && y.contains('\n') => {
                    let _ = writeln!(
                        out,
                        "      {}~{} {key:width$} = {} -> {}{forces}",
                        p.yellow,
                        p.reset,
                        show(b),
                        show(a)
                    );
                    let diff = similar::TextDiff::from_lines(x.as_str(), y.as_str());
                    for line in diff.unified_diff().context_radius(1).to_string().lines() {
                        let _ = writeln!(out, "          {line}");
                    }
                }
                _ => {
                    let _ = writeln!(
                        out,
                        "      {}~{} {key:width$} = {} -> {}{forces}",
                        p.yellow,
                        p.reset,
                        show(b),
                        show(a)
                    );
                }
            },
            (_, None, Some(a)) => {
                let _ = writeln!(
                    out,
                    "      {}+{} {key:width$} = {}{forces}",
                    p.green,
                    p.reset,
                    show(a)
                );
            }
            // Set on the object, left out of the spec, and that is what forces the
            // replacement (a nodegroup's launch template once `max_pods` is dropped).
            // Or compared although the spec leaves it out, and set on the object: unsetting it is
            // the update (a cluster's `auto_mode` dropped from the spec).
            (_, Some(b), None)
                if !forces.is_empty()
                    || (c.action == Action::Update
                        && crate::resources::facts(c.addr.kind)
                            .compared_when_unset
                            .contains(&key.as_str())
                        && !matches!(b, Value::Null)) =>
            {
                let _ = writeln!(
                    out,
                    "      {}-{} {key:width$} = {}{forces}",
                    p.red,
                    p.reset,
                    show(b)
                );
            }
            _ => {}
        }
    }
}

/// A plan as a compact Markdown summary for a pull-request comment: the counts, one table
/// row per change (what, why, which attributes), drift and warnings, and the full text plan
/// folded away. Plain: no colour codes, table cells escaped.
pub fn markdown(plan: &Plan) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = String::new();
    let (add, change, replace, destroy) = plan.counts();
    let what = if plan.destroy { "destroy plan" } else { "plan" };
    let _ = writeln!(out, "### eksnet {what} for `{}`\n", cell(&plan.spec_path));
    let changes: Vec<&PlannedChange> = plan.changes.iter().filter(|c| c.is_change()).collect();
    if changes.is_empty() {
        out.push_str("**No changes.** The infrastructure matches the spec.\n");
    } else {
        let _ = writeln!(
            out,
            "**{add} to add, {change} to change, {replace} to replace, {destroy} to destroy**\n"
        );
        out.push_str("| | Resource | Action | Id | Details |\n|---|---|---|---|---|\n");
        for c in &changes {
            let action = match c.action {
                Action::Create => "create",
                Action::Update => "update",
                Action::Replace => "**replace**",
                Action::Delete => "**destroy**",
                Action::Adopt => "record (no change in AWS)",
                Action::Forget => "forget (no change in AWS)",
                Action::PutBack => "put back as before eksnet, then forget",
                Action::NoOp => "",
            };
            let mut details = Vec::new();
            if !c.replace_because.is_empty() {
                details.push(format!("forced by {}", c.replace_because.join(", ")));
            } else if c.action == Action::Update {
                details.push(changed_keys(c).join(", "));
            } else if c.action == Action::PutBack {
                details.push(changed_keys(&put_back_view(c)).join(", "));
            }
            if let Some(r) = &c.reason {
                details.push(reason(r));
            }
            if c.create_before_destroy && c.action == Action::Replace {
                details.push("create before destroy".to_string());
            }
            if !c.deposed.is_empty() {
                details.push(format!(
                    "destroys {} left by an interrupted replacement",
                    c.deposed.join(", ")
                ));
            }
            let _ = writeln!(
                out,
                "| `{}` | `{}` | {action} | {} | {} |",
                c.symbol(),
                c.addr,
                c.cloud_id
                    .as_deref()
                    .map(|i| format!("`{}`", cell(i)))
                    .unwrap_or_default(),
                cell(&details.join("; "))
            );
        }
    }
    let drifted: Vec<&PlannedChange> = plan
        .changes
        .iter()
        .filter(|c| !c.drift.is_empty())
        .collect();
    if !drifted.is_empty() {
        out.push_str("\n**Changed outside eksnet:**\n");
        for c in drifted {
            let _ = writeln!(out, "- `{}`: {}", c.addr, cell(&c.drift.join(", ")));
        }
    }
    if !plan.warnings.is_empty() {
        out.push_str("\n**Warnings:**\n");
        for w in &plan.warnings {
            let at = w
                .key
                .as_deref()
                .map(|k| format!("`{k}`: "))
                .unwrap_or_default();
            let _ = writeln!(out, "- {at}{}", cell(&w.message));
        }
    }
    if !changes.is_empty() {
        out.push_str("\n<details><summary>Full plan</summary>\n\n```\n");
        out.push_str(&render(plan, Palette::PLAIN).replace("```", "'''"));
        out.push_str("```\n</details>\n");
    }
    let _ = writeln!(
        out,
        "\n<sub>State lineage `{}`, serial {}. Apply this exact plan with `eksnet apply PLANFILE`; it is refused if the state moved since.</sub>",
        if plan.state_lineage.is_empty() { "(none yet)" } else { &plan.state_lineage },
        plan.state_serial
    );
    out
}

/// The top-level attributes an update changes.
fn changed_keys(c: &PlannedChange) -> Vec<String> {
    let empty = serde_json::Map::new();
    let before = c
        .before
        .as_ref()
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let after = c
        .after
        .as_ref()
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut keys: Vec<String> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    keys.sort();
    keys
}

/// A plan's reason in words (the plan itself carries only its code).
pub fn reason(r: &Reason) -> String {
    let forgotten = |f: &Forgotten| match f {
        Forgotten::Adopted => "adopted, so never deleted by eksnet",
        Forgotten::AlreadyGone => "already gone",
    };
    match r {
        Reason::RemovedFromSpec { forgotten: None } => "removed from the spec".to_string(),
        Reason::RemovedFromSpec { forgotten: Some(f) } => {
            format!("removed from the spec; {}", forgotten(f))
        }
        Reason::Forgotten { forgotten: f } => forgotten(f).to_string(),
        Reason::StillBeingDeleted => {
            "it is still being deleted; it is created again once that has finished".to_string()
        }
        Reason::DeletedOutsideEksnet => "deleted outside eksnet".to_string(),
        Reason::ReplaceRequested => "replacement requested with --replace".to_string(),
        Reason::AdoptingExistingVpc => "adopting existing VPC".to_string(),
        Reason::ReadingExistingCluster => "an existing cluster, only read".to_string(),
        Reason::SettingsAlreadyInPlace => "the settings are already in place".to_string(),
        Reason::FoundAfterInterruptedRun => "found in AWS after an interrupted run".to_string(),
        Reason::InReplacedBlock { block } => format!(
            "it lies in {block}, which is replaced, and AWS cannot disassociate a block that still has subnets"
        ),
        Reason::ResumesReplacement => {
            "it finishes an interrupted replacement; the old one is deleted once this one is ready"
                .to_string()
        }
    }
}
