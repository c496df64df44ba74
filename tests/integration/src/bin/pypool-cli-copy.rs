//! The `pypool` command, built inside this crate so the real-process tests
//! can run it (`CARGO_BIN_EXE_pypool-cli-copy`); its `main` is the same as
//! `crates/pypool-cli/src/main.rs`.

use std::process::ExitCode;

use clap::Parser;
use pypool_cli::{app, args::Cli};

fn main() -> ExitCode {
    app::run(Cli::parse())
}
