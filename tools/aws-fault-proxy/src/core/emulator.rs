//! The interface between the core and the emulators: what moto lacks (an API it does not
//! have, fields it leaves out, states it skips) is emulated by parts that each implement
//! [`Emulator`] and are listed once, in `emulators/mod.rs`.
//!
//! The core calls the hooks of every emulator in that list's order, at fixed points of its
//! pipeline (see `pipeline.rs`):
//!
//! 1. after latency, throttling and server errors: [`Emulator::serve`] (a request it
//!    answers itself; `reject_op` is checked before the emulators that are
//!    [`under_reject_op`](Emulator::under_reject_op)); the first answer wins;
//! 2. [`Emulator::intercept`]: a fault decided before moto is asked; the first one wins;
//! 3. [`Emulator::before_forward`]: what to read from moto before the change;
//! 4. the request goes to moto; the kill hook and lost answers are the core's;
//! 5. for a successful answer, [`Emulator::rewrite`] of every emulator in turn, then
//!    [`Emulator::after_answer`] of every emulator.
//!
//! Outside any request, while the `data_plane` switch is on, the core's background loop
//! (`background.rs`) calls [`Emulator::reconcile`] of every emulator in turn, one pass at a
//! time, with a [`Pass`]: what happens in AWS and in the cluster on its own (instances
//! launched for a nodegroup, nodes joining).
//!
//! [`Emulator::reset`] runs at `POST /__proxy/reset`. Every hook has a default that does
//! nothing, so an emulator implements only the ones it needs.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use hyper::header::HeaderMap;
use hyper::Method;

use super::config::Config;
use super::faults::Reply;
use super::ops::{self, OpInfo};
use super::scopes::{Scope, Scopes};
use super::upstream::{is_success, Upstream};
use super::windows::Windows;
use crate::shared::lock;

/// A boxed future, so that the hooks can be called on `dyn Emulator`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A hook's result that is ready at once.
pub fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

/// What the core lends every emulator.
pub struct Host {
    /// moto (the emulators' own requests to it are not counted, faulted or delayed).
    pub upstream: Upstream,
    /// The transition windows, shared by all emulators.
    pub windows: Mutex<Windows>,
    /// `--verbose`: emulators may say more on stderr.
    pub verbose: bool,
    /// The regions and access keys clients have used (see `scopes.rs`).
    pub scopes: Mutex<Scopes>,
    /// How many times `POST /__proxy/reset` has run: a background pass that began before a
    /// reset must not act on the world that followed it (see [`Pass::current`]).
    pub resets: AtomicU64,
}

/// One AWS request, as the emulators see it, with what the core lends to handle it.
pub struct Call<'a> {
    pub host: &'a Host,
    pub info: &'a OpInfo,
    /// The configuration in force for this request (read once, when it arrived).
    pub cfg: &'a Config,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// moto's successful answer on its way back to the client, as the rewrites leave it.
pub struct Answer {
    pub reply: Reply,
    /// When the request was sent to moto: a describe reports the state as of then, not when
    /// moto (sometimes slow on its first calls) got round to answering.
    pub sent: Instant,
    /// The stats label when a rewrite is a fault of the proxy's (`transition`); the first
    /// rewrite that sets one decides.
    pub fault: Option<&'static str>,
    /// What this emulator's [`Emulator::before_forward`] returned: the core sets it for each
    /// emulator in turn before calling its `rewrite`.
    pub before: Option<Reply>,
}

impl Answer {
    /// Records `label` unless an earlier rewrite already labelled the answer.
    pub fn label(&mut self, label: &'static str) {
        self.fault.get_or_insert(label);
    }
}

/// One emulated part of AWS. Hooks run concurrently for concurrent requests: an emulator
/// keeps its state behind its own locks, held only for short, await-free sections.
pub trait Emulator: Send + Sync {
    /// Whether `reject_op` refuses this emulator's requests before [`serve`](Self::serve)
    /// sees them (it is checked between the emulators that are not and those that are).
    fn under_reject_op(&self) -> bool {
        true
    }

