//! The kill hook (`kill_after_mutating`): signals a process once the k-th mutating request
//! has been carried out, before its answer goes out, so that crash tests kill a client
//! right after a change it never learns of.

use super::app::App;
use crate::shared::lock;

/// Counts mutating requests answered by moto (or served by an emulator) and, on the
/// k-th, signals the configured process. Runs before the answer is sent, so the client dies
/// having caused the change without having seen it.
pub fn kill_hook(app: &App, seq: u64, op: &str) {
    let cfg = lock(&app.config).clone();
    if cfg.kill_op.as_deref().is_some_and(|o| o != op) {
        return;
    }
    let fire = {
        let mut stats = lock(&app.stats);
        stats.mutating_answers += 1;
        match cfg.kill_after_mutating {
            Some(k) => stats.mutating_answers == k && !stats.kill.killed,
            None => false,
        }
    };
    if !fire {
        return;
    }
    let pid = match (cfg.kill_pid, cfg.kill_pid_file.as_deref()) {
        (Some(pid), _) => Ok(pid),
        (None, Some(path)) => read_pid(path),
        (None, None) => Err("kill_after_mutating set but no kill_pid or kill_pid_file".into()),
    };
    let result = pid.and_then(|pid| {
        // SAFETY: kill(2) takes plain integers and has no memory effects;
        // pid was validated to be > 0 so it targets exactly one process.
        let rc = unsafe { libc::kill(pid, cfg.kill_signal) };
        if rc == 0 {
            Ok(pid)
        } else {
            Err(format!(
                "kill({pid}, {}) failed: {}",
                cfg.kill_signal,
                std::io::Error::last_os_error()
            ))
        }
    });
    let mut stats = lock(&app.stats);
    stats.kill.after_seq = Some(seq);
    stats.kill.op = Some(op.to_string());
    stats.kill.signal = Some(cfg.kill_signal);
    match result {
        Ok(pid) => {
            stats.kill.killed = true;
            stats.kill.pid = Some(pid);
            stats.kill.error = None;
        }
        Err(e) => {
            eprintln!("aws-fault-proxy: kill hook: {e}");
            stats.kill.error = Some(e);
        }
    }
}

fn read_pid(path: &str) -> Result<i32, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
    text.trim()
        .parse::<i32>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{path} does not hold a positive pid: {:?}", text.trim()))
}
