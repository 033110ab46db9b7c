//! The last line of an apply or destroy: what was done, what failed or was skipped.

use crate::apply::ApplyReport;
use crate::base::events::{self, Event};
use crate::cli::exit::ExitStatus;
use crate::cli::output;
use crate::plan::{Action, Plan};

/// The last lines of an apply or destroy: what was skipped and failed, then the counts.
pub fn summarise(plan: &Plan, report: &ApplyReport) -> ExitStatus {
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
    // Old objects an interrupted replacement left count as destroyed once their step is done.
    let old_objects: usize = plan
        .changes
        .iter()
        .filter(|c| {
            report
                .succeeded
                .iter()
                .any(|s| s.addr == c.addr && s.phase == crate::apply::Phase::Destroy)
        })
        .map(|c| c.deposed.len())
        .sum();
    let (added, changed, replaced, destroyed) = (
        done(Action::Create),
        done(Action::Update) + done(Action::PutBack),
        done(Action::Replace),
        done(Action::Delete) + old_objects,
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
    let mut lines = String::new();
    for (step, because) in &report.skipped {
        lines.push_str(&format!("skipped: {step} (because {because})\n"));
    }
    if !report.ok() {
        for (step, e) in &report.failed {
            lines.push_str(&format!("error: {step}: {e}\n"));
        }
    }
    output::text_only(&lines);
    if report.ok() {
        events::notice(
            summary,
            &format!("{command} complete! Resources: {added} added, {changed} changed, {replaced} replaced, {destroyed} destroyed."),
        );
        ExitStatus::Success
    } else {
        events::notice(
            summary,
            &format!(
                "{command} failed: {} failed, {} skipped; {added} added, {changed} changed, {replaced} replaced, {destroyed} destroyed. Everything completed is recorded in the state; run the command again to continue.",
                report.failed.len(),
                report.skipped.len()
            ),
        );
        ExitStatus::Error
    }
}
