//! Behaviour: a worker of capacity 1 (every serial worker) keeps the
//! one-request-at-a-time lending: a second request queues until it settles.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use pypool_mock::Delivery;
use serde_json::json;
use support::capacity::{pool_of, request_on};
use support::{NO_TIME, spawn_execute, status_until, within};

#[tokio::test(start_paused = true)]
async fn a_capacity_one_worker_holds_one_request_and_the_next_one_queues() {
    let (pool, mut spawns, mut workers) = pool_of(1, 1, &[], |builder| builder).await;
    let worker = &mut workers[0];
    let first = spawn_execute(&pool, "work", json!({ "n": 1 }));
    let pending = request_on(worker).await;
    let second = spawn_execute(&pool, "work", json!({ "n": 2 }));
    let status = status_until(&pool, "the second request to queue", |status| {
        status.queue_len == 1
    })
    .await;
    assert_eq!(status.busy, 1);
    assert_eq!(status.partially_busy, 0);
    assert_eq!(status.in_flight, 1);
    assert_eq!(status.capacity, 1);
    assert!(worker.try_next_request().is_none(), "one at a time");
    assert!(spawns.try_next_spawn().is_none());

    assert_eq!(pending.reply(json!(1)), Delivery::Delivered);
    let next = request_on(worker).await;
    assert_eq!(next.request().args["n"], json!(2));
    assert_eq!(next.reply(json!(2)), Delivery::Delivered);
    assert_eq!(
        within(NO_TIME, "first", first).await.unwrap().unwrap(),
        json!(1)
    );
    assert_eq!(
        within(NO_TIME, "second", second).await.unwrap().unwrap(),
        json!(2)
    );
}
