//! Scripted mode: terminate, kill, and dropping the connection.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{ok_result, request, scripted_worker, start_call};
use pypool_mock::Delivery;
use pypool_seam::{CallError, WorkerExit};
use serde_json::json;

#[tokio::test]
async fn terminate_when_idle_exits_with_code_0_at_once() {
    let (spawner, _spawns, connection, mut worker) = scripted_worker().await;
    connection.terminate();
    assert_eq!(connection.try_exit(), Some(WorkerExit::code(0)));
    assert!(worker.was_terminated());
    assert!(!worker.was_killed());
    worker.terminated().await;
    assert!(worker.next_request().await.is_none());
    assert_eq!(spawner.stats().terminations(), 1);
}

#[tokio::test]
async fn terminate_lets_the_requests_in_flight_finish_first() {
    let (_spawner, _spawns, connection, mut worker) = scripted_worker().await;
    let call = start_call(&connection, 1, "work");
    let pending = worker.next_request().await.unwrap();

    connection.terminate();
    assert_eq!(connection.try_exit(), None, "a request is still running");
    match connection.call(request(2, "work")).await {
        Err(CallError::Closed { reason, .. }) => assert!(reason.contains("terminate"), "{reason}"),
        other => panic!("unexpected {other:?}"),
    }

    assert_eq!(pending.reply(json!("done")), Delivery::Delivered);
    assert_eq!(ok_result(call.await.unwrap()), json!("done"));
    assert_eq!(connection.exited().await, WorkerExit::code(0));
}

#[tokio::test]
async fn terminate_notification_reaches_a_waiting_test() {
    let (_spawner, _spawns, connection, worker) = scripted_worker().await;
    let worker = std::sync::Arc::new(worker);
    let watcher = {
        let worker = worker.clone();
        tokio::spawn(async move { worker.terminated().await })
    };
    tokio::task::yield_now().await;
    assert!(!watcher.is_finished());
    assert!(!worker.was_terminated());
    connection.terminate();
    watcher.await.unwrap();
    assert!(worker.was_terminated());
}

#[tokio::test]
async fn kill_fails_the_calls_in_flight_at_once() {
    let (spawner, _spawns, connection, mut worker) = scripted_worker().await;
    let call = start_call(&connection, 1, "work");
    let pending = worker.next_request().await.unwrap();

    connection.kill();
    match call.await.unwrap() {
        Err(CallError::Closed { worker_id, reason }) => {
            assert_eq!(worker_id, 1);
            assert!(reason.contains("killed"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(connection.try_exit(), Some(WorkerExit::signal(9)));
    assert!(worker.was_killed());
    worker.killed().await;
    assert_eq!(pending.reply(json!("late")), Delivery::NotInFlight);
    assert!(matches!(
        connection.call(request(2, "work")).await,
        Err(CallError::Closed { .. })
    ));
    assert_eq!(spawner.stats().kills(), 1);
    assert_eq!(spawner.stats().workers_alive(), 0);
}

#[tokio::test]
async fn kill_during_terminate_wins() {
    let (_spawner, _spawns, connection, mut worker) = scripted_worker().await;
    let call = start_call(&connection, 1, "work");
    let _pending = worker.next_request().await.unwrap();
    connection.terminate();
    connection.kill();
    assert!(matches!(call.await.unwrap(), Err(CallError::Closed { .. })));
    assert_eq!(connection.try_exit(), Some(WorkerExit::signal(9)));
}

#[tokio::test]
async fn dropping_the_last_connection_kills_the_worker() {
    let (spawner, _spawns, connection, mut worker) = scripted_worker().await;
    let clone = connection.clone();
    drop(connection);
    assert!(!worker.was_killed(), "a clone is still alive");
    assert_eq!(worker.try_exit(), None);

    drop(clone);
    assert!(worker.was_killed());
    worker.killed().await;
    assert_eq!(worker.exited().await, WorkerExit::signal(9));
    assert!(worker.next_request().await.is_none());
    assert_eq!(spawner.stats().workers_alive(), 0);
}
