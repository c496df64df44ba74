//! Dropping the host's handle leaves no Python process behind, not even one
//! the worker started.
#![cfg(feature = "real-python")]

use pypool_integration::{bounded, config, poll_until, process_alive, request, spawn};
use pypool_seam::Outcome;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_handle_kills_the_process_group() {
    let worker = spawn(config(&["grandchild.py"]), 1)
        .await
        .expect("worker starts");
    let worker_pid = worker.handshake().pid;
    let outcome = worker
        .call(request(1, "start_grandchild", json!({})))
        .await
        .expect("answered");
    let Outcome::Ok { result } = outcome else {
        panic!("start_grandchild failed: {outcome:?}")
    };
    let grandchild_pid = u32::try_from(result["pid"].as_u64().expect("pid")).expect("pid fits");
    assert!(process_alive(worker_pid));
    assert!(process_alive(grandchild_pid));

    drop(worker);
    // The kernel kills the group at once; reaping happens on the runtime and
    // in init. Wait (bounded) for /proc to agree.
    poll_until("the worker and its grandchild are gone", || {
        !process_alive(worker_pid) && !process_alive(grandchild_pid)
    })
    .await;
    assert!(
        !process_alive(grandchild_pid),
        "grandchild {grandchild_pid} survived"
    );
    assert!(!process_alive(worker_pid), "worker {worker_pid} survived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_eof_makes_the_worker_exit_cleanly_on_terminate() {
    let worker = spawn(config(&[]), 2).await.expect("worker starts");
    worker.terminate();
    let exit = bounded("the worker's exit", worker.exited()).await;
    assert!(exit.is_clean(), "SIGTERM while idle exits 0, got: {exit}");
}
