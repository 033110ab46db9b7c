//! The planner's pod subnet routing step: for each pod subnet (a subnet an ENIConfig of the
//! spec uses), the route table it uses once the plan is applied — the spec's table that
//! associates it, a table associated with it outside eksnet, or else the VPC's main table,
//! implicitly, as the EKS custom networking guide warns — which of that table's routes leave
//! the VPC, and how pods' traffic leaves it under the cluster's SNAT settings. The SNAT checks
//! `validate` could not make, on routes and blocks only AWS knows, are warnings here
//! (`domain::routing` judges; this step finds what to judge).

use crate::base::addr::{Kind, ResourceAddr};
use crate::base::diag::Diagnostic;
use crate::base::value::is_ref;
use crate::domain::routing::{self, Hop, RoutingReads, Snat};
use crate::plan::nodes::{cni_env, eni_subnet, eni_subnet_id, str_of};
use crate::plan::{Plan, PlannedChange};
use crate::resources::{self, ResourceConfig};
use crate::spec::Spec;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One pod subnet's routing once the plan is applied. Saved plans and `--json` carry codes
/// only; `render::pod_subnet_routes` words them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodSubnetRoute {
    /// `subnet.NAME`, or the subnet's id when the spec does not declare it.
    pub subnet: String,
    /// The subnet's id, once it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    /// The cluster whose ENIConfig uses it.
    pub cluster: String,
    pub table: TableChoice,
    /// The table's routes that leave the VPC (all but `local`); `None` when they are not
    /// known before apply (the VPC does not exist yet, or its tables could not be read).
    pub routes_out: Option<Vec<Hop>>,
    /// How pods' traffic to outside the VPC leaves it.
    pub snat: SnatPath,
}

/// Where a pod subnet's route table comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum TableChoice {
    /// The spec's `route_table` that associates it.
    Spec {
        address: ResourceAddr,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// A table associated with it outside eksnet.
    Associated { id: String },
    /// The VPC's main route table: no table is associated with the subnet, so it uses the
    /// main one implicitly. `id` when the VPC's tables were read.
    Main {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
}

/// How pods' traffic to outside the VPC leaves it (the VPC CNI's README,
/// `AWS_VPC_K8S_CNI_EXTERNALSNAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnatPath {
    /// The default: translated to the node's primary address, out of its primary
    /// interface, so the node subnet's routes carry it.
    NodePrimaryInterface,
    /// External SNAT: untranslated, from the pod's own interface, so this subnet's routes
    /// carry it and something on them must translate it.
    PodSubnet,
}

/// The table a pod subnet uses, found in the plan or in what was read, and the words the
/// warnings name it by.
struct Found {
    choice: TableChoice,
    routes_out: Option<Vec<Hop>>,
    /// A table the spec creates: `validate` judged its routes already.
    judged: bool,
}

fn table_words(choice: &TableChoice) -> String {
    match choice {
        TableChoice::Spec { address, .. } => format!("`{address}`"),
        TableChoice::Associated { id } => format!("route table {id} (associated outside eksnet)"),
        TableChoice::Main { id } => format!(
            "the VPC's main route table{}",
            id.as_deref().map(|i| format!(" {i}")).unwrap_or_default()
        ),
    }
}

/// The route table change of the spec that associates the subnet (written `raw` in the
/// ENIConfig, with the id `id` once known).
fn spec_table<'p>(
    plan: &'p Plan,
    spec: &Spec,
    raw: &str,
    id: Option<&str>,
) -> Option<&'p PlannedChange> {
    plan.changes.iter().find(|c| {
        c.addr.kind == Kind::RouteTable
            && c.after.is_some()
            && (matches!(spec.get(&c.addr).map(|r| &r.config),
                    Some(ResourceConfig::RouteTable(t)) if t.subnet_ids.iter().any(|s| s == raw))
                || id.is_some_and(|id| {
                    resources::str_list(c.after.as_ref().unwrap_or(&Value::Null), "subnet_ids")
                        .iter()
                        .any(|s| s == id)
                }))
    })
}

