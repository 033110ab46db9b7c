//! The spec `init` writes, as TOML text with comments that say where each value comes from.
//! Pure and deterministic: the same facts give the same bytes (everything is sorted; no time,
//! no endpoint, no credential is written).

use super::decide::{usable, POD_RANGE, PREFERRED_SUBNET};
use super::decide::{CniPath, Proposal, SecurityGroups, Selection, HEADROOM_PERCENT};
use super::NodeOwner;
use crate::domain::cni::{ADDON_NAME, CUSTOM_NETWORK_ENV, LABEL_DEF_ENV};
use serde_json::{Map, Value};
use std::fmt::Write as _;

/// Comment lines are wrapped at this width.
const WIDTH: usize = 96;

/// The spec's text. `file` is how the commands in its header name it.
pub fn render(p: &Proposal, file: &str) -> String {
    let mut out = String::new();
    header(&mut out, p, file);
    settings(&mut out, p);
    vpc(&mut out, p);
    cluster(&mut out, p);
    routing(&mut out, p);
    block(&mut out, p);
    subnets(&mut out, p);
    route_tables(&mut out, p);
    cni(&mut out, p);
    eni_configs(&mut out, p, file);
    node_sources(&mut out, p, file);
    // One trailing newline, none doubled.
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// `text` as `# ` comment lines wrapped at `WIDTH`: its own leading spaces start the first
/// line, `indent` spaces (after `# `) start the lines it wraps onto.
fn comment(out: &mut String, text: &str, indent: usize) {
    let lead = text.len() - text.trim_start().len();
    let mut line = format!("# {}", " ".repeat(lead));
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.len() + 1 + word.len() > WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = format!("# {}", " ".repeat(indent));
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// A list item under a comment: `#   - text`, wrapped.
fn item(out: &mut String, text: &str) {
    comment(out, &format!("  - {text}"), 4);
}

/// A line under a list item: `#       text`, wrapped.
fn sub_item(out: &mut String, text: &str) {
    comment(out, &format!("      {text}"), 8);
}

/// A TOML string (basic, escaped).
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A TOML key: bare when it can be, else quoted.
fn key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        q(k)
    }
}

fn header(out: &mut String, p: &Proposal, file: &str) {
    let _ = writeln!(
        out,
        "# eksnet spec for the EKS cluster `{}` in {}, written by `eksnet init`.",
        p.cluster, p.region
    );
    out.push_str("#\n");
    comment(
        out,
        "It turns the VPC CNI's custom networking on: pods get their IPs from pod subnets in a \
         secondary CIDR block, one subnet per AZ where the cluster's nodes run, instead of from \
         the node subnets. The VPC and the cluster are only read: eksnet never changes or \
         deletes them, nor the nodes and the groups that run them (listed at the end).",
        0,
    );
    out.push_str("#\n");
    let _ = writeln!(out, "#   eksnet validate {file}");
    let _ = writeln!(
        out,
        "#   eksnet plan {file}      # additions only (and the CNI setting turned on)"
    );
    let _ = writeln!(out, "#   eksnet apply {file}");
    let _ = writeln!(
        out,
        "#   eksnet roll {file}      # then move the existing nodes onto the pod subnets"
    );
    if !p.warnings.is_empty() {
        out.push_str("#\n# Read first:\n");
        for w in &p.warnings {
            item(out, w);
        }
    }
    out.push('\n');
}

fn settings(out: &mut String, p: &Proposal) {
    let _ = writeln!(out, "[settings]\nregion = {}\n", q(&p.region));
}

fn vpc(out: &mut String, p: &Proposal) {
    let blocks: Vec<String> = p
        .vpc_blocks
        .iter()
        .map(|b| {
            if Some(*b) == p.vpc_primary {
                format!("{b} (primary)")
            } else {
                b.to_string()
            }
        })
        .collect();
    comment(
        out,
        &format!(
            "The cluster's VPC, adopted by its id: eksnet reads it and never changes or deletes \
             it. Its IPv4 blocks: {}. `cidr_block` is only checked.",
            blocks.join(", ")
        ),
        0,
    );
    let _ = writeln!(out, "[vpc.main]\nid = {}", q(&p.vpc_id));
    if let Some(primary) = p.vpc_primary {
        let _ = writeln!(out, "cidr_block = {}", q(&primary.to_string()));
    }
    out.push('\n');
}

