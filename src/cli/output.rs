//! Where the CLI's own words go: data on stdout, one line per message on stderr (as a JSON
//! event under `--json`). Commands print through these and nothing else.

use super::exit::Failure;
use crate::base::diag::{Diagnostic, Diagnostics};
use crate::base::events::{self, Event, HumanReporter, JsonReporter, Reporter};
use crate::plan::render::{self, Palette};
use crate::plan::Plan;
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::sync::Arc;

/// The command's data on stdout.
pub fn data(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// The command's data as pretty JSON on stdout.
pub fn json_data<T: Serialize + ?Sized>(value: &T) -> Result<(), Failure> {
    data(&format!("{}\n", serde_json::to_string_pretty(value)?));
    Ok(())
}

/// A message of progress or result.
pub fn info(message: impl Into<String>) {
    let message = message.into();
    let plain = message.clone();
    events::notice(Event::Info { message }, &plain);
}

pub fn warning(message: impl Into<String>) {
    let message = message.into();
    let plain = format!("warning: {message}");
    events::notice(Event::Warning { message }, &plain);
}

/// The command's failure, as its last line.
pub fn error(message: &str) {
    let message = message.trim_end();
    let message = message.strip_prefix("error: ").unwrap_or(message);
    let plain = format!("error: {message}");
    events::notice(
        Event::Error {
            message: message.to_string(),
        },
        &plain,
    );
}

/// Lines for people only: under `--json` the same facts went out as events of their own
/// (diagnostics, `skipped`, `failed`), so nothing is written.
pub fn text_only(text: &str) {
    if !events::json_stderr() {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }
}

/// Colour only on a terminal, and never with `NO_COLOR` set.
pub fn palette() -> Palette {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    if !no_color && std::io::stdout().is_terminal() {
        Palette::ANSI
    } else {
        Palette::PLAIN
    }
}

/// The progress reporter handed to the library.
pub fn reporter(json: bool) -> Arc<dyn Reporter> {
    if json {
        Arc::new(JsonReporter)
    } else {
        Arc::new(HumanReporter::new())
    }
}

pub fn plan(plan: &Plan, json: bool) -> Result<(), Failure> {
    if json {
        json_data(plan)
    } else {
        data(&render::render(plan, palette()));
        Ok(())
    }
}

/// A failure made of spec diagnostics. In `--json` mode each error is its own `diagnostic`
/// event (file, line, key as fields) and the failure only counts them; in text the failure
/// lists them.
pub fn diagnostics_failure(d: &Diagnostics) -> Failure {
    let errs: Vec<&Diagnostic> = d.errors().collect();
    if events::json_stderr() {
        for e in &errs {
            events::notice(
                Event::Diagnostic {
                    diagnostic: (*e).clone(),
                },
                "",
            );
        }
        return Failure::Message(format!("{} error(s) in the spec", errs.len()));
    }
    let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    Failure::Message(lines.join("\n"))
}

/// Diagnostics that do not stop the command (warnings), one line or event each.
pub fn diagnostics<'a>(items: impl IntoIterator<Item = &'a Diagnostic>) {
    for d in items {
        events::notice(
            Event::Diagnostic {
                diagnostic: d.clone(),
            },
            &d.to_string(),
        );
    }
}