fn find_table(
    plan: &Plan,
    spec: &Spec,
    reads: Option<&RoutingReads>,
    raw: &str,
    subnet_id: Option<&str>,
    vpc: Option<&str>,
) -> Found {
    if let Some(t) = spec_table(plan, spec, raw, subnet_id) {
        let after = t.after.as_ref();
        let adopted = after.is_some_and(|a| resources::is_adopted(&t.addr, a));
        let routes_out = if adopted {
            // Its routes are its own, as read.
            t.observed_outputs
                .as_ref()
                .map(|o| routing::hops_of_attr(o.get("routes")))
        } else {
            Some(routing::hops_of_attr(after.and_then(|a| a.get("routes"))))
        };
        return Found {
            choice: TableChoice::Spec {
                address: t.addr.clone(),
                id: t.cloud_id.clone(),
            },
            routes_out,
            judged: !adopted,
        };
    }
    let tables = vpc.and_then(|v| reads?.tables.get(v));
    let Some(tables) = tables else {
        return Found {
            choice: TableChoice::Main { id: None },
            routes_out: None,
            judged: false,
        };
    };
    let (choice, table) = match tables
        .iter()
        .find(|t| subnet_id.is_some_and(|s| t.subnet_ids.iter().any(|x| x == s)))
    {
        Some(t) => (TableChoice::Associated { id: t.id.clone() }, Some(t)),
        None => {
            let main = tables.iter().find(|t| t.main);
            (
                TableChoice::Main {
                    id: main.map(|t| t.id.clone()),
                },
                main,
            )
        }
    };
    Found {
        choice,
        routes_out: table.map(routing::hops_out_of),
        judged: false,
    }
}

/// The VPC of a subnet the plan knows: as its change resolves it, else as it was read.
fn subnet_vpc(sub: &PlannedChange) -> Option<String> {
    str_of(sub, "vpc_id")
        .filter(|v| !is_ref(v))
        .or_else(|| {
            sub.observed_outputs
                .as_ref()
                .and_then(|o| resources::str_attr(o, "vpc_id"))
        })
        .map(String::from)
}

/// The VPC of a subnet the spec does not declare (an ENIConfig naming a subnet by id): the
/// VPC whose tables or subnets list it.
fn vpc_of_id(plan: &Plan, reads: Option<&RoutingReads>, id: &str) -> Option<String> {
    if let Some((vpc, _)) = reads
        .into_iter()
        .flat_map(|r| &r.tables)
        .find(|(_, ts)| ts.iter().any(|t| t.subnet_ids.iter().any(|s| s == id)))
    {
        return Some(vpc.clone());
    }
    plan.changes
        .iter()
        .filter(|c| c.addr.kind == Kind::Vpc)
        .filter_map(|c| c.observed_outputs.as_ref())
        .find(|o| o.get("subnet_azs").and_then(|m| m.get(id)).is_some())
        .and_then(|o| resources::str_attr(o, "id"))
        .map(String::from)
}

