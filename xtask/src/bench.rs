//! `cargo xtask bench`: builds and runs the `pypool-bench` driver (release
//! profile) with the project's `.venv` interpreter (DSPy installed), the
//! baseline scripts of `python/bench`, and `<target>/bench` as the report
//! folder; every other argument goes to the driver
//! (`--quick`, `--lm-latency-ms N`, `--only WORKLOAD`, `--help`), except
//! `--update-readme`, which becomes `--update-readme <root>/README.md`: the
//! run then rewrites the README's measurements table (between its
//! `<!-- bench:start -->` and `<!-- bench:end -->` markers) from its report.
//!
//! `PYPOOL_BENCH_PYTHON` names another interpreter and skips `.venv`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::{cargo, run, venv};

/// Runs the benchmark; its report lands in `<target>/bench/report.{md,json}`.
pub(crate) fn bench(root: &Path, args: &[String]) -> Result<(), String> {
    let python = match std::env::var_os("PYPOOL_BENCH_PYTHON") {
        Some(python) => PathBuf::from(python),
        None => venv::ensure(root)?,
    };
    let out = target_dir(root).join("bench");
    run(cargo()
        .current_dir(root)
        .args(driver_args(root, &python, &out, args)))
}

/// `cargo` arguments that run the driver with the given interpreter and
/// report folder, then the caller's arguments.
fn driver_args(root: &Path, python: &Path, out: &Path, args: &[String]) -> Vec<OsString> {
    let mut all: Vec<OsString> = ["run", "--release", "--quiet", "-p", "pypool-bench", "--"]
        .into_iter()
        .map(OsString::from)
        .collect();
    all.push("--python".into());
    all.push(python.into());
    all.push("--scripts".into());
    all.push(root.join("python").join("bench").into());
    all.push("--out".into());
    all.push(out.into());
    for arg in args {
        if arg == "--update-readme" {
            all.push("--update-readme".into());
            all.push(root.join("README.md").into());
        } else {
            all.push(arg.into());
        }
    }
    all
}

/// Cargo's target folder: `CARGO_TARGET_DIR`, else `<root>/target`.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_driver_gets_the_interpreter_scripts_report_folder_then_the_callers_flags() {
        let args = driver_args(
            Path::new("/repo"),
            Path::new("/repo/.venv/bin/python"),
            Path::new("/repo/target/bench"),
            &["--quick".to_owned(), "--only".to_owned(), "lm".to_owned()],
        );
        let args: Vec<String> = args
            .iter()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "run",
                "--release",
                "--quiet",
                "-p",
                "pypool-bench",
                "--",
                "--python",
                "/repo/.venv/bin/python",
                "--scripts",
                "/repo/python/bench",
                "--out",
                "/repo/target/bench",
                "--quick",
                "--only",
                "lm",
            ]
        );
    }

    #[test]
    fn update_readme_names_the_projects_readme() {
        let args = driver_args(
            Path::new("/repo"),
            Path::new("python3"),
            Path::new("/out"),
            &["--update-readme".to_owned(), "--quick".to_owned()],
        );
        let args: Vec<String> = args
            .iter()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args[args.len() - 3..],
            ["--update-readme", "/repo/README.md", "--quick"]
        );
    }
}
