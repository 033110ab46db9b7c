//! Engine events. The engine never prints: it emits events, and a reporter chosen by the CLI
//! renders them on stderr (human, with progress bars on a terminal, or JSON lines).

use crate::addr::ResourceAddr;
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Refreshing {
        resources: usize,
    },
    Started {
        addr: ResourceAddr,
        action: String,
    },
    Waiting {
        addr: ResourceAddr,
        status: String,
        #[serde(with = "secs")]
        elapsed: Duration,
    },
    Retrying {
        addr: ResourceAddr,
        reason: String,
        attempt: u32,
    },
    Finished {
        addr: ResourceAddr,
        action: String,
        #[serde(with = "secs")]
        elapsed: Duration,
        cloud_id: Option<String>,
    },
    Failed {
        addr: ResourceAddr,
        action: String,
        error: String,
    },
    Skipped {
        addr: ResourceAddr,
        because: ResourceAddr,
    },
    Warning {
        message: String,
    },
}

mod secs {
    use serde::Serializer;
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_millis() as f64) / 1000.0)
    }
}

pub trait Reporter: Send + Sync {
    fn event(&self, event: Event);
}

/// Discards events (library use and tests that do not look at progress).
pub struct NullReporter;
impl Reporter for NullReporter {
    fn event(&self, _event: Event) {}
}

/// Human-readable progress on stderr. Waiting updates are throttled to one line per status
/// change or every 10 s per resource when stderr is not a terminal, so logs stay readable.
pub struct HumanReporter {
    last_wait: Mutex<std::collections::HashMap<ResourceAddr, (String, u64)>>,
    terminal: bool,
}

impl HumanReporter {
    pub fn new() -> Self {
        HumanReporter {
            last_wait: Mutex::new(Default::default()),
            terminal: std::io::stderr().is_terminal(),
        }
    }
}

impl Default for HumanReporter {
    fn default() -> Self {
        Self::new()
    }
}

fn fmt_elapsed(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

impl Reporter for HumanReporter {
    fn event(&self, event: Event) {
        let line = match event {
            Event::Refreshing { resources } => format!("Refreshing {resources} resources..."),
            Event::Started { addr, action } => format!("{addr}: {action}..."),
            Event::Waiting {
                addr,
                status,
                elapsed,
            } => {
                let bucket = elapsed.as_secs() / if self.terminal { 1 } else { 10 };
                let Ok(mut last) = self.last_wait.lock() else {
                    return;
                };
                let key = (status.clone(), bucket);
                if last.get(&addr) == Some(&key) {
                    return;
                }
                last.insert(addr.clone(), key);
                format!("{addr}: still {status} [{} elapsed]", fmt_elapsed(elapsed))
            }
            Event::Retrying {
                addr,
                reason,
                attempt,
            } => format!("{addr}: retrying (attempt {attempt}): {reason}"),
            Event::Finished {
                addr,
                action,
                elapsed,
                cloud_id,
            } => match cloud_id {
                Some(id) => format!(
                    "{addr}: {action} complete after {} [id={id}]",
                    fmt_elapsed(elapsed)
                ),
                None => format!("{addr}: {action} complete after {}", fmt_elapsed(elapsed)),
            },
            Event::Failed {
                addr,
                action,
                error,
            } => format!("{addr}: {action} FAILED: {error}"),
            Event::Skipped { addr, because } => {
                format!("{addr}: skipped because {because} failed")
            }
            Event::Warning { message } => format!("warning: {message}"),
        };
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

/// One JSON object per line on stderr, for machines (`--json`).
pub struct JsonReporter;
impl Reporter for JsonReporter {
    fn event(&self, event: Event) {
        if let Ok(s) = serde_json::to_string(&event) {
            let _ = writeln!(std::io::stderr().lock(), "{s}");
        }
    }
}
