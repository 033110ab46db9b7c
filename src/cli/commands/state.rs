//! `eksnet state list|show|rm`: read the state, or make it forget resources (AWS and
//! Kubernetes are not touched).

use crate::addr::ResourceAddr;
use crate::cli::args::StateCommand;
use crate::cli::exit::{ExitStatus, Failure};
use crate::cli::lock;
use crate::cli::{output, session};
use crate::state::StateStore;
use std::path::PathBuf;

pub fn run(command: StateCommand) -> Result<ExitStatus, Failure> {
    match command {
        StateCommand::List { state, json } => list(state, json),
        StateCommand::Show { addr, state } => show(&addr, state),
        StateCommand::Rm { addrs, state } => rm(&addrs, state),
    }
}

fn list(state: Option<PathBuf>, json: bool) -> Result<ExitStatus, Failure> {
    let snapshot = StateStore::open(&session::existing_state(state)?)?.snapshot()?;
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
        output::json_data(&rows)?;
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
        output::data(&text);
    }
    Ok(ExitStatus::Success)
}

fn show(addr: &ResourceAddr, state: Option<PathBuf>) -> Result<ExitStatus, Failure> {
    let snapshot = StateStore::open(&session::existing_state(state)?)?.snapshot()?;
    let Some(r) = snapshot.resources.get(addr) else {
        return Err(Failure(format!("`{addr}` is not in the state")));
    };
    output::json_data(r)?;
    Ok(ExitStatus::Success)
}

fn rm(addrs: &[ResourceAddr], state: Option<PathBuf>) -> Result<ExitStatus, Failure> {
    let path = session::existing_state(state)?;
    let names: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let (mut store, guard) = lock::lock(&path, &format!("eksnet state rm {}", names.join(" ")))?;
    let result = (|| {
        let snapshot = store.snapshot()?;
        // All or nothing: a typo in one address must not leave the others half done.
        if let Some(missing) = addrs.iter().find(|a| !snapshot.resources.contains_key(a)) {
            return Err(Failure(format!("`{missing}` is not in the state")));
        }
        for a in addrs {
            store.remove(a)?;
            let id = snapshot
                .resources
                .get(a)
                .and_then(|r| r.cloud_id.clone())
                .unwrap_or_else(|| "-".into());
            output::info(format!(
                "Removed {a} [id={id}] from the state; it is left as it is in AWS or Kubernetes."
            ));
        }
        Ok::<_, Failure>(())
    })();
    // The command's own error comes first; a failure to unlock after it is secondary.
    let released = guard.release(&mut store);
    result?;
    released?;
    Ok(ExitStatus::Success)
}
