//! The environment check: is the interpreter there, new enough, and can it
//! import the worker runtime (and, optionally, DSPy)?
//!
//! [`check_environment`] runs the configured interpreter once with a short
//! probe script under the same `PYTHONPATH` and environment as a worker, and
//! reports what it found; every problem says what is missing and how to fix
//! it. [`PythonSpawner`](crate::PythonSpawner) runs it once, before its first
//! worker, and keeps the result.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::PythonSpawnerConfig;

/// The oldest Python the worker runtime supports.
pub const MIN_PYTHON: (u32, u32) = (3, 9);

/// How long the probe may take (an interpreter start, a few imports).
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// The probe: prints one JSON line. It only uses `find_spec` and package
/// metadata for DSPy (importing DSPy takes seconds).
const PROBE: &str = r#"
import json, sys
found = {"executable": sys.executable, "version": list(sys.version_info[:3]), "runtime_error": None, "runtime_file": None, "dspy": None}
try:
    import pypool_worker
    found["runtime_file"] = pypool_worker.__file__
except Exception as error:
    found["runtime_error"] = "%s: %s" % (type(error).__name__, error)
try:
    import importlib.util, importlib.metadata
    if importlib.util.find_spec("dspy") is not None:
        try:
            found["dspy"] = importlib.metadata.version("dspy")
        except Exception:
            found["dspy"] = "unknown version"
except Exception:
    pass
print(json.dumps(found))
"#;

/// What the probe printed.
#[derive(Debug, Deserialize)]
struct Probe {
    executable: String,
    version: Vec<u32>,
    runtime_error: Option<String>,
    runtime_file: Option<String>,
    dspy: Option<String>,
}

/// What [`check_environment`] found. `Display` prints it for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvironmentReport {
    /// The interpreter as configured (`python3`, a path, …).
    pub interpreter: String,
    /// The interpreter's own path (`sys.executable`), if it ran.
    pub executable: Option<String>,
    /// Its version, e.g. `3.11.2`, if it ran.
    pub python_version: Option<String>,
    /// The embedded runtime's folder, if it was unpacked.
    pub runtime_dir: Option<PathBuf>,
    /// Where `pypool_worker` was imported from, if it could be.
    pub runtime_file: Option<String>,
    /// Whether `import pypool_worker` worked.
    pub runtime_importable: bool,
    /// DSPy's version, if DSPy is installed for this interpreter (optional).
    pub dspy_version: Option<String>,
    /// What stops workers from starting, each with how to fix it. Empty: all good.
    pub problems: Vec<String>,
}

impl EnvironmentReport {
    /// Whether workers can start.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn blank(config: &PythonSpawnerConfig) -> Self {
        Self {
            interpreter: config.interpreter.clone(),
            executable: None,
            python_version: None,
            runtime_dir: None,
            runtime_file: None,
            runtime_importable: false,
            dspy_version: None,
            problems: Vec::new(),
        }
    }
}

impl std::fmt::Display for EnvironmentReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let or_none = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
        writeln!(f, "interpreter     {}", self.interpreter)?;
        writeln!(f, "executable      {}", or_none(&self.executable))?;
        writeln!(f, "python          {}", or_none(&self.python_version))?;
        writeln!(
            f,
            "runtime         {}",
            match (&self.runtime_importable, &self.runtime_file) {
                (true, Some(file)) => format!("importable ({file})"),
                _ => "NOT importable".to_owned(),
            }
        )?;
        writeln!(
            f,
            "dspy (optional) {}",
            self.dspy_version.as_deref().map_or_else(
                || "not installed (pip install 'dspy>=3' into this interpreter's environment to run dspy programs)".to_owned(),
                |version| format!("installed ({version})"),
            )
        )?;
        if self.is_ok() {
            write!(f, "result          ok: workers can start")
        } else {
            write!(f, "result          {} problem(s):", self.problems.len())?;
            for problem in &self.problems {
                write!(f, "\n  - {problem}")?;
            }
            Ok(())
        }
    }
}

/// Runs the configured interpreter once and reports whether workers can
/// start with `config`: interpreter found, Python 3.9+, `pypool_worker`
/// importable, and whether DSPy is installed (optional, never a problem).
pub async fn check_environment(config: &PythonSpawnerConfig) -> EnvironmentReport {
    let mut report = EnvironmentReport::blank(config);
    let python_path = match crate::spawner::python_path_for(config) {
        Ok((path, runtime_dir)) => {
            report.runtime_dir = runtime_dir;
            path
        }
        Err(error) => {
            report.problems.push(error.to_string());
            return report;
        }
    };
    let mut command = tokio::process::Command::new(&config.interpreter);
    command
        .arg("-c")
        .arg(PROBE)
        .envs(config.env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(path) = python_path {
        command.env("PYTHONPATH", path);
    }
    if let Some(dir) = &config.working_dir {
        command.current_dir(dir);
    }
    let output = match tokio::time::timeout(PROBE_TIMEOUT, command.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(error)) => {
            report.problems.push(format!(
                "cannot run interpreter `{}`: {error}; install Python {}.{}+ or set the interpreter to its path (PythonSpawnerConfig::with_interpreter, or --python)",
                config.interpreter, MIN_PYTHON.0, MIN_PYTHON.1
            ));
            return report;
        }
        Err(_elapsed) => {
            report.problems.push(format!(
                "interpreter `{}` did not answer a version probe within {PROBE_TIMEOUT:?}",
                config.interpreter
            ));
            return report;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(probe) = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str::<Probe>(line).ok())
    else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        report.problems.push(format!(
            "interpreter `{}` ran but the probe failed ({}): {}; is it a Python {}.{}+ interpreter?",
            config.interpreter,
            output.status,
            last_line(&stderr),
            MIN_PYTHON.0,
            MIN_PYTHON.1
        ));
        return report;
    };
    apply_probe(&mut report, probe);
    report
}

