//! `eksnet state list|show|rm|pull|push|history|migrate`: read the state, make it forget
//! resources, copy it out and back for inspection and repair, see a shared state's earlier
//! versions, or move it between a local file and S3. AWS and Kubernetes are not touched.

use crate::base::addr::ResourceAddr;
use crate::cli::args::{StateArgs, StateCommand};
use crate::cli::exit::{ExitStatus, Failure};
use crate::cli::lock;
use crate::cli::{output, session};
use crate::state::{self, Durability, Location, StateStore};
use crate::state::{Document, DOCUMENT_FORMAT};
use std::path::Path;

pub async fn run(command: StateCommand) -> Result<ExitStatus, Failure> {
    match command {
        StateCommand::List { state, json } => list(&state, json).await,
        StateCommand::Show { addr, state } => show(&addr, &state).await,
        StateCommand::Rm { addrs, state } => rm(&addrs, &state).await,
        StateCommand::Pull { state, serial } => pull(&state, serial).await,
        StateCommand::Push { file, state, force } => push(&file, &state, force).await,
        StateCommand::History { state, json } => history(&state, json).await,
        StateCommand::Migrate { from, to, spec } => migrate(&from, &to, spec.as_deref()).await,
    }
}

async fn list(state: &StateArgs, json: bool) -> Result<ExitStatus, Failure> {
    let snapshot = session::existing_state(state).await?.snapshot()?;
    if json {
        let rows: Vec<serde_json::Value> = snapshot
            .resources
            .iter()
            .map(|(a, r)| {
                serde_json::json!({
                    "address": a.to_string(), "status": r.status, "cloud_id": r.cloud_id,
                    "deposed": r.deposed.iter().map(|d| &d.cloud_id).collect::<Vec<_>>(),
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
                "{:<width$}  {:<8}  {}",
                a.to_string(),
                r.status.as_str(),
                r.cloud_id.as_deref().unwrap_or("-")
            ));
            // Old objects of an interrupted replacement: the next apply deletes them.
            for d in &r.deposed {
                text.push_str(&format!("  (old object {} to delete)", d.cloud_id));
            }
            text.push('\n');
        }
        output::data(&text);
    }
    Ok(ExitStatus::Success)
}

async fn show(addr: &ResourceAddr, state: &StateArgs) -> Result<ExitStatus, Failure> {
    let snapshot = session::existing_state(state).await?.snapshot()?;
    let Some(r) = snapshot.resources.get(addr) else {
        return Err(Failure::Message(format!("`{addr}` is not in the state")));
    };
    output::json_data(r)?;
    Ok(ExitStatus::Success)
}

/// Opens an existing state and locks it.
async fn lock_existing(
    state: &StateArgs,
    command: &str,
) -> Result<(StateStore, lock::LockGuard), Failure> {
    let (loc, region) = session::state_args_location(state)?;
    if StateStore::open_existing(&loc, region.as_deref())
        .await?
        .is_none()
    {
        return Err(Failure::Message(format!(
            "state `{}` does not exist",
            loc.describe()
        )));
    }
    lock::lock(&loc, region.as_deref(), command).await
}

async fn rm(addrs: &[ResourceAddr], state: &StateArgs) -> Result<ExitStatus, Failure> {
    let names: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let (store, guard) =
        lock_existing(state, &format!("eksnet state rm {}", names.join(" "))).await?;
    let work = async {
        let snapshot = store.snapshot()?;
        // All or nothing: a typo in one address must not leave the others half done.
        if let Some(missing) = addrs.iter().find(|a| !snapshot.resources.contains_key(a)) {
            return Err(Failure::Message(format!("`{missing}` is not in the state")));
        }
        // Stored together, in one write, when the lock is released (a shared state).
        for a in addrs {
            store.remove(a, Durability::Soon).await?;
        }
        store.flush().await?;
        for a in addrs {
            let id = snapshot
                .resources
                .get(a)
                .and_then(|r| r.cloud_id.clone())
                .unwrap_or_else(|| "-".into());
            output::info(format!(
                "Removed {a} [id={id}] from the state; it is left as it is in AWS or Kubernetes."
            ));
        }
        Ok::<_, Failure>(ExitStatus::Success)
    };
    guard.around(work).await
}

async fn pull(state: &StateArgs, serial: Option<i64>) -> Result<ExitStatus, Failure> {
    let store = session::existing_state(state).await?;
    let doc = match serial {
        Some(s) => store.at_serial(s).await?,
        // The progress records too (a `roll` under way), so that a push of this document
        // keeps them.
        None => Document {
            records: store.records()?,
            ..Document::from(store.snapshot()?)
        },
    };
    output::json_data(&doc)?;
    Ok(ExitStatus::Success)
}

fn read_document(file: &Path) -> Result<Document, Failure> {
    let text = if file == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| Failure::Message(format!("cannot read the document from stdin: {e}")))?;
        s
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| Failure::Message(format!("cannot read `{}`: {e}", file.display())))?
    };
    let doc: Document = serde_json::from_str(&text).map_err(|e| {
        Failure::Message(format!(
            "`{}` is not an eksnet state document (from `eksnet state pull`): {e}",
            file.display()
        ))
    })?;
    if doc.format != DOCUMENT_FORMAT {
        return Err(Failure::Message(format!(
            "`{}` has document format {}; this eksnet reads format {DOCUMENT_FORMAT}",
            file.display(),
            doc.format
        )));
    }
    Ok(doc)
}

