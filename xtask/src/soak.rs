//! `cargo xtask soak`: the `pypool stress` workload, without and then with
//! chaos (`--kill-every`), while this process samples the host's resident
//! memory (`VmRSS` in `/proc/<pid>/status`) and open descriptors
//! (`/proc/<pid>/fd`). Growth from after warm-up to the end of the run must
//! stay within a bound (5 % by default), or the task fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{cargo, run};

/// How often the host is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// The "after warm-up" window, as fractions of the run's duration.
const WARM_WINDOW: (f64, f64) = (0.20, 0.30);

/// The "end" window: late in the run but before the pool's shutdown.
const END_WINDOW: (f64, f64) = (0.85, 0.95);

#[derive(Debug)]
struct Options {
    requests: u64,
    kill_every: u64,
    workers: Option<u64>,
    release: bool,
    max_growth_percent: f64,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        requests: 100_000,
        kill_every: 1_000,
        workers: None,
        release: false,
        max_growth_percent: 5.0,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || -> Result<String, String> {
            args.next()
                .map(|value| value.replace('_', ""))
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let bad = |error: &dyn std::fmt::Display| format!("{flag}: {error}");
        match flag.as_str() {
            "--requests" => options.requests = value()?.parse().map_err(|e| bad(&e))?,
            "--kill-every" => options.kill_every = value()?.parse().map_err(|e| bad(&e))?,
            "--workers" => options.workers = Some(value()?.parse().map_err(|e| bad(&e))?),
            "--max-growth" => options.max_growth_percent = value()?.parse().map_err(|e| bad(&e))?,
            "--release" => options.release = true,
            other => return Err(format!("soak: unknown flag `{other}`")),
        }
    }
    Ok(options)
}

/// The interpreter for Python-side tasks: `.venv`'s if it exists, else
/// `PYPOOL_PYTHON`, else `python3` (the worker runtime needs only the
/// standard library).
pub(crate) fn python_interpreter(root: &Path) -> PathBuf {
    let venv = root.join(".venv").join("bin").join("python");
    if venv.exists() {
        return venv;
    }
    std::env::var_os("PYPOOL_PYTHON").map_or_else(|| PathBuf::from("python3"), PathBuf::from)
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    rss_kib: u64,
    fds: u64,
}

fn sample(pid: u32, at: Duration) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(Sample { at, rss_kib, fds })
}

