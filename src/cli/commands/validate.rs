//! `eksnet validate SPEC`: every diagnostic of the spec, without any API call.

use crate::cli::args::ValidateArgs;
use crate::cli::exit::{ExitStatus, Failure};
use crate::cli::{output, session};
use crate::spec;

pub fn run(args: ValidateArgs) -> Result<ExitStatus, Failure> {
    let diags = match spec::load(&args.spec) {
        Ok(s) => session::validate_all(&s),
        Err(d) => d,
    };
    if args.json {
        output::json_data(&diags.0)?;
    } else {
        output::text_only(&diags.to_string());
    }
    if diags.has_errors() {
        return Ok(ExitStatus::Error);
    }
    if !args.json {
        output::text_only(&format!("{}: valid\n", args.spec.display()));
    }
    Ok(ExitStatus::Success)
}
