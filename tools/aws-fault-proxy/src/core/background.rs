//! The background loop: while the `data_plane` switch is on, a pass every
//! [`PASS_INTERVAL`] calls [`Emulator::reconcile`](super::emulator::Emulator::reconcile) of
//! every emulator in turn, for what AWS and the cluster do on their own, outside any
//! request (a nodegroup's instances launched, nodes joining the cluster).
//!
//! The loop is started when the switch goes on (on the command line, or by
//! `POST /__proxy/config`) and stops by itself once it sees the switch off. There is at most
//! one loop, and its passes never overlap. Each pass runs in a task of its own: a pass that
//! panics is reported on stderr and the loop goes on with the next one, which must then
//! rediscover the state of the world for itself (the emulators keep nothing they cannot
//! read back from moto and the API server).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::app::App;
use super::emulator::Pass;
use crate::shared::lock;

/// Time from the start of one pass to the start of the next (or, for a pass that takes
/// longer, between the end of one and the start of the next: [`MIN_PAUSE`]).
pub const PASS_INTERVAL: Duration = Duration::from_millis(200);

/// The least pause between two passes, so that slow passes leave room for requests.
const MIN_PAUSE: Duration = Duration::from_millis(20);

/// Starts the loop if `data_plane` is on and no loop is running.
pub fn ensure_running(app: &Arc<App>) {
    // Lock order: config, then the running flag (as in `run`).
    let cfg = lock(&app.config);
    if !cfg.data_plane {
        return;
    }
    let mut running = lock(&app.background);
    if *running {
        return;
    }
    *running = true;
    tokio::spawn(run(app.clone()));
}

async fn run(app: Arc<App>) {
    loop {
        {
            let cfg = lock(&app.config);
            if !cfg.data_plane {
                *lock(&app.background) = false;
                return;
            }
        }
        let started = Instant::now();
        let pass = tokio::spawn(one_pass(app.clone()));
        if let Err(e) = pass.await {
            eprintln!(
                "aws-fault-proxy: a background pass failed ({e}); the next one starts afresh"
            );
        }
        let pause = PASS_INTERVAL
            .checked_sub(started.elapsed())
            .unwrap_or(MIN_PAUSE)
            .max(MIN_PAUSE);
        tokio::time::sleep(pause).await;
    }
}

async fn one_pass(app: Arc<App>) {
    let cfg = lock(&app.config).clone();
    let pass = Pass::new(&app.host, &cfg, &app.emulators);
    for emulator in &app.emulators {
        if !pass.current() {
            return;
        }
        emulator.reconcile(&pass).await;
    }
}