/// The samples taken between `from` and `to` (fractions of the run).
fn window(samples: &[Sample], (from, to): (f64, f64)) -> Vec<Sample> {
    let total = samples.last().map_or(0.0, |last| last.at.as_secs_f64());
    samples
        .iter()
        .filter(|sample| {
            let at = sample.at.as_secs_f64();
            at >= from * total && at <= to * total
        })
        .copied()
        .collect()
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

fn growth_percent(before: u64, after: u64) -> f64 {
    if before == 0 {
        return 0.0;
    }
    (after as f64 - before as f64) * 100.0 / before as f64
}

/// The number after `"key":` in a JSON text (enough for the stress report).
fn json_number(text: &str, key: &str) -> Option<f64> {
    let at = text.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = text[at..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// What one soak run measured.
struct Run {
    label: String,
    samples: usize,
    wall: Duration,
    rss_warm_kib: u64,
    rss_end_kib: u64,
    fds_warm: u64,
    fds_end: u64,
    report: String,
}

fn soak_once(
    binary: &Path,
    python: &Path,
    options: &Options,
    chaos: bool,
    log_dir: &Path,
) -> Result<Run, String> {
    let label = if chaos {
        format!("with chaos (--kill-every {})", options.kill_every)
    } else {
        "without chaos".to_owned()
    };
    let stem = if chaos { "soak-chaos" } else { "soak-calm" };
    let report_path = log_dir.join(format!("{stem}.json"));
    let stderr_path = log_dir.join(format!("{stem}.stderr"));
    let file = |path: &Path| {
        std::fs::File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
    };
    let mut command = Command::new(binary);
    command
        .env("PYPOOL_PYTHON", python)
        .args([
            "stress",
            "--json",
            "--requests",
            &options.requests.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(file(&report_path)?)
        .stderr(file(&stderr_path)?);
    if chaos {
        command.args(["--kill-every", &options.kill_every.to_string()]);
    }
    if let Some(workers) = options.workers {
        command.args(["--workers", &workers.to_string()]);
    }
    eprintln!("xtask: soak {label}: running {command:?}");
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("could not start {command:?}: {e}"))?;
    let pid = child.id();
    let mut samples = Vec::new();
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| format!("waiting for the stress run: {e}"))?
        {
            break status;
        }
        if let Some(sample) = sample(pid, started.elapsed()) {
            samples.push(sample);
        }
        std::thread::sleep(SAMPLE_EVERY);
    };
    let wall = started.elapsed();
    let report = std::fs::read_to_string(&report_path).unwrap_or_default();
    if !status.success() {
        return Err(format!(
            "soak {label}: the stress run failed with {status}; see {} and {}",
            report_path.display(),
            stderr_path.display()
        ));
    }
    let warm = window(&samples, WARM_WINDOW);
    let end = window(&samples, END_WINDOW);
    if warm.is_empty() || end.is_empty() {
        return Err(format!(
            "soak {label}: only {} samples in {wall:?}; use more --requests",
            samples.len()
        ));
    }
    // The median of each window: under chaos a killed worker's pipes close
    // and its replacement's open a moment later, so single samples swing by
    // a worker's three pipes either way; a leak moves the median.
    let fds = |window: &[Sample]| median(window.iter().map(|s| s.fds).collect());
    Ok(Run {
        label,
        samples: samples.len(),
        wall,
        rss_warm_kib: median(warm.iter().map(|s| s.rss_kib).collect()),
        rss_end_kib: median(end.iter().map(|s| s.rss_kib).collect()),
        fds_warm: fds(&warm),
        fds_end: fds(&end),
        report,
    })
}

/// Runs the soak without and with chaos; fails on growth beyond the bound.
pub(crate) fn soak(root: &Path, args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    let mut build = cargo();
    build
        .current_dir(root)
        .args(["build", "-p", "pypool-cli", "--bin", "pypool"]);
    if options.release {
        build.arg("--release");
    }
    run(&mut build)?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let profile_dir = target.join(if options.release { "release" } else { "debug" });
    let binary = profile_dir.join("pypool");
    let python = python_interpreter(root);
    let mut failures = Vec::new();
    for chaos in [false, true] {
        let run = soak_once(&binary, &python, &options, chaos, &profile_dir)?;
        let rss_growth = growth_percent(run.rss_warm_kib, run.rss_end_kib);
        let fd_growth = growth_percent(run.fds_warm, run.fds_end);
        let succeeded = json_number(&run.report, "succeeded").unwrap_or(0.0);
        let failed = json_number(&run.report, "failed").unwrap_or(-1.0);
        let throughput = json_number(&run.report, "throughput_ops").unwrap_or(0.0);
        let kills = json_number(&run.report, "kills").unwrap_or(0.0);
        println!(
            "soak {}: {} requests ({succeeded} succeeded, {failed} failed, {kills} workers killed) in {:.1} s, {throughput:.0} requests/s, {} samples",
            run.label,
            options.requests,
            run.wall.as_secs_f64(),
            run.samples
        );
        println!(
            "  host RSS  after warm-up {:>8} KiB, at the end {:>8} KiB: growth {rss_growth:+.2} %",
            run.rss_warm_kib, run.rss_end_kib
        );
        println!(
            "  host fds  after warm-up {:>8},     at the end {:>8}:     growth {fd_growth:+.2} %",
            run.fds_warm, run.fds_end
        );
        for (what, growth) in [("RSS", rss_growth), ("fd count", fd_growth)] {
            if growth > options.max_growth_percent {
                failures.push(format!(
                    "{}: host {what} grew {growth:.2} % (bound {} %)",
                    run.label, options.max_growth_percent
                ));
            }
        }
        if !run.report.contains("\"ok\": true") {
            failures.push(format!(
                "{}: the stress verdict is not ok (see {})",
                run.label,
                profile_dir.display()
            ));
        }
    }
    if failures.is_empty() {
        println!("soak: ok (growth within {} %)", options.max_growth_percent);
        Ok(())
    } else {
        Err(format!("soak failed:\n  {}", failures.join("\n  ")))
    }
}
