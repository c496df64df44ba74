//! Nothing outlives the host: a host whose 8 workers are busy (half in a CPU
//! loop, half in a blocking system call), each having started a grandchild
//! in its process group and one in a session of its own, leaves no process
//! behind within 2 s of dying by SIGKILL, SIGTERM or SIGINT. With both start
//! methods: spawned workers, and forked ones (whose parent is the template:
//! the template, its guardian and the standby carry the marker too).
#![cfg(feature = "real-python")]

use std::time::Duration;

use nix::sys::signal::Signal;
use pypool::StartMethod;
use pypool_integration::{kill_busy_host_started, python};

const HOST: &str = env!("CARGO_BIN_EXE_pypool-busy-host");
const WORKERS: usize = 8;
/// The goal: every worker and grandchild gone 2 s after the host.
const BOUND: Duration = Duration::from_secs(2);

fn host_dies_by(signal: Signal, start: StartMethod) {
    kill_busy_host_started(HOST, &python(), WORKERS, signal, BOUND, start)
        .assert_none_survived(&format!("{start} workers, killed by {signal}"), BOUND);
}

#[test]
fn sigkill_of_the_host_leaves_no_spawned_process() {
    host_dies_by(Signal::SIGKILL, StartMethod::Spawn);
}

#[test]
fn sigterm_of_the_host_leaves_no_spawned_process() {
    host_dies_by(Signal::SIGTERM, StartMethod::Spawn);
}

#[test]
fn sigint_of_the_host_leaves_no_spawned_process() {
    host_dies_by(Signal::SIGINT, StartMethod::Spawn);
}

#[test]
fn sigkill_of_the_host_leaves_no_forked_process() {
    host_dies_by(Signal::SIGKILL, StartMethod::Fork);
}

#[test]
fn sigterm_of_the_host_leaves_no_forked_process() {
    host_dies_by(Signal::SIGTERM, StartMethod::Fork);
}

#[test]
fn sigint_of_the_host_leaves_no_forked_process() {
    host_dies_by(Signal::SIGINT, StartMethod::Fork);
}
