//! Failure mode: a worker crashes (is killed by a signal) in the middle of a request.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use pypool::{Pool, PoolError, WorkerExit};
use pypool_mock::{MockSpawner, SpawnHandle, WorkerHandle, command};
use serde_json::{Value, json};
use support::scripted::{accept_next, builder, refill};
use support::{NO_TIME, caller_error, spawn_execute, status_until, within, worker_ids};

/// Enough for a retry's backoff (at most 100 ms with the default recovery policy).
const BACKOFF: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn a_crash_mid_request_fails_the_caller_and_the_worker_is_replaced() {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let pool = builder(spawner, 1).build().unwrap();
    let mut worker = accept_next(&pool, &mut spawns).await;
    assert_eq!(worker.worker_id(), 1);

    let call = spawn_execute(&pool, "work", json!({ "n": 1 }));
    let pending = within(NO_TIME, "the request", worker.next_request())
        .await
        .unwrap();
    assert_eq!(pending.command(), "work");
    let request_id = pending.id();
    assert!(pending.crash(WorkerExit::signal(9)));

    let error = caller_error(call).await;
    match &error {
        PoolError::WorkerExited {
            worker_id,
            command,
            request_id: failed,
            exit,
        } => {
            assert_eq!(*worker_id, 1);
            assert_eq!(command, "work");
            assert_eq!(*failed, request_id);
            assert_eq!(*exit, WorkerExit::signal(9));
        }
        other => panic!("expected WorkerExited, got {other:?}"),
    }
    assert_eq!(error.kind(), "worker_exited");
    assert_eq!(
        error.to_string(),
        format!("worker 1 was killed by signal 9 while running `work` (request {request_id})")
    );

    // The replacement is spawned in the background, without any request asking for it.
    let replacement = within(NO_TIME, "the replacement spawn", spawns.next_spawn())
        .await
        .unwrap();
    assert_eq!(replacement.worker_id(), 2);
    let status = pool.status();
    assert_eq!((status.workers, status.starting, status.ready), (1, 1, 0));
    assert!(status.worker_details.iter().all(|w| w.id != 1));

    let mut replacement = replacement.accept();
    let status = status_until(&pool, "the pool back at full size", |status| {
        status.ready == status.size
    })
    .await;
    assert_eq!((status.workers, status.ready, status.busy), (1, 1, 0));
    assert_eq!(status.counters.replaced, 1);
    assert_eq!(status.counters.spawned, 2);
    assert_eq!(status.counters.requests_failed, 1);
    assert_eq!(status.counters.retries, 0);

    // The replacement serves; the dead worker never sees another request.
    let call = spawn_execute(&pool, "work", json!({ "n": 2 }));
    let pending = within(NO_TIME, "the next request", replacement.next_request())
        .await
        .unwrap();
    assert_eq!(pending.request().args["n"], json!(2));
    let _ = pending.reply(json!("done"));
    assert_eq!(call.await.unwrap().unwrap(), json!("done"));
    assert_eq!(worker.requests_seen(), 1);
    assert!(worker.next_request().await.is_none());
    assert_eq!(pool.status().counters.requests_ok, 1);
}

/// Two workers, 1 then 2 in the idle queue; the command crashes worker 1 and
/// must be retried, and succeed, on worker 2.
async fn crashed_idempotent_command_is_retried(pool: Pool, mut spawns: SpawnHandle) {
    let mut first = accept_next(&pool, &mut spawns).await;
    let mut second = accept_next(&pool, &mut spawns).await;
    assert_eq!((first.worker_id(), second.worker_id()), (1, 2));

    let call = spawn_execute(&pool, "work", json!({ "n": 7 }));
    let pending = within(NO_TIME, "the first attempt", first.next_request())
        .await
        .unwrap();
    let first_id = pending.id();
    assert!(pending.crash(WorkerExit::signal(9)));

    let retried = within(
        BACKOFF,
        "the retry on the other worker",
        second.next_request(),
    )
    .await
    .unwrap();
    assert_eq!(retried.command(), "work");
    assert_eq!(retried.request().args["n"], json!(7));
    assert_ne!(retried.id(), first_id);
    let _ = retried.reply(json!({ "served_by": 2 }));

    let result = within(NO_TIME, "the caller's answer", call).await.unwrap();
    assert_eq!(result.unwrap(), json!({ "served_by": 2 }));
    assert_eq!((first.requests_seen(), second.requests_seen()), (1, 1));

    let (replacement, status) = refill(&pool, &mut spawns, 2).await;
    assert_eq!(replacement.worker_id(), 3);
    assert_eq!(worker_ids(&status), [2, 3]);
    assert_eq!(status.counters.retries, 1);
    assert_eq!(status.counters.replaced, 1);
    assert_eq!(status.counters.requests_ok, 1);
    assert_eq!(status.counters.requests_failed, 0);
}

