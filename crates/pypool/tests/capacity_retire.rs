//! Behaviour: a worker holding several requests that reaches a recycle
//! limit takes no new request and is stopped (gracefully) only when its
//! last in-flight request settles; then its replacement serves.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use pypool::WorkerExit;
use pypool_mock::Delivery;
use serde_json::json;
use support::capacity::{accept_with_capacity, pool_of, request_on};
use support::{NO_TIME, PATIENCE, spawn_execute, status_until, within};

#[tokio::test(start_paused = true)]
async fn a_recycled_worker_finishes_its_in_flight_requests_before_it_stops() {
    let (pool, mut spawns, mut workers) =
        pool_of(1, 4, &[], |builder| builder.max_requests(1)).await;
    let worker = &mut workers[0];
    let first = spawn_execute(&pool, "work", json!({ "n": 1 }));
    let first_request = request_on(worker).await;
    let second = spawn_execute(&pool, "work", json!({ "n": 2 }));
    let second_request = request_on(worker).await;

    // The first settles: the limit (one request) is reached while another
    // is in flight. The worker drains: nothing new, not stopped yet.
    assert_eq!(first_request.reply(json!(1)), Delivery::Delivered);
    assert_eq!(
        within(NO_TIME, "first", first).await.unwrap().unwrap(),
        json!(1)
    );
    let status = status_until(&pool, "the worker to drain", |status| status.draining == 1).await;
    assert_eq!(status.counters.recycled, 1);
    let third = spawn_execute(&pool, "work", json!({ "n": 3 }));
    status_until(&pool, "the third request to queue", |status| {
        status.queue_len == 1
    })
    .await;
    assert!(
        worker.try_next_request().is_none(),
        "a draining worker takes nothing new"
    );
    assert!(!worker.was_terminated() && !worker.was_killed());

    // Its last request settles: it is stopped, and a replacement serves.
    assert_eq!(second_request.reply(json!(2)), Delivery::Delivered);
    assert_eq!(
        within(NO_TIME, "second", second).await.unwrap().unwrap(),
        json!(2)
    );
    within(NO_TIME, "the SIGTERM", worker.terminated()).await;
    let exit = within(PATIENCE, "the old worker exits", worker.exited()).await;
    assert_eq!(exit, WorkerExit::code(0), "stopped gracefully, not killed");
    let mut replacement = accept_with_capacity(&pool, &mut spawns, 4).await;
    let request = request_on(&mut replacement).await;
    assert_eq!(request.request().args["n"], json!(3));
    assert_eq!(request.reply(json!(3)), Delivery::Delivered);
    assert_eq!(
        within(NO_TIME, "third", third).await.unwrap().unwrap(),
        json!(3)
    );
    let status = pool.status();
    assert_eq!(status.counters.replaced, 0, "recycled, not failed");
    assert!(
        status
            .worker_details
            .iter()
            .all(|w| w.id != worker.worker_id()),
        "the recycled worker left the pool"
    );
}