    /// Answers a request this emulator serves itself instead of moto; `None` passes it on.
    /// The core treats the answer as moto's: the kill hook counts a mutating one (its change
    /// is made), and it can be lost (`lose_answer_op`).
    fn serve<'a>(&'a self, _call: &'a Call<'a>) -> BoxFuture<'a, Option<Reply>> {
        ready(None)
    }

    /// A fault decided before moto is asked (a resource in a window, a role IAM has not
    /// propagated yet…): the answer and its stats label. `None` lets the request go on.
    fn intercept(&self, _call: &Call<'_>) -> Option<(Reply, &'static str)> {
        None
    }

    /// Runs just before the request goes to moto: an answer to read first (the state of a
    /// stack about to be deleted), handed back to this emulator's [`rewrite`](Self::rewrite)
    /// as [`Answer::before`].
    fn before_forward<'a>(&'a self, _call: &'a Call<'a>) -> BoxFuture<'a, Option<Reply>> {
        ready(None)
    }

    /// Rewrites moto's successful answer (an error answer passes through untouched), and
    /// records what the answer tells (a window opened, a resource gone).
    fn rewrite<'a>(&'a self, _call: &'a Call<'a>, _answer: &'a mut Answer) -> BoxFuture<'a, ()> {
        ready(())
    }

    /// After every emulator's rewrite of a successful answer: what follows from it elsewhere
    /// (EKS deletes a cluster's security group and add-ons with it).
    fn after_answer<'a>(&'a self, _call: &'a Call<'a>, _reply: &'a Reply) -> BoxFuture<'a, ()> {
        ready(())
    }

    /// One background pass (only while `data_plane` is on): what this emulator does on its
    /// own, outside any request. Passes never overlap; a pass that panics is reported and
    /// the next one starts afresh, so a pass must rediscover what it needs rather than
    /// trust that the previous one finished.
    fn reconcile<'a>(&'a self, _pass: &'a Pass<'a>) -> BoxFuture<'a, ()> {
        ready(())
    }

    /// Forgets all state (`POST /__proxy/reset`, which also resets moto).
    fn reset(&self) {}
}

/// What the core lends a background pass.
pub struct Pass<'a> {
    pub host: &'a Host,
    /// The configuration in force for this pass (read once, when it began).
    pub cfg: &'a Config,
    /// The credential scopes clients have used, as the pass began.
    pub scopes: Vec<Scope>,
    /// Every emulator, for [`Pass::reported`].
    emulators: &'a [Box<dyn Emulator>],
    /// `Host::resets` when the pass began.
    epoch: u64,
}

impl<'a> Pass<'a> {
    pub fn new(host: &'a Host, cfg: &'a Config, emulators: &'a [Box<dyn Emulator>]) -> Pass<'a> {
        Pass {
            host,
            cfg,
            scopes: lock(&host.scopes).all(),
            emulators,
            epoch: host.resets.load(Ordering::SeqCst),
        }
    }

    /// False once `POST /__proxy/reset` has run since the pass began: what it read is of a
    /// world that is gone, and it must change nothing more.
    pub fn current(&self) -> bool {
        self.host.resets.load(Ordering::SeqCst) == self.epoch
    }

    /// A read-only request to `service` (`eks`, `ec2`) in `scope`, answered as the proxy
    /// would answer a client: by an emulator that serves it, by a fault an emulator decides
    /// before moto is asked (a describe in a DELETING window), or by moto with every
    /// emulator's rewrite (a CREATING window, a launch template version overlay). It is
    /// the proxy's own request: no latency, injected fault, stats record or kill hook.
    /// `Err` says why there is no answer; a mutating operation is refused.
    pub async fn reported(
        &self,
        scope: &Scope,
        service: &str,
        method: Method,
        path_and_query: &str,
        body: Bytes,
    ) -> Result<Reply, String> {
        let headers = scope.headers(service);
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let info = ops::identify(&method, path, query, &headers, &body);
        if info.mutating {
            return Err(format!("{} changes state: not a report", info.op));
        }
        let call = Call {
            host: self.host,
            info: &info,
            cfg: self.cfg,
            headers: &headers,
            body: &body,
        };
        for emulator in self.emulators {
            if let Some(reply) = emulator.serve(&call).await {
                return Ok(reply);
            }
        }
        for emulator in self.emulators {
            if let Some((reply, _fault)) = emulator.intercept(&call) {
                return Ok(reply);
            }
        }
        let mut before = Vec::with_capacity(self.emulators.len());
        for emulator in self.emulators {
            before.push(emulator.before_forward(&call).await);
        }
        let sent = Instant::now();
        let reply = self
            .host
            .upstream
            .forward(&method, path_and_query, &headers, body.clone())
            .await?;
        if !is_success(reply.status) {
            return Ok(reply);
        }
        let mut answer = Answer {
            reply,
            sent,
            fault: None,
            before: None,
        };
        for (emulator, before) in self.emulators.iter().zip(before) {
            answer.before = before;
            emulator.rewrite(&call, &mut answer).await;
        }
        Ok(answer.reply)
    }
}
