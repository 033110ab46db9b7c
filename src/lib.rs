//! eksnet: a declarative plan/apply engine for Amazon EKS custom networking.
//!
//! Pipeline: `spec` (parse) → `validate` (no API) → `graph` → `refresh` (read AWS) →
//! `planner` (pure) → `plan` (a value, shown by `render`) → `apply` (executor on the `walker`) → `state`.
//! The CLI in `cli` is a thin layer over these; the engine never prints (see `events`).

pub mod addr;
pub mod apply;
pub mod aws;
pub mod backend;
pub mod capacity;
pub mod cfn;
pub mod cli;
pub mod constraints;
pub mod diag;
pub mod domain;
pub mod engine;
pub mod events;
pub mod files;
pub mod graph;
pub mod inventory;
pub mod kube;
pub mod kube_token;
pub mod plan;
pub mod planner;
pub mod refresh;
pub mod render;
pub mod resources;
pub mod retry;
pub mod sizing;
pub mod spec;
pub mod state;
pub mod validate;
pub mod value;
pub mod verify;
pub mod walker;