fn cluster(out: &mut String, p: &Proposal) {
    let version = p
        .cluster_version
        .as_deref()
        .map(|v| format!(" (Kubernetes {v})"))
        .unwrap_or_default();
    comment(
        out,
        &format!(
            "The cluster{version}, made elsewhere: `existing = true` means eksnet only reads it \
             by name, never creates, changes or deletes it; `eksnet destroy` forgets it."
        ),
        0,
    );
    let _ = writeln!(
        out,
        "[cluster.main]\nname = {}\nexisting = true\n",
        q(&p.cluster)
    );
}

fn routing(out: &mut String, p: &Proposal) {
    let r = &p.routing;
    comment(
        out,
        "Routing. A new subnet uses the VPC's main route table until it is associated with \
         another (the EKS custom networking guide's warning). Each pod subnet below joins the \
         route table its AZ's node subnets use, where they have one of their own \
         (`[route_table.*]`, after the subnets): eksnet only adds that association, and \
         removes it on destroy.",
        0,
    );
    for s in &r.node_subnets {
        let how = if s.explicit {
            "associated explicitly"
        } else {
            "the main table, implicitly"
        };
        item(
            out,
            &format!(
                "node subnet {}{} uses {} ({how})",
                s.subnet_id,
                s.az.as_deref()
                    .map(|a| format!(" ({a})"))
                    .unwrap_or_default(),
                s.table.as_deref().unwrap_or("no route table")
            ),
        );
    }
    let main = r.main_table.as_deref().unwrap_or("(none found)");
    if r.missing_in_main.is_empty() {
        item(
            out,
            &format!(
                "a new subnet uses the VPC's main route table, {main}, until it is associated \
                 with another; the node subnets' tables have no route it lacks, so pods reach \
                 what the nodes reach"
            ),
        );
    } else {
        item(
            out,
            &format!(
                "a new subnet uses the VPC's main route table, {main}, until it is associated \
                 with another; it differs from the node subnets' tables, which also route:"
            ),
        );
        for m in &r.missing_in_main {
            sub_item(
                out,
                &format!(
                    "{} → {} ({}, in {})",
                    m.route.destination,
                    m.route.target,
                    m.route.target_kind(),
                    m.tables.join(", ")
                ),
            );
        }
        let joined = p
            .zones
            .iter()
            .filter(|z| z.subnet.is_some())
            .all(|z| z.node_route_table.is_some());
        item(
            out,
            if joined {
                "so each pod subnet joins its AZ's node route table (below), and pods reach \
                 those destinations too"
            } else {
                "a pod subnet that joins no node route table (below) routes as the main table \
                 does: its pods do not reach those destinations unless its AZ's nodes use the \
                 main table too"
            },
        );
    }
    out.push('\n');
}

