//! What every stage stands on, naming no kind and no stage: resource addresses, diagnostics,
//! `${…}` references, bounded file reads, progress events, the one retry/poll loop and the
//! concurrent walker.

pub mod action;
pub mod addr;
pub mod diag;
pub mod events;
pub mod files;
pub mod instance_types;
pub mod partition;
pub mod regions;
pub mod retry;
pub mod value;
pub mod walker;