/// The VPC's blocks as read (its outputs `cidr_block` and `cidr_blocks`).
fn live_blocks(plan: &Plan, vpc: &str) -> Vec<Ipv4Net> {
    let mut out: Vec<Ipv4Net> = plan
        .changes
        .iter()
        .filter(|c| c.addr.kind == Kind::Vpc)
        .filter_map(|c| c.observed_outputs.as_ref())
        .filter(|o| resources::str_attr(o, "id") == Some(vpc))
        .flat_map(|o| {
            let mut b = resources::str_list(o, "cidr_blocks");
            b.extend(resources::str_attr(o, "cidr_block").map(String::from));
            b
        })
        .filter_map(|b| b.parse::<Ipv4Net>().ok())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The cluster's CNI settings resource in the plan, where its SNAT findings belong.
fn settings_of(plan: &Plan, spec: &Spec, cluster: &str) -> Option<ResourceAddr> {
    plan.changes
        .iter()
        .filter(|c| crate::domain::cni::carries_settings(c.addr.kind, &[c.after.as_ref()]))
        .find(|c| {
            str_of(c, "cluster_name")
                .map(|n| spec.resolved_name(n))
                .as_deref()
                == Some(cluster)
        })
        .map(|c| c.addr.clone())
}

/// Every pod subnet's routing, and the warnings on what only the reads say.
pub fn assess(
    spec: &Spec,
    plan: &Plan,
    reads: Option<&RoutingReads>,
) -> (Vec<PodSubnetRoute>, Vec<Diagnostic>) {
    let mut lines: Vec<PodSubnetRoute> = Vec::new();
    let mut warnings: Vec<Diagnostic> = reads
        .into_iter()
        .flat_map(|r| &r.problems)
        .map(|p| Diagnostic::warning(p.clone()))
        .collect();
    // Per cluster: its SNAT settings, and the VPCs of its pod subnets.
    let mut vpcs_of: Vec<(String, Vec<String>)> = Vec::new();
    for eni in plan
        .changes
        .iter()
        .filter(|c| c.addr.kind == Kind::EniConfig && c.after.is_some())
    {
        let cluster = spec.resolved_name(str_of(eni, "cluster_name").unwrap_or_default());
        let (raw, resolved) = eni_subnet_id(spec, eni);
        let sub = eni_subnet(plan, spec, eni);
        let subnet = sub
            .map(|s| s.addr.to_string())
            .unwrap_or_else(|| resolved.clone());
        if lines.iter().any(|l| l.subnet == subnet) {
            continue;
        }
        let subnet_id = sub
            .and_then(|s| s.cloud_id.clone())
            .or_else(|| Some(resolved.clone()).filter(|r| !is_ref(r) && sub.is_none()));
        let vpc = match sub {
            Some(s) => subnet_vpc(s),
            None => vpc_of_id(plan, reads, &resolved),
        };
        let found = find_table(
            plan,
            spec,
            reads,
            &raw,
            subnet_id.as_deref(),
            vpc.as_deref(),
        );
        let env = serde_json::to_value(cni_env(plan, spec, &cluster)).ok();
        let snat = Snat::from_env(env.as_ref());
        if let Some(v) = &vpc {
            match vpcs_of.iter_mut().find(|(c, _)| *c == cluster) {
                Some((_, vs)) if !vs.contains(v) => vs.push(v.clone()),
                Some(_) => {}
                None => vpcs_of.push((cluster.clone(), vec![v.clone()])),
            }
        }
        // What `validate` could not judge: the routes of a table it did not see.
        if let (false, Some(hops), Some(settings)) = (
            found.judged,
            found.routes_out.as_ref(),
            settings_of(plan, spec, &cluster),
        ) {
            let blocks = vpc
                .as_deref()
                .map(|v| live_blocks(plan, v))
                .unwrap_or_default();
            let words = routing::subnet_words(if sub.is_some() { &raw } else { &resolved });
            for f in routing::snat_route_findings(
                &snat,
                &words,
                &table_words(&found.choice),
                hops,
                &blocks,
            ) {
                warnings.push(spec.warning_at(
                    format!("{settings}.{}.{}", routing::env_key(settings.kind), f.env),
                    f.message,
                ));
            }
        }
        lines.push(PodSubnetRoute {
            subnet,
            subnet_id,
            cluster,
            table: found.choice,
            routes_out: found.routes_out,
            snat: if snat.external {
                SnatPath::PodSubnet
            } else {
                SnatPath::NodePrimaryInterface
            },
        });
    }
    // Excluded ranges against the VPC's blocks the spec does not write (`validate` saw those).
    for (cluster, vpcs) in &vpcs_of {
        let Some(settings) = settings_of(plan, spec, cluster) else {
            continue;
        };
        let env = serde_json::to_value(cni_env(plan, spec, cluster)).ok();
        let snat = Snat::from_env(env.as_ref());
        let written = routing::written_blocks(spec);
        let blocks: Vec<(Ipv4Net, String)> = vpcs
            .iter()
            .flat_map(|v| {
                live_blocks(plan, v)
                    .into_iter()
                    .filter(|b| !written.contains(b))
                    .map(move |b| (b, format!("associated with {v}")))
            })
            .collect();
        for message in routing::excluded_overlaps(&snat, &blocks) {
            warnings.push(spec.warning_at(
                format!(
                    "{settings}.{}.{}",
                    routing::env_key(settings.kind),
                    routing::EXCLUDE_SNAT_CIDRS_ENV
                ),
                message,
            ));
        }
    }
    (lines, warnings)
}

/// Adds the pod subnets' routing to a plan, and its warnings to the plan's.
pub fn attach(spec: &Spec, plan: &mut Plan, reads: Option<&RoutingReads>) {
    let (lines, warnings) = assess(spec, plan, reads);
    plan.warnings.extend(warnings);
    plan.pod_subnet_routes = lines;
}
