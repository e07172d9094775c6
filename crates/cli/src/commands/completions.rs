//! `barrack completions SHELL`: completion scripts generated from the same command tree as `--help`.

use clap_complete::Shell;

use super::Output;
use crate::error::CliError;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete for
    #[arg(value_enum)]
    shell: Shell,
}

pub fn run(args: Args, mut command: clap::Command) -> Result<Output, CliError> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "barrack", &mut script);
    String::from_utf8(script)
        .map(Output::text)
        .map_err(|e| CliError::Other(e.to_string()))
}
