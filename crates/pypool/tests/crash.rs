//! Failure mode: a worker crashes (is killed by a signal) in the middle of a request.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::future::Future;
use std::time::Duration;

use pypool::{Pool, PoolBuilder, PoolError, WorkerExit, WorkerState};
use pypool_mock::{MockSpawner, SpawnHandle, WorkerHandle, command};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// Events the pool produces without any time passing.
const NO_TIME: Duration = Duration::from_millis(1);
/// Enough for a retry's backoff (at most 100 ms with the default recovery policy).
const BACKOFF: Duration = Duration::from_secs(1);

/// Awaits `future`, failing the test if it needs more than `budget` of tokio's (paused) time.
async fn within<F: Future>(budget: Duration, what: &str, future: F) -> F::Output {
    match tokio::time::timeout(budget, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what} did not happen within {budget:?}"),
    }
}

fn builder(spawner: MockSpawner, size: usize) -> PoolBuilder {
    Pool::builder()
        .size(size)
        .spawner(spawner)
        .health_check_interval(None)
}

/// Accepts the pool's next spawn and waits until that worker is idle in the pool.
async fn accept_next(pool: &Pool, spawns: &mut SpawnHandle) -> WorkerHandle {
    let spawn = within(NO_TIME, "a spawn", spawns.next_spawn()).await;
    let worker = spawn.unwrap().accept();
    let id = worker.worker_id();
    let ready = pool.wait_until(|status| {
        status
            .worker_details
            .iter()
            .any(|w| w.id == id && w.state == WorkerState::Ready)
    });
    within(NO_TIME, "the accepted worker to be ready", ready).await;
    worker
}

fn spawn_execute(
    pool: &Pool,
    command: &'static str,
    args: Value,
) -> JoinHandle<Result<Value, PoolError>> {
    let pool = pool.clone();
    tokio::spawn(async move { pool.execute(command, args).await })
}

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

    let error = within(NO_TIME, "the caller's answer", call)
        .await
        .unwrap()
        .unwrap_err();
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
    let status = within(
        NO_TIME,
        "the pool back at full size",
        pool.wait_until(|status| status.ready == status.size),
    )
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

    let replacement = within(NO_TIME, "the replacement spawn", spawns.next_spawn())
        .await
        .unwrap();
    assert_eq!(replacement.worker_id(), 3);
    let _replacement = replacement.accept();
    let status = within(
        NO_TIME,
        "the pool back at full size",
        pool.wait_until(|status| status.ready == 2),
    )
    .await;
    let ids: Vec<_> = status.worker_details.iter().map(|w| w.id).collect();
    assert_eq!(ids, [2, 3]);
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

    let error = within(NO_TIME, "the caller's answer", call)
        .await
        .unwrap()
        .unwrap_err();
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

#[tokio::test(start_paused = true)]
async fn retries_stop_after_the_recovery_budget() {
    // Every attempt crashes its worker: the default policy allows 3 attempts in all.
    let (spawner, mut spawns) = MockSpawner::scripted();
    let pool = builder(spawner, 3).idempotent("work").build().unwrap();
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(accept_next(&pool, &mut spawns).await);
    }

    let call = spawn_execute(&pool, "work", Value::Null);
    let mut request_ids = Vec::new();
    for worker in &mut workers {
        let pending = within(BACKOFF, "an attempt", worker.next_request())
            .await
            .unwrap();
        request_ids.push(pending.id());
        assert!(pending.crash(WorkerExit::signal(9)));
    }

    let error = within(NO_TIME, "the caller's answer", call)
        .await
        .unwrap()
        .unwrap_err();
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
