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
//! [`Emulator::reset`] runs at `POST /__proxy/reset`. Every hook has a default that does
//! nothing, so an emulator implements only the ones it needs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Instant;

use hyper::header::HeaderMap;

use super::config::Config;
use super::faults::Reply;
use super::ops::OpInfo;
use super::upstream::Upstream;
use super::windows::Windows;

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

    /// Forgets all state (`POST /__proxy/reset`, which also resets moto).
    fn reset(&self) {}
}
