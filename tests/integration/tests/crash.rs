//! A worker that dies mid-request: the caller gets a typed error naming the
//! worker, the request and the exit code or signal.
#![cfg(feature = "real-python")]

use pypool_integration::{bounded, config, poll_until, request, spawn};
use pypool_seam::{CallError, WorkerExit};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_mid_request_names_the_code() {
    let worker = spawn(config(&["handlers_basic.py"]), 4)
        .await
        .expect("worker starts");
    let error = worker
        .call(request(41, "crash", json!({ "code": 3 })))
        .await
        .expect_err("the worker dies");
    assert_eq!(
        error,
        CallError::WorkerExited {
            worker_id: 4,
            request_id: 41,
            exit: WorkerExit::code(3)
        }
    );
    assert_eq!(
        error.to_string(),
        "worker 4 exited with code 3 before replying to request 41"
    );
    assert_eq!(
        bounded("the worker's exit", worker.exited()).await,
        WorkerExit::code(3)
    );
    let later = worker
        .call(request(42, "ping", json!({})))
        .await
        .expect_err("dead");
    assert!(matches!(
        later,
        CallError::WorkerExited { request_id: 42, .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_request_names_the_signal() {
    let worker = spawn(config(&["handlers_basic.py"]), 5)
        .await
        .expect("worker starts");
    let pid = worker.handshake().pid;
    let call = {
        let worker = worker.clone();
        tokio::spawn(async move {
            worker
                .call(request(9, "sleep", json!({ "seconds": 60 })))
                .await
        })
    };
    // The request is in flight once the worker has it; the kill comes after.
    poll_until("the request is in flight", || worker.in_flight() > 0).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let error = bounded("the call's end", call)
        .await
        .expect("task")
        .expect_err("the worker dies");
    assert_eq!(
        error,
        CallError::WorkerExited {
            worker_id: 5,
            request_id: 9,
            exit: WorkerExit::signal(9)
        }
    );
}
