//! Failure mode: a spawned worker never sends its handshake (handshake timeout).
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use pypool::{BreakerConfig, BreakerState, PoolBuilder, PoolError, SpawnError, Timeouts};
use pypool_mock::MockSpawner;
use serde_json::json;
use support::scripted::{self, serve};
use support::{NO_TIME, spawn_ready, status_until, within};
use tokio::time::Instant;

const HANDSHAKE: Duration = Duration::from_secs(1);
/// Enough for the backoff between two spawn attempts (at most 100 ms by default).
const BACKOFF: Duration = Duration::from_secs(1);

fn builder(spawner: MockSpawner) -> PoolBuilder {
    scripted::builder(spawner, 1).timeouts(Timeouts {
        spawn: HANDSHAKE,
        ..Timeouts::default()
    })
}

fn assert_handshake_timeout(error: &PoolError) {
    match error {
        PoolError::Spawn(SpawnError::HandshakeTimeout {
            worker_id, timeout, ..
        }) => {
            assert_eq!(*worker_id, 1);
            assert_eq!(*timeout, HANDSHAKE);
        }
        other => panic!("expected a handshake timeout, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_worker_fails_its_spawn_after_the_handshake_timeout_and_the_pool_retries() {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let pool = builder(spawner).build().unwrap();
    let started = Instant::now();
    let ready = spawn_ready(&pool);

    let silent = within(NO_TIME, "the first spawn", spawns.next_spawn())
        .await
        .unwrap();
    assert_eq!(silent.worker_id(), 1);
    assert_eq!(silent.request().handshake_timeout, HANDSHAKE);
    silent.hang();

    let error = within(HANDSHAKE * 2, "ready()", ready)
        .await
        .unwrap()
        .unwrap_err();
    assert_handshake_timeout(&error);
    let waited = started.elapsed();
    assert!(
        waited >= HANDSHAKE && waited < HANDSHAKE + Duration::from_millis(10),
        "the handshake timeout fired after {waited:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("worker 1 sent no handshake within 1s; it was killed"),
        "{error}"
    );
    assert_eq!(pool.status().counters.spawn_failures, 1);

    // The pool tries again on its own, and this time the worker answers.
    let retry = within(BACKOFF, "the retried spawn", spawns.next_spawn())
        .await
        .unwrap();
    assert_eq!(retry.request().handshake_timeout, HANDSHAKE);
    assert_eq!(spawns.spawn_count(), 2);
    let mut worker = retry.accept();
    let status = status_until(&pool, "the retried worker to be ready", |status| {
        status.ready == 1
    })
    .await;
    assert_eq!(status.counters.spawned, 1);
    assert_eq!(status.counters.spawn_failures, 1);
    pool.ready().await.unwrap();

    serve(&pool, &mut worker, "work", json!({}), json!("served")).await;
}

#[tokio::test(start_paused = true)]
async fn handshake_timeouts_count_as_spawn_failures_for_the_spawn_breaker() {
    let reset = Duration::from_secs(10);
    let (spawner, mut spawns) = MockSpawner::scripted();
    let pool = builder(spawner)
        .spawn_breaker(BreakerConfig {
            consecutive_failures: 2,
            reset_timeout: reset,
            ..BreakerConfig::default()
        })
        .build()
        .unwrap();

    for attempt in 1..=2 {
        let spawn = within(BACKOFF, "a spawn", spawns.next_spawn())
            .await
            .unwrap();
        spawn.hang();
        let failed = pool.wait_until(|status| status.counters.spawn_failures == attempt);
        within(HANDSHAKE * 2, "the handshake timeout", failed).await;
    }
    let opened = Instant::now();
    assert_eq!(pool.status().spawn_breaker, BreakerState::Open);
    assert_handshake_timeout(&pool.ready().await.unwrap_err());

    // No spawn while the breaker is open; the probe comes after the reset timeout.
    let probe = within(reset + BACKOFF, "the probe spawn", spawns.next_spawn())
        .await
        .unwrap();
    assert!(
        opened.elapsed() >= reset,
        "probed after {:?}",
        opened.elapsed()
    );
    assert_eq!(spawns.spawn_count(), 3);
    let mut worker = probe.accept();
    let status = status_until(&pool, "the probe's worker to be ready", |status| {
        status.ready == 1
    })
    .await;
    // A handshake alone does not close the breaker: the probe worker must
    // prove itself by completing a request (or a health check).
    assert_eq!(status.spawn_breaker, BreakerState::HalfOpen);
    pool.ready().await.unwrap();
    serve(&pool, &mut worker, "work", json!({}), json!("served")).await;
    assert_eq!(pool.status().spawn_breaker, BreakerState::Closed);
}
