//! Engine events. The engine never prints: it emits events, and a reporter chosen by the CLI
//! renders them on stderr (human, with live spinners on a terminal, or JSON lines).

use crate::base::addr::ResourceAddr;
use serde::Serialize;
use std::collections::HashMap;
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
    /// A spec diagnostic (warning or error) with its file, line and key.
    Diagnostic {
        #[serde(flatten)]
        diagnostic: crate::base::diag::Diagnostic,
    },
    /// What made the command fail (the exit code says it too).
    Error {
        message: String,
    },
    /// Anything else the CLI says: a saved plan, a cancelled apply, a released lock.
    Info {
        message: String,
    },
    /// The confirmation question; the answer is read from stdin.
    Prompt {
        message: String,
    },
    /// The outcome of an apply or destroy.
    Summary {
        command: String,
        ok: bool,
        added: usize,
        changed: usize,
        replaced: usize,
        destroyed: usize,
        failed: usize,
        skipped: usize,
    },
}

/// Whether stderr carries JSON lines (`--json`). Set once by the CLI before anything is
/// printed. stderr is one stream for the whole process, and what the CLI writes outside the
/// engine (warnings, the summary, errors) must be in the same format as the reporter's events,
/// or a program reading `--json` output would have to skip lines it cannot parse.
static JSON_STDERR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn set_json_stderr(on: bool) {
    JSON_STDERR.store(on, std::sync::atomic::Ordering::Relaxed);
}

pub fn json_stderr() -> bool {
    JSON_STDERR.load(std::sync::atomic::Ordering::Relaxed)
}

/// Writes one line of the CLI's own on stderr: the event as JSON in `--json` mode, otherwise
/// the plain text.
pub fn notice(event: Event, plain: &str) {
    let mut err = std::io::stderr().lock();
    if json_stderr() {
        if let Ok(s) = serde_json::to_string(&event) {
            let _ = writeln!(err, "{s}");
        }
    } else {
        let _ = writeln!(err, "{plain}");
    }
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

/// Human-readable progress on stderr. On a terminal, each resource at work gets a live
/// spinner line with its status and elapsed time (indicatif), replaced by a final line when it
/// is done; elsewhere (CI logs, pipes) only changes are printed: no spinners, and a wait prints
/// a line when its status changes, not on every poll.
pub struct HumanReporter {
    terminal: bool,
    multi: indicatif::MultiProgress,
    bars: Mutex<HashMap<ResourceAddr, indicatif::ProgressBar>>,
    last_status: Mutex<HashMap<ResourceAddr, String>>,
}

impl HumanReporter {
    pub fn new() -> Self {
        let terminal = std::io::stderr().is_terminal();
        let multi = indicatif::MultiProgress::with_draw_target(if terminal {
            indicatif::ProgressDrawTarget::stderr()
        } else {
            indicatif::ProgressDrawTarget::hidden()
        });
        HumanReporter {
            terminal,
            multi,
            bars: Mutex::new(HashMap::new()),
            last_status: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, text: &str) {
        if self.terminal {
            let _ = self.multi.println(text);
        } else {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
    }

    fn finish(&self, addr: &ResourceAddr) {
        if let Some(bar) = self
            .bars
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(addr)
        {
            bar.finish_and_clear();
            self.multi.remove(&bar);
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
        match event {
            Event::Refreshing { resources } => {
                self.line(&format!("Refreshing {resources} resources..."))
            }
            Event::Started { addr, action } => {
                let text = format!("{addr}: {action}...");
                if self.terminal {
                    let bar = self.multi.add(indicatif::ProgressBar::new_spinner());
                    if let Ok(style) =
                        indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                    {
                        bar.set_style(style);
                    }
                    bar.set_message(text);
                    bar.enable_steady_tick(Duration::from_millis(200));
                    self.bars
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(addr, bar);
                } else {
                    self.line(&text);
                }
            }
            Event::Waiting {
                addr,
                status,
                elapsed,
            } => {
                let text = format!("{addr}: still {status} [{} elapsed]", fmt_elapsed(elapsed));
                if self.terminal {
                    if let Some(bar) = self
                        .bars
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get(&addr)
                    {
                        bar.set_message(format!("{addr}: {status}"));
                    }
                    return;
                }
                let mut last = self.last_status.lock().unwrap_or_else(|p| p.into_inner());
                if last.get(&addr) != Some(&status) {
                    last.insert(addr, status);
                    drop(last);
                    self.line(&text);
                }
            }
            Event::Retrying {
                addr,
                reason,
                attempt,
            } => self.line(&format!("{addr}: retrying (attempt {attempt}): {reason}")),
            Event::Finished {
                addr,
                action,
                elapsed,
                cloud_id,
            } => {
                self.finish(&addr);
                self.line(&match cloud_id {
                    Some(id) => format!(
                        "{addr}: {action} complete after {} [id={id}]",
                        fmt_elapsed(elapsed)
                    ),
                    None => format!("{addr}: {action} complete after {}", fmt_elapsed(elapsed)),
                });
            }
            Event::Failed {
                addr,
                action,
                error,
            } => {
                self.finish(&addr);
                self.line(&format!("{addr}: {action} FAILED: {error}"));
            }
            Event::Skipped { addr, because } => {
                self.line(&format!("{addr}: skipped because {because} failed"))
            }
            Event::Warning { message } => self.line(&format!("warning: {message}")),
            Event::Diagnostic { diagnostic } => self.line(&diagnostic.to_string()),
            Event::Error { message } => self.line(&format!("error: {message}")),
            Event::Info { message } | Event::Prompt { message } => self.line(&message),
            Event::Summary { .. } => {}
        }
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
