//! The running proxy's shared state: configuration, fault dice, stats, and the emulators
//! with what the core lends them.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use super::config::Config;
use super::emulator::{Emulator, Host};
use super::scopes::Scopes;
use super::stats::Stats;
use super::upstream::Upstream;
use super::windows::Windows;

/// Shared state of the running proxy.
pub struct App {
    pub(crate) config: Mutex<Config>,
    pub(crate) rng: Mutex<fastrand::Rng>,
    pub(crate) stats: Mutex<Stats>,
    pub(crate) host: Host,
    /// In the order their hooks run (see `emulator.rs`).
    pub(crate) emulators: Vec<Box<dyn Emulator>>,
    /// Whether the background loop is running (see `background.rs`). Changed only with
    /// `config` locked first, so that the loop's decision to stop and a switch turned
    /// back on cannot miss each other.
    pub(crate) background: Mutex<bool>,
}

pub(crate) fn seeded_rng(seed: Option<u64>) -> fastrand::Rng {
    seed.map(fastrand::Rng::with_seed).unwrap_or_default()
}

impl App {
    pub fn new(
        upstream: String,
        config: Config,
        verbose: bool,
        emulators: Vec<Box<dyn Emulator>>,
    ) -> App {
        App {
            rng: Mutex::new(seeded_rng(config.throttle_seed)),
            config: Mutex::new(config),
            stats: Mutex::new(Stats::default()),
            host: Host {
                upstream: Upstream::new(upstream),
                windows: Mutex::new(Windows::default()),
                verbose,
                scopes: Mutex::new(Scopes::default()),
                resets: AtomicU64::new(0),
            },
            emulators,
            background: Mutex::new(false),
        }
    }
}
