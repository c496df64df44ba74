//! `WorkerConnection::cancel` on a real worker: a running `async` handler
//! gets `CancelledError` and its call ends with a `cancelled` error, exactly
//! once; the worker keeps serving; a running plain function cannot be
//! interrupted and its own result is delivered; a cancel for an id that is
//! not pending is ignored.
#![cfg(feature = "real-python")]
#![allow(clippy::panic, reason = "a test fails by panicking")]

use std::sync::Arc;

use pypool_integration::{bounded, config, request, spawn};
use pypool_seam::{Outcome, RemoteErrorKind, WorkerConnection};
use serde_json::{Value, json};

async fn call(worker: &Arc<dyn WorkerConnection>, id: u64, command: &str, args: Value) -> Value {
    match bounded(command, worker.call(request(id, command, args))).await {
        Ok(Outcome::Ok { result }) => result,
        other => panic!("{command}: expected a result, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_async_handler_answers_cancelled_once() {
    let worker = spawn(config(&["handlers_concurrent.py"]), 1)
        .await
        .expect("worker starts");
    let held = tokio::spawn({
        let worker = Arc::clone(&worker);
        async move {
            worker
                .call(request(1, "hold_until_cancelled", json!({"name": "c"})))
                .await
        }
    });
    call(&worker, 2, "started", json!({"name": "c"})).await;
    worker.cancel(1);
    let outcome = bounded("the cancelled call", held).await.expect("task");
    match outcome {
        Ok(Outcome::Error { error }) => {
            assert_eq!(error.kind, RemoteErrorKind::Cancelled, "{error}");
            assert!(error.message.contains("cancelled"), "{error}");
        }
        other => panic!("expected a cancelled error, got {other:?}"),
    }
    assert_eq!(worker.in_flight(), 0, "answered exactly once, nothing left");
    // A second cancel of the same id, and one of an id never sent: ignored.
    worker.cancel(1);
    worker.cancel(999);
    let pong = call(&worker, 3, "ping", json!({"payload": "after"})).await;
    assert_eq!(pong["payload"], json!("after"), "the worker keeps serving");
    assert!(worker.try_exit().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_plain_function_finishes_and_its_result_is_delivered() {
    let worker = spawn(config(&["handlers_concurrent.py"]), 2)
        .await
        .expect("worker starts");
    let held = tokio::spawn({
        let worker = Arc::clone(&worker);
        async move {
            worker
                .call(request(1, "hold_in_thread", json!({"name": "s"})))
                .await
        }
    });
    call(&worker, 3, "thread_started", json!({"name": "s"})).await;
    worker.cancel(1);
    call(&worker, 2, "open_thread_gate", json!({"name": "s"})).await;
    match bounded("the uninterruptible call", held)
        .await
        .expect("task")
    {
        Ok(Outcome::Ok { result }) => assert_eq!(result, json!({"released": "s"})),
        other => panic!("a plain function's own result, got {other:?}"),
    }
    assert_eq!(worker.in_flight(), 0);
}
