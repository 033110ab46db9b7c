//! Pieces of the spec's JSON Schema (`eksnet schema`, made in `spec::schema`) that the kinds'
//! configs share: a string field with a fixed set of values, with or without a `${…}`
//! reference allowed in its place. Each kind passes the same list its checks use.

use crate::base::value::REFERENCE_PATTERN;
use schemars::{json_schema, Schema};

/// A string that is one of `values` and nothing else: for a field whose check takes no
/// reference.
pub fn one_of(values: &[&str]) -> Schema {
    json_schema!({ "type": "string", "enum": values })
}

/// A string that is one of `values`, or that holds a reference, whose value is checked once it
/// is known (as `validate` does).
pub fn one_of_or_reference(values: &[&str]) -> Schema {
    json_schema!({
        "anyOf": [
            { "type": "string", "enum": values },
            {
                "type": "string",
                "pattern": REFERENCE_PATTERN,
                "description": "A reference such as `${kind.name.output}`: its value is checked once it is known."
            }
        ]
    })
}
