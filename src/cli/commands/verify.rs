//! `eksnet verify SPEC`: reads the clusters (no state) and reports whether custom networking
//! took effect.

use crate::cli::args::VerifyArgs;
use crate::cli::exit::{ExitStatus, Failure};
use crate::cli::{output, session};
use crate::cloud::kube::KubeConnector;

pub async fn run(args: VerifyArgs) -> Result<ExitStatus, Failure> {
    let spec = session::load_spec(&args.spec)?;
    if !crate::nodes::verify::has_clusters(&spec) {
        output::warning(format!(
            "{} declares no cluster: there is nothing to verify",
            args.spec.display()
        ));
    }
    let aws = session::spec_clients(&spec).await?;
    let kube = KubeConnector::new(args.common.kube.access());
    let reports = crate::nodes::verify::verify(&spec, &aws, &kube).await?;
    if args.common.json {
        output::json_data(&reports)?;
    } else {
        output::data(&crate::nodes::verify::render(&reports));
    }
    Ok(if reports.iter().all(|r| r.ok()) {
        ExitStatus::Success
    } else {
        ExitStatus::Problems
    })
}
