//! `pypool stress` and SIGINT: the first signal stops gracefully (no new
//! request, those in flight finish, a report of what was cut short, exit
//! status 130); a second one stops at once. Either way no worker survives.
#![cfg(feature = "real-python")]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pypool_integration::{
    MARKER_ENV, fixture, marked_processes, python, unique_marker, wait_until,
};

const CLI: &str = env!("CARGO_BIN_EXE_pypool-cli-copy");
const WORKERS: usize = 2;

/// `pypool stress` running `nap` (a `sleep` child process) for `seconds` per
/// request, far more requests than it can finish; its workers (and their
/// `sleep`s) inherit the marker.
fn stress(marker: &str, seconds: f64) -> Child {
    Command::new(CLI)
        .args(["stress", "--python", &python(), "--workers"])
        .arg(WORKERS.to_string())
        .args([
            "--requests",
            "100000",
            "--concurrency",
            "4",
            "--sessions",
            "0",
        ])
        .args(["--handlers", &fixture("busy_with_children.py")])
        .args(["--command", "nap", "--args"])
        .arg(format!("{{\"seconds\": {seconds}}}"))
        .args(["--request-timeout", "120", "--json"])
        .env(MARKER_ENV, marker)
        .env("PYTHONPATH", pypool_integration::repo_root().join("python"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pypool starts")
}

/// Waits until requests are in flight: a `nap`'s `sleep` runs.
fn wait_for_requests(marker: &str) {
    let mut seen = Vec::new();
    let busy = wait_until(Duration::from_secs(60), || {
        seen = marked_processes(marker);
        seen.iter().any(|(_, comm)| comm == "sleep")
    });
    assert!(busy, "requests run: {seen:?}");
}

fn sigint(child: &Child) {
    kill(
        Pid::from_raw(i32::try_from(child.id()).expect("pid fits")),
        Signal::SIGINT,
    )
    .expect("signal pypool");
}

/// Reads stderr lines until one contains `wanted` (the CLI's own readiness
/// event); `false` at end of stream.
fn wait_for_line(stderr: &mut impl BufRead, wanted: &str) -> bool {
    let mut line = String::new();
    loop {
        line.clear();
        match stderr.read_line(&mut line) {
            Ok(0) | Err(_) => return false,
            Ok(_) if line.contains(wanted) => return true,
            Ok(_) => {}
        }
    }
}

fn wait_for_exit(child: &mut Child, bound: Duration) -> Option<std::process::ExitStatus> {
    let mut status = None;
    wait_until(bound, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    status
}

fn no_workers_left(marker: &str) -> bool {
    wait_until(Duration::from_secs(2), || {
        marked_processes(marker).is_empty()
    })
}

#[test]
fn first_sigint_stops_gracefully_with_a_report_and_status_130() {
    let marker = unique_marker("cli-sigint");
    let mut child = stress(&marker, 0.5);
    wait_for_requests(&marker);
    sigint(&child);
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr piped"));
    assert!(
        wait_for_line(&mut stderr, "SIGINT received"),
        "pypool acknowledges the signal"
    );
    let status = wait_for_exit(&mut child, Duration::from_secs(60)).expect("pypool exits");
    assert_eq!(
        status.code(),
        Some(130),
        "interrupted by SIGINT: {status:?}"
    );
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("stdout piped")
        .read_to_string(&mut stdout)
        .expect("read the report");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("a JSON report");
    let cut = &report["interrupted"];
    assert_eq!(cut["signal"], "SIGINT", "{report}");
    let in_flight = cut["in_flight"].as_u64().expect("in_flight");
    let finished = cut["finished"].as_u64().expect("finished");
    let cut_short = cut["cut_short"].as_u64().expect("cut_short");
    eprintln!("cut short: {cut}");
    assert_eq!(finished + cut_short, in_flight, "{cut}");
    assert!(in_flight > 0, "requests were in flight: {cut}");
    // Half-second naps finish within the grace; a request still queued for
    // a worker when the pool stopped is refused, and counted as cut short.
    assert!(finished >= 1, "requests in flight finish: {cut}");
    assert_eq!(cut["drained"], true, "{cut}");
    assert!(
        cut["not_started"].as_u64().expect("not_started") > 0,
        "{cut}"
    );
    assert!(no_workers_left(&marker), "{:?}", marked_processes(&marker));
}

#[test]
fn second_sigint_stops_at_once() {
    let marker = unique_marker("cli-sigint-twice");
    // Requests that would outlast the grace period.
    let mut child = stress(&marker, 600.0);
    wait_for_requests(&marker);
    sigint(&child);
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr piped"));
    assert!(
        wait_for_line(&mut stderr, "SIGINT received"),
        "pypool acknowledges the first signal"
    );
    let second = Instant::now();
    sigint(&child);
    // Well under the 10 s grace the first signal granted.
    let status = wait_for_exit(&mut child, Duration::from_secs(5)).expect("pypool exits at once");
    eprintln!("exited {:?} after the second SIGINT", second.elapsed());
    assert_eq!(
        status.code(),
        Some(130),
        "interrupted by SIGINT: {status:?}"
    );
    assert!(no_workers_left(&marker), "{:?}", marked_processes(&marker));
}
