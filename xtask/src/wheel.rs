//! The Python package as users get it: a typed wheel.

use std::path::Path;
use std::process::Command;

use crate::{run, venv};

/// The public API checked with `mypy --strict` (paths inside `python/`).
const TYPED_API: &[&str] = &[
    "pypool_worker/__init__.py",
    "pypool_worker/registry.py",
    "pypool_worker/programs",
];

/// Type-checks the public API with `mypy --strict` (installed in `.venv` by
/// the `test` extra), builds the wheel with `pip wheel ./python`, checks that
/// it carries `py.typed`, installs it in a fresh venv and runs
/// `python -m pypool_worker --help` there.
pub(crate) fn check(root: &Path) -> Result<(), String> {
    let python = venv::ensure(root)?;
    let package = root.join("python");
    run(Command::new(&python)
        .current_dir(&package)
        .args(["-m", "mypy", "--strict"])
        .args(TYPED_API))?;

    let scratch = root.join("target").join("wheel-check");
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)
            .map_err(|error| format!("cannot clear {}: {error}", scratch.display()))?;
    }
    let dist = scratch.join("dist");
    run(Command::new(&python)
        .args(["-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir"])
        .arg(&dist)
        .arg(&package))?;
    let wheel = std::fs::read_dir(&dist)
        .map_err(|error| format!("cannot read {}: {error}", dist.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .ok_or_else(|| format!("`pip wheel` left no wheel in {}", dist.display()))?;
    let listing = Command::new(&python)
        .args(["-m", "zipfile", "-l"])
        .arg(&wheel)
        .output()
        .map_err(|error| format!("cannot list {}: {error}", wheel.display()))?;
    let listing = String::from_utf8_lossy(&listing.stdout);
    eprint!("{listing}");
    if !listing.contains("pypool_worker/py.typed") {
        return Err(format!(
            "{} carries no pypool_worker/py.typed",
            wheel.display()
        ));
    }

    let fresh = scratch.join("venv");
    run(Command::new(&python).args(["-m", "venv"]).arg(&fresh))?;
    let fresh_python = fresh.join("bin").join("python");
    run(Command::new(&fresh_python)
        .args(["-m", "pip", "install", "--quiet"])
        .arg(&wheel))?;
    // Outside the checkout, so only the installed wheel can be imported.
    run(Command::new(&fresh_python)
        .current_dir(&scratch)
        .args(["-m", "pypool_worker", "--help"]))
}
