//! The request pipeline: control API, latency, fault injection, the emulators' hooks,
//! forwarding to moto, accounting, the kill hook and lost answers.
//!
//! Order for an AWS request: latency, throttling, server errors, requests emulators serve
//! themselves (`reject_op` among them), faults emulators decide locally (IAM propagation,
//! DependencyViolation, describe of a resource in its deleting window, ...), forwarding,
//! kill hook, the emulators' rewriting, and last, for `lose_answer_op`, dropping the
//! connection instead of answering. Locks are plain `std` mutexes held only for short,
//! await-free sections.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, CONTENT_LENGTH};
use hyper::{Method, Request, Response, StatusCode};

use super::app::App;
use super::config::Config;
use super::control::control;
use super::emulator::{Answer, Call};
use super::faults::{self, proxy_error, Reply};
use super::kill::kill_hook;
use super::ops::{self, OpInfo, Protocol};
use super::stats::{now_unix_nanos, RequestRecord};
use super::upstream::{is_hop_by_hop, is_success};
use crate::shared::lock;

fn into_response(reply: Reply) -> Response<Full<Bytes>> {
    // hyper computes Content-Length from the (possibly rewritten) body. Only a bodiless
    // answer keeps its own: that of a HEAD (S3's HeadObject says the object's size there),
    // which `Upstream::send` keeps for this, and which hyper sends on for a HEAD without a body.
    let keep_length = reply.body.is_empty();
    let mut resp = Response::new(Full::new(reply.body));
    *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (name, value) in reply.headers.iter() {
        if !is_hop_by_hop(name) && (name != CONTENT_LENGTH || keep_length) {
            resp.headers_mut().append(name.clone(), value.clone());
        }
    }
    resp
}

/// What a handler returns to have hyper drop the connection without an answer (the
/// `lose_answer_op` fault). hyper's HTTP/1 server writes nothing for a failed service
/// call and closes the connection; the client, whose request was complete, reads end of
/// stream where the status line should be (hyper's client: `IncompleteMessage`, which the
/// AWS SDK's retry classifier treats as a transient error).
#[derive(Debug)]
pub struct LostAnswer;

impl std::fmt::Display for LostAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("answer lost on purpose (lose_answer_op)")
    }
}

impl std::error::Error for LostAnswer {}

/// Fault label of a lost answer in the stats.
const LOST_ANSWER: &str = "lost_answer";

/// Entry point for every request the proxy receives.
pub async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, LostAnswer> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(into_response(proxy_error(
                400,
                &format!("reading request body: {e}"),
            )))
        }
    };
    let path = parts.uri.path().to_string();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());

    if path == "/__proxy" || path.starts_with("/__proxy/") {
        return Ok(into_response(
            control(&app, &parts.method, &path, &body).await,
        ));
    }
    // moto's own control API is test plumbing, not AWS traffic.
    if path.starts_with("/moto-api") {
        let moto = app
            .host
            .upstream
            .forward(&parts.method, &path_and_query, &parts.headers, body);
        let reply = moto.await.unwrap_or_else(|e| proxy_error(502, &e));
        return Ok(into_response(reply));
    }

    let info = ops::identify(
        &parts.method,
        &path,
        parts.uri.query(),
        &parts.headers,
        &body,
    );
    lock(&app.host.scopes).record(&parts.headers);
    let mut tracker = Tracker::begin(app.clone(), &info);
    let client_gone = ClientGone::default();
    let gone = client_gone.flag.clone();
    // The request is carried out in a task of its own, to moto's answer, even if the client
    // hangs up (hyper then drops this handler future, not the task): AWS too finishes a
    // request it has received whether or not the caller waits. So a request stays
    // `in_flight` until moto has answered it, and a test that killed a client can wait for
    // the proxy to be idle before it looks at moto (moto carries out a CreateStack in the
    // request; a describe sent meanwhile sees a half-built stack and can even make moto
    // create the same subnet twice).
    let work = tokio::spawn(async move {
        let cfg = lock(&app.config).clone();
        if cfg.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(cfg.latency_ms)).await;
        }
        let (reply, fault) = process(
            &app,
            &cfg,
            &info,
            tracker.seq,
            &parts.method,
            &path_and_query,
            &parts.headers,
            body,
        )
        .await;
        if gone.load(Ordering::SeqCst) {
            tracker.finish(499, Some("client_gone"));
        } else {
            // A lost answer is recorded with moto's status: what the client would have got.
            tracker.finish(reply.status, fault);
        }
        (reply, fault == Some(LOST_ANSWER))
    });
    let (reply, lost) = match work.await {
        Ok(done) => done,
        // Only a panic in the task gets here; the tracker's `Drop` closed its record.
        Err(e) => (proxy_error(502, &format!("proxy task failed: {e}")), false),
    };
    client_gone.answered();
    if lost {
        return Err(LostAnswer);
    }
    Ok(into_response(reply))
}

/// Set when the handler future is dropped before the answer was ready, that is when the
/// client went away: the request's record then says `client_gone`.
#[derive(Default)]
struct ClientGone {
    flag: Arc<AtomicBool>,
    answered: bool,
}

impl ClientGone {
    fn answered(mut self) {
        self.answered = true;
    }
}

impl Drop for ClientGone {
    fn drop(&mut self) {
        if !self.answered {
            self.flag.store(true, Ordering::SeqCst);
        }
    }
}

/// Records a request in the stats from arrival to moto's answer (or the local fault's).
/// If the task that carries the request out panics, `Drop` still closes the record so that
/// `in_flight` and the request list stay consistent.
struct Tracker {
    app: Arc<App>,
    seq: u64,
    op: String,
    mutating: bool,
    start: u64,
    started: Instant,
    done: bool,
}

