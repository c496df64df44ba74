//! Failure mode: a request past its deadline. The pool sends the worker a
//! `cancel`, answers the caller at the deadline, and gives the request a
//! grace period to end: a worker that answers (its result, or `cancelled`)
//! keeps serving; one that does not is killed and replaced.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use pypool::{PoolError, Timeouts, WorkerExit};
use pypool_mock::{Delivery, MockSpawner};
use serde_json::json;
use support::scripted::{self, accept_next};
use support::{NO_TIME, spawn_execute, within};
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(2);
const GRACE: Duration = Duration::from_secs(3);

async fn pool_of(
    size: usize,
) -> (
    pypool::Pool,
    pypool_mock::SpawnHandle,
    Vec<pypool_mock::WorkerHandle>,
) {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let pool = scripted::builder(spawner, size)
        .timeouts(Timeouts {
            request: DEADLINE,
            cancel_grace: GRACE,
            ..Timeouts::default()
        })
        .build()
        .unwrap();
    let mut workers = Vec::new();
    for _ in 0..size {
        workers.push(accept_next(&pool, &mut spawns).await);
    }
    (pool, spawns, workers)
}

#[tokio::test(start_paused = true)]
async fn at_the_deadline_the_request_is_cancelled_and_the_caller_answered_at_once() {
    let (pool, _spawns, mut workers) = pool_of(1).await;
    let worker = &mut workers[0];
    let started = Instant::now();
    let slow = spawn_execute(&pool, "slow", json!({}));
    let request = within(NO_TIME, "the request", worker.next_request())
        .await
        .unwrap();
    let request_id = request.id();

    let cancelled = within(DEADLINE + NO_TIME, "the cancel", worker.next_cancel())
        .await
        .unwrap();
    assert_eq!(cancelled, request_id);
    assert_eq!(started.elapsed(), DEADLINE, "cancelled at the deadline");
    let error = within(NO_TIME, "the caller's answer", slow)
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(error, PoolError::DeadlineExceeded { request_id: id, .. } if id == request_id),
        "{error:?}"
    );
    assert!(!worker.was_killed(), "not killed during the grace");

    // The worker answers `cancelled` within the grace: it is kept and serves on.
    tokio::time::advance(GRACE / 2).await;
    // (It reaches the pool, which waits for it; the caller has its answer.)
    assert_eq!(request.reply_cancelled(), Delivery::Delivered);
    let next = spawn_execute(&pool, "fast", json!({}));
    let pending = within(
        NO_TIME,
        "the next request on the same worker",
        worker.next_request(),
    )
    .await
    .unwrap();
    assert_eq!(pending.reply(json!("ok")), Delivery::Delivered);
    assert_eq!(next.await.unwrap().unwrap(), json!("ok"));
    assert!(!worker.was_killed() && !worker.was_terminated());
    let status = pool.status();
    assert_eq!(status.counters.replaced, 0);
    assert_eq!(status.counters.requests_failed, 1);
}

#[tokio::test(start_paused = true)]
async fn a_request_still_running_after_the_grace_gets_its_worker_killed_and_replaced() {
    let (pool, mut spawns, mut workers) = pool_of(1).await;
    let worker = &mut workers[0];
    let started = Instant::now();
    let slow = spawn_execute(&pool, "slow", json!({}));
    let request = within(NO_TIME, "the request", worker.next_request())
        .await
        .unwrap();
    within(DEADLINE + NO_TIME, "the cancel", worker.next_cancel())
        .await
        .unwrap();
    let error = within(NO_TIME, "the caller's answer", slow)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(error.kind(), "deadline_exceeded");

    // The worker ignores the cancel (a sync handler cannot be interrupted).
    request.hang();
    // While it is in its grace, nobody else is sent to it.
    let waiting = spawn_execute(&pool, "fast", json!({}));
    tokio::time::advance(GRACE - Duration::from_millis(1)).await;
    assert!(!worker.was_killed(), "killed before the grace ended");
    assert!(worker.try_next_request().is_none());

    within(
        Duration::from_millis(2),
        "the kill after the grace",
        worker.killed(),
    )
    .await;
    assert_eq!(started.elapsed(), DEADLINE + GRACE);
    assert_eq!(worker.try_exit(), Some(WorkerExit::signal(9)));
    let mut replacement = within(NO_TIME, "the replacement spawn", spawns.next_spawn())
        .await
        .unwrap()
        .accept();
    assert_eq!(pool.status().counters.replaced, 1);
    // The waiting request runs on the replacement.
    let pending = within(NO_TIME, "the waiting request", replacement.next_request())
        .await
        .unwrap();
    assert_eq!(pending.reply(json!("ok")), Delivery::Delivered);
    assert_eq!(waiting.await.unwrap().unwrap(), json!("ok"));
}