fn apply_probe(report: &mut EnvironmentReport, probe: Probe) {
    let version: Vec<String> = probe.version.iter().map(u32::to_string).collect();
    let version = version.join(".");
    report.executable = Some(probe.executable.clone());
    report.python_version = Some(version.clone());
    let major_minor = (
        probe.version.first().copied().unwrap_or(0),
        probe.version.get(1).copied().unwrap_or(0),
    );
    if major_minor < MIN_PYTHON {
        report.problems.push(format!(
            "Python {version} at {} is too old: pypool needs {}.{} or newer; install a newer Python and set the interpreter to it",
            probe.executable, MIN_PYTHON.0, MIN_PYTHON.1
        ));
    }
    report.runtime_file = probe.runtime_file;
    report.runtime_importable = probe.runtime_error.is_none() && report.runtime_file.is_some();
    if let Some(error) = probe.runtime_error {
        report.problems.push(format!(
            "the worker runtime `pypool_worker` cannot be imported ({error}); check PYTHONPATH and the configured python_path, or let pypool use its embedded runtime"
        ));
    }
    report.dspy_version = probe.dspy;
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("(nothing on stderr)")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn probe(version: &[u32], runtime_error: Option<&str>, dspy: Option<&str>) -> Probe {
        Probe {
            executable: "/usr/bin/python3".into(),
            version: version.to_vec(),
            runtime_error: runtime_error.map(str::to_owned),
            runtime_file: runtime_error
                .is_none()
                .then(|| "/cache/pypool_worker/__init__.py".to_owned()),
            dspy: dspy.map(str::to_owned),
        }
    }

    fn report_for(probe: Probe) -> EnvironmentReport {
        let mut report = EnvironmentReport::blank(&PythonSpawnerConfig::new());
        apply_probe(&mut report, probe);
        report
    }

    #[test]
    fn a_new_enough_python_with_the_runtime_is_ok_and_dspy_is_optional() {
        let report = report_for(probe(&[3, 11, 2], None, None));
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.python_version.as_deref(), Some("3.11.2"));
        assert!(report.runtime_importable);
        assert_eq!(report.dspy_version, None);
        let text = report.to_string();
        assert!(text.contains("ok: workers can start"), "{text}");
        assert!(text.contains("pip install 'dspy>=3'"), "{text}");

        let with_dspy = report_for(probe(&[3, 9, 0], None, Some("3.0.4")));
        assert!(with_dspy.is_ok());
        assert!(with_dspy.to_string().contains("installed (3.0.4)"));
    }

    #[test]
    fn an_old_python_is_a_problem_naming_the_version_and_the_fix() {
        let report = report_for(probe(&[3, 8, 10], None, None));
        assert!(!report.is_ok());
        assert_eq!(report.problems.len(), 1);
        assert!(
            report.problems[0].contains("Python 3.8.10 at /usr/bin/python3 is too old"),
            "{:?}",
            report.problems
        );
        assert!(report.problems[0].contains("3.9 or newer"));
    }

    #[test]
    fn a_runtime_that_cannot_be_imported_is_a_problem_with_the_import_error() {
        let report = report_for(probe(
            &[3, 12, 0],
            Some("ModuleNotFoundError: No module named 'pypool_worker'"),
            None,
        ));
        assert!(!report.runtime_importable);
        assert!(report.problems[0].contains("No module named 'pypool_worker'"));
        assert!(report.to_string().contains("NOT importable"));
    }

    #[tokio::test]
    async fn a_missing_interpreter_is_a_problem_that_says_how_to_fix_it() {
        let config =
            PythonSpawnerConfig::new().with_interpreter("/nonexistent/python-for-pypool-tests");
        let report = check_environment(&config).await;
        assert!(!report.is_ok());
        assert_eq!(report.python_version, None);
        assert!(
            report.problems[0]
                .contains("cannot run interpreter `/nonexistent/python-for-pypool-tests`"),
            "{:?}",
            report.problems
        );
        assert!(report.problems[0].contains("with_interpreter"));
    }

    #[tokio::test]
    async fn an_interpreter_that_is_not_python_is_a_problem() {
        // A shell runs, but `-c <python code>` is a shell syntax error: no probe line.
        let config = PythonSpawnerConfig::new().with_interpreter("/bin/sh");
        let report = check_environment(&config).await;
        assert!(!report.is_ok());
        assert!(
            report.problems[0].contains("the probe failed"),
            "{:?}",
            report.problems
        );
    }
}
