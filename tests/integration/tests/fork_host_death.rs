//! Fork start mode: nothing outlives the host, even though the template is
//! the workers' parent. A host whose 8 workers are busy (half in a CPU
//! loop, half in a blocking system call), each having started a grandchild
//! in its process group and one in a session of its own, leaves no process
//! behind within 2 s of dying by SIGKILL, SIGTERM or SIGINT (the template
//! and its guardian included: they carry the marker too).
#![cfg(feature = "real-python")]

use std::time::Duration;

use nix::sys::signal::Signal;
use pypool::StartMethod;
use pypool_integration::{kill_busy_host_started, python};

const HOST: &str = env!("CARGO_BIN_EXE_pypool-busy-host");
const WORKERS: usize = 8;
/// The goal: every worker and grandchild gone 2 s after the host.
const BOUND: Duration = Duration::from_secs(2);

fn host_dies_by(signal: Signal) {
    kill_busy_host_started(HOST, &python(), WORKERS, signal, BOUND, StartMethod::Fork)
        .assert_none_survived(&format!("killed by {signal}"), BOUND);
}

#[test]
fn sigkill_of_the_host_leaves_no_process() {
    host_dies_by(Signal::SIGKILL);
}

#[test]
fn sigterm_of_the_host_leaves_no_process() {
    host_dies_by(Signal::SIGTERM);
}

#[test]
fn sigint_of_the_host_leaves_no_process() {
    host_dies_by(Signal::SIGINT);
}
