//! Behaviour: a worker that announces a capacity above 1 is lent to up to
//! that many requests at once — no spawn, no queueing while it has room —
//! and a request past its capacity queues until a settle frees a slot.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use pypool_mock::Delivery;
use serde_json::json;
use support::capacity::{in_flight_on, pool_of, request_on};
use support::{NO_TIME, eventually, spawn_execute, status_until, within};

const CAPACITY: u32 = 3;

#[tokio::test(start_paused = true)]
async fn one_worker_holds_capacity_requests_at_once_without_spawn_or_queue() {
    let (pool, mut spawns, mut workers) = pool_of(1, CAPACITY, &[], |builder| builder).await;
    let worker = &mut workers[0];
    let mut calls = Vec::new();
    let mut pending = Vec::new();
    for n in 0..CAPACITY {
        calls.push(spawn_execute(&pool, "work", json!({ "n": n })));
        pending.push(request_on(worker).await);
    }
    assert_eq!(worker.in_flight(), CAPACITY as usize);
    let status = pool.status();
    assert_eq!(
        status.queue_len, 0,
        "nobody queued while the worker had room"
    );
    assert_eq!(status.in_flight, CAPACITY as usize);
    assert_eq!(status.busy, 1);
    assert_eq!(status.partially_busy, 0, "the worker is full");
    assert_eq!(status.ready, 0);
    assert!(spawns.try_next_spawn().is_none(), "no worker was spawned");

    // Replies in any order reach their own callers.
    for (n, request) in pending.into_iter().enumerate().rev() {
        assert_eq!(request.reply(json!(n)), Delivery::Delivered);
    }
    for (n, call) in calls.into_iter().enumerate() {
        let result = within(NO_TIME, "an answer", call).await.unwrap().unwrap();
        assert_eq!(result, json!(n));
    }
    let status = status_until(&pool, "the worker to be idle again", |status| {
        status.ready == 1 && status.in_flight == 0
    })
    .await;
    assert_eq!(status.busy, 0);
    assert_eq!(status.counters.requests_ok, u64::from(CAPACITY));
}

#[tokio::test(start_paused = true)]
async fn the_request_past_capacity_queues_and_gets_the_first_freed_slot() {
    let (pool, mut spawns, mut workers) = pool_of(1, CAPACITY, &[], |builder| builder).await;
    let worker = &mut workers[0];
    let mut pending = Vec::new();
    let mut calls = Vec::new();
    for n in 0..CAPACITY {
        calls.push(spawn_execute(&pool, "work", json!({ "n": n })));
        pending.push(request_on(worker).await);
    }
    let extra = spawn_execute(&pool, "work", json!({ "n": "extra" }));
    status_until(&pool, "the extra request to queue", |status| {
        status.queue_len == 1
    })
    .await;
    assert!(worker.try_next_request().is_none(), "never past capacity");
    assert!(spawns.try_next_spawn().is_none(), "size 1, no overflow");

    // The middle request settles: its slot goes to the queued caller.
    let middle = pending.remove(1);
    assert_eq!(middle.reply(json!("middle")), Delivery::Delivered);
    let queued = request_on(worker).await;
    assert_eq!(queued.request().args["n"], json!("extra"));
    let status = pool.status();
    assert_eq!(status.queue_len, 0);
    assert_eq!(in_flight_on(&status, worker.worker_id()), CAPACITY as usize);
    assert_eq!(queued.reply(json!("extra")), Delivery::Delivered);
    assert_eq!(
        within(NO_TIME, "the extra answer", extra)
            .await
            .unwrap()
            .unwrap(),
        json!("extra")
    );
    for request in pending {
        assert_eq!(request.reply(json!("rest")), Delivery::Delivered);
    }
    for call in calls {
        within(NO_TIME, "an answer", call).await.unwrap().unwrap();
    }
    eventually(&pool, "everything settled", |status| status.in_flight == 0).await;
}
