//! The running proxy's shared state: configuration, fault dice, stats, and the emulators
//! with what the core lends them.

use std::sync::Mutex;

use super::config::Config;
use super::emulator::{Emulator, Host};
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
            },
            emulators,
        }
    }
}
