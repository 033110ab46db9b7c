//! Resource addresses (`subnet.pod_a`): the stable key by which the spec, the graph, the plan
//! and the state refer to one resource. Never derived from cloud ids, which change on replace.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[doc(hidden)]
#[macro_export]
macro_rules! define_kind {
    ($($(#[$doc:meta])* $variant:ident => $module:ident :: $ty:ident,)*) => {
        /// The kinds of resource eksnet manages, generated from the registry in
        /// `resources` (`for_each_kind!`). The spec's top-level table names are these names.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Kind {
            $($(#[$doc])* $variant,)*
        }

        impl Kind {
            /// Every kind, in the registry's order.
            pub const ALL: &'static [Kind] = &[$(Kind::$variant,)*];

            /// The spec's table name and the address prefix: the kind's module name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Kind::$variant => stringify!($module),)*
                }
            }
        }
    };
}

crate::for_each_kind!(define_kind);

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown resource kind `{s}`"))
    }
}

/// `kind.name`, e.g. `nodegroup.main`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceAddr {
    pub kind: Kind,
    pub name: String,
}

impl ResourceAddr {
    pub fn new(kind: Kind, name: impl Into<String>) -> Self {
        ResourceAddr {
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for ResourceAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.kind, self.name)
    }
}

impl FromStr for ResourceAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, name) = s
            .split_once('.')
            .ok_or_else(|| format!("`{s}` is not a resource address (expected `kind.name`)"))?;
        if name.is_empty() {
            return Err(format!("`{s}` has an empty resource name"));
        }
        if !valid_resource_name(name) {
            return Err(format!(
                "`{s}` is not a resource address (expected `kind.name`; a name has only letters, digits, `_` and `-`)"
            ));
        }
        Ok(ResourceAddr::new(kind.parse()?, name))
    }
}

/// A resource name as a regular expression (the spec's JSON Schema): `valid_resource_name`.
pub const RESOURCE_NAME_PATTERN: &str = "^[A-Za-z0-9_-]+$";

/// A resource name: letters, digits, `_` and `-`.
pub fn valid_resource_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

// Addresses serialise as their display string so state rows and plan files stay readable.
impl Serialize for ResourceAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ResourceAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        let a: ResourceAddr = "nodegroup.main".parse().unwrap();
        assert_eq!(a, ResourceAddr::new(Kind::Nodegroup, "main"));
        assert_eq!(a.to_string(), "nodegroup.main");
        assert!("bogus.x".parse::<ResourceAddr>().is_err());
        assert!("subnet".parse::<ResourceAddr>().is_err());
        assert!("subnet.".parse::<ResourceAddr>().is_err());
    }
}
