//! The dependency graph, keyed by resource address. Built in named steps so each can be tested
//! and reasoned about alone: spec nodes, reference edges, domain ordering edges (what AWS needs
//! but a spec need not say), state-only nodes (resources removed from the spec, so destroy order
//! still holds), and a cycle check. An edge `a → b` means "a before b".

use crate::base::addr::{Kind, ResourceAddr};
use crate::base::diag::{Diagnostic, Diagnostics};
use crate::base::value;
use crate::domain::ordering;
use crate::spec::Spec;
use crate::state::StateSnapshot;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeReason {
    /// `${...}` in the dependent's attributes.
    Reference,
    /// Implied by the domain (e.g. a subnet needs its CIDR block associated first).
    Domain(&'static str),
    /// Recorded in the state for a resource no longer in the spec.
    State,
}

#[derive(Debug, Clone, Default)]
pub struct DependencyGraph {
    graph: DiGraph<ResourceAddr, EdgeReason>,
    index: HashMap<ResourceAddr, NodeIndex>,
}

impl DependencyGraph {
    /// Runs every step. Errors (cycles) are returned all at once.
    pub fn build(spec: &Spec, state: Option<&StateSnapshot>) -> Result<Self, Diagnostics> {
        let mut g = DependencyGraph::default();
        g.add_spec_nodes(spec);
        g.add_reference_edges(spec);
        g.add_domain_edges(spec);
        if let Some(state) = state {
            g.add_state_only_nodes(state);
        }
        let diags = g.check_cycles(spec);
        if diags.has_errors() {
            return Err(diags);
        }
        Ok(g)
    }

    fn node(&mut self, addr: &ResourceAddr) -> NodeIndex {
        if let Some(i) = self.index.get(addr) {
            return *i;
        }
        let i = self.graph.add_node(addr.clone());
        self.index.insert(addr.clone(), i);
        i
    }

    /// Adds `before → after` once.
    pub fn add_edge(&mut self, before: &ResourceAddr, after: &ResourceAddr, why: EdgeReason) {
        let (a, b) = (self.node(before), self.node(after));
        if !self.graph.edges_connecting(a, b).any(|_| true) {
            self.graph.add_edge(a, b, why);
        }
    }

    pub fn add_spec_nodes(&mut self, spec: &Spec) {
        for addr in spec.resources.keys() {
            self.node(addr);
        }
    }

    /// One edge per reference to another resource that exists in the spec (dangling
    /// references are validation errors, reported elsewhere).
    pub fn add_reference_edges(&mut self, spec: &Spec) {
        for (addr, r) in &spec.resources {
            for reference in value::references(&r.attrs) {
                if spec.resources.contains_key(&reference.addr) {
                    self.add_edge(&reference.addr, addr, EdgeReason::Reference);
                }
            }
        }
    }

    /// Orderings AWS requires that a spec may leave implicit:
    /// - a subnet after the CIDR block association that contains it;
    /// - a cluster or nodegroup after the role its literal ARN names;
    /// - a nodegroup after the cluster its literal `cluster_name` names.
    pub fn add_domain_edges(&mut self, spec: &Spec) {
        let resources: Vec<(&ResourceAddr, &serde_json::Value)> = spec
            .resources
            .values()
            .map(|r| (&r.addr, &r.attrs))
            .collect();
        let resolve = |name: &str| spec.resolved_name(name);
        for (a, b, why) in ordering::edges(&resources, &resolve) {
            self.add_edge(&a, &b, EdgeReason::Domain(why));
        }
    }

    /// Resources only in the state keep the dependencies recorded when they were created, so
    /// removing a nodegroup and its role from the spec still deletes the nodegroup first.
    pub fn add_state_only_nodes(&mut self, state: &StateSnapshot) {
        for (addr, r) in &state.resources {
            let known = self.index.contains_key(addr);
            self.node(addr);
            if known {
                continue;
            }
            for dep in &r.dependencies {
                self.add_edge(dep, addr, EdgeReason::State);
            }
        }
        // A spec resource that still depends (per state) on a state-only resource must also be
        // updated before that resource is deleted.
        for (addr, r) in &state.resources {
            for dep in &r.dependencies {
                if self.index.contains_key(dep) {
                    self.add_edge(dep, addr, EdgeReason::State);
                }
            }
        }
    }

    /// Every cycle, with its members, as an error at the first member's location.
    pub fn check_cycles(&self, spec: &Spec) -> Diagnostics {
        let mut diags = Diagnostics::default();
        for scc in petgraph::algo::tarjan_scc(&self.graph) {
            let self_loop = scc.len() == 1 && self.graph.contains_edge(scc[0], scc[0]);
            if scc.len() < 2 && !self_loop {
                continue;
            }
            let mut members: Vec<String> = scc.iter().map(|i| self.graph[*i].to_string()).collect();
            members.sort();
            let first = members[0].clone();
            diags.push(
                Diagnostic::error(format!("dependency cycle between {}", members.join(" → ")))
                    .at(spec.location(&first), first),
            );
        }
        diags
    }

    pub fn contains(&self, addr: &ResourceAddr) -> bool {
        self.index.contains_key(addr)
    }

    pub fn addrs(&self) -> impl Iterator<Item = &ResourceAddr> {
        self.graph.node_weights()
    }

    /// Direct dependencies (what must come before `addr`), sorted.
    pub fn dependencies(&self, addr: &ResourceAddr) -> Vec<ResourceAddr> {
        self.neighbours(addr, Direction::Incoming)
    }

    /// Direct dependents (what must come after `addr`), sorted.
    pub fn dependents(&self, addr: &ResourceAddr) -> Vec<ResourceAddr> {
        self.neighbours(addr, Direction::Outgoing)
    }

    fn neighbours(&self, addr: &ResourceAddr, dir: Direction) -> Vec<ResourceAddr> {
        let Some(i) = self.index.get(addr) else {
            return Vec::new();
        };
        let mut v: Vec<ResourceAddr> = self
            .graph
            .neighbors_directed(*i, dir)
            .map(|n| self.graph[n].clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Topological order, ties broken by kind then name so output is stable.
    pub fn topological(&self) -> Vec<ResourceAddr> {
        let mut indegree: HashMap<NodeIndex, usize> = self
            .graph
            .node_indices()
            .map(|i| {
                (
                    i,
                    self.graph
                        .neighbors_directed(i, Direction::Incoming)
                        .count(),
                )
            })
            .collect();
        let mut ready: BTreeSet<(ResourceAddr, NodeIndex)> = indegree
            .iter()
            .filter(|(_, d)| **d == 0)
            .map(|(i, _)| (self.graph[*i].clone(), *i))
            .collect();
        let mut out = Vec::new();
        while let Some(first) = ready.iter().next().cloned() {
            ready.remove(&first);
            out.push(first.0);
            for n in self.graph.neighbors_directed(first.1, Direction::Outgoing) {
                if let Some(d) = indegree.get_mut(&n) {
                    *d = d.saturating_sub(1);
                    if *d == 0 {
                        ready.insert((self.graph[n].clone(), n));
                    }
                }
            }
        }
        out
    }

    /// The same graph with every edge reversed: the order of destruction.
    pub fn reversed(&self) -> DependencyGraph {
        let mut g = self.clone();
        g.graph.reverse();
        g
    }

    /// Graphviz DOT, nodes named by address, edges labelled when not plain references.
    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph eksnet {\n  rankdir=LR;\n  node [shape=box];\n");
        let mut nodes: Vec<&ResourceAddr> = self.graph.node_weights().collect();
        nodes.sort();
        for n in nodes {
            out.push_str(&format!("  \"{n}\";\n"));
        }
        let mut edges: Vec<(String, String, String)> = self
            .graph
            .edge_references()
            .map(|e| {
                let label = match e.weight() {
                    EdgeReason::Reference => String::new(),
                    EdgeReason::Domain(why) => format!(" [label=\"{why}\", style=dashed]"),
                    EdgeReason::State => " [label=\"state\", style=dotted]".to_string(),
                };
                (
                    self.graph[e.source()].to_string(),
                    self.graph[e.target()].to_string(),
                    label,
                )
            })
            .collect();
        edges.sort();
        for (a, b, l) in edges {
            out.push_str(&format!("  \"{a}\" -> \"{b}\"{l};\n"));
        }
        out.push_str("}\n");
        out
    }

    /// Kinds present, for callers that need per-kind batches.
    pub fn kinds(&self) -> BTreeSet<Kind> {
        self.graph.node_weights().map(|a| a.kind).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ResourceStatus, StateResource};
    use std::path::Path;

    const SPEC: &str = r#"
[vpc.main]
id = "vpc-1"
[iam_role.cluster]
name = "cluster-role"
assume_role_service = "eks.amazonaws.com"
[cidr_block.pods]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/16"
[subnet.a]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/19"
availability_zone = "us-west-2a"
[cluster.main]
name = "demo"
role_arn = "arn:aws:iam::123456789012:role/cluster-role"
subnet_ids = ["subnet-1", "subnet-2"]
[nodegroup.ng]
cluster_name = "demo"
name = "ng"
node_role_arn = "arn:aws:iam::123456789012:role/other"
subnet_ids = ["subnet-1"]
"#;

    fn addr(s: &str) -> ResourceAddr {
        s.parse().unwrap()
    }

    fn spec(text: &str) -> Spec {
        crate::spec::parse(Path::new("t.toml"), text).unwrap()
    }

    #[test]
    fn reference_and_domain_edges() {
        let s = spec(SPEC);
        let mut g = DependencyGraph::default();
        g.add_spec_nodes(&s);
        g.add_reference_edges(&s);
        assert_eq!(g.dependencies(&addr("subnet.a")), vec![addr("vpc.main")]);
        assert!(
            g.dependencies(&addr("cluster.main")).is_empty(),
            "literal ARN: no reference edge yet"
        );
        g.add_domain_edges(&s);
        assert_eq!(
            g.dependencies(&addr("subnet.a")),
            vec![addr("vpc.main"), addr("cidr_block.pods")]
        );
        assert_eq!(
            g.dependencies(&addr("cluster.main")),
            vec![addr("iam_role.cluster")],
            "role found by the name in its ARN"
        );
        assert_eq!(
            g.dependencies(&addr("nodegroup.ng")),
            vec![addr("subnet.a"), addr("cluster.main")],
            "cluster found by literal name; pod subnets before nodes"
        );
        let order = g.topological();
        let pos = |a: &str| order.iter().position(|x| *x == addr(a)).unwrap();
        assert!(pos("cidr_block.pods") < pos("subnet.a"));
        let rev = g.reversed().topological();
        let rpos = |a: &str| rev.iter().position(|x| *x == addr(a)).unwrap();
        assert!(
            rpos("subnet.a") < rpos("cidr_block.pods")
                && rpos("nodegroup.ng") < rpos("cluster.main")
        );
    }

    /// The route table of the pod subnets a nodegroup's ENIConfigs use comes before the
    /// nodes; one of other subnets does not.
    #[test]
    fn pod_subnets_route_tables_come_before_their_nodes() {
        let s = spec(&format!(
            r#"{SPEC}
[aws_node.main]
cluster_name = "demo"
custom_network = true
[eni_config.a]
cluster_name = "demo"
subnet_id = "${{subnet.a.id}}"
security_group_ids = ["sg-1"]
[route_table.pods]
vpc_id = "${{vpc.main.id}}"
subnet_ids = ["${{subnet.a.id}}"]
[route_table.other]
vpc_id = "${{vpc.main.id}}"
subnet_ids = ["subnet-1"]
"#
        ));
        let g = DependencyGraph::build(&s, None).unwrap();
        let deps = g.dependencies(&addr("nodegroup.ng"));
        assert!(deps.contains(&addr("route_table.pods")), "{deps:?}");
        assert!(!deps.contains(&addr("route_table.other")), "{deps:?}");
        assert!(
            g.to_dot().contains(
                "\"route_table.pods\" -> \"nodegroup.ng\" [label=\"pod subnets' routes before nodes\", style=dashed]"
            ),
            "{}",
            g.to_dot()
        );
    }

    #[test]
    fn state_only_nodes_keep_recorded_dependencies() {
        let s = spec("[vpc.main]\nid = \"vpc-1\"\n");
        let mut state = StateSnapshot::default();
        let row = |deps: Vec<ResourceAddr>| StateResource {
            status: ResourceStatus::Present,
            cloud_id: Some("x".into()),
            attrs: serde_json::json!({}),
            outputs: serde_json::json!({}),
            dependencies: deps,
            prevent_destroy: false,
            deposed: vec![],
        };
        state
            .resources
            .insert(addr("cidr_block.old"), row(vec![addr("vpc.main")]));
        state
            .resources
            .insert(addr("subnet.old"), row(vec![addr("cidr_block.old")]));
        let g = DependencyGraph::build(&s, Some(&state)).unwrap();
        assert!(g.contains(&addr("subnet.old")));
        let rev = g.reversed().topological();
        assert_eq!(
            rev.first(),
            Some(&addr("subnet.old")),
            "removed subnet goes before its removed block"
        );
        assert!(g
            .to_dot()
            .contains("\"cidr_block.old\" -> \"subnet.old\" [label=\"state\", style=dotted];"));
    }

    #[test]
    fn cycles_are_reported_with_members_and_location() {
        let s = spec(
            "[cluster.a]\nname = \"${nodegroup.b.name}\"\nrole_arn = \"r\"\nsubnet_ids = [\"s1\", \"s2\"]\n\
             [nodegroup.b]\ncluster_name = \"${cluster.a.name}\"\nname = \"b\"\nnode_role_arn = \"r\"\nsubnet_ids = [\"s1\"]\n",
        );
        let err = DependencyGraph::build(&s, None).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("dependency cycle between cluster.a → nodegroup.b"),
            "{text}"
        );
        assert!(text.contains("t.toml:1:"), "{text}");
    }
}
