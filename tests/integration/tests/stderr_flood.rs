//! A handler writing 300 MiB to stderr without a newline does not grow the
//! host's memory (issue 10, item 4): the host keeps at most one capped line
//! per worker and the worker keeps serving.
#![cfg(feature = "real-python")]

use pypool_integration::{config, request, spawn};
use pypool_seam::Outcome;
use serde_json::json;

const FLOOD_MIB: u64 = 300;
/// Allowed host growth; before the fix the host held the whole line (300+ MiB).
const BOUND_BYTES: u64 = 64 * 1024 * 1024;

/// This process's resident memory, from `/proc/self/status` (`VmRSS`).
fn host_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs is readable");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS is in /proc/self/status");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_300_mib_line_on_stderr_does_not_grow_the_host() {
    let worker = spawn(config(&["handlers_hostile.py"]), 1)
        .await
        .expect("worker starts");
    let before = host_rss_bytes();
    let outcome = worker
        .call(request(1, "flood_stderr", json!({ "mib": FLOOD_MIB })))
        .await
        .expect("answered");
    assert_eq!(
        outcome,
        Outcome::Ok {
            result: json!({ "written": FLOOD_MIB * 1024 * 1024 })
        }
    );
    let after = host_rss_bytes();
    let grown = after.saturating_sub(before);
    eprintln!(
        "host RSS before the {FLOOD_MIB} MiB stderr flood: {:.1} MiB, after: {:.1} MiB (grew {:.1} MiB)",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        grown as f64 / 1048576.0
    );
    assert!(
        grown < BOUND_BYTES,
        "the host grew by {grown} bytes reading a {FLOOD_MIB} MiB stderr line"
    );
    let outcome = worker
        .call(request(2, "getenv", json!({ "name": "PATH" })))
        .await
        .expect("still serving");
    assert!(matches!(outcome, Outcome::Ok { .. }), "{outcome:?}");
    assert!(worker.try_exit().is_none());
}
