//! Behaviour mode under load: many workers, many calls, injected crashes.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{HANDSHAKE_TIMEOUT, ok_result, request, request_with, spawn_request};
use pypool_mock::{Behaviour, LatencyDistribution, MockSpawner};
use pypool_seam::{CallError, SpawnRequest, WorkerExit, WorkerSpawner};
use serde_json::json;
use tokio::time::Instant;

#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    worker_exited: u64,
    other: Vec<String>,
}

/// `workers` tasks, each owning one worker and calling it one request at a
/// time (like a pool that hands a worker to one caller at a time), share
/// `total` calls; a task replaces its worker when it dies.
async fn run_load(spawner: MockSpawner, workers: u64, total: u64) -> Tally {
    let issued = Arc::new(AtomicU64::new(0));
    let next_worker_id = Arc::new(AtomicU64::new(workers));
    let mut tasks = Vec::new();
    for worker_id in 0..workers {
        let spawner = spawner.clone();
        let issued = Arc::clone(&issued);
        let next_worker_id = Arc::clone(&next_worker_id);
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut connection = spawner.spawn(spawn_request(worker_id)).await.unwrap();
            let mut request_id = 0;
            while issued.fetch_add(1, Ordering::Relaxed) < total {
                request_id += 1;
                let args = json!({"n": request_id});
                match connection
                    .call(request_with(request_id, "echo", args))
                    .await
                {
                    Ok(outcome) => {
                        let result = ok_result(Ok(outcome));
                        assert_eq!(result["echo"]["n"], json!(request_id));
                        assert_eq!(result["worker_id"], json!(connection.worker_id()));
                        tally.ok += 1;
                    }
                    Err(CallError::WorkerExited {
                        worker_id,
                        request_id: failed,
                        exit,
                    }) => {
                        assert_eq!(worker_id, connection.worker_id());
                        assert_eq!(failed, request_id);
                        assert_eq!(exit, WorkerExit::signal(9));
                        tally.worker_exited += 1;
                        let replacement = next_worker_id.fetch_add(1, Ordering::Relaxed);
                        connection = spawner.spawn(spawn_request(replacement)).await.unwrap();
                        request_id = 0;
                    }
                    Err(other) => tally.other.push(other.to_string()),
                }
            }
            (tally, connection)
        }));
    }
    let mut total_tally = Tally::default();
    let mut connections = Vec::new();
    for task in tasks {
        let (tally, connection) = task.await.unwrap();
        total_tally.ok += tally.ok;
        total_tally.worker_exited += tally.worker_exited;
        total_tally.other.extend(tally.other);
        connections.push(connection);
    }
    drop(connections);
    total_tally
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_calls_over_eight_workers_crash_exactly_every_thousandth() {
    let behaviour = Behaviour::default()
        .latency(LatencyDistribution::Uniform {
            min: Duration::from_millis(1),
            max: Duration::from_millis(20),
        })
        .crash_every(1000)
        .seed(11);
    let spawner = MockSpawner::with_behaviour(behaviour).unwrap();
    let stats = spawner.stats();

    let wall = std::time::Instant::now();
    let tally = run_load(spawner, 8, 10_000).await;
    eprintln!(
        "10,000 paused-time calls took {:?} of wall time",
        wall.elapsed()
    );

    assert!(tally.other.is_empty(), "{:?}", tally.other);
    assert_eq!(tally.worker_exited, 10);
    assert_eq!(tally.ok, 9_990);
    assert_eq!(stats.crashes_injected(), 10);
    assert_eq!(stats.requests_served(), 9_990);
    assert_eq!(stats.spawns(), 8 + 10);
    assert_eq!(stats.spawn_failures(), 0);
    assert_eq!(
        stats.workers_alive(),
        0,
        "every worker exited or was dropped"
    );
    assert_eq!(stats.kills(), 8 + 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_calls_in_real_time_all_succeed() {
    let spawner = MockSpawner::with_behaviour(Behaviour::default()).unwrap();
    let stats = spawner.stats();
    let wall = std::time::Instant::now();
    let tally = run_load(spawner, 16, 20_000).await;
    eprintln!("20,000 real-time calls took {:?}", wall.elapsed());
    assert!(tally.other.is_empty(), "{:?}", tally.other);
    assert_eq!((tally.ok, tally.worker_exited), (20_000, 0));
    assert_eq!(stats.requests_served(), 20_000);
}

#[tokio::test(start_paused = true)]
async fn one_worker_serves_concurrent_calls_one_at_a_time() {
    let behaviour = Behaviour::default().fixed_latency(Duration::from_millis(10));
    let spawner = MockSpawner::with_behaviour(behaviour).unwrap();
    let connection = spawner.spawn(spawn_request(1)).await.unwrap();
    let started = Instant::now();
    let calls: Vec<_> = (1..=5)
        .map(|id| {
            let connection = Arc::clone(&connection);
            tokio::spawn(async move {
                let outcome = connection.call(request(id, "echo")).await;
                (outcome, started.elapsed())
            })
        })
        .collect();
    let mut finish_times = Vec::new();
    for call in calls {
        let (outcome, elapsed) = call.await.unwrap();
        assert!(outcome.is_ok(), "{outcome:?}");
        finish_times.push(elapsed);
    }
    finish_times.sort();
    assert_eq!(
        finish_times,
        [10, 20, 30, 40, 50].map(Duration::from_millis)
    );
}

#[tokio::test(start_paused = true)]
async fn a_crash_fails_the_calls_queued_behind_the_crashing_one() {
    let behaviour = Behaviour::default()
        .fixed_latency(Duration::from_millis(10))
        .crash_every(1);
    let spawner = MockSpawner::with_behaviour(behaviour).unwrap();
    let connection = spawner
        .spawn(SpawnRequest {
            worker_id: 3,
            handshake_timeout: HANDSHAKE_TIMEOUT,
        })
        .await
        .unwrap();
    let calls: Vec<_> = (1..=3)
        .map(|id| {
            let connection = Arc::clone(&connection);
            tokio::spawn(async move { connection.call(request(id, "echo")).await })
        })
        .collect();
    for (call, request_id) in calls.into_iter().zip(1u64..) {
        assert_eq!(
            call.await.unwrap(),
            Err(CallError::WorkerExited {
                worker_id: 3,
                request_id,
                exit: WorkerExit::signal(9)
            })
        );
    }
    // Only the request the worker was handling was counted as the crash.
    assert_eq!(spawner.stats().crashes_injected(), 1);
}

#[tokio::test]
async fn crash_every_counts_requests_across_all_workers() {
    let spawner = MockSpawner::with_behaviour(Behaviour::default().crash_every(4)).unwrap();
    let first = spawner.spawn(spawn_request(1)).await.unwrap();
    let second = spawner.spawn(spawn_request(2)).await.unwrap();
    // Requests 1 to 4 across the spawner alternate between the two workers.
    let mut outcomes = Vec::new();
    for id in 1..=2 {
        outcomes.push(first.call(request(id, "echo")).await.is_ok());
        outcomes.push(second.call(request(id, "echo")).await.is_ok());
    }
    assert_eq!(outcomes, [true, true, true, false]);
    assert_eq!(second.try_exit(), Some(WorkerExit::signal(9)));
    assert_eq!(first.try_exit(), None);
    assert_eq!(spawner.stats().crashes_injected(), 1);
}
