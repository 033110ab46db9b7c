//! `eksnet graph SPEC`: the dependency graph as Graphviz DOT on stdout.

use crate::cli::args::GraphArgs;
use crate::cli::exit::{ExitStatus, Failure};
use crate::cli::{output, session};
use crate::plan::graph::DependencyGraph;

pub async fn run(args: GraphArgs) -> Result<ExitStatus, Failure> {
    let spec = session::load_spec(&args.spec)?;
    let snapshot = match &args.state {
        Some(s) => {
            let loc = session::state_location(&spec, &Some(s.clone()))?;
            Some(session::read_snapshot(&loc, session::state_region(&spec)).await?)
        }
        None => None,
    };
    let graph = DependencyGraph::build(&spec, snapshot.as_ref())
        .map_err(|d| output::diagnostics_failure(&d))?;
    let graph = if args.destroy {
        graph.reversed()
    } else {
        graph
    };
    output::data(&graph.to_dot());
    Ok(ExitStatus::Success)
}
