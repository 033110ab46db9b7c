//! The core of the proxy: it reads each request (`ops`), forwards it to moto (`upstream`),
//! adds latency and injects the generic faults (throttling, server errors, `reject_op`,
//! lost answers, the kill hook), keeps the stats, the configuration and the transition
//! windows, and serves the control API. With `data_plane` on it also runs the background
//! loop that lets the emulators act on their own (`background`). It names no emulator: the
//! emulated parts of AWS plug in through [`emulator::Emulator`] (see `crate::emulators`).

pub mod app;
pub mod background;
pub mod config;
pub mod control;
pub mod emulator;
pub mod faults;
pub mod kill;
pub mod ops;
pub mod pipeline;
pub mod scopes;
pub mod stats;
pub mod upstream;
pub mod windows;
