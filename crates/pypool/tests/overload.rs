//! Failure mode: more requests than workers (queue full, FIFO order, checkout timeout).
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use pypool::{Pool, PoolError, Timeouts};
use pypool_mock::MockSpawner;
use serde_json::{Value, json};
use support::scripted::{accept_next, builder};
use support::{NO_TIME, spawn_execute, status_until, within};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Starts a request and waits until it sits in the queue, `queued` deep.
async fn enqueue(pool: &Pool, n: u64, queued: usize) -> JoinHandle<Result<Value, PoolError>> {
    let call = spawn_execute(pool, "queued", json!({ "n": n }));
    status_until(pool, "the request to queue", |status| {
        status.queue_len == queued
    })
    .await;
    call
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_at_once_and_queued_requests_are_served_in_fifo_order() {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let pool = builder(spawner, 1).queue_bound(2).build().unwrap();
    let mut worker = accept_next(&pool, &mut spawns).await;

    // Occupy the only worker.
    let hold = spawn_execute(&pool, "hold", json!({}));
    let held = within(NO_TIME, "the holding request", worker.next_request())
        .await
        .unwrap();
    assert_eq!(held.command(), "hold");

    let first = enqueue(&pool, 1, 1).await;
    let second = enqueue(&pool, 2, 2).await;

    let refused_at = Instant::now();
    let refused = within(
        NO_TIME,
        "the refusal",
        pool.execute("queued", json!({ "n": 3 })),
    )
    .await
    .unwrap_err();
    assert_eq!(refused_at.elapsed(), Duration::ZERO);
    assert!(
        matches!(
            refused,
            PoolError::Overloaded {
                queued: 2,
                bound: 2
            }
        ),
        "expected Overloaded {{ queued: 2, bound: 2 }}, got {refused:?}"
    );
    assert_eq!(refused.kind(), "overloaded");
    let status = pool.status();
    assert_eq!(status.queue_len, 2);
    assert_eq!(
        status.workers, 1,
        "a full queue grows no worker beyond size"
    );
    assert_eq!(spawns.spawn_count(), 1);
    assert_eq!(
        worker.requests_seen(),
        1,
        "the refused request never reached a worker"
    );

    // Free the worker: the queued requests reach it in the order they came.
    let _ = held.reply(json!("held"));
    let mut arrived = Vec::new();
    for _ in 0..2 {
        let pending = within(NO_TIME, "a queued request", worker.next_request())
            .await
            .unwrap();
        assert_eq!(pending.command(), "queued");
        let n = pending.request().args["n"].clone();
        arrived.push(n.clone());
        let _ = pending.reply(json!({ "n": n }));
    }
    assert_eq!(arrived, [json!(1), json!(2)]);
    assert_eq!(hold.await.unwrap().unwrap(), json!("held"));
    assert_eq!(first.await.unwrap().unwrap(), json!({ "n": 1 }));
    assert_eq!(second.await.unwrap().unwrap(), json!({ "n": 2 }));
    let status = pool.status();
    assert_eq!(status.queue_len, 0);
    assert_eq!(status.counters.requests_ok, 3);
    assert_eq!(status.counters.requests_failed, 1);
    assert_eq!(worker.requests_seen(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_request_that_waits_past_the_checkout_timeout_fails_with_checkout_timeout() {
    let checkout = Duration::from_secs(3);
    let (spawner, mut spawns) = MockSpawner::scripted();
    let pool = builder(spawner, 1)
        .timeouts(Timeouts {
            checkout,
            ..Timeouts::default()
        })
        .build()
        .unwrap();
    let mut worker = accept_next(&pool, &mut spawns).await;

    let hold = spawn_execute(&pool, "hold", json!({}));
    let held = within(NO_TIME, "the holding request", worker.next_request())
        .await
        .unwrap();

    let started = Instant::now();
    let late = enqueue(&pool, 1, 1).await;
    let error = within(checkout * 2, "the checkout timeout", late)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(started.elapsed(), checkout);
    match &error {
        PoolError::CheckoutTimeout { command, waited } => {
            assert_eq!(command, "queued");
            assert_eq!(*waited, checkout);
        }
        other => panic!("expected CheckoutTimeout, got {other:?}"),
    }
    assert_eq!(error.kind(), "checkout_timeout");
    let status = status_until(
        &pool,
        "the timed-out request to leave the queue",
        |status| status.queue_len == 0,
    )
    .await;
    assert_eq!(status.busy, 1);
    assert!(!worker.was_killed(), "a checkout timeout costs no worker");

    // The timed-out request never reaches the worker; the next one does.
    let _ = held.reply(json!("held"));
    assert_eq!(hold.await.unwrap().unwrap(), json!("held"));
    let next = spawn_execute(&pool, "next", json!({}));
    let pending = within(NO_TIME, "the next request", worker.next_request())
        .await
        .unwrap();
    assert_eq!(pending.command(), "next");
    let _ = pending.reply(json!("ok"));
    assert_eq!(next.await.unwrap().unwrap(), json!("ok"));
    assert_eq!(worker.requests_seen(), 2);
    let counters = pool.status().counters;
    assert_eq!((counters.requests_ok, counters.requests_failed), (2, 1));
}