fn block(out: &mut String, p: &Proposal) {
    let Some(b) = &p.block else {
        comment(
            out,
            "No new secondary block: every AZ where nodes run already has its ENIConfig (below).",
            0,
        );
        out.push('\n');
        return;
    };
    let avoided = if b.avoided.is_empty() {
        String::new()
    } else {
        format!(
            " It stays clear of what the VPC already knows in {POD_RANGE}: {}.",
            b.avoided
                .iter()
                .map(|t| format!("{}: {}", t.cidr, t.why))
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    comment(
        out,
        &format!(
            "The pods' secondary block, from {POD_RANGE} (shared address space: AWS associates \
             it beside any primary block, and it is not routed outside the VPC unless routed on \
             purpose). The largest free block up to /16 that holds the pod subnets: it overlaps \
             none of the VPC's blocks and no destination in its route tables.{avoided}"
        ),
        0,
    );
    let _ = writeln!(
        out,
        "[cidr_block.pods]\nvpc_id = \"${{vpc.main.id}}\"\ncidr_block = {}\n",
        q(&b.cidr.to_string())
    );
}

fn subnets(out: &mut String, p: &Proposal) {
    let Some(b) = &p.block else {
        return;
    };
    let mode = &p.cni.mode;
    let pd = if mode.prefix_delegation {
        " (in /28 prefixes under prefix delegation: each counts 16)"
    } else {
        ""
    };
    comment(
        out,
        &format!(
            "Pod subnets, one per AZ where nodes run, in the block above. Each holds the most \
             nodes that can land in its AZ (every group at its max size, spread evenly over its \
             AZs; nodes with no known maximum as they are now) × their max pods under custom \
             networking, with the CNI's warm pool and the ENIs' own addresses (the arithmetic \
             of `eksnet capacity`){pd}, plus {HEADROOM_PERCENT}% headroom; each is a /{} \
             ({} addresses){}.",
            b.subnet_len,
            usable(b.subnet_len),
            if b.subnet_len == PREFERRED_SUBNET {
                ", the size written when the nodes need less"
            } else {
                ""
            }
        ),
        0,
    );
    for z in &p.zones {
        if let Some(e) = &z.existing_eni_config {
            item(
                out,
                &format!("{}: has the ENIConfig `{e}` already (below)", z.az),
            );
            continue;
        }
        let several = z.groups.len() > 1;
        let groups: Vec<String> = z
            .groups
            .iter()
            .map(|(label, nodes, demand)| {
                let per_node = p
                    .sources
                    .iter()
                    .find(|s| &s.owner.describe() == label)
                    .and_then(|s| Some((s.pods_per_node?, s.instance_types.join("/"))));
                let each = match per_node {
                    Some((pods, types)) => format!("{label}, {nodes} × {types} at {pods} max pods"),
                    None => format!("{label}, {nodes} node(s)"),
                };
                if several {
                    format!("{each} = {demand}")
                } else {
                    each
                }
            })
            .collect();
        item(
            out,
            &format!(
                "{}: {} → {} addresses (pods, the CNI's warm pool and the ENIs' own), \
                 +{HEADROOM_PERCENT}% → {}: a /{} would hold them ({})",
                z.az,
                if groups.is_empty() {
                    "no node with known limits".to_string()
                } else {
                    groups.join("; ")
                },
                z.demand,
                z.needed,
                z.needed_len,
                usable(z.needed_len)
            ),
        );
    }
    out.push('\n');
    for z in &p.zones {
        let Some(cidr) = z.subnet else { continue };
        if let Some(t) = p.route_tables.iter().find(|t| t.azs.contains(&z.az)) {
            comment(
                out,
                &format!(
                    "The node subnets of {} use {}: `route_table.{}` (below) associates this \
                     subnet with it.",
                    z.az,
                    t.id,
                    t.name()
                ),
                0,
            );
        }
        let _ = writeln!(
            out,
            "[subnet.{}]\nvpc_id = \"${{vpc.main.id}}\"\ncidr_block = {}\navailability_zone = {}\ntags = {{ Name = {} }}\n",
            key(&z.subnet_name()),
            q(&cidr.to_string()),
            q(&z.az),
            q(&format!("{}-pods-{}", p.cluster, z.az))
        );
    }
}

/// The node subnets' own route tables, each adopted (`existing = true`) with the pod subnets
/// of its AZs to associate.
fn route_tables(out: &mut String, p: &Proposal) {
    for t in &p.route_tables {
        let one = t.azs.len() == 1;
        comment(
            out,
            &format!(
                "The route table the node subnets of {} use, made elsewhere: `existing = true` \
                 means eksnet never changes its routes or deletes it; it only associates the pod \
                 subnet{} of {} with it, so that pods reach what the nodes reach, and destroy \
                 removes only {}.",
                t.azs.join(" and "),
                if one { "" } else { "s" },
                if one { "that AZ" } else { "those AZs" },
                if one {
                    "that association"
                } else {
                    "those associations"
                },
            ),
            0,
        );
        let subnets: Vec<String> = t
            .azs
            .iter()
            .filter_map(|az| p.zones.iter().find(|z| &z.az == az))
            .map(|z| format!("\"${{subnet.{}.id}}\"", z.subnet_name()))
            .collect();
        let _ = writeln!(
            out,
            "[route_table.{}]\nexisting = true\nid = {}\nsubnet_ids = [{}]\n",
            key(&t.name()),
            q(&t.id),
            subnets.join(", ")
        );
    }
}

fn cni(out: &mut String, p: &Proposal) {
    let c = &p.cni;
    let version = c
        .version
        .as_deref()
        .map(|v| format!(" ({v})"))
        .unwrap_or_default();
    let selection = match &c.selection {
        Selection::Label(l) => {
            format!("{LABEL_DEF_ENV}={l}: each node picks the ENIConfig named by its `{l}` label")
        }
        Selection::Annotation => {
            "nodes pick their ENIConfig by their `k8s.amazonaws.com/eniConfig` annotation, as \
             now"
            .to_string()
        }
    };
    let was = if c.already_on {
        "Custom networking is on already; the settings are written as they are."
    } else {
        "Existing nodes keep their addresses until they are replaced (see the end)."
    };
    match c.path {
        CniPath::AwsNode => {
            comment(
                out,
                &format!(
                    "The VPC CNI is the self-managed `aws-node` DaemonSet{version}, with no \
                     `{ADDON_NAME}` add-on: custom networking goes on as entries of its \
                     environment, {CUSTOM_NETWORK_ENV}=true and {selection}. eksnet patches only \
                     these entries and puts their earlier values back on destroy. {was}"
                ),
                0,
            );
            let _ = writeln!(
                out,
                "[aws_node.main]\ncluster_name = \"${{cluster.main.name}}\"\ncustom_network = true"
            );
        }
        CniPath::Addon => {
            comment(
                out,
                &format!(
                    "The VPC CNI is the EKS add-on `{ADDON_NAME}`{version}: the settings go into \
                     its configuration values, which EKS keeps across add-on updates \
                     ({CUSTOM_NETWORK_ENV}=true and {selection}). `existing = true`: the add-on \
                     was made elsewhere; eksnet only updates its configuration values, puts the \
                     earlier ones back on destroy, and never deletes it. Its other configuration \
                     values are kept as they are. {was}"
                ),
                0,
            );
            let _ = writeln!(
                out,
                "[addon.vpc_cni]\ncluster_name = \"${{cluster.main.name}}\"\nname = {}\nexisting = true\ncustom_network = true",
                q(ADDON_NAME)
            );
        }
    }
    match &c.selection {
        Selection::Label(l) => {
            let _ = writeln!(out, "eni_config_label = {}", q(l));
        }
        Selection::Annotation => {
            let _ = writeln!(out, "eni_config_selection = \"annotation\"");
        }
    }
    out.push('\n');
    if c.path == CniPath::Addon && !c.configuration_values.is_empty() {
        table(
            out,
            "addon.vpc_cni.configuration_values",
            &c.configuration_values,
        );
    }
}

/// A JSON object as TOML tables: its scalars and arrays under `[header]`, its objects as
/// sub-tables. JSON `null` has no TOML form: such a key is left out, with a comment.
fn table(out: &mut String, header: &str, map: &Map<String, Value>) {
    let _ = writeln!(out, "[{header}]");
    let mut subtables = Vec::new();
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for (k, v) in keys.into_iter().filter_map(|k| Some((k, map.get(k)?))) {
        match v {
            Value::Object(m) => subtables.push((k, m)),
            Value::Null => {
                let _ = writeln!(out, "# {} = null (TOML has no null: left out)", key(k));
            }
            other => {
                let _ = writeln!(out, "{} = {}", key(k), inline(other));
            }
        }
    }
    out.push('\n');
    for (k, m) in subtables {
        table(out, &format!("{header}.{}", key(k)), m);
    }
}

/// A JSON value as an inline TOML value (nulls inside arrays and tables dropped).
fn inline(v: &Value) -> String {
    to_toml(v).map(|t| t.to_string()).unwrap_or_default()
}

fn to_toml(v: &Value) -> Option<toml::Value> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64()?),
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(a) => toml::Value::Array(a.iter().filter_map(to_toml).collect()),
        Value::Object(m) => toml::Value::Table(
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), to_toml(v)?)))
                .collect(),
        ),
    })
}

