//! The kill hook (`/__fake/kill`) for crash tests: signal a process right after the K-th write
//! has reached the store, before the answer goes out, so the client dies having caused the
//! change without ever seeing it. It plays the part of `aws-fault-proxy`'s
//! `kill_after_mutating` for the Kubernetes side.

use serde_json::{json, Value};

/// Without a `signal`, SIGKILL: a crash test wants the client to die without running any
/// cleanup of its own.
const DEFAULT_SIGNAL: i32 = libc::SIGKILL;

/// Which process to signal.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    Pid(i32),
    /// Read when the hook fires, not when it is armed: a test arms the hook before it starts
    /// the process that writes its pid there.
    PidFile(String),
}

#[derive(Debug, Clone, PartialEq)]
struct Armed {
    after_writes: u64,
    /// Count only writes to this URL path. A client's concurrent writes reach the server in
    /// any order, so "the K-th write" alone cannot pick out one particular write.
    path: Option<String>,
    /// Count only writes whose User-Agent starts with this: one client's writes, when other
    /// clients (a data plane's kubelets and controllers) write to the same server meanwhile.
    user_agent: Option<String>,
    target: Target,
    signal: i32,
}

/// Configuration and outcome of the hook. One per server; `POST /__fake/kill` replaces it.
#[derive(Debug, Default)]
pub struct KillHook {
    armed: Option<Armed>,
    /// Writes counted since the hook was armed (only those to `path` if it is set).
    writes: u64,
    fired: bool,
    killed: bool,
    pid: Option<i32>,
    /// Request-log `seq` of the write after which the hook fired.
    after_seq: Option<u64>,
    error: Option<String>,
}

impl KillHook {
    /// Applies a `POST /__fake/kill` body: `null` or `{}` disarms, otherwise
    /// `{"after_writes": K, "pid_file": PATH | "pid": N, "signal": NAME | N, "path": P}`. A bad
    /// body leaves the hook as it was; a good one restarts the counters, so K counts from now.
    pub fn configure(&mut self, body: &[u8]) -> Result<(), String> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| format!("kill hook config must be JSON: {e}"))?;
        let armed = match &v {
            Value::Null => None,
            Value::Object(m) if m.is_empty() => None,
            Value::Object(m) => Some(parse_armed(m)?),
            other => return Err(format!("kill hook config must be an object, got {other}")),
        };
        *self = KillHook {
            armed,
            ..KillHook::default()
        };
        Ok(())
    }

    /// Disarms and forgets the outcome (`POST /__fake/reset`).
    pub fn clear(&mut self) {
        *self = KillHook::default();
    }

    /// Counts one write to `path` (logged as `seq`) and, if it is the K-th since arming,
    /// signals the target. Called after the write has reached the store and before the answer
    /// is sent. Fires at most once per arming.
    pub fn count_write(&mut self, seq: u64, path: &str, user_agent: &str) {
        let Some(armed) = self.armed.clone() else {
            return;
        };
        if armed.path.as_deref().is_some_and(|p| p != path) {
            return;
        }
        if armed
            .user_agent
            .as_deref()
            .is_some_and(|ua| !user_agent.starts_with(ua))
        {
            return;
        }
        self.writes += 1;
        if self.fired || self.writes != armed.after_writes {
            return;
        }
        self.fired = true;
        self.after_seq = Some(seq);
        let result = match &armed.target {
            Target::Pid(pid) => Ok(*pid),
            Target::PidFile(path) => read_pid(path),
        }
        .and_then(|pid| signal(pid, armed.signal).map(|()| pid));
        match result {
            Ok(pid) => {
                self.killed = true;
                self.pid = Some(pid);
            }
            Err(e) => {
                // Visible in GET /__fake/kill too, so a test can say why nothing died.
                eprintln!("fake-kube-apiserver: kill hook: {e}");
                self.error = Some(e);
            }
        }
    }

    /// `GET /__fake/kill`.
    pub fn to_json(&self) -> Value {
        let a = self.armed.as_ref();
        let (pid, pid_file) = match a.map(|a| &a.target) {
            Some(Target::Pid(p)) => (Some(*p), None),
            Some(Target::PidFile(f)) => (None, Some(f.clone())),
            None => (None, None),
        };
        json!({
            // Armed: configured and not fired yet.
            "armed": a.is_some() && !self.fired,
            "after_writes": a.map(|a| a.after_writes),
            "path": a.and_then(|a| a.path.clone()),
            "user_agent": a.and_then(|a| a.user_agent.clone()),
            "target_pid": pid,
            "pid_file": pid_file,
            "signal": a.map(|a| a.signal),
            "writes": self.writes,
            "fired": self.fired,
            "killed": self.killed,
            "pid": self.pid,
            "after_seq": self.after_seq,
            "error": self.error,
        })
    }
}

