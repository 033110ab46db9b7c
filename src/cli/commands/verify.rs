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
    // Between two looks: a few seconds, as nodes take that long to change; shorter under the
    // emulators' EKSNET_POLL_MAX_MS, but never below a second.
    let pause = std::time::Duration::from_secs(5)
        .min(session::poll_cap())
        .max(std::time::Duration::from_secs(1));
    let deadline = args.wait.map(|w| std::time::Instant::now() + w);
    // A progress line when the number of problems changes, and every half minute.
    let mut said: Option<(usize, std::time::Instant)> = None;
    let reports = loop {
        let reports = crate::nodes::verify::verify(&spec, &aws, &kube).await?;
        let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        match left {
            Some(left) if !left.is_zero() && !reports.iter().all(|r| r.ok()) => {
                let problems: usize = reports.iter().map(crate::nodes::verify::problems).sum();
                let due = said.is_none_or(|(n, at)| {
                    n != problems || at.elapsed() >= std::time::Duration::from_secs(30)
                });
                if due {
                    output::info(format!(
                        "verify: {problems} problem(s) so far; checking again until they are gone ({}s left)",
                        left.as_secs()
                    ));
                    said = Some((problems, std::time::Instant::now()));
                }
                tokio::time::sleep(pause.min(left)).await;
            }
            _ => break reports,
        }
    };
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