fn eni_configs(out: &mut String, p: &Proposal, file: &str) {
    let sg = match &p.security_groups {
        SecurityGroups::Cluster(id) => format!(
            "the cluster security group {id} for the pods (the default when \
             `security_group_ids` is left out)"
        ),
        SecurityGroups::Explicit(ids) => format!(
            "the cluster's security groups ({}) for the pods, since AWS returned no cluster \
             security group",
            if ids.is_empty() {
                "none".to_string()
            } else {
                ids.join(", ")
            }
        ),
    };
    if p.zones.iter().any(|z| z.subnet.is_some()) {
        comment(
            out,
            &format!(
                "ENIConfigs, one per new pod subnet, named after its AZ (what nodes look for by \
                 their zone label), with {sg}."
            ),
            0,
        );
        out.push('\n');
    }
    for z in &p.zones {
        if z.subnet.is_none() {
            continue;
        }
        let _ = writeln!(
            out,
            "[eni_config.{}]\ncluster_name = \"${{cluster.main.name}}\"\nname = {}\nsubnet_id = \"${{subnet.{}.id}}\"",
            key(&z.az),
            q(&z.az),
            z.subnet_name()
        );
        if let SecurityGroups::Explicit(ids) = &p.security_groups {
            let _ = writeln!(out, "security_group_ids = {}", string_list(ids));
        }
        out.push('\n');
    }
    for e in &p.existing_eni_configs {
        let Some(subnet) = &e.subnet_id else { continue };
        let name = eni_config_key(&e.name);
        let owner = match &e.managed_by {
            Some(l) => format!(
                " It carries the annotation of another eksnet state (lineage {l}), which \
                 manages it: remove this block, or use that state's spec."
            ),
            None => format!(
                " eksnet does not take over an object it did not create: record it with \
                 `eksnet import {file} eni_config.{name} {}/{}` before the first apply (from \
                 then on eksnet manages it, and `eksnet destroy` deletes it; `eksnet state rm \
                 eni_config.{name}` before a destroy keeps it).",
                p.cluster, e.name
            ),
        };
        comment(
            out,
            &format!(
                "The ENIConfig `{}` exists already (pod subnet {subnet}): written as it is, so the \
                 plan changes nothing in it.{owner}",
                e.name
            ),
            0,
        );
        let _ = writeln!(
            out,
            "[eni_config.{name}]\ncluster_name = \"${{cluster.main.name}}\"\nname = {}\nsubnet_id = {}\nsecurity_group_ids = {}\n",
            q(&e.name),
            q(subnet),
            string_list(&e.security_group_ids)
        );
    }
}

