//! Nodes and their addresses: the max pods and IP capacity arithmetic (`sizing`, pure), the
//! reads it needs from AWS (`capacity`), and `verify`, which looks from inside a cluster at
//! where pods got their IPs. The plan's own assessment is `plan::nodes`.

pub mod capacity;
pub mod existing;
pub mod roll;
pub mod sizing;
pub mod verify;
