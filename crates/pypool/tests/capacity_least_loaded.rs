//! Behaviour: with several workers of capacity above 1, a request goes to
//! the least-loaded worker that has room (fewest requests in flight).
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use pypool_mock::Delivery;
use serde_json::json;
use support::capacity::{in_flight_on, pool_of};
use support::{NO_TIME, spawn_execute, within};

#[tokio::test(start_paused = true)]
async fn requests_go_to_the_worker_with_the_fewest_in_flight() {
    let (pool, mut spawns, mut workers) = pool_of(2, 4, &[], |builder| builder).await;
    let ids: Vec<_> = workers.iter().map(|worker| worker.worker_id()).collect();
    let mut calls = Vec::new();
    // Three requests: two on one worker, one on the other.
    for n in 0..3 {
        calls.push(spawn_execute(&pool, "work", json!({ "n": n })));
        support::status_until(&pool, "the request to be lent", |status| {
            status.in_flight == n + 1
        })
        .await;
    }
    let status = pool.status();
    let loads: Vec<_> = ids.iter().map(|id| in_flight_on(&status, *id)).collect();
    let mut sorted = loads.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![1, 2], "spread over both workers: {loads:?}");
    let lighter = if loads[0] == 1 { 0 } else { 1 };

    // The fourth goes to the lighter worker: both then hold two.
    calls.push(spawn_execute(&pool, "work", json!({ "n": 3 })));
    let status = support::status_until(&pool, "the fourth request to be lent", |status| {
        status.in_flight == 4
    })
    .await;
    assert_eq!(in_flight_on(&status, ids[lighter]), 2);
    assert_eq!(in_flight_on(&status, ids[1 - lighter]), 2);
    assert_eq!(status.partially_busy, 2);
    assert!(spawns.try_next_spawn().is_none());

    // One settles on the first worker: the next request goes there.
    let mut first = Vec::new();
    while let Some(request) = workers[0].try_next_request() {
        first.push(request);
    }
    let mut second = Vec::new();
    while let Some(request) = workers[1].try_next_request() {
        second.push(request);
    }
    assert_eq!((first.len(), second.len()), (2, 2));
    let settled = first.pop().unwrap();
    assert_eq!(settled.reply(json!("done")), Delivery::Delivered);
    support::status_until(&pool, "the settle", |status| status.in_flight == 3).await;
    calls.push(spawn_execute(&pool, "work", json!({ "n": 4 })));
    let next = within(NO_TIME, "the next request", workers[0].next_request())
        .await
        .unwrap();
    assert_eq!(next.request().args["n"], json!(4));
    assert!(workers[1].try_next_request().is_none());
    first.push(next);

    for request in first.into_iter().chain(second) {
        assert_eq!(request.reply(json!("ok")), Delivery::Delivered);
    }
    for call in calls {
        within(NO_TIME, "an answer", call).await.unwrap().unwrap();
    }
}
