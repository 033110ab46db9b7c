//! `eksnet show PLANFILE`: a saved plan as text, as JSON, or as Markdown for a pull request.

use super::apply::read_plan_file;
use crate::cli::args::{ShowArgs, ShowFormat};
use crate::cli::exit::{ExitStatus, Failure};
use crate::cli::output;
use crate::plan::render;

pub fn run(args: ShowArgs) -> Result<ExitStatus, Failure> {
    let Some(plan) = read_plan_file(&args.planfile)? else {
        return Err(Failure::Message(format!(
            "`{}` is not a plan file; make one with `eksnet plan SPEC --out FILE`",
            args.planfile.display()
        )));
    };
    match args.format {
        ShowFormat::Text => output::data(&render::render(&plan, output::palette())),
        ShowFormat::Json => output::json_data(&plan)?,
        ShowFormat::Markdown => output::data(&render::markdown(&plan)),
    }
    Ok(ExitStatus::Success)
}
