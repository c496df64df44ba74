//! Abandoned calls: the request stays in flight, its late reply is discarded.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{ok_result, request, scripted_worker, start_call};
use pypool_mock::Delivery;
use pypool_seam::WorkerExit;
use serde_json::json;

#[tokio::test(start_paused = true)]
async fn a_late_reply_to_an_abandoned_call_is_discarded_not_delivered_elsewhere() {
    let (_spawner, _spawns, connection, mut worker) = scripted_worker().await;

    // The pool gives up on request 1 after its deadline.
    let abandoned =
        tokio::time::timeout(Duration::from_secs(1), connection.call(request(1, "work"))).await;
    assert!(abandoned.is_err(), "the call must have timed out");
    assert_eq!(connection.in_flight(), 1, "still in flight on the worker");
    let stale = worker.next_request().await.unwrap();
    assert_eq!(stale.id(), 1);

    // A later caller uses the same worker.
    let next = start_call(&connection, 2, "work");
    let fresh = worker.next_request().await.unwrap();
    assert_eq!(connection.in_flight(), 2);

    // The stale reply arrives first: it must not reach caller 2.
    assert_eq!(stale.reply(json!("stale")), Delivery::Discarded);
    assert_eq!(connection.in_flight(), 1);
    tokio::task::yield_now().await;
    assert!(!next.is_finished());

    assert_eq!(fresh.reply(json!("fresh")), Delivery::Delivered);
    assert_eq!(ok_result(next.await.unwrap()), json!("fresh"));
    assert_eq!(connection.in_flight(), 0);
}

#[tokio::test]
async fn a_dropped_call_future_counts_in_flight_until_its_reply_arrives() {
    let (_spawner, _spawns, connection, mut worker) = scripted_worker().await;
    let call = start_call(&connection, 1, "work");
    let pending = worker.next_request().await.unwrap();
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    assert_eq!(connection.in_flight(), 1);
    assert_eq!(worker.in_flight(), 1);

    assert_eq!(
        pending.python_error("ValueError", "late"),
        Delivery::Discarded
    );
    assert_eq!(connection.in_flight(), 0);
    assert_eq!(
        connection.try_exit(),
        None,
        "a discarded reply is no violation"
    );
}

#[tokio::test]
async fn an_abandoned_request_can_still_die_with_its_worker() {
    let (_spawner, _spawns, connection, mut worker) = scripted_worker().await;
    let call = start_call(&connection, 1, "work");
    let pending = worker.next_request().await.unwrap();
    call.abort();
    let _cancelled = call.await;
    assert!(pending.crash(WorkerExit::signal(9)));
    assert_eq!(connection.in_flight(), 0);
    assert_eq!(connection.exited().await, WorkerExit::signal(9));
}

#[tokio::test]
async fn terminate_waits_for_the_reply_to_an_abandoned_request() {
    let (_spawner, _spawns, connection, mut worker) = scripted_worker().await;
    let call = start_call(&connection, 1, "work");
    let pending = worker.next_request().await.unwrap();
    call.abort();
    let _cancelled = call.await;

    connection.terminate();
    assert_eq!(connection.try_exit(), None);
    assert_eq!(pending.reply(json!(null)), Delivery::Discarded);
    assert_eq!(connection.try_exit(), Some(WorkerExit::code(0)));
}
