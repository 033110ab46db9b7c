//! Command-line interface: Terraform-like commands over the library. Data (plans, DOT, JSON)
//! goes to stdout; progress, logs and errors go to stderr.

use crate::addr::{Kind, ResourceAddr};
use crate::apply::{self, ApplyReport};
use crate::aws::AwsClients;
use crate::diag::Diagnostics;
use crate::events::{self, Event, HumanReporter, JsonReporter, Reporter};
use crate::graph::DependencyGraph;
use crate::kube::{KubeAccess, KubeConnector};
use crate::plan::{self, Action, Plan};
use crate::planner::{self, PlanOptions};
use crate::refresh;
use crate::render::{self, Palette};
use crate::resources::Ctx;
use crate::spec::{self, Spec};
use crate::state::{self, StateSnapshot, StateStore};
use crate::validate;
use clap::{Args, Parser, Subcommand};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "eksnet",
    version,
    about = "Plan and apply Amazon EKS custom networking from a TOML spec"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and check a spec; no API call.
    Validate {
        /// The spec file (TOML).
        spec: PathBuf,
        /// Print diagnostics as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Refresh from AWS and show what apply would change.
    Plan {
        /// The spec file (TOML).
        spec: PathBuf,
        #[command(flatten)]
        common: Common,
        /// Save the plan to this file for `eksnet apply PLANFILE`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Exit 0 when there are no changes, 2 when there are, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
        /// Plan a destroy instead.
        #[arg(long)]
        destroy: bool,
        /// Plan to recreate this resource (repeatable).
        #[arg(long, value_name = "ADDR")]
        replace: Vec<ResourceAddr>,
    },
    /// Converge AWS to a spec, or carry out a saved plan exactly.
    Apply {
        /// A spec (.toml) or a plan file from `plan --out`.
        target: PathBuf,
        #[command(flatten)]
        common: Common,
        /// Do not ask for confirmation.
        #[arg(long)]
        auto_approve: bool,
        /// Recreate this resource (repeatable).
        #[arg(long, value_name = "ADDR")]
        replace: Vec<ResourceAddr>,
        #[command(flatten)]
        run: RunOpts,
    },
    /// Delete everything the state holds, in reverse dependency order.
    Destroy {
        /// The spec file (TOML).
        spec: PathBuf,
        #[command(flatten)]
        common: Common,
        /// Do not ask for confirmation.
        #[arg(long)]
        auto_approve: bool,
        #[command(flatten)]
        run: RunOpts,
    },
    /// Print the dependency graph as Graphviz DOT.
    Graph {
        /// The spec file (TOML).
        spec: PathBuf,
        /// Show the destroy order (edges reversed).
        #[arg(long)]
        destroy: bool,
        /// Include resources that are only in this state.
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// Check that custom networking took effect: pod IPs inside the pod subnets, every node with
    /// an ENIConfig. Exit 0 when all is well, 3 when problems were found, 1 on error.
    Verify {
        /// The spec file (TOML).
        spec: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Bring an existing resource under management: record it in the state under an address
    /// of the spec, so that plan and apply treat it as their own from then on.
    Import {
        /// The spec file (TOML).
        spec: PathBuf,
        /// The spec address to record it under, e.g. `cluster.main`.
        addr: ResourceAddr,
        /// Its id, as eksnet shows it in plans: a cluster or role name, `subnet-…`,
        /// `vpc-cidr-assoc-…`, a stack name, `CLUSTER/NODEGROUP`, `CLUSTER/ENICONFIG`.
        id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Inspect the state, or make it forget a resource without touching AWS.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Free a lock left by a command that died.
    ForceUnlock {
        /// The lock id printed by the command that was refused.
        lock_id: String,
        /// The state database (default: the only `state/*.db`).
        #[arg(long)]
        state: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum StateCommand {
    /// One line per resource: address, status, id.
    List {
        /// The state database (default: the only `state/*.db`).
        #[arg(long)]
        state: Option<PathBuf>,
        /// The rows as a JSON array on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Everything the state holds for one resource: status, id, attributes, outputs.
    Show {
        /// A resource address, e.g. `subnet.pod_a`.
        addr: ResourceAddr,
        /// The state database (default: the only `state/*.db`).
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// Stop managing resources: drop their rows, leave them in AWS and Kubernetes as they are.
    Rm {
        /// Resource addresses, e.g. `subnet.pod_a`.
        #[arg(required = true)]
        addrs: Vec<ResourceAddr>,
        /// The state database (default: the only `state/*.db`).
        #[arg(long)]
        state: Option<PathBuf>,
    },
}

#[derive(Args, Clone)]
struct Common {
    /// State database (default: state/<spec stem>.db; `verify` does not use one).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Machine-readable output: the command's data as JSON on stdout (the plan, the verify
    /// report), and every stderr line a JSON event.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    kube: KubeArgs,
}

/// How to reach each cluster's Kubernetes API. Default: endpoint, CA and a token from AWS.
#[derive(Args, Clone, Default)]
struct KubeArgs {
    /// Use this kubeconfig instead of the EKS endpoint and an AWS-made token.
    #[arg(long, env = "EKSNET_KUBECONFIG", value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// Use this kubeconfig context for every cluster, as it is (implies kubeconfig access;
    /// default file: $KUBECONFIG or ~/.kube/config). Without it, each cluster's own context.
    #[arg(long, env = "EKSNET_KUBE_CONTEXT", value_name = "NAME")]
    kube_context: Option<String>,
}

impl KubeArgs {
    fn access(&self) -> KubeAccess {
        if self.kubeconfig.is_none() && self.kube_context.is_none() {
            KubeAccess::Eks
        } else {
            KubeAccess::Kubeconfig {
                path: self.kubeconfig.clone(),
                context: self.kube_context.clone(),
            }
        }
    }
}

#[derive(Args, Clone)]
struct RunOpts {
    /// Resources worked on at once.
    #[arg(long, default_value_t = 10)]
    parallelism: usize,
    /// Delete ENIs in state `available` (left by the VPC CNI) that block deleting a subnet, on
    /// destroy or when an apply replaces or removes one.
    #[arg(long)]
    delete_available_enis: bool,
}

impl Cli {
    /// Whether the command was asked for machine-readable output.
    fn json(&self) -> bool {
        match &self.command {
            Command::Validate { json, .. } => *json,
            Command::Plan { common, .. }
            | Command::Apply { common, .. }
            | Command::Destroy { common, .. }
            | Command::Verify { common, .. }
            | Command::Import { common, .. } => common.json,
            Command::State {
                command: StateCommand::List { json, .. },
            } => *json,
            Command::Graph { .. } | Command::ForceUnlock { .. } | Command::State { .. } => false,
        }
    }
}

/// Errors at the CLI edge with their exit code: 1 for user and AWS errors alike, as Terraform.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

pub fn main() -> ExitCode {
    // Usage errors exit 1, not clap's 2: 2 means "changes present" for `plan
    // --detailed-exitcode`, and a typo must never read as that.
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            if !e.use_stderr() {
                // --help and --version: data on stdout.
                let _ = e.print();
                return ExitCode::from(0);
            }
            // The command line did not parse, so `--json` is looked for by hand: a script that
            // asked for JSON events must not get clap's plain text on stderr.
            if std::env::args_os().any(|a| a == "--json") {
                events::set_json_stderr(true);
                let message = e.render().to_string();
                let message = message
                    .trim_end()
                    .strip_prefix("error: ")
                    .unwrap_or(&message);
                events::notice(
                    Event::Error {
                        message: message.to_string(),
                    },
                    "",
                );
            } else {
                let _ = e.print();
            }
            return ExitCode::from(1);
        }
    };
    events::set_json_stderr(cli.json());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let message = format!("cannot start the async runtime: {e}");
            events::notice(
                Event::Error {
                    message: message.clone(),
                },
                &format!("error: {message}"),
            );
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(run(cli));
    // A prompt interrupted by Ctrl-C leaves a thread blocked on stdin; do not wait for it.
    runtime.shutdown_background();
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(Failure(msg)) => {
            let msg = msg.trim_end();
            let message = msg.strip_prefix("error: ").unwrap_or(msg).to_string();
            let plain = if msg.starts_with("error:") {
                msg.to_string()
            } else {
                format!("error: {msg}")
            };
            events::notice(Event::Error { message }, &plain);
            ExitCode::from(1)
        }
    }
}

fn palette() -> Palette {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    if !no_color && std::io::stdout().is_terminal() {
        Palette::ANSI
    } else {
        Palette::PLAIN
    }
}

fn reporter(json: bool) -> Arc<dyn Reporter> {
    if json {
        Arc::new(JsonReporter)
    } else {
        Arc::new(HumanReporter::new())
    }
}

fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Loads and validates; prints warnings; errors become a failure listing all of them.
fn load_spec(path: &Path) -> Result<Spec, Failure> {
    let spec = spec::load(path).map_err(|d| diag_failure(&d))?;
    // Cycles too, here: every command stops on them before it opens a state or calls AWS.
    let diags = validate::validate(&spec).and_graph(&spec);
    report_warnings(&diags);
    if diags.has_errors() {
        return Err(diag_failure(&diags));
    }
    Ok(spec)
}

/// A failure made of spec diagnostics. In `--json` mode each error is its own `diagnostic`
/// event (file, line, key as fields) and the failure only counts them; in text the failure
/// lists them.
/// `--replace` must name resources of the spec: checked before the state is locked or AWS
/// is read, like the spec itself.
fn check_replace(spec: &Spec, replace: &[ResourceAddr]) -> Result<(), Failure> {
    let unknown: Vec<String> = replace
        .iter()
        .filter(|r| !spec.resources.contains_key(r))
        .map(|r| format!("--replace {r}: no such resource in the spec"))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(Failure(unknown.join("\n")))
    }
}

fn diag_failure(d: &Diagnostics) -> Failure {
    let errs: Vec<&crate::diag::Diagnostic> = d.errors().collect();
    if events::json_stderr() {
        for e in &errs {
            events::notice(
                Event::Diagnostic {
                    diagnostic: (*e).clone(),
                },
                "",
            );
        }
        return Failure(format!("{} error(s) in the spec", errs.len()));
    }
    let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    Failure(lines.join("\n"))
}

fn report_warnings(d: &Diagnostics) {
    for w in d.warnings() {
        events::notice(
            Event::Diagnostic {
                diagnostic: w.clone(),
            },
            &w.to_string(),
        );
    }
}

fn state_path(spec: &Path, explicit: &Option<PathBuf>) -> PathBuf {
    explicit
        .clone()
        .unwrap_or_else(|| state::default_path(spec))
}

/// The snapshot for planning: empty (lineage "") when no state file exists yet, so that
/// `plan` never creates files.
fn read_snapshot(path: &Path) -> Result<StateSnapshot, Failure> {
    if !path.exists() {
        return Ok(StateSnapshot::default());
    }
    Ok(StateStore::open(path)?.snapshot()?)
}

fn poll_cap() -> Duration {
    // Real AWS changes state over minutes; polling every 15 s at most is plenty. Emulators and
    // the test proxy set a lower cap through this variable.
    let ms = std::env::var("EKSNET_POLL_MAX_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15_000);
    Duration::from_millis(ms)
}

async fn make_ctx(
    spec: &Spec,
    lineage: String,
    common: &Common,
    delete_enis: bool,
) -> Result<Ctx, Failure> {
    let json = common.json;
    let aws = AwsClients::load_checked(spec.settings.region.as_deref()).await?;
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
        reporter: reporter(json),
        lineage,
        timeouts,
        poll_cap: poll_cap(),
        delete_available_enis: delete_enis,
        kube: Arc::new(KubeConnector::new(common.kube.access())),
    })
}

async fn make_plan(
    spec: &Spec,
    snapshot: &StateSnapshot,
    ctx: &Ctx,
    opts: &PlanOptions,
) -> Result<Plan, Failure> {
    let graph = DependencyGraph::build(spec, Some(snapshot)).map_err(|d| diag_failure(&d))?;
    let observed = refresh::refresh(ctx, spec, &graph, snapshot).await?;
    let plan =
        planner::plan(spec, &graph, snapshot, &observed, opts).map_err(|d| diag_failure(&d))?;
    for w in &plan.warnings {
        events::notice(
            Event::Diagnostic {
                diagnostic: w.clone(),
            },
            &w.to_string(),
        );
    }
    Ok(plan)
}

fn show_plan(plan: &Plan, json: bool) {
    if json {
        out(&format!(
            "{}\n",
            serde_json::to_string_pretty(plan).unwrap_or_default()
        ));
    } else {
        out(&render::render(plan, palette()));
    }
}

async fn run(cli: Cli) -> Result<u8, Failure> {
    match cli.command {
        Command::Validate { spec, json } => {
            let diags = match spec::load(&spec) {
                Ok(s) => validate::validate(&s).and_graph(&s),
                Err(d) => d,
            };
            if json {
                out(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&diags.0).unwrap_or_default()
                ));
            } else {
                eprint!("{diags}");
            }
            if diags.has_errors() {
                return Ok(1);
            }
            if !json {
                eprintln!("{}: valid", spec.display());
            }
            Ok(0)
        }
        Command::Graph {
            spec,
            destroy,
            state,
        } => {
            let s = load_spec(&spec)?;
            let snapshot = match &state {
                Some(p) => Some(read_snapshot(p)?),
                None => None,
            };
            let g = DependencyGraph::build(&s, snapshot.as_ref()).map_err(|d| diag_failure(&d))?;
            out(&if destroy { g.reversed() } else { g }.to_dot());
            Ok(0)
        }
        Command::Plan {
            spec,
            common,
            out: out_file,
            detailed_exitcode,
            destroy,
            replace,
        } => {
            let s = load_spec(&spec)?;
            check_replace(&s, &replace)?;
            let path = state_path(&spec, &common.state);
            let snapshot = read_snapshot(&path)?;
            let ctx = make_ctx(&s, snapshot.lineage.clone(), &common, false).await?;
            let plan = make_plan(&s, &snapshot, &ctx, &PlanOptions { destroy, replace }).await?;
            show_plan(&plan, common.json);
            if let Some(f) = out_file {
                let text = serde_json::to_string_pretty(&plan)?;
                std::fs::write(&f, text)
                    .map_err(|e| Failure(format!("cannot write plan `{}`: {e}", f.display())))?;
                let message = format!(
                    "Saved the plan to {}; apply it with: eksnet apply {}",
                    f.display(),
                    f.display()
                );
                events::notice(
                    Event::Info {
                        message: message.clone(),
                    },
                    &message,
                );
            }
            Ok(if detailed_exitcode && plan.has_changes() {
                2
            } else {
                0
            })
        }
        Command::Apply {
            target,
            common,
            auto_approve,
            replace,
            run,
        } => {
            if let Some(plan) = read_plan_file(&target)? {
                return apply_saved(plan, &common, run).await;
            }
            converge(
                &target,
                &common,
                auto_approve,
                run,
                PlanOptions {
                    destroy: false,
                    replace,
                },
            )
            .await
        }
        Command::Destroy {
            spec,
            common,
            auto_approve,
            run,
        } => {
            converge(
                &spec,
                &common,
                auto_approve,
                run,
                PlanOptions {
                    destroy: true,
                    replace: vec![],
                },
            )
            .await
        }
        Command::Verify { spec, common } => {
            let s = load_spec(&spec)?;
            if !s.resources.keys().any(|a| a.kind == Kind::Cluster) {
                let message = format!(
                    "{} declares no cluster: there is nothing to verify",
                    spec.display()
                );
                events::notice(
                    Event::Warning {
                        message: message.clone(),
                    },
                    &format!("warning: {message}"),
                );
            }
            let aws = AwsClients::load_checked(s.settings.region.as_deref()).await?;
            let kube = KubeConnector::new(common.kube.access());
            let reports = crate::verify::verify(&s, &aws, &kube).await?;
            if common.json {
                out(&format!("{}\n", serde_json::to_string_pretty(&reports)?));
            } else {
                out(&crate::verify::render(&reports));
            }
            Ok(if reports.iter().all(|r| r.ok()) { 0 } else { 3 })
        }
        Command::Import {
            spec,
            addr,
            id,
            common,
        } => import(&spec, &addr, &id, &common).await,
        Command::State { command } => state_command(command),
        Command::ForceUnlock { lock_id, state } => {
            let path = existing_state(state)?;
            StateStore::open(&path)?.force_unlock(&lock_id)?;
            let message = format!("Lock {lock_id} on {} released.", path.display());
            events::notice(
                Event::Info {
                    message: message.clone(),
                },
                &message,
            );
            Ok(0)
        }
    }
}

