//! The pool as a `tower::Service` (feature `tower`): readiness follows the
//! queue, and the service composes with tower's layers.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use futures::FutureExt;
use pypool::{PoolError, PoolRequest, PoolService, ProgramSpec};
use pypool_mock::MockSpawner;
use serde_json::json;
use support::scripted::{accept_next, builder};
use support::{NO_TIME, fake_pool, served_by, spawn_execute, status_until, within};
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};

#[tokio::test(start_paused = true)]
async fn poll_ready_is_pending_while_the_queue_is_full_and_ready_once_it_has_room() {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let pool = builder(spawner, 1).queue_bound(1).build().unwrap();
    let mut worker = accept_next(&pool, &mut spawns).await;
    let mut service = PoolService::new(pool.clone());

    // An idle worker: ready.
    assert!(matches!(service.ready().now_or_never(), Some(Ok(_))));
    let status = pool.status();
    assert_eq!(status.queue_bound, 1);

    // The worker busy, nothing queued: a request would still queue, ready.
    let hold = spawn_execute(&pool, "hold", json!({}));
    let held = within(NO_TIME, "the holding request", worker.next_request())
        .await
        .unwrap();
    assert!(matches!(service.ready().now_or_never(), Some(Ok(_))));

    // One request queued, the bound reached: pending.
    let queued = spawn_execute(&pool, "queued", json!({}));
    status_until(&pool, "the request to queue", |status| {
        status.queue_len == 1
    })
    .await;
    let mut ready = Box::pin(async { service.ready().await.map(|_| ()) });
    assert!(
        (&mut ready).now_or_never().is_none(),
        "a full queue must make poll_ready wait"
    );

    // The worker frees up and takes the queued request: room again, and the
    // waiting poll_ready is woken.
    let _ = held.reply(json!("held"));
    within(NO_TIME, "readiness after the queue drained", &mut ready)
        .await
        .unwrap();
    drop(ready);
    let pending = within(NO_TIME, "the queued request", worker.next_request())
        .await
        .unwrap();
    let _ = pending.reply(json!("queued"));
    assert_eq!(hold.await.unwrap().unwrap(), json!("held"));
    assert_eq!(queued.await.unwrap().unwrap(), json!("queued"));

    // A command request through the service reaches the worker.
    let call = tokio::spawn(
        service
            .ready()
            .await
            .unwrap()
            .call(PoolRequest::command("echo", json!({ "x": 1 }))),
    );
    let request = within(NO_TIME, "the service's request", worker.next_request())
        .await
        .unwrap();
    assert_eq!(request.command(), "echo");
    assert_eq!(request.request().args["x"], json!(1));
    let _ = request.reply(json!({ "echoed": 1 }));
    assert_eq!(call.await.unwrap().unwrap(), json!({ "echoed": 1 }));

    // A pool shutting down makes readiness fail.
    pool.shutdown(Duration::from_secs(1)).await;
    let error = service.ready().await.unwrap_err();
    assert!(matches!(error, PoolError::ShuttingDown { .. }), "{error:?}");
}

