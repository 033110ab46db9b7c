//! One file per command: each takes its parsed arguments and returns how the command ended.

pub mod apply;
pub mod capacity;
pub mod destroy;
pub mod force_unlock;
pub mod graph;
pub mod import;
pub mod init;
pub mod plan;
pub mod roll;
pub mod schema;
pub mod show;
pub mod state;
pub mod summary;
pub mod unroll;
pub mod validate;
pub mod verify;
