//! Failure mode: a handler that never answers (a hung worker) hits the request deadline.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use pypool::{PoolBuilder, PoolError, Timeouts, WorkerExit};
use pypool_mock::MockSpawner;
use serde_json::json;
use support::scripted::{self, accept_next, refill};
use support::{NO_TIME, spawn_execute, within, worker_ids};
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(2);

fn builder(spawner: MockSpawner, size: usize) -> PoolBuilder {
    // No cancel grace: these tests pin what happens to a worker killed at
    // the deadline (`deadline_cancel.rs` covers the grace).
    scripted::builder(spawner, size).timeouts(Timeouts {
        request: DEADLINE,
        cancel_grace: Duration::ZERO,
        ..Timeouts::default()
    })
}

#[tokio::test(start_paused = true)]
async fn a_hung_request_hits_its_deadline_and_its_worker_is_killed_and_replaced() {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let pool = builder(spawner, 2).build().unwrap();
    let mut hung_worker = accept_next(&pool, &mut spawns).await;
    let mut healthy_worker = accept_next(&pool, &mut spawns).await;

    let started = Instant::now();
    let slow = spawn_execute(&pool, "slow", json!({}));
    let hung = within(NO_TIME, "the slow request", hung_worker.next_request())
        .await
        .unwrap();
    assert_eq!(hung.command(), "slow");
    let hung_id = hung.id();
    hung.hang();

    // Meanwhile another request runs on the other worker, unaffected.
    let fast = spawn_execute(&pool, "fast", json!({ "n": 7 }));
    let pending = within(NO_TIME, "the fast request", healthy_worker.next_request())
        .await
        .unwrap();
    assert_eq!(pending.command(), "fast");
    let _answer = pending.reply_after(Duration::from_millis(500), json!({ "n": 7 }));
    let answered = within(Duration::from_secs(1), "the fast answer", fast).await;
    assert_eq!(answered.unwrap().unwrap(), json!({ "n": 7 }));
    assert_eq!(started.elapsed(), Duration::from_millis(500));
    assert!(!hung_worker.was_killed(), "killed before its deadline");

    let error = within(DEADLINE, "the deadline", slow)
        .await
        .unwrap()
        .unwrap_err();
    let waited = started.elapsed();
    assert!(
        waited >= DEADLINE && waited < DEADLINE + Duration::from_millis(10),
        "the deadline passed after {waited:?}"
    );
    match &error {
        PoolError::DeadlineExceeded {
            worker_id,
            command,
            request_id,
            deadline,
        } => {
            assert_eq!(*worker_id, 1);
            assert_eq!(command, "slow");
            assert_eq!(*request_id, hung_id);
            assert_eq!(*deadline, DEADLINE);
        }
        other => panic!("expected DeadlineExceeded, got {other:?}"),
    }
    assert_eq!(error.kind(), "deadline_exceeded");

    within(
        NO_TIME,
        "the hung worker to be killed",
        hung_worker.killed(),
    )
    .await;
    assert!(hung_worker.was_killed());
    assert_eq!(hung_worker.try_exit(), Some(WorkerExit::signal(9)));
    assert!(!healthy_worker.was_killed() && !healthy_worker.was_terminated());

    let (replacement, status) = refill(&pool, &mut spawns, 2).await;
    assert_eq!(replacement.worker_id(), 3);
    assert_eq!(worker_ids(&status), [2, 3]);
    assert_eq!(status.counters.replaced, 1);
    assert_eq!(status.counters.requests_ok, 1);
    assert_eq!(status.counters.requests_failed, 1);
    assert_eq!(status.counters.retries, 0);

    // The healthy worker keeps serving (it is first in the idle queue).
    let next = spawn_execute(&pool, "fast", json!({ "n": 8 }));
    let pending = within(NO_TIME, "the next request", healthy_worker.next_request())
        .await
        .unwrap();
    let _ = pending.reply(json!("ok"));
    assert_eq!(next.await.unwrap().unwrap(), json!("ok"));
    assert_eq!(hung_worker.requests_seen(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_hung_idempotent_request_is_retried_on_another_worker_after_the_deadline() {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let pool = builder(spawner, 2).idempotent("lookup").build().unwrap();
    let mut hung_worker = accept_next(&pool, &mut spawns).await;
    let mut other_worker = accept_next(&pool, &mut spawns).await;

    let started = Instant::now();
    let call = spawn_execute(&pool, "lookup", json!({ "key": "k" }));
    let hung = within(NO_TIME, "the first attempt", hung_worker.next_request())
        .await
        .unwrap();
    hung.hang();

    let retried = within(
        DEADLINE + Duration::from_secs(1),
        "the retry after the deadline",
        other_worker.next_request(),
    )
    .await
    .unwrap();
    assert!(started.elapsed() > DEADLINE, "retried before the deadline");
    assert_eq!(retried.request().args["key"], json!("k"));
    let _ = retried.reply(json!("value"));
    let result = within(NO_TIME, "the caller's answer", call).await.unwrap();
    assert_eq!(result.unwrap(), json!("value"));

    within(
        NO_TIME,
        "the hung worker to be killed",
        hung_worker.killed(),
    )
    .await;
    let status = pool.status();
    assert_eq!(status.counters.retries, 1);
    assert_eq!(status.counters.replaced, 1);
    assert_eq!(status.counters.requests_ok, 1);
    assert_eq!(status.counters.requests_failed, 0);
}