#[tokio::test(start_paused = true)]
async fn load_shed_and_timeout_layers_compose_with_the_pool() {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let pool = builder(spawner, 1).queue_bound(1).build().unwrap();
    let mut worker = accept_next(&pool, &mut spawns).await;
    let deadline = Duration::from_secs(5);
    let mut service = ServiceBuilder::new()
        .load_shed()
        .timeout(deadline)
        .service(PoolService::new(pool.clone()));

    // A request the worker never answers: the timeout layer ends it.
    let started = tokio::time::Instant::now();
    let slow = tokio::spawn(
        service
            .ready()
            .await
            .unwrap()
            .call(PoolRequest::command("slow", json!({}))),
    );
    let never_answered = within(NO_TIME, "the slow request", worker.next_request())
        .await
        .unwrap();
    assert_eq!(never_answered.command(), "slow");
    let error: BoxError = slow.await.unwrap().unwrap_err();
    assert!(
        error.is::<tower::timeout::error::Elapsed>(),
        "expected the timeout layer's Elapsed, got {error}"
    );
    assert_eq!(started.elapsed(), deadline);

    // The worker still runs that request; fill the queue behind it.
    let queued = spawn_execute(&pool, "queued", json!({}));
    status_until(&pool, "the request to queue", |status| {
        status.queue_len == 1
    })
    .await;

    // Full queue: the load-shed layer refuses at once, the pool never sees it.
    let seen_before = worker.requests_seen();
    let shed_at = tokio::time::Instant::now();
    let error: BoxError = service
        .ready()
        .await
        .unwrap()
        .call(PoolRequest::command("shed", json!({})))
        .await
        .unwrap_err();
    assert!(
        error.is::<tower::load_shed::error::Overloaded>(),
        "expected load shedding, got {error}"
    );
    assert_eq!(shed_at.elapsed(), Duration::ZERO);
    assert_eq!(worker.requests_seen(), seen_before);
    assert_eq!(
        pool.status().counters.requests_failed,
        0,
        "shed before the pool"
    );

    // Once the worker answers, the queue drains and the service serves again.
    let _ = never_answered.reply(json!("late"));
    let pending = within(NO_TIME, "the queued request", worker.next_request())
        .await
        .unwrap();
    let _ = pending.reply(json!("queued"));
    assert_eq!(queued.await.unwrap().unwrap(), json!("queued"));
    let call = tokio::spawn(
        service
            .ready()
            .await
            .unwrap()
            .call(PoolRequest::command("after", json!({}))),
    );
    let request = within(NO_TIME, "the next request", worker.next_request())
        .await
        .unwrap();
    let _ = request.reply(json!("served"));
    assert_eq!(call.await.unwrap().unwrap(), json!("served"));
}

#[tokio::test(start_paused = true)]
async fn a_concurrency_limit_layer_holds_callers_back_while_the_pool_has_room() {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let pool = builder(spawner, 2).build().unwrap();
    let mut first_worker = accept_next(&pool, &mut spawns).await;
    let mut second_worker = accept_next(&pool, &mut spawns).await;
    let limited = ServiceBuilder::new()
        .concurrency_limit(1)
        .service(PoolService::new(pool.clone()));

    // Clones share the limit: one request in flight holds the other back.
    let mut first = limited.clone();
    let mut second = limited;
    let call = tokio::spawn(
        first
            .ready()
            .await
            .unwrap()
            .call(PoolRequest::command("one", json!({}))),
    );
    let mut workers = [&mut first_worker, &mut second_worker];
    let request = within(NO_TIME, "the first request", async {
        loop {
            for worker in workers.iter_mut() {
                if let Some(request) = worker.next_request().now_or_never() {
                    return request.unwrap();
                }
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(pool.status().ready, 1, "the pool itself has room");
    let mut waiting = Box::pin(async { second.ready().await.map(|_| ()) });
    assert!(
        (&mut waiting).now_or_never().is_none(),
        "the concurrency limit must hold the second caller"
    );

    let _ = request.reply(json!("one"));
    assert_eq!(call.await.unwrap().unwrap(), json!("one"));
    within(NO_TIME, "the second caller's turn", &mut waiting)
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_program_request_runs_the_global_program() {
    let (pool, _spawns, runtime) = fake_pool(1).await;
    pool.create_program("p", ProgramSpec::python("mod:func"))
        .await
        .unwrap();
    let result = PoolService::new(pool.clone())
        .oneshot(PoolRequest::program("p", json!({ "n": 7 })))
        .await
        .unwrap();
    assert_eq!(served_by(&result), runtime.workers()[0]);
    let calls = runtime.program_calls(runtime.workers()[0]);
    assert_eq!(calls.len(), 1, "{calls:?}");
}