trait AndGraph {
    fn and_graph(self, spec: &Spec) -> Diagnostics;
}

impl AndGraph for Diagnostics {
    /// Adds graph errors (cycles) to validation results, so `validate` reports them too.
    fn and_graph(mut self, spec: &Spec) -> Diagnostics {
        if let Err(d) = DependencyGraph::build(spec, None) {
            self.extend(d);
        }
        self
    }
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
        [] => Err(Failure("no state/*.db here; pass --state DB".into())),
        _ => Err(Failure("several state/*.db here; pass --state DB".into())),
    }
}

/// A plan file is JSON with a `format` field; anything else is treated as a spec.
fn read_plan_file(path: &Path) -> Result<Option<Plan>, Failure> {
    if path.extension().is_some_and(|e| e == "toml") {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure(format!("cannot read `{}`: {e}", path.display())))?;
    if !text.trim_start().starts_with('{') {
        return Ok(None);
    }
    let plan: Plan = serde_json::from_str(&text).map_err(|e| {
        Failure(format!(
            "`{}` is not a valid eksnet plan file: {e}",
            path.display()
        ))
    })?;
    if plan.format != plan::PLAN_FORMAT {
        return Err(Failure(format!(
            "plan format {} is not supported by this eksnet (expected {})",
            plan.format,
            plan::PLAN_FORMAT
        )));
    }
    Ok(Some(plan))
}

