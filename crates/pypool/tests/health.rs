//! Failure mode: idle workers whose health checks (pings) fail or hang.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use pypool::{Health, PoolBuilder, WorkerState};
use pypool_mock::{Delivery, PendingRequest, WorkerHandle};
use serde_json::json;
use support::scripted::{accept_spawn, next_request, next_spawn, scripted_pool};
use support::{PATIENCE, busy_worker_id, eventually, spawn_execute, within};
use tokio::time::Instant;

const INTERVAL: Duration = Duration::from_secs(10);

/// Health checks every 10 s, `threshold` failures in a row remove a worker.
fn checked_every_10s(threshold: u32) -> impl FnOnce(PoolBuilder) -> PoolBuilder {
    move |builder| {
        builder
            .health_check_interval(Some(INTERVAL))
            .health_failure_threshold(threshold)
    }
}

async fn next_ping(worker: &mut WorkerHandle) -> PendingRequest {
    let ping = next_request(worker).await;
    assert_eq!(
        ping.command(),
        "ping",
        "expected a health check, got {ping:?}"
    );
    ping
}

#[tokio::test(start_paused = true)]
async fn idle_workers_are_pinged_at_the_interval_and_stay_while_they_answer() {
    let (pool, spawns, mut workers) = scripted_pool(1, checked_every_10s(2)).await;
    let start = Instant::now();
    let mut pinged_at = Vec::new();
    for _ in 0..3 {
        let ping = next_ping(&mut workers[0]).await;
        pinged_at.push(start.elapsed());
        assert_eq!(ping.reply(json!({ "pong": true })), Delivery::Delivered);
        eventually(&pool, "the worker is idle again", |s| {
            s.ready == 1 && s.checking == 0
        })
        .await;
    }
    assert_eq!(
        pinged_at,
        [10, 20, 30].map(Duration::from_secs),
        "one ping per interval"
    );
    let status = pool.status();
    assert_eq!((status.workers, status.ready), (1, 1));
    assert_eq!(status.counters.replaced, 0);
    let worker = &status.worker_details[0];
    assert_eq!(worker.id, workers[0].worker_id());
    assert_eq!(worker.state, WorkerState::Ready);
    assert_eq!(worker.health, Health::Healthy);
    assert_eq!(worker.consecutive_health_failures, 0);
    assert_eq!(spawns.spawn_count(), 1, "nothing was replaced");
    assert!(!workers[0].was_killed() && !workers[0].was_terminated());
}

