//! `cargo xtask fuzz`: generated and mutated frames through the Rust codec
//! and the process connection's reader (the `fuzz` example of
//! `pypool-process`), then through the Python worker's frame reader
//! (`python/tests/fuzz_wire.py`).

use std::path::Path;
use std::process::Command;

use crate::{cargo, run};

/// Where the kept regression vectors live (replayed by `cargo test -p
/// pypool-process` and by `python/tests/test_fuzz_vectors.py`).
const VECTORS: &str = "tests/golden/fuzz_vectors.txt";

/// What `cargo xtask fuzz` was asked to do.
#[derive(Debug)]
struct Options {
    seed: u64,
    frames: u64,
    python_frames: u64,
    python_seconds: u64,
    update_vectors: bool,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        seed: 1,
        frames: 10_000_000,
        python_frames: 1_000_000,
        python_seconds: 150,
        update_vectors: false,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut number = || -> Result<u64, String> {
            args.next()
                .ok_or_else(|| format!("{flag} needs a number"))?
                .replace('_', "")
                .parse()
                .map_err(|error| format!("{flag}: {error}"))
        };
        match flag.as_str() {
            "--seed" => options.seed = number()?,
            "--frames" => options.frames = number()?,
            "--python-frames" => options.python_frames = number()?,
            "--python-seconds" => options.python_seconds = number()?,
            "--update-vectors" => options.update_vectors = true,
            other => return Err(format!("fuzz: unknown flag `{other}`")),
        }
    }
    Ok(options)
}

/// Runs both fuzzers; fails if either found a panic, a hang or an untyped error.
pub(crate) fn fuzz(root: &Path, args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    let mut rust = cargo();
    rust.current_dir(root).args([
        "run",
        "--quiet",
        "--release",
        "-p",
        "pypool-process",
        "--features",
        "fuzzing",
        "--example",
        "fuzz",
        "--",
        "--seed",
        &options.seed.to_string(),
        "--frames",
        &options.frames.to_string(),
    ]);
    if options.update_vectors {
        rust.arg("--update-vectors").arg(root.join(VECTORS));
    }
    let rust_result = run(&mut rust);

    let python = crate::soak::python_interpreter(root);
    let python_result = run(Command::new(&python)
        .current_dir(root)
        .env("PYTHONPATH", root.join("python"))
        .arg("python/tests/fuzz_wire.py")
        .args(["--seed", &options.seed.to_string()])
        .args(["--frames", &options.python_frames.to_string()])
        .args(["--seconds", &options.python_seconds.to_string()]));
    rust_result.and(python_result)
}
