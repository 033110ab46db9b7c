//! The command line's shape: every command's arguments, as clap parses them. Nothing here
//! runs; `commands/` does.

use crate::base::addr::ResourceAddr;
use crate::cloud::kube::KubeAccess;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "eksnet",
    version,
    about = "Plan and apply Amazon EKS custom networking from a TOML spec"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Parse and check a spec; no API call.
    Validate(ValidateArgs),
    /// Refresh from AWS and show what apply would change.
    Plan(PlanArgs),
    /// Max pods per nodegroup under the cluster's CNI settings, and the pod subnets' free
    /// addresses per AZ against what the nodegroups can grow to; for a spec applied or not.
    Capacity(CapacityArgs),
    /// Converge AWS to a spec, or carry out a saved plan exactly.
    Apply(ApplyArgs),
    /// Delete everything the state holds, in reverse dependency order.
    Destroy(DestroyArgs),
    /// Print the dependency graph as Graphviz DOT.
    Graph(GraphArgs),
    /// Check that custom networking took effect: pod IPs inside the pod subnets, every node with
    /// an ENIConfig. Exit 0 when all is well, 3 when problems were found, 1 on error.
    Verify(VerifyArgs),
    /// Write a spec that turns custom networking on for a cluster that already runs: read the
    /// cluster, its VPC, CNI and nodes, and reference the cluster and VPC as existing.
    Init(InitArgs),
    /// Move the cluster's existing nodes onto custom networking, whoever owns them: per node
    /// or batch, cordon, evict (honouring PodDisruptionBudgets), terminate so that its group
    /// brings a new one, and wait for it. Resumes where it stopped.
    Roll(RollArgs),
    /// Bring an existing resource under management: record it in the state under an address
    /// of the spec, so that plan and apply treat it as their own from then on.
    Import(ImportArgs),
    /// Inspect the state, or make it forget a resource without touching AWS.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Free a lock left by a command that died.
    ForceUnlock(ForceUnlockArgs),
    /// Show a saved plan (`plan --out`): as text, JSON, or Markdown for a pull request.
    Show(ShowArgs),
    /// Print the JSON Schema of a spec, for editors that check TOML against one (Taplo, Even
    /// Better TOML): `eksnet schema > eksnet.schema.json`.
    Schema,
}

#[derive(Args)]
pub struct ShowArgs {
    /// A plan file from `eksnet plan --out`.
    pub planfile: PathBuf,
    /// `text` (as `plan` prints it), `json` (the plan file's content), or `markdown` (a compact
    /// summary for a pull-request comment).
    #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
    pub format: ShowFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ShowFormat {
    Text,
    Json,
    Markdown,
}

/// Which state a command without a spec works on.
#[derive(Args, Clone, Default)]
pub struct StateArgs {
    /// The state: a file path or `s3://BUCKET/KEY` (default: the spec's `[state]`, else the
    /// only `state/*.db` here).
    #[arg(long, env = "EKSNET_STATE", value_name = "PATH|s3://BUCKET/KEY")]
    pub state: Option<String>,
    /// Take the state's location (and its bucket's region) from this spec's `[state]`.
    #[arg(long, value_name = "SPEC")]
    pub spec: Option<PathBuf>,
}

#[derive(Args)]
pub struct ValidateArgs {
    /// The spec file (TOML).
    pub spec: PathBuf,
    /// Print diagnostics as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct PlanArgs {
    /// The spec file (TOML).
    pub spec: PathBuf,
    #[command(flatten)]
    pub common: Common,
    /// Save the plan to this file for `eksnet apply PLANFILE`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Plan a destroy instead.
    #[arg(long)]
    pub destroy: bool,
    /// Plan to recreate this resource (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub replace: Vec<ResourceAddr>,
}

#[derive(Args)]
pub struct CapacityArgs {
    /// The spec file (TOML).
    pub spec: PathBuf,
    /// Exit 0 when every AZ's pod subnets can hold its nodes' pods at the groups' max size,
    /// 2 when one cannot, 1 on error: for a check in CI or on a schedule.
    #[arg(long)]
    pub detailed_exitcode: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args)]
pub struct ApplyArgs {
    /// A spec (.toml) or a plan file from `plan --out`.
    pub target: PathBuf,
    #[command(flatten)]
    pub common: Common,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    /// Recreate this resource (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub replace: Vec<ResourceAddr>,
    #[command(flatten)]
    pub run: RunOpts,
}

