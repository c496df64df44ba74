//! Scripted mode: answering requests.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{ok_result, request, request_with, scripted_worker, start_call};
use pypool_mock::{DEFAULT_RSS_BYTES, Delivery};
use pypool_seam::{CallError, Outcome, RemoteError, RemoteErrorKind};
use serde_json::json;
use tokio::time::Instant;

#[tokio::test]
async fn reply_reaches_the_caller_and_clears_in_flight() {
    let (_spawner, _spawns, connection, mut worker) = scripted_worker().await;
    let conn = Arc::clone(&connection);
    let call = tokio::spawn(async move {
        conn.call(request_with(41, "summarise", json!({"text": "hi"})))
            .await
    });
    let pending = worker.next_request().await.unwrap();
    assert_eq!(pending.id(), 41);
    assert_eq!(pending.command(), "summarise");
    assert_eq!(pending.request().args.get("text"), Some(&json!("hi")));
    assert_eq!(connection.in_flight(), 1);
    assert_eq!(worker.requests_seen(), 1);

    assert_eq!(pending.reply(json!({"summary": "h"})), Delivery::Delivered);
    assert_eq!(ok_result(call.await.unwrap()), json!({"summary": "h"}));
    assert_eq!(connection.in_flight(), 0);
    assert_eq!(worker.in_flight(), 0);
}

#[tokio::test]
async fn reply_error_passes_the_remote_error_through() {
    let (_spawner, _spawns, connection, mut worker) = scripted_worker().await;
    let call = start_call(&connection, 1, "nope");
    let error = RemoteError {
        kind: RemoteErrorKind::UnknownCommand,
        message: "no handler named 'nope'".into(),
        exception_type: None,
        traceback: None,
    };
    let delivery = worker
        .next_request()
        .await
        .unwrap()
        .reply_error(error.clone());
    assert_eq!(delivery, Delivery::Delivered);
    assert_eq!(call.await.unwrap(), Ok(Outcome::Error { error }));
    // An error reply leaves the worker serving.
    assert_eq!(connection.try_exit(), None);
}

#[tokio::test]
async fn python_error_is_a_python_exception_reply() {
    let (_spawner, _spawns, connection, mut worker) = scripted_worker().await;
    let call = start_call(&connection, 1, "summarise");
    let _delivered = worker
        .next_request()
        .await
        .unwrap()
        .python_error("ValueError", "text must not be empty");
    match call.await.unwrap() {
        Ok(Outcome::Error { error }) => {
            assert_eq!(error.kind, RemoteErrorKind::PythonException);
            assert_eq!(error.exception_type.as_deref(), Some("ValueError"));
            assert_eq!(error.message, "text must not be empty");
            assert!(
                error
                    .traceback
                    .is_some_and(|tb| tb.ends_with("ValueError: text must not be empty"))
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn reply_after_waits_on_the_tokio_clock() {
    let (_spawner, _spawns, connection, mut worker) = scripted_worker().await;
    let started = Instant::now();
    let call = start_call(&connection, 1, "slow");
    let replying = worker
        .next_request()
        .await
        .unwrap()
        .reply_after(Duration::from_secs(30), json!(42));
    assert_eq!(ok_result(call.await.unwrap()), json!(42));
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    assert_eq!(replying.await.unwrap(), Delivery::Delivered);
}

#[tokio::test]
async fn concurrent_calls_are_matched_by_id_whatever_the_reply_order() {
    let (_spawner, _spawns, connection, mut worker) = scripted_worker().await;
    let calls: Vec<_> = (1..=3)
        .map(|id| start_call(&connection, id, "work"))
        .collect();
    let mut pending = Vec::new();
    for _ in 0..3 {
        pending.push(worker.next_request().await.unwrap());
    }
    assert_eq!(connection.in_flight(), 3);
    // Answer in reverse order, each with its own id.
    for request in pending.into_iter().rev() {
        let id = request.id();
        assert_eq!(request.reply(json!(id)), Delivery::Delivered);
    }
    for (call, id) in calls.into_iter().zip(1u64..) {
        assert_eq!(ok_result(call.await.unwrap()), json!(id));
    }
    assert_eq!(worker.requests_seen(), 3);
}

#[tokio::test]
async fn a_duplicate_request_id_is_refused_and_the_first_call_survives() {
    let (_spawner, _spawns, connection, mut worker) = scripted_worker().await;
    let first = start_call(&connection, 7, "work");
    let pending = worker.next_request().await.unwrap();
    let duplicate = connection.call(request(7, "work")).await;
    assert_eq!(
        duplicate,
        Err(CallError::DuplicateRequestId {
            worker_id: 1,
            request_id: 7
        })
    );
    assert_eq!(worker.requests_seen(), 1);
    assert_eq!(pending.reply(json!("first")), Delivery::Delivered);
    assert_eq!(ok_result(first.await.unwrap()), json!("first"));
}

#[tokio::test]
async fn resident_memory_follows_the_script() {
    let (_spawner, _spawns, connection, worker) = scripted_worker().await;
    assert_eq!(connection.resident_memory_bytes(), Some(DEFAULT_RSS_BYTES));
    worker.set_rss(900 * 1024 * 1024);
    assert_eq!(connection.resident_memory_bytes(), Some(900 * 1024 * 1024));
    worker.clear_rss();
    assert_eq!(connection.resident_memory_bytes(), None);
}
