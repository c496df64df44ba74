//! Scripted mode: crashes and protocol violations.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{request, scripted_worker, start_call};
use pypool_mock::Delivery;
use pypool_seam::{CallError, WorkerExit};
use serde_json::json;

#[tokio::test]
async fn a_crash_mid_request_fails_every_call_in_flight_with_its_own_id() {
    let (_spawner, _spawns, connection, mut worker) = scripted_worker().await;
    let first = start_call(&connection, 10, "work");
    let second = start_call(&connection, 11, "work");
    let crashing = worker.next_request().await.unwrap();
    let other = worker.next_request().await.unwrap();

    assert!(crashing.crash(WorkerExit::signal(11)));
    for (call, request_id) in [(first, 10), (second, 11)] {
        assert_eq!(
            call.await.unwrap(),
            Err(CallError::WorkerExited {
                worker_id: 1,
                request_id,
                exit: WorkerExit::signal(11),
            })
        );
    }
    assert_eq!(connection.exited().await, WorkerExit::signal(11));
    assert_eq!(connection.try_exit(), Some(WorkerExit::signal(11)));
    assert_eq!(connection.in_flight(), 0);
    // The worker is gone: its other request can no longer be answered.
    assert_eq!(other.reply(json!(1)), Delivery::NotInFlight);
    // A crash is the worker's doing, not the pool's.
    assert!(!worker.was_killed());
}

#[tokio::test]
async fn an_idle_crash_fails_later_calls_with_the_exit() {
    let (_spawner, _spawns, connection, mut worker) = scripted_worker().await;
    assert!(worker.crash(WorkerExit::code(3)));
    assert!(!worker.crash(WorkerExit::code(4)), "already exited");
    assert_eq!(connection.exited().await, WorkerExit::code(3));
    assert_eq!(
        connection.call(request(5, "work")).await,
        Err(CallError::WorkerExited {
            worker_id: 1,
            request_id: 5,
            exit: WorkerExit::code(3),
        })
    );
    assert_eq!(worker.requests_seen(), 0);
    assert!(worker.next_request().await.is_none());
}

#[tokio::test]
async fn exited_resolves_for_a_waiter_that_started_before_the_crash() {
    let (_spawner, _spawns, connection, worker) = scripted_worker().await;
    let conn = connection.clone();
    let waiting = tokio::spawn(async move { conn.exited().await });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    worker.crash(WorkerExit::signal(9));
    assert_eq!(waiting.await.unwrap(), WorkerExit::signal(9));
}

#[tokio::test]
async fn garbage_is_a_protocol_violation_for_every_call_in_flight() {
    let (_spawner, _spawns, connection, mut worker) = scripted_worker().await;
    let first = start_call(&connection, 1, "work");
    let second = start_call(&connection, 2, "work");
    let garbage = worker.next_request().await.unwrap();
    let _second_request = worker.next_request().await.unwrap();
    assert!(garbage.send_garbage());

    for call in [first, second] {
        match call.await.unwrap() {
            Err(CallError::ProtocolViolation { worker_id, detail }) => {
                assert_eq!(worker_id, 1);
                assert!(detail.contains("malformed frame"), "{detail}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // The connection killed the worker itself; the pool did not.
    assert_eq!(connection.exited().await, WorkerExit::signal(9));
    assert!(!worker.was_killed());
    match connection.call(request(3, "work")).await {
        Err(CallError::Closed { reason, .. }) => {
            assert!(reason.contains("broke the protocol"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn idle_garbage_kills_the_connection_too() {
    let (_spawner, _spawns, connection, worker) = scripted_worker().await;
    assert!(worker.send_garbage());
    assert_eq!(connection.exited().await, WorkerExit::signal(9));
    assert!(matches!(
        connection.call(request(1, "work")).await,
        Err(CallError::Closed { .. })
    ));
}

#[tokio::test]
async fn a_reply_to_an_unknown_id_is_a_protocol_violation() {
    let (_spawner, _spawns, connection, mut worker) = scripted_worker().await;
    let call = start_call(&connection, 8, "work");
    assert!(worker.next_request().await.unwrap().reply_unknown_id());
    match call.await.unwrap() {
        Err(CallError::ProtocolViolation { detail, .. }) => {
            assert!(detail.contains("not in flight"), "{detail}");
            assert!(!detail.contains("request 8,"), "{detail}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(connection.try_exit().is_some());
    assert_eq!(connection.in_flight(), 0);
}
