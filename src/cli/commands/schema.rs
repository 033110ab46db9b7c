//! `eksnet schema`: the JSON Schema of a spec on stdout (`spec::schema`), for editors that
//! check TOML against one. Needs no spec, no state and no AWS.

use crate::cli::exit::{ExitStatus, Failure};
use crate::cli::output;

pub fn run() -> Result<ExitStatus, Failure> {
    output::json_data(&crate::spec::schema::spec_schema())?;
    Ok(ExitStatus::Success)
}