fn parse_armed(m: &serde_json::Map<String, Value>) -> Result<Armed, String> {
    if let Some(k) = m.keys().find(|k| {
        !matches!(
            k.as_str(),
            "after_writes" | "pid_file" | "pid" | "signal" | "path" | "user_agent"
        )
    }) {
        return Err(format!(
            "unknown kill hook field {k:?} (expected after_writes, pid_file or pid, signal, path, user_agent)"
        ));
    }
    let path = match m.get("path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if p.starts_with('/') => Some(p.clone()),
        Some(v) => return Err(format!("path must be a URL path starting with /, got {v}")),
    };
    let user_agent = match m.get("user_agent") {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) if !u.is_empty() => Some(u.clone()),
        Some(v) => return Err(format!("user_agent must be a non-empty string, got {v}")),
    };
    let after_writes = match m.get("after_writes").map(|v| (v, v.as_u64())) {
        Some((_, Some(k))) if k >= 1 => k,
        Some((v, _)) => return Err(format!("after_writes must be an integer >= 1, got {v}")),
        None => return Err("after_writes is required".into()),
    };
    let pid = m.get("pid").filter(|v| !v.is_null());
    let pid_file = m.get("pid_file").filter(|v| !v.is_null());
    let target = match (pid, pid_file) {
        (Some(_), Some(_)) => return Err("give pid or pid_file, not both".into()),
        (None, None) => return Err("pid_file (or pid) is required".into()),
        (Some(p), None) => Target::Pid(positive_pid(p.as_i64(), &p.to_string())?),
        (None, Some(f)) => match f.as_str() {
            Some(s) if !s.is_empty() => Target::PidFile(s.to_string()),
            _ => return Err(format!("pid_file must be a non-empty string, got {f}")),
        },
    };
    let signal = match m.get("signal") {
        None | Some(Value::Null) => DEFAULT_SIGNAL,
        Some(v) => parse_signal(v)?,
    };
    Ok(Armed {
        after_writes,
        path,
        user_agent,
        target,
        signal,
    })
}

/// Only a positive pid: kill(2) with 0 or a negative pid would signal a whole process group
/// (or every process the server may signal), never what a test means.
fn positive_pid(pid: Option<i64>, shown: &str) -> Result<i32, String> {
    pid.and_then(|p| i32::try_from(p).ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("not a positive pid: {shown}"))
}

fn read_pid(path: &str) -> Result<i32, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
    let trimmed = text.trim();
    positive_pid(trimmed.parse().ok(), &format!("{trimmed:?} in {path}"))
}

/// A number, or a name with or without `SIG` in any case (`"KILL"`, `"sigterm"`).
fn parse_signal(v: &Value) -> Result<i32, String> {
    if let Some(n) = v.as_i64() {
        return i32::try_from(n)
            .ok()
            .filter(|n| (1..=64).contains(n))
            .ok_or_else(|| format!("signal number out of range: {n}"));
    }
    let name = v
        .as_str()
        .ok_or_else(|| format!("signal must be a number or a name, got {v}"))?
        .to_ascii_uppercase();
    let sig = match name.strip_prefix("SIG").unwrap_or(&name) {
        "KILL" => libc::SIGKILL,
        "TERM" => libc::SIGTERM,
        "INT" => libc::SIGINT,
        "HUP" => libc::SIGHUP,
        "QUIT" => libc::SIGQUIT,
        "ABRT" => libc::SIGABRT,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        _ => return Err(format!("unknown signal name {v}")),
    };
    Ok(sig)
}

