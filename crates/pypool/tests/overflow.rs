//! `max_overflow`: under a burst the pool grows past its size by at most
//! `max_overflow` workers, and the extra workers retire once idle.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use pypool::Pool;
use pypool_mock::{Behaviour, MockSpawner};
use serde_json::json;
use support::{PATIENCE, spawn_execute, within};

/// A pool of `size` mock workers answering after one (paused) second.
fn slow_pool(size: usize, max_overflow: usize) -> (Pool, pypool_mock::BehaviourStats) {
    let spawner =
        MockSpawner::with_behaviour(Behaviour::default().fixed_latency(Duration::from_secs(1)))
            .unwrap();
    let stats = spawner.stats();
    let pool = Pool::builder()
        .size(size)
        .max_overflow(max_overflow)
        .health_check_interval(None)
        .spawner(spawner)
        .build()
        .unwrap();
    (pool, stats)
}

#[tokio::test(start_paused = true)]
async fn a_burst_grows_the_pool_by_at_most_max_overflow_and_the_extra_workers_retire() {
    let (pool, stats) = slow_pool(1, 2);
    within(PATIENCE, "the first worker", pool.ready())
        .await
        .unwrap();
    let burst: Vec<_> = (0..8)
        .map(|n| spawn_execute(&pool, "echo", json!({ "n": n })))
        .collect();
    let grown = within(
        PATIENCE,
        "three workers (size 1 + overflow 2)",
        pool.wait_until(|status| status.workers == 3),
    )
    .await;
    assert_eq!(grown.max_overflow, 2);
    for call in burst {
        within(PATIENCE, "a burst request", call)
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(stats.spawns(), 3, "size + max_overflow workers, no more");
    let settled = within(
        PATIENCE,
        "the overflow workers retiring",
        pool.wait_until(|status| status.workers == 1 && status.retiring == 0),
    )
    .await;
    assert_eq!(settled.ready, 1);
    assert_eq!(
        stats.spawns(),
        3,
        "retiring overflow workers are not replaced"
    );
}

#[tokio::test(start_paused = true)]
async fn without_overflow_a_burst_waits_for_the_pool_s_own_workers() {
    let (pool, stats) = slow_pool(1, 0);
    within(PATIENCE, "the first worker", pool.ready())
        .await
        .unwrap();
    let burst: Vec<_> = (0..4)
        .map(|n| spawn_execute(&pool, "echo", json!({ "n": n })))
        .collect();
    for call in burst {
        within(PATIENCE, "a burst request", call)
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(stats.spawns(), 1, "no overflow worker without max_overflow");
    assert_eq!(pool.status().workers, 1);
}
