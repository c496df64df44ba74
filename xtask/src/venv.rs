//! The project's Python virtual environment, `.venv` at the workspace root.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::run;

/// The extras of `python/pyproject.toml` installed into `.venv`.
const EXTRAS: &str = "test,dspy";

/// Creates `.venv` if needed and installs the worker package (editable) with
/// its test extras; reinstalls only when `python/pyproject.toml` changed.
/// Returns the venv's interpreter.
pub(crate) fn ensure(root: &Path) -> Result<PathBuf, String> {
    let venv = root.join(".venv");
    let python = venv.join("bin").join("python");
    if !python.exists() {
        let base = std::env::var("PYPOOL_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        run(Command::new(&base).args(["-m", "venv"]).arg(&venv))
            .map_err(|error| format!("{error}\n(is `{base}` a Python 3.9+ with the venv module? set PYPOOL_PYTHON to choose another)"))?;
    }
    let pyproject = root.join("python").join("pyproject.toml");
    let wanted = std::fs::read_to_string(&pyproject)
        .map_err(|error| format!("cannot read {}: {error}", pyproject.display()))?;
    let stamp = venv.join(".pypool-installed");
    let installed = std::fs::read_to_string(&stamp).unwrap_or_default();
    if installed != format!("{EXTRAS}\n{wanted}") {
        run(Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "-e"])
            .arg(format!("{}[{EXTRAS}]", root.join("python").display())))?;
        std::fs::write(&stamp, format!("{EXTRAS}\n{wanted}"))
            .map_err(|error| format!("cannot write {}: {error}", stamp.display()))?;
    }
    Ok(python)
}