#[derive(Args)]
pub struct DestroyArgs {
    /// The spec file (TOML).
    pub spec: PathBuf,
    #[command(flatten)]
    pub common: Common,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    #[command(flatten)]
    pub run: RunOpts,
}

#[derive(Args)]
pub struct GraphArgs {
    /// The spec file (TOML).
    pub spec: PathBuf,
    /// Show the destroy order (edges reversed).
    #[arg(long)]
    pub destroy: bool,
    /// Include resources that are only in this state (a path or `s3://BUCKET/KEY`).
    #[arg(long, value_name = "PATH|s3://BUCKET/KEY")]
    pub state: Option<String>,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The spec file (TOML).
    pub spec: PathBuf,
    /// Check again until everything is right or this long has passed (`90`, `30s`, `5m`,
    /// `1h`): nodes need a while after `apply` to become Ready and their pods to get IPs.
    /// The last report is printed, and its exit code returned.
    #[arg(long, value_name = "DURATION", value_parser = parse_wait)]
    pub wait: Option<std::time::Duration>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args)]
pub struct InitArgs {
    /// The running EKS cluster's name.
    #[arg(long)]
    pub cluster: String,
    /// Its region (default: the AWS SDK's region chain).
    #[arg(long)]
    pub region: Option<String>,
    /// Write the spec to this file instead of stdout (refused if it exists, unless --force).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Overwrite --out if it exists.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args)]
pub struct RollArgs {
    /// The spec file (TOML).
    pub spec: PathBuf,
    /// How many nodes are out at once (cordoned and drained, their replacement not yet Ready).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_unavailable: u32,
    /// Print the nodes in the order they would be moved, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How long one node may take, from cordon to its replacement Ready with its pods in pod
    /// subnets (`90`, `30s`, `20m`, `1h`).
    #[arg(long, value_name = "DURATION", value_parser = parse_wait, default_value = "30m")]
    pub node_timeout: std::time::Duration,
    /// Drain every node before its replacement comes, even where its Auto Scaling group has
    /// room for one more (by default such a node's group is raised by one first).
    #[arg(long)]
    pub no_surge: bool,
    /// Skip the confirmation prompt.
    #[arg(long)]
    pub auto_approve: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args)]
pub struct ImportArgs {
    /// The spec file (TOML).
    pub spec: PathBuf,
    /// The spec address to record it under, e.g. `cluster.main`.
    pub addr: ResourceAddr,
    /// Its id, as eksnet shows it in plans: a cluster or role name, `subnet-…`,
    /// `vpc-cidr-assoc-…`, a stack name, `CLUSTER/NODEGROUP`, `CLUSTER/ENICONFIG`.
    pub id: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args)]
pub struct ForceUnlockArgs {
    /// The lock id printed by the command that was refused.
    pub lock_id: String,
    #[command(flatten)]
    pub state: StateArgs,
}

