//! `eksnet destroy SPEC`: a destroy plan, confirmed, then carried out like an apply (for a
//! spec of a running cluster, in stages: see `unroll`).

use super::apply;
use crate::cli::args::DestroyArgs;
use crate::cli::exit::{ExitStatus, Failure};
use crate::plan::planner::PlanOptions;

pub async fn run(args: DestroyArgs) -> Result<ExitStatus, Failure> {
    let opts = PlanOptions {
        destroy: true,
        replace: vec![],
    };
    apply::converge(&args.spec, &args.common, args.auto_approve, &args.run, opts).await
}
