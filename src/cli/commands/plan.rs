//! `eksnet plan SPEC`: refresh, then show what apply would change; never writes the state.

use crate::cli::args::PlanArgs;
use crate::cli::exit::{ExitStatus, Failure};
use crate::cli::{output, session};
use crate::plan::planner::PlanOptions;

pub async fn run(args: PlanArgs) -> Result<ExitStatus, Failure> {
    let spec = session::load_spec(&args.spec)?;
    session::check_replace(&spec, &args.replace)?;
    let loc = session::state_location(&spec, &args.common.state)?;
    let snapshot = session::read_snapshot(&loc, session::state_region(&spec)).await?;
    let ctx = session::make_ctx(&spec, snapshot.lineage.clone(), &args.common, false).await?;
    let opts = PlanOptions {
        destroy: args.destroy,
        replace: args.replace,
    };
    let plan = session::make_plan(&spec, &snapshot, &ctx, &opts).await?;
    output::plan(&plan, args.common.json)?;
    if let Some(f) = args.out {
        let text = serde_json::to_string_pretty(&plan)?;
        std::fs::write(&f, text)
            .map_err(|e| Failure::Message(format!("cannot write plan `{}`: {e}", f.display())))?;
        output::info(format!(
            "Saved the plan to {}; apply it with: eksnet apply {}",
            f.display(),
            f.display()
        ));
    }
    Ok(if args.detailed_exitcode && plan.has_changes() {
        ExitStatus::Changes
    } else {
        ExitStatus::Success
    })
}