/// The spec name of an existing ENIConfig: its name with what a resource name cannot hold
/// (`.`) as `_`.
pub fn eni_config_key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn string_list(items: &[String]) -> String {
    format!(
        "[{}]",
        items.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
    )
}

fn node_sources(out: &mut String, p: &Proposal, file: &str) {
    comment(
        out,
        &format!(
            "Node sources. They are NOT declared here: each stays owned by the tool that runs it, \
             and eksnet never changes them. Their nodes keep giving pods IPs from the node \
             subnets until they are replaced: after `eksnet apply`, `eksnet roll {file}` moves \
             the existing nodes onto the pod subnets (node by node: cordon, drain, terminate, \
             and their group brings a new one)."
        ),
        0,
    );
    if p.sources.is_empty() {
        item(out, "none: the cluster has no nodes and no node groups");
    }
    for s in &p.sources {
        let mut facts = Vec::new();
        if let Some(max) = s.max_size {
            facts.push(format!("max size {max}"));
        } else if s.owner != NodeOwner::Fargate {
            facts.push("no max size known: sized for its current nodes".into());
        }
        if !s.instance_types.is_empty() {
            facts.push(s.instance_types.join(", "));
        }
        if let Some(pods) = s.pods_per_node {
            facts.push(format!("{pods} max pods under custom networking"));
        }
        if !s.azs.is_empty() {
            facts.push(s.azs.join(", "));
        }
        if s.owner == NodeOwner::Fargate {
            facts.push("custom networking does not apply to Fargate".into());
        }
        let nodes = if s.nodes.is_empty() {
            "no nodes now".to_string()
        } else {
            format!("{} node(s): {}", s.nodes.len(), s.nodes.join(", "))
        };
        item(
            out,
            &format!("{} ({}); {nodes}", s.owner.describe(), facts.join("; ")),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adopt::decide::decide;
    use crate::adopt::fixture::facts;
    use crate::adopt::{AddonInfo, EniConfigInfo};

    /// The text, checked by eksnet's own reader and validation as `validate` does.
    fn valid(text: &str) -> crate::spec::Spec {
        let spec = crate::spec::parse(std::path::Path::new("spec.toml"), text)
            .unwrap_or_else(|d| panic!("does not parse: {d:?}\n{text}"));
        let diags = crate::validate::validate(&spec);
        assert!(!diags.has_errors(), "{diags:?}\n{text}");
        assert!(
            crate::plan::graph::DependencyGraph::build(&spec, None).is_ok(),
            "a cycle\n{text}"
        );
        spec
    }

    #[test]
    fn the_spec_validates_and_declares_only_what_init_decided() {
        let p = decide(&facts()).unwrap();
        let text = render(&p, "spec.toml");
        let spec = valid(&text);
        let addrs: Vec<String> = spec.resources.keys().map(|a| a.to_string()).collect();
        assert_eq!(
            addrs,
            vec![
                "vpc.main",
                "cidr_block.pods",
                "subnet.pods-us-west-2a",
                "subnet.pods-us-west-2b",
                "route_table.nodes-us-west-2a",
                "route_table.nodes-us-west-2b",
                "cluster.main",
                "aws_node.main",
                "eni_config.us-west-2a",
                "eni_config.us-west-2b",
            ]
        );
        for part in [
            "[vpc.main]\nid = \"vpc-0123456789abcdef0\"\ncidr_block = \"192.168.0.0/24\"\n",
            "[cluster.main]\nname = \"demo\"\nexisting = true\n",
            "[cidr_block.pods]\nvpc_id = \"${vpc.main.id}\"\ncidr_block = \"100.64.0.0/16\"\n",
            "[subnet.pods-us-west-2b]\nvpc_id = \"${vpc.main.id}\"\ncidr_block = \"100.64.32.0/19\"\navailability_zone = \"us-west-2b\"\n",
            "[aws_node.main]\ncluster_name = \"${cluster.main.name}\"\ncustom_network = true\neni_config_label = \"topology.kubernetes.io/zone\"\n",
            "[eni_config.us-west-2a]\ncluster_name = \"${cluster.main.name}\"\nname = \"us-west-2a\"\nsubnet_id = \"${subnet.pods-us-west-2a.id}\"\n",
            // Each pod subnet joins its AZ's node route table.
            "[route_table.nodes-us-west-2a]\nexisting = true\nid = \"rtb-0000000a\"\nsubnet_ids = [\"${subnet.pods-us-west-2a.id}\"]\n",
        ] {
            assert!(text.contains(part), "missing {part:?} in\n{text}");
        }
        // The numbers, the routing and the node sources are said in comments.
        let flat = text.replace("\n#", " ");
        let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
        for said in [
            "us-west-2a: managed nodegroup `ng1`, 2 × t3.medium at 12 max pods → 24 addresses",
            "+50% → 36: a /26 would hold them (59)",
            "each is a /19 (8187 addresses)",
            "node subnet subnet-a (us-west-2a) uses rtb-0000000a (associated explicitly)",
            "0.0.0.0/0 → nat-a (NAT gateway, in rtb-0000000a)",
            "The node subnets of us-west-2a use rtb-0000000a: `route_table.nodes-us-west-2a` (below) associates this subnet with it.",
            "so each pod subnet joins its AZ's node route table (below)",
            "the cluster security group sg-0123456789abcdef0",
            "managed nodegroup `ng1` (max size 4; t3.medium; 12 max pods under custom networking",
            "`eksnet roll spec.toml` moves the existing nodes",
        ] {
            assert!(flat.contains(said), "{said:?} not said in\n{text}");
        }
        assert!(!text.contains("[nodegroup."), "{text}");
        assert!(
            text.lines()
                .filter(|l| l.starts_with('#'))
                .all(|l| l.chars().count() <= WIDTH + 20),
            "{text}"
        );
    }

    #[test]
    fn the_same_facts_in_another_order_give_the_same_bytes() {
        let f = facts();
        let mut g = facts();
        g.nodes.reverse();
        g.route_tables.reverse();
        g.cluster.subnet_ids.reverse();
        let a = render(&decide(&f).unwrap(), "spec.toml");
        let b = render(&decide(&g).unwrap(), "spec.toml");
        assert_eq!(a, b);
    }

    #[test]
    fn the_addon_path_marks_the_addon_existing_and_keeps_its_values() {
        let mut f = facts();
        f.cni.addon = Some(AddonInfo {
            version: Some("v1.19.2-eksbuild.1".into()),
            configuration_values: serde_json::from_str(
                r#"{"env":{"WARM_IP_TARGET":"5","ENI_CONFIG_LABEL_DEF":"topology.kubernetes.io/zone"},"enableNetworkPolicy":"true"}"#,
            )
            .unwrap(),
        });
        let text = render(&decide(&f).unwrap(), "spec.toml");
        assert!(!text.contains("[aws_node."), "{text}");
        assert!(
            text.contains(
                "[addon.vpc_cni]\ncluster_name = \"${cluster.main.name}\"\nname = \"vpc-cni\"\nexisting = true\ncustom_network = true\neni_config_label = \"topology.kubernetes.io/zone\"\n"
            ),
            "{text}"
        );
        // Valid TOML, the values as they were but for the entry `eni_config_label` sets.
        let doc: toml::Table = text.parse().expect("TOML");
        let values = &doc["addon"]["vpc_cni"]["configuration_values"];
        assert_eq!(values["enableNetworkPolicy"].as_str(), Some("true"));
        assert_eq!(values["env"]["WARM_IP_TARGET"].as_str(), Some("5"));
        assert!(values["env"].get("ENI_CONFIG_LABEL_DEF").is_none());
    }

    #[test]
    fn an_existing_eniconfig_is_written_as_it_is_with_the_import_to_run() {
        let mut f = facts();
        f.eni_configs.push(EniConfigInfo {
            name: "us-west-2a".into(),
            subnet_id: Some("subnet-0aaaaaaaaaaaaaaaa".into()),
            security_group_ids: vec!["sg-0bbbbbbbbbbbbbbbb".into()],
            managed_by: None,
        });
        let text = render(&decide(&f).unwrap(), "spec.toml");
        valid(&text);
        assert!(
            text.contains(
                "[eni_config.us-west-2a]\ncluster_name = \"${cluster.main.name}\"\nname = \"us-west-2a\"\nsubnet_id = \"subnet-0aaaaaaaaaaaaaaaa\"\nsecurity_group_ids = [\"sg-0bbbbbbbbbbbbbbbb\"]\n"
            ),
            "{text}"
        );
        assert!(!text.contains("[subnet.pods-us-west-2a]"), "{text}");
        let flat = text.replace("\n#", " ");
        let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains("eksnet import spec.toml eni_config.us-west-2a demo/us-west-2a"),
            "{text}"
        );
    }

    #[test]
    fn comments_wrap_at_the_width_and_indent_list_items() {
        let mut out = String::new();
        let long = "word ".repeat(40);
        comment(&mut out, &long, 0);
        assert!(
            out.lines().all(|l| l.len() <= WIDTH && l.starts_with("# ")),
            "{out}"
        );
        let mut out = String::new();
        item(&mut out, &long);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("#   - word"), "{out}");
        assert!(lines[1].starts_with("#     word"), "{out}");
    }

    #[test]
    fn keys_are_bare_when_they_can_be() {
        assert_eq!(key("us-west-2a"), "us-west-2a");
        assert_eq!(key("a.b"), "\"a.b\"");
        assert_eq!(eni_config_key("pods.us-west-2a"), "pods_us-west-2a");
        let parsed: toml::Table = format!("k = {}", q("a\"b\\c")).parse().unwrap();
        assert_eq!(parsed["k"].as_str(), Some("a\"b\\c"));
    }

    #[test]
    fn configuration_values_become_tables() {
        let m: Map<String, Value> = serde_json::from_str(
            r#"{"env":{"WARM_IP_TARGET":"5"},"enableNetworkPolicy":"true","nodeAgent":{"enabled":false,"ports":[1,2]},"x":null,"tolerations":[{"operator":"Exists"}]}"#,
        )
        .unwrap();
        let mut out = String::new();
        table(&mut out, "addon.vpc_cni.configuration_values", &m);
        let parsed: toml::Table = out.parse().expect(&out);
        let back = &parsed["addon"]["vpc_cni"]["configuration_values"];
        assert_eq!(back["env"]["WARM_IP_TARGET"].as_str(), Some("5"));
        assert_eq!(back["nodeAgent"]["enabled"].as_bool(), Some(false));
        assert_eq!(back["tolerations"][0]["operator"].as_str(), Some("Exists"));
        assert!(back.get("x").is_none());
        assert!(out.contains("# x = null"), "{out}");
    }
}
