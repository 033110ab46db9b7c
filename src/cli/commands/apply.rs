//! `eksnet apply SPEC|PLANFILE`: plan, confirm and carry out under the state lock; a saved
//! plan is carried out exactly, if the state has not moved since it was made.

use crate::apply;
use crate::cli::args::{ApplyArgs, Common, RunOpts};
use crate::cli::exit::{ExitStatus, Failure};
use crate::cli::lock;
use crate::cli::{output, session};
use crate::plan::planner::PlanOptions;
use crate::plan::{self, Plan};
use crate::spec;
use std::path::{Path, PathBuf};

pub async fn run(args: ApplyArgs) -> Result<ExitStatus, Failure> {
    if let Some(plan) = read_plan_file(&args.target)? {
        return apply_saved(plan, &args.common, &args.run).await;
    }
    let opts = PlanOptions {
        destroy: false,
        replace: args.replace,
    };
    converge(
        &args.target,
        &args.common,
        args.auto_approve,
        &args.run,
        opts,
    )
    .await
}

/// Apply or destroy from a spec: lock, refresh, plan, confirm, carry out.
pub async fn converge(
    spec_path: &Path,
    common: &Common,
    auto_approve: bool,
    run: &RunOpts,
    opts: PlanOptions,
) -> Result<ExitStatus, Failure> {
    let spec = session::load_spec(spec_path)?;
    session::check_replace(&spec, &opts.replace)?;
    let loc = session::state_location(&spec, &common.state)?;
    let command = format!(
        "eksnet {} {}",
        if opts.destroy { "destroy" } else { "apply" },
        spec_path.display()
    );
    let (store, guard) = lock::lock(&loc, session::state_region(&spec), &command).await?;
    let work = async {
        let snapshot = store.snapshot()?;
        let ctx = session::make_ctx(
            &spec,
            snapshot.lineage.clone(),
            common,
            run.delete_available_enis,
        )
        .await?;
        let plan = session::make_plan(&spec, &snapshot, &ctx, &opts).await?;
        output::plan(&plan, common.json)?;
        // A destroy whose pod subnets still hold nodes it does not own moves them off first.
        let in_the_way = if opts.destroy {
            super::unroll::nodes_in_the_way(&spec, &ctx, &plan, common.json).await?
        } else {
            vec![]
        };
        if plan.has_changes() && !auto_approve && !session::confirm(opts.destroy).await? {
            output::info("Cancelled: nothing was changed.");
            return Ok(ExitStatus::Error);
        }
        if !in_the_way.is_empty() {
            return super::unroll::staged(&spec, &ctx, &plan, &store, run, in_the_way).await;
        }
        let report = apply::apply(&ctx, &plan, &store, run.parallelism).await?;
        Ok::<_, Failure>(super::summary::summarise(&plan, &report))
    };
    guard.around(work).await
}

async fn apply_saved(plan: Plan, common: &Common, run: &RunOpts) -> Result<ExitStatus, Failure> {
    let spec_path = PathBuf::from(&plan.spec_path);
    let spec =
        spec::parse(&spec_path, &plan.spec_source).map_err(|d| Failure::Message(d.to_string()))?;
    // The state the plan was made against: the plan's spec names it (its `[state]`), so a
    // plan made in CI is applied against the same shared state from any machine.
    let loc = session::state_location(&spec, &common.state)?;
    let (store, guard) = lock::lock(
        &loc,
        session::state_region(&spec),
        &format!("eksnet apply (saved plan for {})", spec_path.display()),
    )
    .await?;
    let work = async {
        // A plan made before any state existed has an empty lineage; it is still fresh if the
        // new state holds nothing yet.
        let fresh_state = plan.state_lineage.is_empty()
            && store.snapshot()?.resources.is_empty()
            && store.serial()? == 0;
        if !fresh_state {
            apply::check_fresh(&plan, &store)?;
        }
        let ctx =
            session::make_ctx(&spec, store.lineage()?, common, run.delete_available_enis).await?;
        let report = apply::apply(&ctx, &plan, &store, run.parallelism).await?;
        Ok::<_, Failure>(super::summary::summarise(&plan, &report))
    };
    guard.around(work).await
}

/// A plan file is JSON with a `format` field; anything else is treated as a spec.
pub fn read_plan_file(path: &Path) -> Result<Option<Plan>, Failure> {
    if path.extension().is_some_and(|e| e == "toml") {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Message(format!("cannot read `{}`: {e}", path.display())))?;
    if !text.trim_start().starts_with('{') {
        return Ok(None);
    }
    let mut plan = Plan::from_json(&text).map_err(|e| match e {
        plan::PlanFileError::Invalid { .. } => {
            Failure::Message(format!("`{}` is {e}", path.display()))
        }
        plan::PlanFileError::UnsupportedFormat { .. } => {
            Failure::Message(format!("`{}`: {e}", path.display()))
        }
    })?;
    crate::plan::planner::upgrade(&mut plan);
    Ok(Some(plan))
}
