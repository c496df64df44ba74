//! `min_ready`: `Pool::ready` resolves once that many workers are up, while
//! the others are still starting; by default it waits for all of them.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use pypool::Pool;
use pypool_mock::MockSpawner;
use support::{NO_TIME, PATIENCE, spawn_ready, within};

#[tokio::test(start_paused = true)]
async fn ready_resolves_once_min_ready_workers_are_up() {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let pool = Pool::builder()
        .size(3)
        .min_ready(1)
        .health_check_interval(None)
        .spawner(spawner)
        .build()
        .unwrap();
    let ready = spawn_ready(&pool);
    let mut pending = Vec::new();
    for _ in 0..3 {
        pending.push(
            within(PATIENCE, "a spawn", spawns.next_spawn())
                .await
                .unwrap(),
        );
    }
    // One worker answers; the two others are still starting.
    let first = pending.remove(0).accept();
    within(NO_TIME, "ready() with one of three workers up", ready)
        .await
        .unwrap()
        .unwrap();
    let status = pool.status();
    assert_eq!(status.ready, 1);
    assert_eq!(status.workers, 3, "the other two are still starting");
    drop((first, pending));
}

#[tokio::test(start_paused = true)]
async fn without_min_ready_ready_waits_for_every_worker() {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let pool = Pool::builder()
        .size(3)
        .health_check_interval(None)
        .timeouts(pypool::Timeouts {
            spawn: Duration::from_secs(3600),
            ..pypool::Timeouts::default()
        })
        .spawner(spawner)
        .build()
        .unwrap();
    let ready = spawn_ready(&pool);
    let mut workers = Vec::new();
    let mut pending = Vec::new();
    for _ in 0..3 {
        pending.push(
            within(PATIENCE, "a spawn", spawns.next_spawn())
                .await
                .unwrap(),
        );
    }
    workers.push(pending.remove(0).accept());
    // A minute of paused time with one of three up: still not ready.
    let early = tokio::time::timeout(Duration::from_secs(60), pool.ready()).await;
    assert!(early.is_err(), "ready() resolved with 1 of 3 workers up");
    assert!(!ready.is_finished());
    for spawn in pending {
        workers.push(spawn.accept());
    }
    within(NO_TIME, "ready() with all three up", ready)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pool.status().ready, 3);
}