/// Asks on stderr and reads the answer on a blocking thread, so that Ctrl-C (watched by
/// `interruptible`) still works while the prompt waits.
async fn confirm(destroy: bool) -> Result<bool, Failure> {
    let what = if destroy {
        "destroy all resources in the state"
    } else {
        "perform these actions"
    };
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

struct Locked {
    store: StateStore,
    lock_id: String,
}

fn lock_state(path: &Path, command: String) -> Result<Locked, Failure> {
    let mut store = StateStore::open(path)?;
    let lock_id = store.lock(&command)?;
    Ok(Locked { store, lock_id })
}

async fn converge(
    spec_path: &Path,
    common: &Common,
    auto_approve: bool,
    run: RunOpts,
    opts: PlanOptions,
) -> Result<u8, Failure> {
    let s = load_spec(spec_path)?;
    check_replace(&s, &opts.replace)?;
    let path = state_path(spec_path, &common.state);
    let command = format!(
        "eksnet {} {}",
        if opts.destroy { "destroy" } else { "apply" },
        spec_path.display()
    );
    let Locked { store, lock_id } = lock_state(&path, command)?;
    let result = async {
        let snapshot = store.snapshot()?;
        let ctx = make_ctx(
            &s,
            snapshot.lineage.clone(),
            common,
            run.delete_available_enis,
        )
        .await?;
        let plan = make_plan(&s, &snapshot, &ctx, &opts).await?;
        show_plan(&plan, common.json);
        if plan.has_changes() && !auto_approve && !confirm(opts.destroy).await? {
            let message = "Cancelled: nothing was changed.".to_string();
            events::notice(
                Event::Info {
                    message: message.clone(),
                },
                &message,
            );
            return Ok((1, store));
        }
        let (report, store) = apply::apply(&ctx, &plan, store, run.parallelism).await?;
        Ok::<_, Failure>((summarise(&plan, &report), store))
    };
    finish(interruptible(result).await, &path, &lock_id)
}

async fn apply_saved(plan: Plan, common: &Common, run: RunOpts) -> Result<u8, Failure> {
    let spec_path = PathBuf::from(&plan.spec_path);
    let s = spec::parse(&spec_path, &plan.spec_source).map_err(|d| Failure(d.to_string()))?;
    let path = state_path(&spec_path, &common.state);
    let Locked { store, lock_id } = lock_state(
        &path,
        format!("eksnet apply (saved plan for {})", spec_path.display()),
    )?;
    let result = async {
        // A plan made before any state existed has an empty lineage; it is still fresh if the
        // new state holds nothing yet.
        let fresh_state = plan.state_lineage.is_empty()
            && store.snapshot()?.resources.is_empty()
            && store.serial()? == 0;
        if !fresh_state {
            apply::check_fresh(&plan, &store)?;
        }
        let ctx = make_ctx(&s, store.lineage()?, common, run.delete_available_enis).await?;
        let (report, store) = apply::apply(&ctx, &plan, store, run.parallelism).await?;
        Ok::<_, Failure>((summarise(&plan, &report), store))
    };
    finish(interruptible(result).await, &path, &lock_id)
}

/// `eksnet import`: reads the resource by the id given (after its dependencies, so a reference
/// such as a block's VPC resolves), refuses what another eksnet state manages, writes its state
/// row, and says what the next plan would do with it.
async fn import(
    spec_path: &Path,
    addr: &ResourceAddr,
    id: &str,
    common: &Common,
) -> Result<u8, Failure> {
    let s = load_spec(spec_path)?;
    let Some(resource) = s.get(addr) else {
        return Err(Failure(format!(
            "`{addr}` is not in {}; add it to the spec first, then import it",
            spec_path.display()
        )));
    };
    match addr.kind {
        Kind::AwsNode => {
            return Err(Failure(format!(
                "`{addr}` needs no import: aws_node settings always apply to the DaemonSet EKS installed"
            )))
        }
        Kind::Vpc if crate::resources::is_adopted(addr, &resource.attrs) => {
            return Err(Failure(format!(
                "`{addr}` adopts its VPC by `id` already; there is nothing to import"
            )))
        }
        Kind::Nodegroup | Kind::EniConfig if !id.contains('/') => {
            return Err(Failure(format!(
                "the id of a {} is CLUSTER/NAME, not `{id}`",
                addr.kind
            )))
        }
        _ => {}
    }
    let path = state_path(spec_path, &common.state);
    let Locked { store, lock_id } = lock_state(
        &path,
        format!("eksnet import {} {addr} {id}", spec_path.display()),
    )?;
    let result = async {
        let mut store = store;
        let snapshot = store.snapshot()?;
        if let Some(row) = snapshot.resources.get(addr) {
            return Err(Failure(format!(
                "`{addr}` is already in the state (id {}); eksnet manages it already",
                row.cloud_id.as_deref().unwrap_or("not yet known")
            )));
        }
        let ctx = make_ctx(&s, snapshot.lineage.clone(), common, false).await?;
        let graph = DependencyGraph::build(&s, Some(&snapshot)).map_err(|d| diag_failure(&d))?;
        let mut observed =
            refresh::refresh_importing(&ctx, &s, &graph, &snapshot, Some((addr, id))).await?;
        let Some(found) = observed.get(addr).cloned().flatten() else {
            return Err(Failure(format!(
                "no {} with id `{id}` was found (for `{addr}`)",
                addr.kind
            )));
        };
        // Under two addresses, one object would be changed, replaced or deleted for either.
        if let Some((other, _)) = snapshot.resources.iter().find(|(a, r)| {
            a.kind == addr.kind && r.cloud_id.as_deref() == Some(found.cloud_id.as_str())
        }) {
            return Err(Failure(format!(
                "{} `{}` is already in the state as `{other}`; one resource cannot be managed under two addresses (`eksnet state rm {other}` first to move it)",
                addr.kind, found.cloud_id
            )));
        }
        if let Some(other) = found
            .managed_by
            .as_deref()
            .filter(|l| *l != snapshot.lineage)
        {
            return Err(Failure(format!(
                "{} `{}` is managed by another eksnet state (lineage {other}); two states must not manage one resource",
                addr.kind, found.cloud_id
            )));
        }
        let row = crate::state::StateResource {
            status: crate::state::ResourceStatus::Present,
            cloud_id: Some(found.cloud_id.clone()),
            attrs: found.attrs.clone(),
            outputs: found.outputs.clone(),
            dependencies: graph.dependencies(addr),
        };
        store.put(addr, &row)?;
        let message = format!("Imported {addr} [id={}].", found.cloud_id);
        events::notice(
            Event::Info {
                message: message.clone(),
            },
            &message,
        );
        // What the next plan does with it, from what was just read: no further request.
        let mut after = snapshot.clone();
        after.resources.insert(addr.clone(), row);
        observed.insert(addr.clone(), Some(found));
        let next =
            planner::change_for(&s, &graph, &after, &observed, addr).and_then(|c| match c.action {
                Action::Replace => Some(format!(
                    "the next apply would REPLACE it (it differs in {})",
                    if c.replace_because.is_empty() {
                        c.reason.as_ref().map(|r| r.to_string()).unwrap_or_default()
                    } else {
                        c.replace_because.join(", ")
                    }
                )),
                Action::Update => {
                    Some("the next apply would update it in place to match the spec".into())
                }
                _ => None,
            });
        if let Some(next) = next {
            let message = format!("{addr}: {next}; run `eksnet plan` to see the difference");
            events::notice(
                Event::Warning {
                    message: message.clone(),
                },
                &format!("warning: {message}"),
            );
        }
        Ok::<_, Failure>((0, store))
    };
    finish(interruptible(result).await, &path, &lock_id)
}

/// The state file `state` and `force-unlock` work on; it must exist (they never create one).
fn existing_state(explicit: Option<PathBuf>) -> Result<PathBuf, Failure> {
    let path = match explicit {
        Some(p) => p,
        None => only_state_file()?,
    };
    if !path.exists() {
        return Err(Failure(format!(
            "state `{}` does not exist",
            path.display()
        )));
    }
    Ok(path)
}

fn state_command(command: StateCommand) -> Result<u8, Failure> {
    match command {
        StateCommand::List { state, json } => {
            let snapshot = StateStore::open(&existing_state(state)?)?.snapshot()?;
            if json {
                let rows: Vec<serde_json::Value> = snapshot
                    .resources
                    .iter()
                    .map(|(a, r)| {
                        serde_json::json!({
                            "address": a.to_string(), "status": r.status, "cloud_id": r.cloud_id,
                        })
                    })
                    .collect();
                out(&format!("{}\n", serde_json::to_string_pretty(&rows)?));
            } else {
                let width = snapshot
                    .resources
                    .keys()
                    .map(|a| a.to_string().len())
                    .max()
                    .unwrap_or(0);
                let mut text = String::new();
                for (a, r) in &snapshot.resources {
                    text.push_str(&format!(
                        "{:<width$}  {:<8}  {}\n",
                        a.to_string(),
                        r.status.as_str(),
                        r.cloud_id.as_deref().unwrap_or("-")
                    ));
                }
                out(&text);
            }
            Ok(0)
        }
        StateCommand::Show { addr, state } => {
            let snapshot = StateStore::open(&existing_state(state)?)?.snapshot()?;
            let Some(r) = snapshot.resources.get(&addr) else {
                return Err(Failure(format!("`{addr}` is not in the state")));
            };
            out(&format!("{}\n", serde_json::to_string_pretty(r)?));
            Ok(0)
        }
        StateCommand::Rm { addrs, state } => {
            let path = existing_state(state)?;
            let Locked { mut store, lock_id } = lock_state(
                &path,
                format!(
                    "eksnet state rm {}",
                    addrs
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            )?;
            let result = (|| {
                let snapshot = store.snapshot()?;
                // All or nothing: a typo in one address must not leave the others half done.
                if let Some(missing) = addrs.iter().find(|a| !snapshot.resources.contains_key(a)) {
                    return Err(Failure(format!("`{missing}` is not in the state")));
                }
                for a in &addrs {
                    store.remove(a)?;
                    let id = snapshot
                        .resources
                        .get(a)
                        .and_then(|r| r.cloud_id.clone())
                        .unwrap_or_else(|| "-".into());
                    let message = format!(
                        "Removed {a} [id={id}] from the state; it is left as it is in AWS or Kubernetes."
                    );
                    events::notice(
                        Event::Info {
                            message: message.clone(),
                        },
                        &message,
                    );
                }
                Ok::<_, Failure>(())
            })();
            let unlocked = store.unlock(&lock_id);
            result?;
            unlocked?;
            Ok(0)
        }
    }
}

/// Runs a locked command, stopping at Ctrl-C (SIGINT) or SIGTERM — what a CI runner sends
/// when a job is cancelled, or `kill` by default. Stopping is as safe as a crash — every
/// finished or started resource is already in the state — but unlike a crash the lock is
/// released.
async fn interruptible<F>(work: F) -> Result<(u8, StateStore), Failure>
where
    F: std::future::Future<Output = Result<(u8, StateStore), Failure>>,
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
        Failure(format!(
            "interrupted ({signal}): operations already sent to AWS may still complete there; everything eksnet started is recorded in the state — run the same command again to reconcile"
        ))
    };
    tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => Err(stopped("SIGINT")),
        _ = terminated => Err(stopped("SIGTERM")),
    }
}

