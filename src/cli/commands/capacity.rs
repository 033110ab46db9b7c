//! `eksnet capacity SPEC`: the plan's node sizing on its own (max pods, pod subnet room per
//! AZ). It refreshes like `plan`, so a spec not applied yet is sized from its CIDRs and one
//! applied from the subnets' free addresses; it never writes the state.

use crate::cli::args::CapacityArgs;
use crate::cli::exit::{ExitStatus, Failure};
use crate::cli::{output, session};
use crate::plan::planner::PlanOptions;

pub async fn run(args: CapacityArgs) -> Result<ExitStatus, Failure> {
    let spec = session::load_spec(&args.spec)?;
    let loc = session::state_location(&spec, &args.common.state)?;
    let snapshot = session::read_snapshot(&loc, session::state_region(&spec)).await?;
    let ctx = session::make_ctx(&spec, snapshot.lineage.clone(), &args.common, false).await?;
    let plan = session::make_plan(&spec, &snapshot, &ctx, &PlanOptions::default()).await?;
    let sizing = plan.sizing.unwrap_or_default();
    if args.common.json {
        output::json_data(&sizing)?;
    } else if sizing.clusters.is_empty() {
        output::info(
            "No nodegroup to size: the spec has none, or its instance types could not be read.",
        );
    } else {
        output::data(&sizing.render());
    }
    // A shortfall is a warning (printed above with the others), not a failure; asked for,
    // it is exit status 2, as changes are for `plan --detailed-exitcode`.
    Ok(if args.detailed_exitcode && sizing.short() {
        ExitStatus::Changes
    } else {
        ExitStatus::Success
    })
}
