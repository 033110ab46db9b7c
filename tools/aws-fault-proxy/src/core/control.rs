//! The control API, `/__proxy/...`: configuration, statistics, reset and health.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use hyper::header::HeaderMap;
use hyper::Method;
use serde_json::{json, Value};

use super::app::{seeded_rng, App};
use super::background;
use super::faults::{proxy_error, Reply};
use super::upstream::is_success;
use super::windows::Windows;
use crate::shared::lock;

/// `/__proxy/...`: configuration, statistics and reset.
pub async fn control(app: &Arc<App>, method: &Method, path: &str, body: &[u8]) -> Reply {
    match (method.as_str(), path) {
        ("GET", "/__proxy/config") => config_json(app),
        ("POST", "/__proxy/config") => {
            let patch: Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => return proxy_error(400, &format!("config must be JSON: {e}")),
            };
            let mut cfg = lock(&app.config);
            match cfg.merge(&patch) {
                Ok(effects) => {
                    if effects.reseed {
                        *lock(&app.rng) = seeded_rng(cfg.throttle_seed);
                    }
                    if effects.rearm_kill {
                        let mut stats = lock(&app.stats);
                        stats.mutating_answers = 0;
                        stats.kill = Default::default();
                    }
                    drop(cfg);
                    background::ensure_running(app);
                    config_json(app)
                }
                Err(e) => proxy_error(400, &e),
            }
        }
        ("GET", "/__proxy/stats") => Reply::json(200, &lock(&app.stats).to_json()),
        ("POST", "/__proxy/reset-stats") => {
            lock(&app.stats).reset();
            Reply::json(200, &json!({ "ok": true }))
        }
        ("POST", "/__proxy/reset") => {
            // First, so that a background pass under way changes nothing more.
            app.host.resets.fetch_add(1, Ordering::SeqCst);
            *lock(&app.host.windows) = Windows::default();
            for emulator in &app.emulators {
                emulator.reset();
            }
            lock(&app.stats).reset();
            lock(&app.config).clear_kill();
            let moto = &app.host.upstream;
            let reset = moto
                .forward(
                    &Method::POST,
                    "/moto-api/reset",
                    &HeaderMap::new(),
                    Bytes::new(),
                )
                .await;
            match reset {
                Ok(r) => Reply::json(
                    if is_success(r.status) { 200 } else { 502 },
                    &json!({ "ok": is_success(r.status), "upstream_status": r.status }),
                ),
                Err(e) => proxy_error(502, &e),
            }
        }
        ("GET", "/__proxy/health") => Reply::json(200, &json!({ "ok": true })),
        _ => proxy_error(404, &format!("no control endpoint {method} {path}")),
    }
}

fn config_json(app: &App) -> Reply {
    let cfg = lock(&app.config).clone();
    match serde_json::to_value(&cfg) {
        Ok(v) => Reply::json(200, &v),
        Err(e) => proxy_error(500, &e.to_string()),
    }
}
