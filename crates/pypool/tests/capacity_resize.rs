//! Behaviour: shrinking a pool whose workers hold several requests each.
//! A worker above the new size takes no new request once one of its
//! requests settles and stops when its last one does; the worker kept
//! serves on, and the pool never drops below its new size.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use pypool_mock::Delivery;
use serde_json::json;
use support::capacity::{in_flight_on, pool_of, request_on};
use support::{NO_TIME, PATIENCE, spawn_execute, status_until, within};

#[tokio::test(start_paused = true)]
async fn a_worker_above_the_new_size_drains_its_requests_then_stops() {
    let (pool, mut spawns, mut workers) = pool_of(2, 3, &[], |builder| builder).await;
    let (first, second) = workers.split_at_mut(1);
    let (a, b) = (&mut first[0], &mut second[0]);
    // Four requests: two on each worker.
    let mut calls = Vec::new();
    for n in 0..4 {
        calls.push(spawn_execute(&pool, "work", json!({ "n": n })));
        status_until(&pool, "the request to be lent", |status| {
            status.in_flight == n + 1
        })
        .await;
    }
    let mut on_a = vec![request_on(a).await, request_on(a).await];
    let mut on_b = vec![request_on(b).await, request_on(b).await];

    pool.resize(1);
    // One of a's requests settles: a is above the size now and drains.
    assert_eq!(on_a.pop().unwrap().reply(json!("a")), Delivery::Delivered);
    let status = status_until(&pool, "a to drain", |status| status.draining == 1).await;
    assert_eq!(in_flight_on(&status, a.worker_id()), 1);
    // New requests go to b, not to the draining a.
    calls.push(spawn_execute(&pool, "work", json!({ "n": "new" })));
    let new = request_on(b).await;
    assert_eq!(new.request().args["n"], json!("new"));
    assert!(a.try_next_request().is_none());
    on_b.push(new);
    // One of b's settles: b is the pool's one regular worker, it stays.
    assert_eq!(on_b.pop().unwrap().reply(json!("b")), Delivery::Delivered);
    status_until(&pool, "b's settle", |status| status.in_flight == 3).await;
    assert!(!b.was_terminated());

    // a's last request settles: it is stopped; b serves on.
    assert_eq!(on_a.pop().unwrap().reply(json!("a")), Delivery::Delivered);
    within(NO_TIME, "a's SIGTERM", a.terminated()).await;
    within(
        PATIENCE,
        "a leaves",
        support::until_gone(&pool, a.worker_id()),
    )
    .await;
    for request in on_b {
        assert_eq!(request.reply(json!("b")), Delivery::Delivered);
    }
    for call in calls {
        within(NO_TIME, "an answer", call).await.unwrap().unwrap();
    }
    let status = pool.status();
    assert_eq!(status.workers, 1);
    assert!(!b.was_terminated());
    assert!(spawns.try_next_spawn().is_none(), "no worker was started");
}
