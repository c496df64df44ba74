//! pypool's task runner, invoked as `cargo xtask <task>` (see `.cargo/config.toml`).
//!
//! It depends on nothing but the standard library so that it builds in
//! seconds on a fresh machine. It knows how to set up the project's Python
//! virtual environment (`.venv`, created with the interpreter named by
//! `PYPOOL_PYTHON`, default `python3`), how to find (or, as root on Debian,
//! install) `redis-server` for the Redis store tests, how to run each test
//! suite, and how to fuzz (`cargo xtask fuzz`) and soak (`cargo xtask soak`)
//! the pool.

mod bench;
mod fuzz;
mod release;
mod soak;
mod tally;
mod venv;
mod wheel;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use tally::Tally;

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  test              everything: Rust tests, Redis store tests, docs, package-check, Python tests,
                    wheel-check, real-process integration tests
  test-rust         `cargo test --workspace` (no Python, no Redis needed)
  test-redis        the Redis store tests against private redis-servers
                    (installs Debian's redis-server when missing and run as root)
  test-python       the Python worker's pytest suite (creates .venv as needed)
  test-integration  real Python worker tests (creates .venv as needed)
  venv              create or update .venv only
  fuzz              fuzz the Rust codec and connection reader, then the Python frame reader
                    [--seed S] [--frames N (10M)] [--python-frames N (1M)]
                    [--python-seconds T (150)] [--update-vectors]
  bench             pypool against its peers, each workload with its baselines in one run;
                    writes target/bench/report.md and report.json (not part of `test`)
                    [--quick] [--lm-latency-ms N (100)] [--only lm|noop|facade|ping]
  soak              run `pypool stress` without and with chaos, sampling the host's RSS
                    and fd count; fails on growth over 5 %
                    [--requests N (100k)] [--kill-every K (1000)] [--workers W]
                    [--max-growth PERCENT] [--release]
  doc               `cargo doc --workspace --no-deps --all-features`, rustdoc warnings denied
  package-check     package the crates, build `pypool` from the packages, run `pypool doctor`
  wheel-check       mypy --strict on the public Python API; build the wheel, install it in a fresh venv
";

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let rest: Vec<String> = std::env::args().skip(2).collect();
    let root = workspace_root();
    let mut tally = Tally::default();
    let result = match task.as_str() {
        "test" => test_rust(&root, &mut tally)
            .and_then(|()| test_redis(&root, &mut tally))
            .and_then(|()| release::doc(&root))
            .and_then(|()| release::package_check(&root))
            .and_then(|()| test_python(&root, &mut tally))
            .and_then(|()| wheel::check(&root))
            .and_then(|()| test_integration(&root, &mut tally)),
        "test-rust" => test_rust(&root, &mut tally),
        "test-redis" => test_redis(&root, &mut tally),
        "test-python" => test_python(&root, &mut tally),
        "test-integration" => test_integration(&root, &mut tally),
        "venv" => venv::ensure(&root).map(|_| ()),
        "fuzz" => fuzz::fuzz(&root, &rest),
        "soak" => soak::soak(&root, &rest),
        "bench" => bench::bench(&root, &rest),
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

/// The Redis store tests: the same generic test bodies as the in-memory
/// stores, plus unavailability and two-host tests, each against its own
/// `redis-server` (which the tests start and stop).
fn test_redis(root: &Path, tally: &mut Tally) -> Result<(), String> {
    let server = redis_server()?;
    tally.run(
        cargo()
            .current_dir(root)
            .env("PYPOOL_REDIS_SERVER", &server)
            .args(["test", "-p", "pypool-redis", "--features", "redis-tests"]),
    )
}

/// The `redis-server` binary: `PYPOOL_REDIS_SERVER`, else the one on PATH,
/// else Debian's package installed with apt-get when running as root. A
/// missing server is an error, never a skipped suite.
fn redis_server() -> Result<PathBuf, String> {
    if let Some(server) = std::env::var_os("PYPOOL_REDIS_SERVER") {
        return Ok(PathBuf::from(server));
    }
    if let Some(server) = on_path("redis-server") {
        return Ok(server);
    }
    if !is_root() {
        return Err(
            "redis-server is not on PATH and this is not root, so it cannot be installed: \
             install it (Debian: `sudo apt-get install -y redis-server`) or set PYPOOL_REDIS_SERVER"
                .to_owned(),
        );
    }
    eprintln!("xtask: redis-server is missing; installing Debian's redis-server package");
    run(Command::new("apt-get").arg("update"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", "redis-server"])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    on_path("redis-server")
        .ok_or_else(|| "apt-get installed redis-server but it is not on PATH".to_owned())
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Whether this process runs as root (effective uid 0, from /proc).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}