impl Tracker {
    fn begin(app: Arc<App>, info: &OpInfo) -> Tracker {
        let seq = lock(&app.stats).begin();
        Tracker {
            app,
            seq,
            op: info.op.clone(),
            mutating: info.mutating,
            start: now_unix_nanos(),
            started: Instant::now(),
            done: false,
        }
    }

    fn finish(&mut self, status: u16, fault: Option<&'static str>) {
        self.done = true;
        if self.app.host.verbose {
            eprintln!(
                "#{} {} -> {} {} ({} ms)",
                self.seq,
                self.op,
                status,
                fault.unwrap_or("-"),
                self.started.elapsed().as_millis()
            );
        }
        let record = RequestRecord {
            seq: self.seq,
            op: std::mem::take(&mut self.op),
            mutating: self.mutating,
            start_unix_nanos: self.start,
            end_unix_nanos: now_unix_nanos(),
            status,
            fault,
        };
        lock(&self.app.stats).end(record);
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if !self.done {
            self.finish(499, Some("client_gone"));
        }
    }
}

/// Decides the answer to one AWS request; returns it with the fault label
/// recorded in the stats.
#[allow(clippy::too_many_arguments)]
async fn process(
    app: &App,
    cfg: &Config,
    info: &OpInfo,
    seq: u64,
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> (Reply, Option<&'static str>) {
    // Draw only for enabled faults, so that a seeded throttling sequence is
    // the same whether or not server errors are also configured.
    let (throttled, server_error, unavailable) = {
        let mut rng = lock(&app.rng);
        let t = cfg.throttle_fraction > 0.0 && rng.f64() < cfg.throttle_fraction;
        let s = !t && cfg.server_error_fraction > 0.0 && rng.f64() < cfg.server_error_fraction;
        let u = s && rng.bool();
        (t, s, u)
    };
    if throttled {
        return (faults::throttle(info.protocol), Some("throttle"));
    }
    if server_error {
        return (
            faults::server_error(info.protocol, unavailable),
            Some("server_error"),
        );
    }
    let host = &app.host;
    let call = Call {
        host,
        info,
        cfg,
        headers,
        body: &body,
    };
    // Requests an emulator answers itself (moto has no such API). The kill hook sees a
    // mutating one once its state change is made, before the answer goes out, as it sees a
    // forwarded one once moto has answered; and its answer can be lost as moto's can.
    // `reject_op` applies to the emulators under it as to the forwarded EKS operations.
    for under_reject_op in [false, true] {
        if under_reject_op {
            if let Some(refused) = reject_op(cfg, info) {
                return refused;
            }
        }
        let serving = app
            .emulators
            .iter()
            .filter(|e| e.under_reject_op() == under_reject_op);
        for emulator in serving {
            if let Some(reply) = emulator.serve(&call).await {
                if info.mutating {
                    kill_hook(app, seq, &info.op);
                }
                let fault = take_lost_answer(app, &info.op).then_some(LOST_ANSWER);
                return (reply, fault);
            }
        }
    }
    // Faults decided before moto is asked.
    for emulator in &app.emulators {
        if let Some((reply, fault)) = emulator.intercept(&call) {
            return (reply, Some(fault));
        }
    }
    let mut before = Vec::with_capacity(app.emulators.len());
    for emulator in &app.emulators {
        before.push(emulator.before_forward(&call).await);
    }

    // A describe reports the state as of when it was sent to moto, not when
    // moto (sometimes slow on its first calls) got round to answering.
    let sent = Instant::now();
    let upstream = match host
        .upstream
        .forward(method, path_and_query, headers, body.clone())
        .await
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("aws-fault-proxy: {}: {e}", info.op);
            return (proxy_error(502, &e), Some("upstream_error"));
        }
    };
    if info.mutating {
        kill_hook(app, seq, &info.op);
    }
    // Decided when moto's answer arrives, after the kill hook, so that the hook's counting
    // is the same with or without lost answers. The answer is still rewritten and recorded
    // below: the change was made, only the client does not learn of it.
    let lose = take_lost_answer(app, &info.op);
    let (reply, fault) = if is_success(upstream.status) {
        let mut answer = Answer {
            reply: upstream,
            sent,
            fault: None,
            before: None,
        };
        for (emulator, before) in app.emulators.iter().zip(before) {
            answer.before = before;
            emulator.rewrite(&call, &mut answer).await;
        }
        for emulator in &app.emulators {
            emulator.after_answer(&call, &answer.reply).await;
        }
        (answer.reply, answer.fault)
    } else {
        (upstream, None)
    };
    if lose {
        return (reply, Some(LOST_ANSWER));
    }
    (reply, fault)
}

/// `reject_op`: an EKS operation refused for good.
fn reject_op(cfg: &Config, info: &OpInfo) -> Option<(Reply, Option<&'static str>)> {
    if info.protocol != Protocol::RestJson || cfg.reject_op.as_deref() != Some(info.op.as_str()) {
        return None;
    }
    Some((
        faults::eks_error(
            400,
            "InvalidParameterException",
            &format!("{} refused by the fault proxy (reject_op)", info.op),
        ),
        Some("rejected"),
    ))
}

/// Option `lose_answer_op`: whether the answer of this request (which moto, or an
/// emulator, has carried out) is to be lost; takes one from `lose_answer_count` if so.
fn take_lost_answer(app: &App, op: &str) -> bool {
    lock(&app.config).take_lost_answer(op)
}
