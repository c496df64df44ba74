//! What the report says about where it ran: OS, CPU, memory, Python, DSPy,
//! pypool's version and revision.

use std::path::Path;
use std::process::Command;

use crate::report::Machine;

/// Describes this machine, `python` and the git revision of `root`.
/// Anything that cannot be found reads `unknown` (never an error: a report
/// without a CPU model is still a report).
pub fn describe(python: &str, root: &Path) -> Machine {
    let (python_version, dspy_version) = python_versions(python);
    Machine {
        os: os(),
        cpu_model: cpu_model(),
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        memory_bytes: memory_bytes(),
        load_average: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|text| text.split_whitespace().next()?.parse().ok()),
        python: python.to_owned(),
        python_version,
        dspy_version,
        pypool_rev: git_rev(root),
        pypool_version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

/// `MemTotal` of `/proc/meminfo` in bytes, 0 when unknown.
fn memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("MemTotal:"))
                .and_then(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

fn os() -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{} {}", std::env::consts::OS, release.trim())
        .trim()
        .to_owned()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_default()
}

const VERSIONS: &str = "import sys\n\
try:\n    import importlib.metadata as m; d = m.version('dspy')\n\
except Exception:\n    d = ''\n\
print(sys.version.split()[0]); print(d)\n";

fn python_versions(python: &str) -> (String, Option<String>) {
    let Ok(output) = Command::new(python).args(["-c", VERSIONS]).output() else {
        return ("unknown (did not start)".to_owned(), None);
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let version = lines.next().unwrap_or("unknown").trim().to_owned();
    let dspy = lines
        .next()
        .map(str::trim)
        .filter(|dspy| !dspy.is_empty())
        .map(str::to_owned);
    (version, dspy)
}

fn git_rev(root: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    let Some(rev) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown".to_owned();
    };
    match git(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(changes) if !changes.is_empty() => format!("{rev}-dirty"),
        _ => rev,
    }
}