#[derive(Subcommand)]
pub enum StateCommand {
    /// One line per resource: address, status, id.
    List {
        #[command(flatten)]
        state: StateArgs,
        /// The rows as a JSON array on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Everything the state holds for one resource: status, id, attributes, outputs.
    Show {
        /// A resource address, e.g. `subnet.pod_a`.
        addr: ResourceAddr,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Stop managing resources: drop their rows, leave them in AWS and Kubernetes as they are.
    Rm {
        /// Resource addresses, e.g. `subnet.pod_a`.
        #[arg(required = true)]
        addrs: Vec<ResourceAddr>,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Print the whole state as a JSON document on stdout (an earlier version with --serial).
    Pull {
        #[command(flatten)]
        state: StateArgs,
        /// The version with this serial (S3 with bucket versioning; see `state history`).
        #[arg(long)]
        serial: Option<i64>,
    },
    /// Replace the state with a document from `state pull` (after inspection or repair).
    Push {
        /// The JSON document (`-` for stdin).
        file: PathBuf,
        #[command(flatten)]
        state: StateArgs,
        /// Accept another lineage, or a document older than the state (restoring an earlier
        /// version is deliberate).
        #[arg(long)]
        force: bool,
    },
    /// The stored versions of a shared state, newest first: serial, time, command.
    History {
        #[command(flatten)]
        state: StateArgs,
        /// As a JSON array on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Copy a state to another place (local file ↔ S3), refusing to overwrite a non-empty one.
    Migrate {
        /// Where the state is now: a path or `s3://BUCKET/KEY`.
        #[arg(long, value_name = "PATH|s3://BUCKET/KEY")]
        from: String,
        /// Where it goes.
        #[arg(long, value_name = "PATH|s3://BUCKET/KEY")]
        to: String,
        /// The buckets' region and lease from this spec's `[state]`.
        #[arg(long, value_name = "SPEC")]
        spec: Option<PathBuf>,
    },
}

/// The options of every command that reads AWS.
#[derive(Args, Clone)]
pub struct Common {
    /// The state: a file path or `s3://BUCKET/KEY` (default: the spec's `[state]`, else
    /// state/<spec stem>.db; `verify` does not use one).
    #[arg(long, env = "EKSNET_STATE", value_name = "PATH|s3://BUCKET/KEY")]
    pub state: Option<String>,
    /// Machine-readable output: the command's data as JSON on stdout (the plan, the verify
    /// report), and every stderr line a JSON event.
    #[arg(long)]
    pub json: bool,
    /// Requests per second to each AWS service, on average; twice as many may go at once.
    #[arg(long, env = "EKSNET_REQUEST_RATE", value_name = "N", default_value_t = crate::cloud::aws::DEFAULT_REQUEST_RATE, value_parser = clap::value_parser!(u32).range(1..))]
    pub request_rate: u32,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// How to reach each cluster's Kubernetes API. Default: endpoint, CA and a token from AWS.
#[derive(Args, Clone, Default)]
pub struct KubeArgs {
    /// Use this kubeconfig instead of the EKS endpoint and an AWS-made token.
    #[arg(long, env = "EKSNET_KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Use this kubeconfig context for every cluster, as it is (implies kubeconfig access;
    /// default file: $KUBECONFIG or ~/.kube/config). Without it, each cluster's own context.
    #[arg(long, env = "EKSNET_KUBE_CONTEXT", value_name = "NAME")]
    pub kube_context: Option<String>,
}

impl KubeArgs {
    pub fn access(&self) -> KubeAccess {
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

/// The options of the commands that change things.
#[derive(Args, Clone)]
pub struct RunOpts {
    /// Resources at work at once (sending requests); one only waiting for AWS between two
    /// polls holds no slot.
    #[arg(long, default_value_t = 10)]
    pub parallelism: usize,
    /// Delete ENIs in state `available` (left by the VPC CNI) that block deleting a subnet, on
    /// destroy or when an apply replaces or removes one.
    #[arg(long)]
    pub delete_available_enis: bool,
}

impl Cli {
    /// The options every command that reads AWS has, for those commands.
    fn common(&self) -> Option<&Common> {
        match &self.command {
            Command::Plan(PlanArgs { common, .. })
            | Command::Capacity(CapacityArgs { common, .. })
            | Command::Apply(ApplyArgs { common, .. })
            | Command::Destroy(DestroyArgs { common, .. })
            | Command::Verify(VerifyArgs { common, .. })
            | Command::Import(ImportArgs { common, .. })
            | Command::Init(InitArgs { common, .. })
            | Command::Roll(RollArgs { common, .. }) => Some(common),
            _ => None,
        }
    }

    /// `--request-rate` of the commands that have it, else the default.
    pub fn request_rate(&self) -> u32 {
        self.common()
            .map_or(crate::cloud::aws::DEFAULT_REQUEST_RATE, |c| c.request_rate)
    }

    /// Whether the command was asked for machine-readable output.
    pub fn json(&self) -> bool {
        if let Some(common) = self.common() {
            return common.json;
        }
        match &self.command {
            Command::Validate(a) => a.json,
            Command::State {
                command: StateCommand::List { json, .. } | StateCommand::History { json, .. },
            } => *json,
            // The rest have no `--json`.
            _ => false,
        }
    }
}

/// A wait as seconds, or a number with `s`, `m` or `h`.
fn parse_wait(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration: write seconds, or e.g. 30s, 5m, 1h"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(format!("`{text}`: the unit must be s, m or h")),
    };
    if seconds > 7 * 24 * 3600 {
        return Err(format!("`{text}` is longer than a week"));
    }
    Ok(std::time::Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::parse_wait;
    use std::time::Duration;

    #[test]
    fn waits_are_seconds_or_carry_a_unit() {
        assert_eq!(parse_wait("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_wait("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_wait("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_wait("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "m", "5d", "1.5m", "-3", "99999999999999999999"] {
            assert!(parse_wait(bad).is_err(), "{bad} accepted");
        }
        assert!(parse_wait("8000h").is_err(), "more than a week accepted");
    }
}