/// Releases the lock whatever happened, then returns the command's result.
fn finish(
    result: Result<(u8, StateStore), Failure>,
    path: &Path,
    lock_id: &str,
) -> Result<u8, Failure> {
    match result {
        Ok((code, mut store)) => {
            store.unlock(lock_id)?;
            Ok(code)
        }
        Err(e) => {
            if let Ok(mut s) = StateStore::open(path) {
                let _ = s.unlock(lock_id);
            }
            Err(e)
        }
    }
}

fn summarise(plan: &Plan, report: &ApplyReport) -> u8 {
    let done = |a: Action| {
        plan.changes
            .iter()
            .filter(|c| {
                c.action == a
                    && report.succeeded.iter().any(|s| s.addr == c.addr)
                    && !report.failed.iter().any(|(s, _)| s.addr == c.addr)
            })
            .count()
    };
    let (added, changed, replaced, destroyed) = (
        done(Action::Create),
        done(Action::Update),
        done(Action::Replace),
        done(Action::Delete),
    );
    let command = if plan.destroy { "Destroy" } else { "Apply" };
    let summary = Event::Summary {
        command: command.to_lowercase(),
        ok: report.ok(),
        added,
        changed,
        replaced,
        destroyed,
        failed: report.failed.len(),
        skipped: report.skipped.len(),
    };
    // In `--json` mode the skips and failures were already events of their own.
    if !events::json_stderr() {
        for (step, because) in &report.skipped {
            eprintln!("skipped: {step} (because {because})");
        }
        if !report.ok() {
            for (step, e) in &report.failed {
                eprintln!("error: {step}: {e}");
            }
        }
    }
    if report.ok() {
        events::notice(
            summary,
            &format!("{command} complete! Resources: {added} added, {changed} changed, {replaced} replaced, {destroyed} destroyed."),
        );
        0
    } else {
        events::notice(
            summary,
            &format!(
                "{command} failed: {} failed, {} skipped; {added} added, {changed} changed, {replaced} replaced, {destroyed} destroyed. Everything completed is recorded in the state; run the command again to continue.",
                report.failed.len(),
                report.skipped.len()
            ),
        );
        1
    }
}