#[tokio::test(start_paused = true)]
async fn a_command_declared_idempotent_on_the_builder_is_retried_on_another_worker() {
    let (spawner, spawns) = MockSpawner::scripted();
    let pool = builder(spawner, 2).idempotent("work").build().unwrap();
    crashed_idempotent_command_is_retried(pool, spawns).await;
}

#[tokio::test(start_paused = true)]
async fn a_command_declared_idempotent_in_the_handshake_is_retried_on_another_worker() {
    let (spawner, spawns) = MockSpawner::scripted_with_commands([command("work", true)]);
    let pool = builder(spawner, 2).build().unwrap();
    crashed_idempotent_command_is_retried(pool, spawns).await;
}

#[tokio::test(start_paused = true)]
async fn a_non_idempotent_command_that_crashes_is_not_retried() {
    let (spawner, mut spawns) = MockSpawner::scripted_with_commands([command("work", false)]);
    let pool = builder(spawner, 2).build().unwrap();
    let mut first = accept_next(&pool, &mut spawns).await;
    let mut second = accept_next(&pool, &mut spawns).await;

    let call = spawn_execute(&pool, "work", json!({ "n": 1 }));
    let pending = within(NO_TIME, "the request", first.next_request())
        .await
        .unwrap();
    let request_id = pending.id();
    assert!(pending.crash(WorkerExit::signal(9)));

    let error = caller_error(call).await;
    assert!(
        matches!(
            &error,
            PoolError::WorkerExited { worker_id: 1, request_id: failed, .. } if *failed == request_id
        ),
        "expected WorkerExited on worker 1, got {error:?}"
    );
    // The caller has its answer, so no retry can still be on its way.
    assert_eq!(second.requests_seen(), 0);
    assert!(second.try_next_request().is_none());
    let status = pool.status();
    assert_eq!(status.counters.retries, 0);
    assert_eq!(status.counters.replaced, 1);
    assert_eq!(status.counters.requests_failed, 1);
    // The surviving worker is untouched and still idle.
    assert_eq!(status.ready, 1);
    assert!(!second.was_killed());
}

/// A pool of three ready workers, `work` declared idempotent.
async fn three_workers_serving_idempotent_work() -> (Pool, Vec<WorkerHandle>, SpawnHandle) {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let pool = builder(spawner, 3).idempotent("work").build().unwrap();
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(accept_next(&pool, &mut spawns).await);
    }
    (pool, workers, spawns)
}

#[tokio::test(start_paused = true)]
async fn retries_stop_after_the_recovery_budget() {
    // Every attempt crashes its worker: the default policy allows 3 attempts in all.
    let (pool, mut workers, _spawns) = three_workers_serving_idempotent_work().await;

    let call = spawn_execute(&pool, "work", Value::Null);
    let mut request_ids = Vec::new();
    for worker in &mut workers {
        let pending = within(BACKOFF, "an attempt", worker.next_request())
            .await
            .unwrap();
        request_ids.push(pending.id());
        assert!(pending.crash(WorkerExit::signal(9)));
    }

    let error = caller_error(call).await;
    assert!(
        matches!(&error, PoolError::WorkerExited { worker_id: 3, request_id, .. } if *request_id == request_ids[2]),
        "expected the last attempt's crash, got {error:?}"
    );
    request_ids.dedup();
    assert_eq!(request_ids.len(), 3, "each attempt is a new request");
    let status = pool.status();
    assert_eq!(status.counters.retries, 2);
    assert_eq!(status.counters.replaced, 3);
    assert_eq!(status.counters.requests_failed, 1);
    assert_eq!(status.starting, 3, "all three workers are being replaced");
}

#[tokio::test(start_paused = true)]
async fn the_retry_after_a_crash_goes_at_once_and_a_second_crash_backs_off() {
    // A crash removes its worker, so the first retry cannot meet it again:
    // it goes without delay (on the paused clock, no time passes). If the
    // retry's worker crashes too, the next retry backs off (the default
    // policy: 100 ms after attempt 2, equal jitter: at least 50 ms).
    let (pool, mut workers, _spawns) = three_workers_serving_idempotent_work().await;
    let call = spawn_execute(&pool, "work", Value::Null);
    let first = within(NO_TIME, "the first attempt", workers[0].next_request())
        .await
        .unwrap();
    let crashed = tokio::time::Instant::now();
    assert!(first.crash(WorkerExit::signal(9)));

    let second = within(BACKOFF, "the retry", workers[1].next_request())
        .await
        .unwrap();
    assert_eq!(
        crashed.elapsed(),
        Duration::ZERO,
        "the first retry after a crash waited"
    );
    let crashed_again = tokio::time::Instant::now();
    assert!(second.crash(WorkerExit::signal(9)));

    let third = within(BACKOFF, "the second retry", workers[2].next_request())
        .await
        .unwrap();
    assert!(
        crashed_again.elapsed() >= Duration::from_millis(50),
        "the second retry went after {:?}, without backing off",
        crashed_again.elapsed()
    );
    let _ = third.reply(json!("done"));
    assert_eq!(call.await.unwrap().unwrap(), json!("done"));
}
