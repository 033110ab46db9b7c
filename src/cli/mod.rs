//! Command-line interface: Terraform-like commands over the library, a thin layer. `args`
//! is the command line's shape, `commands/` has one file per command, `output` is where every
//! word goes (data on stdout; progress, logs and errors on stderr), `exit` how a command
//! ends, `lock` the state lock's guard, `session` what the commands share.

mod args;
mod commands;
mod exit;
mod lock;
mod output;
mod session;

use crate::base::events::{self, Event};
use args::{Cli, Command};
use clap::Parser;
use exit::{ExitStatus, Failure};
use std::process::ExitCode;

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return usage_error(e).into(),
    };
    events::set_json_stderr(cli.json());
    crate::cloud::aws::set_request_rate(cli.request_rate());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            output::error(&format!("cannot start the async runtime: {e}"));
            return ExitStatus::Error.into();
        }
    };
    let outcome = runtime.block_on(run(cli));
    // A prompt interrupted by Ctrl-C leaves a thread blocked on stdin; do not wait for it.
    runtime.shutdown_background();
    match outcome {
        Ok(status) => status.into(),
        Err(failure) => {
            output::error(&failure.to_string());
            ExitStatus::Error.into()
        }
    }
}

async fn run(cli: Cli) -> Result<ExitStatus, Failure> {
    match cli.command {
        Command::Validate(args) => commands::validate::run(args),
        Command::Graph(args) => commands::graph::run(args).await,
        Command::Plan(args) => commands::plan::run(args).await,
        Command::Capacity(args) => commands::capacity::run(args).await,
        Command::Apply(args) => commands::apply::run(args).await,
        Command::Destroy(args) => commands::destroy::run(args).await,
        Command::Verify(args) => commands::verify::run(args).await,
        Command::Import(args) => commands::import::run(args).await,
        Command::Init(args) => commands::init::run(args).await,
        Command::Roll(args) => commands::roll::run(args).await,
        Command::State { command } => commands::state::run(command).await,
        Command::ForceUnlock(args) => commands::force_unlock::run(args).await,
        Command::Show(args) => commands::show::run(args),
        Command::Schema => commands::schema::run(),
    }
}

/// `--help` and `--version` are data on stdout (status 0); anything else that did not parse
/// is a usage error (status 1, see `ExitStatus`).
fn usage_error(e: clap::Error) -> ExitStatus {
    if !e.use_stderr() {
        let _ = e.print();
        return ExitStatus::Success;
    }
    // The command line did not parse, so `--json` is looked for by hand: a script that asked
    // for JSON events must not get clap's plain text on stderr.
    if std::env::args_os().any(|a| a == "--json") {
        events::set_json_stderr(true);
        let message = e.render().to_string();
        let message = message.trim_end();
        let message = message.strip_prefix("error: ").unwrap_or(message);
        events::notice(
            Event::Error {
                message: message.to_string(),
            },
            "",
        );
    } else {
        let _ = e.print();
    }
    ExitStatus::Error
}
