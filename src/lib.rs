//! eksnet: a declarative plan/apply engine for Amazon EKS custom networking.
//!
//! The folders follow the pipeline: `spec` (parse) → `validate` (no call) → `plan` (graph,
//! the pure planner, the plan value and its rendering) fed by `engine` (the one entry: the
//! refresh and the other reads into one inventory, then the planner) → `apply` (the
//! executor) → `state` (SQLite and S3 stores). Beside them: `domain` (rules that span kinds:
//! the VPC CNI, the VPC's CIDRs, the graph's orderings) and `nodes` (max pods, IP capacity,
//! verify), and `adopt` (`init`: a spec read from a running cluster). Below them: `resources` (one module per kind, its rules through `KindFacts` and
//! `ResourceKind`), `cloud` (AWS and Kubernetes clients) and `base` (addresses,
//! diagnostics, references, events, retries, the walker).
//! The CLI in `cli` is a thin layer over the engine; the engine never prints (see
//! `base::events`).

pub mod adopt;
pub mod apply;
pub mod base;
pub mod cli;
pub mod cloud;
pub mod domain;
pub mod engine;
pub mod nodes;
pub mod plan;
pub mod resources;
pub mod spec;
pub mod state;
pub mod validate;
