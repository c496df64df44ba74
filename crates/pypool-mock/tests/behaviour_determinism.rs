//! Behaviour mode is reproducible: the same seed gives the same failures and latencies.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{request, spawn_request};
use pypool_mock::{Behaviour, LatencyDistribution, MockSpawner};
use pypool_seam::{Outcome, RemoteErrorKind, WorkerSpawner};
use tokio::time::Instant;

/// Which of `calls` sequential calls got an injected Python exception.
async fn failed_ids(behaviour: Behaviour, calls: u64) -> Vec<u64> {
    let spawner = MockSpawner::with_behaviour(behaviour).unwrap();
    let connection = spawner.spawn(spawn_request(1)).await.unwrap();
    let mut failed = Vec::new();
    for id in 1..=calls {
        match connection.call(request(id, "echo")).await.unwrap() {
            Outcome::Ok { .. } => {}
            Outcome::Error { error } => {
                assert_eq!(error.kind, RemoteErrorKind::PythonException);
                assert_eq!(error.exception_type.as_deref(), Some("RuntimeError"));
                failed.push(id);
            }
        }
    }
    assert_eq!(
        spawner.stats().python_errors_injected(),
        u64::try_from(failed.len()).unwrap()
    );
    failed
}

#[tokio::test]
async fn the_same_seed_fails_the_same_requests() {
    let behaviour = || Behaviour::default().failure_rate(0.2).seed(1234);
    let first = failed_ids(behaviour(), 1_000).await;
    let second = failed_ids(behaviour(), 1_000).await;
    assert_eq!(first, second);
    assert!(
        (150..=250).contains(&first.len()),
        "about 20% should fail, got {}",
        first.len()
    );
}

#[tokio::test]
async fn another_seed_fails_other_requests() {
    let first = failed_ids(Behaviour::default().failure_rate(0.2).seed(1), 1_000).await;
    let second = failed_ids(Behaviour::default().failure_rate(0.2).seed(2), 1_000).await;
    assert_ne!(first, second);
}

#[tokio::test]
async fn rates_zero_and_one_are_exact() {
    assert!(
        failed_ids(Behaviour::default().failure_rate(0.0), 200)
            .await
            .is_empty()
    );
    let all = failed_ids(Behaviour::default().failure_rate(1.0), 200).await;
    assert_eq!(all, (1..=200).collect::<Vec<_>>());
}

/// When each of `calls` sequential calls finished, relative to the first call.
async fn latencies(behaviour: Behaviour, calls: u64) -> Vec<Duration> {
    let spawner = MockSpawner::with_behaviour(behaviour).unwrap();
    let connection = spawner.spawn(spawn_request(1)).await.unwrap();
    let mut taken = Vec::new();
    for id in 1..=calls {
        let started = Instant::now();
        connection.call(request(id, "echo")).await.unwrap();
        taken.push(started.elapsed());
    }
    taken
}

#[tokio::test(start_paused = true)]
async fn uniform_latencies_are_reproducible_and_in_range() {
    let behaviour = || {
        Behaviour::default()
            .seed(99)
            .latency(LatencyDistribution::Uniform {
                min: Duration::from_millis(5),
                max: Duration::from_millis(50),
            })
    };
    let first = latencies(behaviour(), 100).await;
    assert_eq!(first, latencies(behaviour(), 100).await);
    assert!(
        first
            .iter()
            .all(|d| (Duration::from_millis(5)..Duration::from_millis(51)).contains(d))
    );
    let distinct: std::collections::BTreeSet<_> = first.iter().collect();
    assert!(distinct.len() > 10, "latencies should vary: {first:?}");
}

#[tokio::test(start_paused = true)]
async fn cycled_latencies_repeat_in_order() {
    let cycle = [3, 1, 2].map(Duration::from_millis).to_vec();
    let taken = latencies(
        Behaviour::default().latency(LatencyDistribution::Cycle(cycle)),
        6,
    )
    .await;
    assert_eq!(taken, [3, 1, 2, 3, 1, 2].map(Duration::from_millis));
}
