//! A non-`exec` interpreter wrapper (a shell that runs `python3 "$@"` and
//! stays alive, as `conda run` does) does not let Python escape: a hung
//! worker the pool kills really dies, with its grandchildren, and the host's
//! death takes every worker behind a wrapper down too.
#![cfg(feature = "real-python")]

use std::time::Duration;

use nix::sys::signal::Signal;
use pypool::{PoolError, Timeouts};
use pypool_integration::{
    MARKER_ENV, kill_busy_host, marked_processes, pool_builder, process_alive, unique_marker,
    wait_until, wrapper_interpreter,
};
use serde_json::json;

const HOST: &str = env!("CARGO_BIN_EXE_pypool-busy-host");
const WORKERS: usize = 8;
const BOUND: Duration = Duration::from_secs(2);
/// How long the pool lets a cancelled request end on its own before it
/// kills the worker (the handler here never does).
const CANCEL_GRACE: Duration = Duration::from_millis(500);

fn host_behind_wrapper_dies_by(signal: Signal) {
    let seen = kill_busy_host(HOST, &wrapper_interpreter(), WORKERS, signal, BOUND);
    assert!(
        seen.before
            .iter()
            .any(|(_, comm)| comm == "python_wrapper." || comm == "sh"),
        "the wrapper shell stays alive between the host and Python: {:?}",
        seen.before
    );
    seen.assert_none_survived(&format!("behind a wrapper, killed by {signal}"), BOUND);
}

#[test]
fn sigkill_of_the_host_leaves_no_process_behind_a_wrapper() {
    host_behind_wrapper_dies_by(Signal::SIGKILL);
}

#[test]
fn sigterm_of_the_host_leaves_no_process_behind_a_wrapper() {
    host_behind_wrapper_dies_by(Signal::SIGTERM);
}

#[test]
fn sigint_of_the_host_leaves_no_process_behind_a_wrapper() {
    host_behind_wrapper_dies_by(Signal::SIGINT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_worker_behind_a_wrapper_really_dies_when_the_pool_kills_it() {
    let marker = unique_marker("hung-wrapper");
    // Spawned: the wrapper is then in front of the worker itself (with
    // forking it is in front of the template, which outlives its workers).
    let pool = pool_builder(&["busy_with_children.py"])
        .start_method(pypool::StartMethod::Spawn)
        .interpreter(wrapper_interpreter())
        .env(MARKER_ENV, marker.as_str())
        .env("PYPOOL_WRAPPED_PYTHON", pypool_integration::python())
        .size(1)
        .timeouts(Timeouts {
            request: Duration::from_secs(3),
            cancel_grace: CANCEL_GRACE,
            ..Timeouts::default()
        })
        .health_check_interval(None)
        .build()
        .expect("pool builds");
    pool.ready().await.expect("the worker starts");
    let hung = {
        let pool = pool.clone();
        tokio::spawn(async move {
            pool.execute("busy_with_children", json!({ "mode": "cpu" }))
                .await
        })
    };
    // The hung tree: wrapper, guardian, worker and its two grandchildren.
    let mut tree = Vec::new();
    let busy = tokio::task::spawn_blocking({
        let marker = marker.clone();
        move || {
            let mut seen = Vec::new();
            let busy = wait_until(Duration::from_secs(60), || {
                seen = marked_processes(&marker);
                seen.iter().filter(|(_, comm)| comm == "sleep").count() == 2
            });
            (busy, seen)
        }
    })
    .await
    .expect("the poll runs");
    assert!(busy.0, "the handler starts its grandchildren: {:?}", busy.1);
    tree.extend(busy.1);
    let error = hung
        .await
        .expect("task")
        .expect_err("the request times out");
    assert!(
        matches!(error, PoolError::DeadlineExceeded { .. }),
        "{error:?}"
    );
    let pids: Vec<u32> = tree.iter().map(|(pid, _)| *pid).collect();
    let gone = tokio::task::spawn_blocking({
        let pids = pids.clone();
        // The caller is answered at the deadline; the kill comes after the grace.
        move || {
            wait_until(BOUND + CANCEL_GRACE, || {
                pids.iter().all(|&pid| !process_alive(pid))
            })
        }
    })
    .await
    .expect("the poll runs");
    let alive: Vec<&(u32, String)> = tree.iter().filter(|(pid, _)| process_alive(*pid)).collect();
    for (pid, _) in &alive {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(*pid).expect("pid fits")),
            Signal::SIGKILL,
        );
    }
    assert!(gone, "the killed worker's processes still run: {alive:?}");
    pool.shutdown(Duration::from_secs(5)).await;
}
