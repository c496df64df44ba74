//! Protocol v2: one worker holds several requests on ONE connection and
//! answers them in the order they finish, not the order they were sent;
//! each reply reaches its own caller (matched by id).
#![cfg(feature = "real-python")]
#![allow(clippy::panic, reason = "a test fails by panicking")]

use std::sync::Arc;

use pypool_integration::{bounded, config, request, spawn};
use pypool_seam::{Concurrency, Outcome, WorkerConnection};
use serde_json::{Value, json};

fn ok(outcome: Result<Outcome, pypool_seam::CallError>, what: &str) -> Value {
    match outcome {
        Ok(Outcome::Ok { result }) => result,
        other => panic!("{what}: expected a result, got {other:?}"),
    }
}

async fn call(worker: &Arc<dyn WorkerConnection>, id: u64, command: &str, args: Value) -> Value {
    let outcome = bounded(command, worker.call(request(id, command, args))).await;
    ok(outcome, command)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_announces_capacity_and_each_commands_concurrency() {
    let worker = spawn(config(&["handlers_concurrent.py"]), 1)
        .await
        .expect("worker starts");
    let handshake = worker.handshake();
    assert_eq!(handshake.capacity, 64, "a worker with concurrent handlers");
    assert_eq!(worker.capacity(), 64);
    let mode = |name: &str| {
        handshake
            .commands
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.concurrency)
    };
    assert_eq!(mode("hold"), Some(Concurrency::Async));
    assert_eq!(mode("hold_in_thread"), Some(Concurrency::Threads));
    assert_eq!(mode("info"), Some(Concurrency::Serial));
    let serial_only = spawn(config(&["handlers_basic.py"]), 2)
        .await
        .expect("worker starts");
    assert_eq!(
        serial_only.handshake().capacity,
        1,
        "every handler serial: one request at a time"
    );
    let chosen = spawn(config(&["handlers_basic.py"]).with_capacity(5), 3)
        .await
        .expect("worker starts");
    assert_eq!(chosen.handshake().capacity, 5, "--capacity wins");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_on_one_connection_are_answered_out_of_order() {
    let worker = spawn(config(&["handlers_concurrent.py"]), 4)
        .await
        .expect("worker starts");
    let first = tokio::spawn({
        let worker = Arc::clone(&worker);
        async move { worker.call(request(1, "hold", json!({"name": "a"}))).await }
    });
    let second = tokio::spawn({
        let worker = Arc::clone(&worker);
        async move { worker.call(request(2, "hold", json!({"name": "b"}))).await }
    });
    // Both are held by the worker at once.
    call(&worker, 3, "started", json!({"name": "a"})).await;
    call(&worker, 4, "started", json!({"name": "b"})).await;
    assert_eq!(worker.in_flight(), 2, "both still unanswered");
    // The second one sent is answered first.
    call(&worker, 5, "open_gate", json!({"name": "b"})).await;
    let second = bounded("request 2", second).await.expect("task");
    assert_eq!(ok(second, "hold b"), json!({"released": "b"}));
    assert!(!first.is_finished(), "request 1 is still held");
    assert_eq!(worker.in_flight(), 1);
    call(&worker, 6, "open_gate", json!({"name": "a"})).await;
    let first = bounded("request 1", first).await.expect("task");
    assert_eq!(ok(first, "hold a"), json!({"released": "a"}));
    assert_eq!(worker.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_handler_and_many_async_ones_run_at_once() {
    let worker = spawn(config(&["handlers_concurrent.py"]), 5)
        .await
        .expect("worker starts");
    let in_thread = tokio::spawn({
        let worker = Arc::clone(&worker);
        async move {
            worker
                .call(request(1, "hold_in_thread", json!({"name": "t"})))
                .await
        }
    });
    let held: Vec<_> = (0..40_u64)
        .map(|n| {
            let worker = Arc::clone(&worker);
            tokio::spawn(async move {
                worker
                    .call(request(100 + n, "hold", json!({ "name": format!("g{n}") })))
                    .await
            })
        })
        .collect();
    for n in 0..40_u64 {
        call(
            &worker,
            200 + n,
            "started",
            json!({ "name": format!("g{n}") }),
        )
        .await;
    }
    assert_eq!(
        worker.in_flight(),
        41,
        "40 coroutines and a thread held at once"
    );
    for n in (0..40_u64).rev() {
        call(
            &worker,
            300 + n,
            "open_gate",
            json!({ "name": format!("g{n}") }),
        )
        .await;
    }
    for (n, task) in held.into_iter().enumerate() {
        let outcome = bounded("a held request", task).await.expect("task");
        assert_eq!(ok(outcome, "hold"), json!({ "released": format!("g{n}") }));
    }
    call(&worker, 400, "open_thread_gate", json!({"name": "t"})).await;
    let outcome = bounded("the thread request", in_thread)
        .await
        .expect("task");
    assert_eq!(ok(outcome, "hold_in_thread"), json!({"released": "t"}));
}
