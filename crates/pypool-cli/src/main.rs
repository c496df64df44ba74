//! The `pypool` command; see the `pypool_cli` library for what it does.

use std::process::ExitCode;

use clap::Parser;
use pypool_cli::{app, args::Cli};

fn main() -> ExitCode {
    app::run(Cli::parse())
}