fn signal(pid: i32, sig: i32) -> Result<(), String> {
    // SAFETY: kill(2) only takes integers and touches no memory of ours; pid is > 0, so it
    // names exactly one process.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "kill({pid}, {sig}) failed: {}",
            std::io::Error::last_os_error()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured(body: &str) -> Result<KillHook, String> {
        let mut h = KillHook::default();
        h.configure(body.as_bytes()).map(|()| h)
    }

    #[test]
    fn config_is_validated_and_a_bad_one_changes_nothing() {
        for bad in [
            r#"{"pid_file": "/tmp/x"}"#,
            r#"{"after_writes": 0, "pid_file": "/tmp/x"}"#,
            r#"{"after_writes": -1, "pid_file": "/tmp/x"}"#,
            r#"{"after_writes": 1}"#,
            r#"{"after_writes": 1, "pid": 0}"#,
            r#"{"after_writes": 1, "pid": -5}"#,
            r#"{"after_writes": 1, "pid": 4, "pid_file": "/tmp/x"}"#,
            r#"{"after_writes": 1, "pid_file": ""}"#,
            r#"{"after_writes": 1, "pid_file": "/tmp/x", "signal": "BOGUS"}"#,
            r#"{"after_writes": 1, "pid_file": "/tmp/x", "signal": 0}"#,
            r#"{"after_writes": 1, "pid_file": "/tmp/x", "extra": 1}"#,
            r#"{"after_writes": 1, "pid_file": "/tmp/x", "path": "api/v1"}"#,
            r#"{"after_writes": 1, "pid_file": "/tmp/x", "path": 3}"#,
            r#"[1]"#,
            "not json",
        ] {
            let mut h = configured(r#"{"after_writes": 3, "pid": 42}"#).unwrap();
            assert!(h.configure(bad.as_bytes()).is_err(), "{bad}");
            assert_eq!(
                h.to_json()["after_writes"],
                3,
                "{bad} left the hook as it was"
            );
        }
    }

    #[test]
    fn signal_names_and_numbers() {
        let sig = |s: &str| configured(s).unwrap().to_json()["signal"].clone();
        assert_eq!(
            sig(r#"{"after_writes": 1, "pid": 1, "signal": "sigterm"}"#),
            libc::SIGTERM
        );
        assert_eq!(
            sig(r#"{"after_writes": 1, "pid": 1, "signal": "USR1"}"#),
            libc::SIGUSR1
        );
        assert_eq!(
            sig(r#"{"after_writes": 1, "pid": 1, "signal": 2}"#),
            libc::SIGINT
        );
        assert_eq!(sig(r#"{"after_writes": 1, "pid": 1}"#), libc::SIGKILL);
    }

    #[test]
    fn null_and_empty_object_disarm() {
        for off in ["null", "{}"] {
            let mut h = configured(r#"{"after_writes": 1, "pid_file": "/nonexistent"}"#).unwrap();
            h.configure(off.as_bytes()).unwrap();
            h.count_write(1, "/api/v1/nodes/n", "eksnet");
            let j = h.to_json();
            assert_eq!(j["armed"], false, "{off}");
            assert_eq!(j["fired"], false, "{off}");
            assert_eq!(j["writes"], 0, "a disarmed hook counts nothing");
        }
    }

    #[test]
    fn a_path_filter_counts_only_writes_to_that_path() {
        let mut h = configured(
            r#"{"after_writes": 2, "pid_file": "/nonexistent/p", "path": "/api/v1/nodes/a"}"#,
        )
        .unwrap();
        for (seq, path) in [
            (1, "/api/v1/nodes/b"),
            (2, "/api/v1/nodes/a"),
            (3, "/api/v1/nodes/b"),
        ] {
            h.count_write(seq, path, "eksnet");
        }
        let j = h.to_json();
        assert_eq!(
            (j["writes"].clone(), j["fired"].clone()),
            (json!(1), json!(false))
        );
        h.count_write(4, "/api/v1/nodes/a", "eksnet");
        let j = h.to_json();
        assert_eq!(
            (j["fired"].clone(), j["after_seq"].clone()),
            (json!(true), json!(4))
        );
        assert_eq!(j["path"], "/api/v1/nodes/a");
    }

    #[test]
    fn a_user_agent_filter_counts_only_that_clients_writes() {
        let mut h = configured(
            r#"{"after_writes": 2, "pid_file": "/nonexistent/p", "user_agent": "eksnet/"}"#,
        )
        .unwrap();
        h.count_write(1, "/api/v1/nodes/n", "kubelet/v1.31.0 (linux/amd64)");
        h.count_write(2, "/api/v1/pods", "eksnet/0.1.0");
        h.count_write(3, "/api/v1/pods", "kube-controller-manager/v1.31.0");
        assert_eq!(h.to_json()["fired"], false);
        h.count_write(4, "/api/v1/pods", "eksnet/0.1.0");
        let j = h.to_json();
        assert_eq!(
            (j["after_seq"].clone(), j["writes"].clone()),
            (json!(4), json!(2))
        );
        assert_eq!(j["user_agent"], "eksnet/");
        assert!(configured(r#"{"after_writes": 1, "pid": 1, "user_agent": ""}"#).is_err());
    }

    #[test]
    fn unreadable_pid_file_is_reported_once() {
        let mut h =
            configured(r#"{"after_writes": 2, "pid_file": "/nonexistent/eksnet.pid"}"#).unwrap();
        h.count_write(7, "/a", "eksnet");
        assert_eq!(h.to_json()["armed"], true);
        h.count_write(8, "/b", "eksnet");
        h.count_write(9, "/a", "eksnet");
        let j = h.to_json();
        assert_eq!(j["armed"], false);
        assert_eq!(j["fired"], true);
        assert_eq!(j["killed"], false);
        assert_eq!(j["after_seq"], 8);
        assert_eq!(j["writes"], 3);
        assert!(
            j["error"]
                .as_str()
                .unwrap()
                .contains("/nonexistent/eksnet.pid"),
            "{j}"
        );
    }
}
