//! What the commands share: reading the spec and the state, the context for AWS and
//! Kubernetes, planning, the confirmation prompt and stopping on a signal.

use super::args::{Common, StateArgs};
use super::exit::Failure;
use super::output;
use crate::base::addr::{Kind, ResourceAddr};
use crate::base::diag::Diagnostics;
use crate::base::events::{self, Event};
use crate::cloud::aws::AwsClients;
use crate::cloud::kube::KubeConnector;
use crate::engine::{self, PlanError};
use crate::plan::graph::DependencyGraph;
use crate::plan::planner::{self, PlanOptions};
use crate::plan::Plan;
use crate::resources::Ctx;
use crate::spec::{self, Spec};
use crate::state::StateSnapshot;
use crate::state::{self, Location, StateStore};
use crate::validate;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Loads and validates; prints warnings; errors become a failure listing all of them.
pub fn load_spec(path: &Path) -> Result<Spec, Failure> {
    let spec = spec::load(path).map_err(|d| output::diagnostics_failure(&d))?;
    // Cycles too, here: every command stops on them before it opens a state or calls AWS.
    let diags = validate_all(&spec);
    output::diagnostics(diags.warnings());
    if diags.has_errors() {
        return Err(output::diagnostics_failure(&diags));
    }
    Ok(spec)
}

/// Validation results with graph errors (cycles) added, so `validate` reports them too.
pub fn validate_all(spec: &Spec) -> Diagnostics {
    let mut diags = validate::validate(spec);
    if let Err(d) = DependencyGraph::build(spec, None) {
        diags.extend(d);
    }
    diags
}

/// `--replace` must name resources of the spec: checked before the state is locked or AWS
/// is read, like the spec itself.
pub fn check_replace(spec: &Spec, replace: &[ResourceAddr]) -> Result<(), Failure> {
    let unknown = planner::unknown_replacements(spec, replace);
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(Failure::Message(unknown.join("\n")))
    }
}

/// Where a spec's state is: `--state` / `EKSNET_STATE`, else the spec's `[state]`, else
/// `state/<spec stem>.db`.
pub fn state_location(spec: &Spec, explicit: &Option<String>) -> Result<Location, Failure> {
    state::resolve(&spec.path, spec.state.as_ref(), explicit.as_deref()).map_err(Failure::Message)
}

/// The region a spec's state bucket is in unless `[state]` names one: the spec's.
pub fn state_region(spec: &Spec) -> Option<&str> {
    spec.settings.region.as_deref()
}

/// The snapshot for planning: empty (lineage "") when no state exists yet, so that `plan`
/// never creates one.
pub async fn read_snapshot(loc: &Location, region: Option<&str>) -> Result<StateSnapshot, Failure> {
    match StateStore::open_existing(loc, region).await? {
        None => Ok(StateSnapshot::default()),
        Some(store) => Ok(store.snapshot()?),
    }
}

/// Where the state of a command without a spec is: `--state`, the `--spec`'s `[state]`, or
/// the only `state/*.db` here. With the bucket's region, if a spec says it.
pub fn state_args_location(args: &StateArgs) -> Result<(Location, Option<String>), Failure> {
    if let Some(spec_path) = &args.spec {
        let spec = load_spec(spec_path)?;
        let loc = state_location(&spec, &args.state)?;
        return Ok((loc, spec.settings.region.clone()));
    }
    match &args.state {
        Some(s) if !s.is_empty() => Ok((Location::parse_flag(s).map_err(Failure::Message)?, None)),
        _ => Ok((Location::Local(only_state_file()?), None)),
    }
}

/// The state `state` and `force-unlock` work on; it must exist (they never create one).
pub async fn existing_state(args: &StateArgs) -> Result<StateStore, Failure> {
    let (loc, region) = state_args_location(args)?;
    StateStore::open_existing(&loc, region.as_deref())
        .await?
        .ok_or_else(|| Failure::Message(format!("state `{}` does not exist", loc.describe())))
}

fn only_state_file() -> Result<PathBuf, Failure> {
    let dbs: Vec<PathBuf> = std::fs::read_dir("state")
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "db"))
                .collect()
        })
        .unwrap_or_default();
    match dbs.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Failure::Message(
            "no state/*.db here; pass --state PATH|s3://BUCKET/KEY or --spec SPEC".into(),
        )),
        _ => Err(Failure::Message(
            "several state/*.db here; pass --state PATH|s3://BUCKET/KEY or --spec SPEC".into(),
        )),
    }
}

