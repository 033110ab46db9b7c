//! What every stage stands on, naming no kind and no stage: resource addresses, diagnostics,
//! `${…}` references, bounded file reads, progress events, the one retry/poll loop and the
//! concurrent walker, and the pieces of the spec's JSON Schema that the kinds share.

pub mod action;
pub mod addr;
pub mod diag;
pub mod events;
pub mod files;
pub mod instance_types;
pub mod kubernetes_names;
pub mod partition;
pub mod regions;
pub mod retry;
pub mod schema;
pub mod value;
pub mod walker;