#[tokio::test(start_paused = true)]
async fn a_worker_failing_its_pings_threshold_times_in_a_row_is_replaced() {
    let (pool, mut spawns, mut workers) = scripted_pool(1, checked_every_10s(3)).await;
    let mut old = workers.remove(0);
    // fail, fail, pass (resets the count), fail, fail: still in service.
    for (answer_ok, failures_after) in [(false, 1), (false, 2), (true, 0), (false, 1), (false, 2)] {
        let ping = next_ping(&mut old).await;
        let delivery = if answer_ok {
            ping.reply(json!({ "pong": true }))
        } else {
            ping.python_error("RuntimeError", "event loop is wedged")
        };
        assert_eq!(delivery, Delivery::Delivered);
        let status = eventually(&pool, "the worker is idle again", |s| {
            s.ready == 1 && s.checking == 0
        })
        .await;
        let worker = &status.worker_details[0];
        assert_eq!(worker.consecutive_health_failures, failures_after);
        let expected_state = if failures_after == 0 {
            WorkerState::Ready
        } else {
            WorkerState::Degraded
        };
        assert_eq!(worker.state, expected_state);
        assert_eq!(status.counters.replaced, 0);
    }
    // The third failure in a row removes it.
    let ping = next_ping(&mut old).await;
    assert_eq!(
        ping.python_error("RuntimeError", "event loop is wedged"),
        Delivery::Delivered
    );
    within(PATIENCE, "the failed worker is killed", old.killed()).await;
    assert!(
        !old.was_terminated(),
        "a failed worker is killed, not asked to stop"
    );
    let replacement = next_spawn(&mut spawns).await;
    assert_eq!(replacement.worker_id(), old.worker_id() + 1);
    let new = replacement.accept();
    let status = eventually(&pool, "the replacement is ready", |s| s.ready == 1).await;
    assert_eq!(status.workers, 1);
    assert_eq!(status.worker_details[0].id, new.worker_id());
    assert_eq!(status.worker_details[0].consecutive_health_failures, 0);
    assert_eq!(status.counters.replaced, 1);
    assert_eq!(status.counters.spawned, 2);
    assert_eq!(spawns.spawn_count(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_worker_busy_with_a_request_is_not_pinged() {
    let (pool, _spawns, workers) = scripted_pool(2, checked_every_10s(3)).await;
    let call = spawn_execute(&pool, "echo", json!({ "n": 1 }));
    let status = eventually(&pool, "one worker is busy", |s| s.busy == 1).await;
    let busy_id = busy_worker_id(&status);
    let (mut busy, mut idle): (Vec<_>, Vec<_>) =
        workers.into_iter().partition(|w| w.worker_id() == busy_id);
    let (mut busy, mut idle) = (busy.remove(0), idle.remove(0));
    let echo = next_request(&mut busy).await;
    assert_eq!(echo.command(), "echo");

    // Three intervals pass: the idle worker is pinged each time, the busy one never.
    for _ in 0..3 {
        let ping = next_ping(&mut idle).await;
        assert_eq!(ping.reply(json!({ "pong": true })), Delivery::Delivered);
        eventually(&pool, "the idle worker is back", |s| {
            s.ready == 1 && s.checking == 0
        })
        .await;
    }
    assert_eq!(busy.requests_seen(), 1, "only the request, no ping");
    assert!(busy.try_next_request().is_none());
    assert_eq!(pool.status().busy, 1);

    assert_eq!(echo.reply(json!({ "n": 1 })), Delivery::Delivered);
    assert_eq!(call.await.unwrap().unwrap(), json!({ "n": 1 }));
    // Idle now, so the next round pings it.
    let ping = next_ping(&mut busy).await;
    assert_eq!(ping.reply(json!({ "pong": true })), Delivery::Delivered);
}

#[tokio::test(start_paused = true)]
async fn a_hung_ping_counts_as_a_failure_and_its_worker_is_not_lent_meanwhile() {
    let (pool, _spawns, mut workers) = scripted_pool(1, checked_every_10s(3)).await;
    let ping = next_ping(&mut workers[0]).await;

    // A request arrives while the ping is pending: it must wait.
    let call = spawn_execute(&pool, "echo", json!({ "n": 1 }));
    eventually(&pool, "the request waits in the queue", |s| {
        s.queue_len == 1 && s.checking == 1
    })
    .await;

    // Past the health-check timeout (5 s): one failure, still not lent.
    tokio::time::advance(Duration::from_secs(6)).await;
    let status = eventually(&pool, "the hung ping counts as a failure", |s| {
        s.worker_details[0].consecutive_health_failures == 1
    })
    .await;
    assert_eq!(status.worker_details[0].state, WorkerState::Degraded);
    assert_eq!(status.queue_len, 1);
    assert!(workers[0].try_next_request().is_none());
    assert_eq!(workers[0].requests_seen(), 1, "only the ping was sent");
    assert!(!call.is_finished());

    // The late answer frees the worker; the waiting request gets it.
    assert_eq!(ping.reply(json!({ "pong": true })), Delivery::Delivered);
    let echo = next_request(&mut workers[0]).await;
    assert_eq!(echo.command(), "echo");
    assert_eq!(echo.reply(json!({ "n": 1 })), Delivery::Delivered);
    assert_eq!(call.await.unwrap().unwrap(), json!({ "n": 1 }));
    assert_eq!(pool.status().counters.replaced, 0);
}

#[tokio::test(start_paused = true)]
async fn a_ping_that_never_answers_gets_its_worker_killed_and_replaced() {
    let (pool, mut spawns, mut workers) = scripted_pool(1, checked_every_10s(3)).await;
    let start = Instant::now();
    let ping = next_ping(&mut workers[0]).await;
    ping.hang();
    // Health-check timeout (5 s), then up to the request deadline (60 s) for the late reply.
    within(PATIENCE, "the failed worker is killed", workers[0].killed()).await;
    assert_eq!(start.elapsed(), Duration::from_secs(10 + 5 + 60));
    let new = accept_spawn(&mut spawns).await;
    let status = eventually(&pool, "the replacement is ready", |s| s.ready == 1).await;
    assert_eq!(status.worker_details[0].id, new.worker_id());
    assert_eq!(status.counters.replaced, 1);
}

#[tokio::test(start_paused = true)]
async fn a_hung_ping_that_reaches_the_threshold_replaces_the_worker_at_once() {
    let (pool, mut spawns, mut workers) = scripted_pool(1, checked_every_10s(1)).await;
    let start = Instant::now();
    let ping = next_ping(&mut workers[0]).await;
    ping.hang();
    // The worker will never be lent again: no point waiting for a late reply.
    within(PATIENCE, "the failed worker is killed", workers[0].killed()).await;
    assert_eq!(start.elapsed(), Duration::from_secs(10 + 5));
    let new = accept_spawn(&mut spawns).await;
    let status = eventually(&pool, "the replacement is ready", |s| s.ready == 1).await;
    assert_eq!(status.worker_details[0].id, new.worker_id());
    assert_eq!(status.counters.replaced, 1);
}