async fn push(file: &Path, state: &StateArgs, force: bool) -> Result<ExitStatus, Failure> {
    let mut doc = read_document(file)?;
    let (loc, region) = session::state_args_location(state)?;
    let (store, guard) = lock::lock(
        &loc,
        region.as_deref(),
        &format!("eksnet state push {}", file.display()),
    )
    .await?;
    let work = async {
        let current = store.snapshot()?;
        let empty = current.resources.is_empty() && current.serial == 0;
        if !empty && !force {
            if doc.lineage != current.lineage {
                return Err(Failure::Message(format!(
                    "the document is of another state (lineage {}, this state's is {}): pushing it would make this state manage another state's resources; pass --force if that is what you mean",
                    doc.lineage, current.lineage
                )));
            }
            if doc.serial < current.serial {
                return Err(Failure::Message(format!(
                    "the document is older than the state (serial {} < {}): pushing it would undo the writes since; pass --force to restore it deliberately",
                    doc.serial, current.serial
                )));
            }
        }
        // Past every serial either side has had, so plans saved against either are stale.
        doc.serial = doc.serial.max(current.serial) + 1;
        store.replace_all(&doc).await?;
        output::info(format!(
            "Pushed {} resources to {} (lineage {}, serial {}).",
            doc.resources.len(),
            store.location(),
            doc.lineage,
            doc.serial
        ));
        Ok::<_, Failure>(ExitStatus::Success)
    };
    guard.around(work).await
}

async fn history(state: &StateArgs, json: bool) -> Result<ExitStatus, Failure> {
    let store = session::existing_state(state).await?;
    let versions = store.history().await?;
    if json {
        output::json_data(&versions)?;
        return Ok(ExitStatus::Success);
    }
    let mut text = format!(
        "{:>7}  {:<24}  {:<36}  COMMAND\n",
        "SERIAL", "STORED", "VERSION"
    );
    for v in &versions {
        text.push_str(&format!(
            "{:>7}  {:<24}  {:<36}  {}{}\n",
            v.serial
                .map(|s| s.to_string())
                .unwrap_or_else(|| "?".into()),
            v.stored_at,
            v.version_id,
            v.command.as_deref().unwrap_or("-"),
            if v.latest { "  (current)" } else { "" }
        ));
    }
    output::data(&text);
    if versions.len() == 1 && versions[0].version_id == "null" {
        output::warning(
            "the bucket keeps one version only: turn bucket versioning on to keep a history (docs/state.md)",
        );
    }
    Ok(ExitStatus::Success)
}

fn location_of(flag: &str, spec: Option<&crate::spec::Spec>) -> Result<Location, Failure> {
    match spec {
        Some(spec) => {
            state::resolve(&spec.path, spec.state.as_ref(), Some(flag)).map_err(Failure::Message)
        }
        None => Location::parse_flag(flag).map_err(Failure::Message),
    }
}

async fn migrate(from: &str, to: &str, spec_path: Option<&Path>) -> Result<ExitStatus, Failure> {
    let spec = spec_path.map(session::load_spec).transpose()?;
    let region = spec.as_ref().and_then(|s| s.settings.region.clone());
    let (from_loc, to_loc) = (
        location_of(from, spec.as_ref())?,
        location_of(to, spec.as_ref())?,
    );
    if from_loc == to_loc {
        return Err(Failure::Message(
            "--from and --to are the same state".into(),
        ));
    }
    if StateStore::open_existing(&from_loc, region.as_deref())
        .await?
        .is_none()
    {
        return Err(Failure::Message(format!(
            "state `{}` does not exist",
            from_loc.describe()
        )));
    }
    let command = format!("eksnet state migrate --from {from} --to {to}");
    let (source, source_guard) = lock::lock(&from_loc, region.as_deref(), &command).await?;
    let target_locked = lock::lock(&to_loc, region.as_deref(), &command).await;
    let (target, target_guard) = match target_locked {
        Ok(t) => t,
        Err(e) => {
            let _ = source_guard.release().await;
            return Err(e);
        }
    };
    let work = async {
        let snapshot = source.snapshot()?;
        let existing = target.snapshot()?;
        if !existing.resources.is_empty() {
            return Err(Failure::Message(format!(
                "`{}` already holds {} resources (lineage {}); migrate refuses to overwrite a state that is not empty",
                target.location(),
                existing.resources.len(),
                existing.lineage
            )));
        }
        let mut doc = Document::from(snapshot);
        doc.records = source.records()?;
        doc.serial = doc.serial.max(existing.serial + 1);
        target.replace_all(&doc).await?;
        target.flush().await?;
        // Read back from where it went, as another machine will.
        let copied = StateStore::open_existing(&to_loc, region.as_deref())
            .await?
            .ok_or_else(|| {
                Failure::Message(format!("`{}` cannot be read back", to_loc.describe()))
            })?
            .snapshot()?;
        if copied.resources != doc.resources || copied.lineage != doc.lineage {
            return Err(Failure::Message(format!(
                "`{}` reads back different from what was written; the source is unchanged",
                to_loc.describe()
            )));
        }
        output::info(format!(
            "Migrated {} resources (lineage {}) from {} to {}. The source is left as it was: point the spec's [state] (or --state) at the new place, and keep the old one only as a backup — applying with both would make them diverge.",
            doc.resources.len(),
            doc.lineage,
            from_loc.describe(),
            to_loc.describe()
        ));
        Ok::<_, Failure>(ExitStatus::Success)
    };
    let outcome = session::interruptible(work).await;
    let released_target = target_guard.release().await;
    let released_source = source_guard.release().await;
    let status = outcome?;
    released_target?;
    released_source?;
    Ok(status)
}
