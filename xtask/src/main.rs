//! pypool's task runner, invoked as `cargo xtask <task>` (see `.cargo/config.toml`).
//!
//! It depends on nothing but the standard library so that it builds in
//! seconds on a fresh machine. It knows how to set up the project's Python
//! virtual environment (`.venv`, created with the interpreter named by
//! `PYPOOL_PYTHON`, default `python3`) and how to run each test suite.

mod release;
mod tally;
mod venv;
mod wheel;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use tally::Tally;

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  test              everything: Rust tests, doc, package-check, Python tests, wheel-check, real-process integration tests
  test-rust         `cargo test --workspace` (no Python needed)
  test-python       the Python worker's pytest suite (creates .venv as needed)
  test-integration  real Python worker tests (creates .venv as needed)
  venv              create or update .venv only
  doc               `cargo doc --workspace --no-deps --all-features`, rustdoc warnings denied
  package-check     package the crates, build `pypool` from the packages, run `pypool doctor`
  wheel-check       mypy --strict on the public Python API; build the wheel, install it in a fresh venv
";

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let root = workspace_root();
    let mut tally = Tally::default();
    let result = match task.as_str() {
        "test" => test_rust(&root, &mut tally)
            .and_then(|()| release::doc(&root))
            .and_then(|()| release::package_check(&root))
            .and_then(|()| test_python(&root, &mut tally))
            .and_then(|()| wheel::check(&root))
            .and_then(|()| test_integration(&root, &mut tally)),
        "test-rust" => test_rust(&root, &mut tally),
        "test-python" => test_python(&root, &mut tally),
        "test-integration" => test_integration(&root, &mut tally),
        "venv" => venv::ensure(&root).map(|_| ()),
        "doc" => release::doc(&root),
        "package-check" => release::package_check(&root),
        "wheel-check" => wheel::check(&root),
        "" | "help" | "--help" | "-h" => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => Err(format!("unknown task `{other}`\n\n{USAGE}")),
    };
    if task.starts_with("test") {
        println!("xtask: {} passed, {} failed", tally.passed, tally.failed);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or(manifest_dir)
}

/// Runs `command`, echoing it first; an error names the command and its status.
pub(crate) fn run(command: &mut Command) -> Result<(), String> {
    eprintln!("xtask: running {command:?}");
    let status = command
        .status()
        .map_err(|error| format!("could not start {command:?}: {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed with {status}"))
    }
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn test_rust(root: &Path, tally: &mut Tally) -> Result<(), String> {
    tally.run(cargo().current_dir(root).args(["test", "--workspace"]))
}

fn test_python(root: &Path, tally: &mut Tally) -> Result<(), String> {
    let python = venv::ensure(root)?;
    tally.run(
        Command::new(&python)
            .current_dir(root)
            .args(["-m", "pytest", "python/tests", "-q"]),
    )
}

fn test_integration(root: &Path, tally: &mut Tally) -> Result<(), String> {
    let python = venv::ensure(root)?;
    tally.run(
        cargo()
            .current_dir(root)
            .env("PYPOOL_TEST_PYTHON", &python)
            .args([
                "test",
                "-p",
                "pypool-integration",
                "--features",
                "real-python",
            ]),
    )
}
