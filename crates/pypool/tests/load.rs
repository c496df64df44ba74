//! Failure mode: sustained load while workers keep crashing (100,000 requests, a crash every 1,000).
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pypool::{Pool, Status};
use pypool_mock::{Behaviour, LatencyDistribution, MockSpawner};
use serde_json::json;
use tokio::task::JoinSet;

const REQUESTS: u64 = 100_000;
const CONCURRENCY: usize = 512;
const SIZE: usize = 8;
const CRASH_EVERY: u64 = 1_000;

/// What one caller saw: results, and errors counted by kind.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    errors: BTreeMap<&'static str, u64>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.ok += other.ok;
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
    }

    fn failed(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// One caller: takes request numbers until none is left, one request at a time.
async fn caller(pool: Pool, next: Arc<AtomicU64>) -> Tally {
    let mut tally = Tally::default();
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= REQUESTS {
            return tally;
        }
        match pool.execute("echo", json!({ "n": n })).await {
            Ok(result) => {
                assert_eq!(result["echo"]["n"], json!(n), "a reply to another request");
                tally.ok += 1;
            }
            Err(error) => *tally.errors.entry(error.kind()).or_default() += 1,
        }
    }
}

/// Waits (bounded) until every replacement has finished starting.
async fn all_ready(pool: &Pool) -> Status {
    for _ in 0..10_000 {
        let status = pool.status();
        if status.ready == SIZE && status.workers == SIZE && status.retiring == 0 {
            return status;
        }
        tokio::task::yield_now().await;
        tokio::time::advance(Duration::from_millis(1)).await;
    }
    panic!(
        "the pool never got back to {SIZE} ready workers: {:#?}",
        pool.status()
    );
}

#[tokio::test(start_paused = true)]
async fn a_hundred_thousand_requests_through_crashing_workers_all_end_typed() {
    let behaviour = Behaviour::default()
        .latency(LatencyDistribution::Uniform {
            min: Duration::from_millis(1),
            max: Duration::from_millis(5),
        })
        .crash_every(CRASH_EVERY)
        .seed(42);
    let spawner = MockSpawner::with_behaviour(behaviour).unwrap();
    let stats = spawner.stats();
    let pool = Pool::builder()
        .size(SIZE)
        .queue_bound(1024)
        // No pings: every request a worker handles is a caller's, so every
        // injected crash is seen by exactly one caller.
        .health_check_interval(None)
        .spawner(spawner)
        .build()
        .unwrap();
    pool.ready().await.unwrap();

    let wall = std::time::Instant::now();
    let virtual_start = tokio::time::Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut callers = JoinSet::new();
    for _ in 0..CONCURRENCY {
        callers.spawn(caller(pool.clone(), Arc::clone(&next)));
    }
    let run = async {
        let mut total = Tally::default();
        while let Some(tally) = callers.join_next().await {
            total.add(tally.unwrap());
        }
        total
    };
    // A generous bound in paused time: the run needs about 40 s of it.
    let total = tokio::time::timeout(Duration::from_secs(3_600), run)
        .await
        .expect("every request ends: none hangs");
    let virtual_elapsed = virtual_start.elapsed();
    let wall_elapsed = wall.elapsed();
    eprintln!(
        "load: {REQUESTS} requests at {CONCURRENCY} concurrency on {SIZE} workers: \
         wall {wall_elapsed:?}, paused-clock {virtual_elapsed:?}, ok {}, errors {:?}, stats {stats:?}",
        total.ok, total.errors
    );

    // Every request ended, each with a result or a typed error.
    assert_eq!(total.ok + total.failed(), REQUESTS);
    let crashes = stats.crashes_injected();
    let exited = total.errors.get("worker_exited").copied().unwrap_or(0);
    assert!(crashes > 0, "the load injected crashes");
    assert!(exited <= REQUESTS / CRASH_EVERY, "{exited} crashes seen");
    assert_eq!(exited, crashes, "each crash fails exactly its one request");
    assert_eq!(
        total.errors,
        BTreeMap::from([("worker_exited", crashes)]),
        "no other error: echo is not retried, the queue bound is never reached"
    );
    assert_eq!(stats.requests_served(), REQUESTS - crashes);

    // The background replacements complete: the pool is whole again.
    let status = all_ready(&pool).await;
    let counters = status.counters;
    assert_eq!(counters.requests_ok, total.ok);
    assert_eq!(counters.requests_failed, total.failed());
    assert_eq!(counters.retries, 0);
    assert_eq!(counters.replaced, crashes);
    assert_eq!(counters.spawned, SIZE as u64 + crashes);
    assert_eq!(status.queue_len, 0);
    assert_eq!(stats.workers_alive(), SIZE as u64);
}
