//! `eksnet init --cluster NAME`: reads a cluster that already runs and writes a spec that
//! turns custom networking on (the reads, decisions and text are `adopt`'s). The spec is the
//! command's data: on stdout, or in `--out FILE`; what it found and what to do next go to
//! stderr.

use crate::adopt::{decide, read, render};
use crate::cli::args::InitArgs;
use crate::cli::exit::{ExitStatus, Failure};
use crate::cli::output;
use crate::cloud::aws::AwsClients;
use crate::cloud::kube::KubeConnector;
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// `--json`: the spec and what it was decided from.
#[derive(Serialize)]
struct Report<'a> {
    spec: &'a str,
    /// The file written, when `--out` was given.
    out: Option<String>,
    summary: &'a decide::Proposal,
}

pub async fn run(args: InitArgs) -> Result<ExitStatus, Failure> {
    // Checked before any request: a spec someone edited is never overwritten by accident.
    if let Some(out) = &args.out {
        if out.exists() && !args.force {
            return Err(Failure::Message(format!(
                "`{}` exists already: init does not overwrite it; pass --force to replace it, or give another --out",
                out.display()
            )));
        }
    }
    let aws = AwsClients::load_checked(args.region.as_deref())
        .await
        .map_err(Failure::Message)?;
    let kube = KubeConnector::new(args.common.kube.access());
    output::info(format!(
        "Reading cluster {} in {}...",
        args.cluster, aws.region
    ));
    let cluster = read::cluster(&aws, &kube, &args.cluster)
        .await
        .map_err(|e| Failure::Message(e.to_string()))?;
    decide::refuse_cluster(&cluster).map_err(refused)?;
    let facts = read::rest(&aws, &kube, cluster)
        .await
        .map_err(|e| Failure::Message(e.to_string()))?;
    let proposal = decide::decide(&facts).map_err(refused)?;
    let file = args
        .out
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "SPEC".into());
    let text = render::render(&proposal, &file);
    for w in &proposal.warnings {
        output::warning(w.clone());
    }
    summary(&proposal, &file);
    if let Some(out) = &args.out {
        write(out, &text, args.force)?;
        output::info(format!("Wrote {}.", out.display()));
    }
    if args.common.json {
        output::json_data(&Report {
            spec: &text,
            out: args.out.as_ref().map(|p| p.display().to_string()),
            summary: &proposal,
        })?;
    } else if args.out.is_none() {
        output::data(&text);
    }
    output::info(format!(
        "Next: eksnet validate {file}; eksnet plan {file}; eksnet apply {file}; then eksnet roll {file} to move the existing nodes onto the pod subnets."
    ));
    Ok(ExitStatus::Success)
}

fn refused(e: decide::Refusal) -> Failure {
    Failure::Message(format!("cannot turn custom networking on: {e}"))
}

/// What was found and decided, one line each, on stderr.
fn summary(p: &decide::Proposal, file: &str) {
    let path = match p.cni.path {
        decide::CniPath::AwsNode => "the self-managed aws-node DaemonSet: [aws_node.main]",
        decide::CniPath::Addon => "the vpc-cni add-on: [addon.vpc_cni] with existing = true",
    };
    output::info(format!("VPC CNI: {path}."));
    if let Some(b) = &p.block {
        output::info(format!(
            "Pod block: {} (subnets /{}) in {}.",
            b.cidr, b.subnet_len, p.vpc_id
        ));
    }
    for z in &p.zones {
        match (&z.subnet, &z.existing_eni_config) {
            (Some(s), _) => output::info(format!(
                "  {}: pod subnet {s}: up to {} node(s), {} addresses with {}% headroom (a /{} would do).",
                z.az,
                z.nodes,
                z.needed,
                decide::HEADROOM_PERCENT,
                z.needed_len
            )),
            (None, Some(e)) => output::info(format!("  {}: ENIConfig `{e}` exists, kept.", z.az)),
            (None, None) => {}
        }
    }
    for e in p
        .existing_eni_configs
        .iter()
        .filter(|e| e.managed_by.is_none())
    {
        output::info(format!(
            "Before the first apply: eksnet import {file} eni_config.{} {}/{}",
            render::eni_config_key(&e.name),
            p.cluster,
            e.name
        ));
    }
    for s in &p.routing.node_subnets {
        output::info(format!(
            "  node subnet {} uses route table {}{}",
            s.subnet_id,
            s.table.as_deref().unwrap_or("(none)"),
            if s.explicit { "" } else { " (the main table)" }
        ));
    }
    if let Some(main) = &p.routing.main_table {
        output::info(format!(
            "  new subnets use the main route table {main}{}",
            if p.routing.missing_in_main.is_empty() {
                ", which routes what the node subnets' tables route"
            } else {
                ", which differs from the node subnets' tables"
            }
        ));
    }
    for t in &p.route_tables {
        output::info(format!(
            "  the pod subnet{} of {} join{} {} (route_table.{}), the node subnets' table there",
            if t.azs.len() == 1 { "" } else { "s" },
            t.azs.join(", "),
            if t.azs.len() == 1 { "s" } else { "" },
            t.id,
            t.name()
        ));
    }
    let owners: Vec<String> = p
        .sources
        .iter()
        .map(|s| format!("{} ({} nodes)", s.owner.describe(), s.nodes.len()))
        .collect();
    if !owners.is_empty() {
        output::info(format!(
            "Node sources (not declared; left to their owners): {}.",
            owners.join(", ")
        ));
    }
}

/// Writes the spec: a new file, or with `--force` a whole replacement (written beside it,
/// then renamed, so a failure never leaves half a spec).
fn write(out: &Path, text: &str, force: bool) -> Result<(), Failure> {
    let fail =
        |e: std::io::Error| Failure::Message(format!("cannot write `{}`: {e}", out.display()));
    if !force {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(out)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    Failure::Message(format!(
                        "`{}` exists already: init does not overwrite it; pass --force to replace it",
                        out.display()
                    ))
                } else {
                    fail(e)
                }
            })?;
        return f.write_all(text.as_bytes()).map_err(fail);
    }
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "spec.toml".into());
    let tmp = out.with_file_name(format!(".{name}.eksnet-init"));
    std::fs::write(&tmp, text).map_err(fail)?;
    std::fs::rename(&tmp, out).map_err(fail)
}
