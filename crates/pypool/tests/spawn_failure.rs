//! Failure mode: workers cannot be started (interpreter missing, handler import failing).
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use pypool::{BreakerConfig, BreakerState, PoolError, SpawnError};
use pypool_mock::{MockSpawner, PendingSpawn};
use serde_json::json;
use support::scripted::{builder, serve};
use support::{NO_TIME, caller_error, spawn_execute, spawn_ready, status_until, within};
use tokio::time::Instant;

const RESET: Duration = Duration::from_secs(10);

fn interpreter_not_found(spawn: PendingSpawn) {
    spawn.fail(SpawnError::InterpreterNotFound {
        interpreter: "python3.99".to_owned(),
        source: Arc::new(io::Error::new(
            io::ErrorKind::NotFound,
            "No such file or directory",
        )),
    });
}

fn handler_import_fails(spawn: PendingSpawn) {
    spawn.startup_error(
        "handler_import",
        "ModuleNotFoundError: No module named 'nope'",
    );
}

fn assert_handler_import_error(error: &PoolError) {
    match error {
        PoolError::Spawn(SpawnError::StartupFailed {
            worker_id,
            kind,
            message,
            ..
        }) => {
            assert_eq!(*worker_id, 1);
            assert_eq!(kind, "handler_import");
            assert_eq!(message, "ModuleNotFoundError: No module named 'nope'");
        }
        other => panic!("expected the handler import error, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn ready_returns_the_spawn_error_at_once_not_a_timeout() {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let pool = builder(spawner, 1).build().unwrap();
    let started = Instant::now();
    let ready = spawn_ready(&pool);
    let spawn = within(NO_TIME, "the spawn", spawns.next_spawn())
        .await
        .unwrap();
    interpreter_not_found(spawn);

    let error = within(NO_TIME, "ready()", ready)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(started.elapsed(), Duration::ZERO);
    match &error {
        PoolError::Spawn(SpawnError::InterpreterNotFound {
            interpreter,
            source,
        }) => {
            assert_eq!(interpreter, "python3.99");
            assert_eq!(source.kind(), io::ErrorKind::NotFound);
        }
        other => panic!("expected InterpreterNotFound, got {other:?}"),
    }
    assert_eq!(error.kind(), "spawn");
    assert!(
        error
            .to_string()
            .starts_with("cannot start interpreter `python3.99`: "),
        "{error}"
    );
    let status = pool.status();
    assert_eq!(status.counters.spawn_failures, 1);
    assert_eq!(status.counters.spawned, 0);
}

#[tokio::test(start_paused = true)]
async fn requests_queued_while_spawning_fail_with_the_spawn_error() {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let pool = builder(spawner, 1).build().unwrap();
    let spawn = within(NO_TIME, "the spawn", spawns.next_spawn())
        .await
        .unwrap();
    let calls: Vec<_> = (0..3)
        .map(|n| spawn_execute(&pool, "work", json!({ "n": n })))
        .collect();
    status_until(&pool, "three queued requests", |status| {
        status.queue_len == 3
    })
    .await;
    assert_eq!(
        spawns.spawn_count(),
        1,
        "queued requests spawn no extra worker"
    );

    handler_import_fails(spawn);
    for call in calls {
        let error = caller_error(call).await;
        assert_handler_import_error(&error);
    }
    assert_handler_import_error(&pool.ready().await.unwrap_err());
    let status = pool.status();
    assert_eq!(status.queue_len, 0);
    assert_eq!(status.counters.requests_failed, 3);
    assert_eq!(status.counters.spawn_failures, 1);
}

#[tokio::test(start_paused = true)]
async fn the_spawn_breaker_paces_failing_spawns_and_a_good_probe_restores_the_pool() {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let pool = builder(spawner, 1)
        .spawn_breaker(BreakerConfig {
            consecutive_failures: 2,
            reset_timeout: RESET,
            ..BreakerConfig::default()
        })
        .build()
        .unwrap();

    // Fail every spawn for a minute of (paused) time, noting when each came.
    let window = Duration::from_secs(60);
    let started = Instant::now();
    let mut attempts = Vec::new();
    loop {
        let left = window.saturating_sub(started.elapsed());
        let Ok(spawn) = tokio::time::timeout(left, spawns.next_spawn()).await else {
            break;
        };
        attempts.push(started.elapsed());
        handler_import_fails(spawn.unwrap());
        if attempts.len() == 2 {
            let status = status_until(&pool, "the second failure recorded", |status| {
                status.counters.spawn_failures == 2
            })
            .await;
            assert_eq!(status.spawn_breaker, BreakerState::Open);
            assert_handler_import_error(&pool.ready().await.unwrap_err());
        }
    }

    // Without the breaker the backoff (capped at 2 s) would allow 30 or more
    // attempts a minute; with it, two quick ones, then one probe per reset timeout.
    let count = attempts.len();
    assert_eq!(spawns.spawn_count(), u64::try_from(count).unwrap());
    assert!(
        (3..=2 + 6).contains(&count),
        "spawn attempts in a minute: {attempts:?}"
    );
    assert!(attempts[1] < Duration::from_secs(1), "{attempts:?}");
    for pair in attempts[1..].windows(2) {
        assert!(
            pair[1] - pair[0] >= RESET,
            "probes closer than the reset timeout: {attempts:?}"
        );
    }
    let status = pool.status();
    assert_eq!(
        status.counters.spawn_failures,
        u64::try_from(count).unwrap()
    );
    assert_eq!(status.spawn_breaker, BreakerState::Open);

    // The next probe succeeds: the breaker closes and the pool serves again.
    let last_failure = *attempts.last().unwrap();
    let probe = within(RESET, "the next probe", spawns.next_spawn())
        .await
        .unwrap();
    assert!(started.elapsed() - last_failure >= RESET);
    let mut worker = probe.accept();
    let status = status_until(&pool, "the probe's worker to be ready", |status| {
        status.ready == 1
    })
    .await;
    pool.ready().await.unwrap();
    // Half-open until the probe's worker has proved itself with a request.
    assert_eq!(status.spawn_breaker, BreakerState::HalfOpen);
    assert_eq!((status.workers, status.ready), (1, 1));
    assert_eq!(status.counters.spawned, 1);

    serve(&pool, &mut worker, "work", json!({}), json!("back")).await;
    assert_eq!(pool.status().spawn_breaker, BreakerState::Closed);
}