pub fn poll_cap() -> Duration {
    // Real AWS changes state over minutes; polling every 15 s at most is plenty. Emulators and
    // the test proxy set a lower cap through this variable.
    let ms = std::env::var("EKSNET_POLL_MAX_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15_000);
    Duration::from_millis(ms)
}

/// AWS clients for a spec: a region and credentials, and a region in the partition the
/// spec's ARNs were written for.
pub async fn spec_clients(spec: &Spec) -> Result<AwsClients, Failure> {
    let aws = AwsClients::load_checked(spec.settings.region.as_deref())
        .await
        .map_err(Failure::Message)?;
    spec.check_partition(&aws.region)
        .map_err(Failure::Message)?;
    Ok(aws)
}

/// AWS clients (checked to have a region and credentials), the reporter, the spec's timeouts
/// and the way to each cluster's Kubernetes API.
pub async fn make_ctx(
    spec: &Spec,
    lineage: String,
    common: &Common,
    delete_enis: bool,
) -> Result<Ctx, Failure> {
    let aws = spec_clients(spec).await?;
    let timeouts = Kind::ALL
        .iter()
        .filter_map(|k| {
            spec.settings
                .timeouts
                .get(k.as_str())
                .map(|s| (*k, Duration::from_secs(*s)))
        })
        .collect();
    Ok(Ctx {
        aws,
        reporter: output::reporter(common.json),
        lineage,
        timeouts,
        poll_cap: poll_cap(),
        delete_available_enis: delete_enis,
        kube: Arc::new(KubeConnector::new(common.kube.access())),
    })
}

/// The engine's plan; its warnings are reported, and so are those found beside errors.
pub async fn make_plan(
    spec: &Spec,
    snapshot: &StateSnapshot,
    ctx: &Ctx,
    opts: &PlanOptions,
) -> Result<Plan, Failure> {
    match engine::plan(spec, snapshot, ctx, opts).await {
        Ok(plan) => {
            output::diagnostics(&plan.warnings);
            Ok(plan)
        }
        Err(PlanError::Refused(d)) => {
            output::diagnostics(d.warnings());
            Err(output::diagnostics_failure(&d))
        }
        Err(PlanError::Refresh(e)) => Err(e.into()),
    }
}

/// Asks on stderr and reads the answer on a blocking thread, so that Ctrl-C (watched by
/// `interruptible`) still works while the prompt waits.
pub async fn confirm(destroy: bool) -> Result<bool, Failure> {
    ask(if destroy {
        "destroy all resources in the state"
    } else {
        "perform these actions"
    })
    .await
}

/// `roll`'s question: it terminates instances.
pub async fn confirm_roll() -> Result<bool, Failure> {
    ask("replace these nodes (their instances are terminated)").await
}

async fn ask(what: &str) -> Result<bool, Failure> {
    if events::json_stderr() {
        events::notice(
            Event::Prompt {
                message: format!("Do you want to {what}? Only 'yes' will be accepted to approve."),
            },
            "",
        );
    } else {
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\nDo you want to {what}?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: "
        );
        let _ = err.flush();
    }
    let line = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await??;
    Ok(line.trim() == "yes")
}

/// Runs a locked command, stopping at Ctrl-C (SIGINT) or SIGTERM — what a CI runner sends
/// when a job is cancelled, or `kill` by default. Stopping is as safe as a crash — every
/// finished or started resource is already in the state — but unlike a crash the lock is
/// released (by the command's `LockGuard`).
pub async fn interruptible<T, F>(work: F) -> Result<T, Failure>
where
    F: std::future::Future<Output = Result<T, Failure>>,
{
    let terminated = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            // Without a handler SIGTERM keeps its default (the process ends, like a crash).
            Err(_) => std::future::pending::<()>().await,
        }
    };
    let stopped = |signal: &str| {
        Failure::Message(format!(
            "interrupted ({signal}): operations already sent to AWS may still complete there; everything eksnet started is recorded in the state — run the same command again to reconcile"
        ))
    };
    tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => Err(stopped("SIGINT")),
        _ = terminated => Err(stopped("SIGTERM")),
    }
}
