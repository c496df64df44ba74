//! Failure mode of the old system at startup: requests arriving while workers are still
//! initialising ("checkout during init", "init message pollution").
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use pypool_mock::{MockSpawner, PendingRequest, WorkerHandle};
use serde_json::{Value, json};
use support::scripted::builder;
use support::{NO_TIME, spawn_execute, status_until, within};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Answers `pending` with its arguments and the id of the worker that ran it.
fn answer(worker_id: u64, pending: PendingRequest) {
    let args = Value::Object(pending.request().args.clone());
    let _ = pending.reply(json!({ "args": args, "worker": worker_id }));
}

/// Answers every request `worker` gets until it exits; then yields how many it saw.
fn respond(mut worker: WorkerHandle) -> JoinHandle<u64> {
    tokio::spawn(async move {
        let id = worker.worker_id();
        while let Some(pending) = worker.next_request().await {
            answer(id, pending);
        }
        worker.requests_seen()
    })
}

#[tokio::test(start_paused = true)]
async fn eager_start_spawns_every_worker_concurrently() {
    let size = 5;
    let (spawner, mut spawns) = MockSpawner::scripted();
    let pool = builder(spawner, size).build().unwrap();
    let started = Instant::now();

    // Every spawn is under way before any of them has answered.
    let mut pending = Vec::new();
    for _ in 0..size {
        pending.push(
            within(NO_TIME, "a concurrent spawn", spawns.next_spawn())
                .await
                .unwrap(),
        );
    }
    assert_eq!(started.elapsed(), Duration::ZERO);
    let ids: BTreeSet<_> = pending.iter().map(|spawn| spawn.worker_id()).collect();
    assert_eq!(ids, (1..=5).collect::<BTreeSet<u64>>());
    let status = pool.status();
    assert_eq!((status.workers, status.starting, status.ready), (5, 5, 0));
    assert!(
        spawns.try_next_spawn().is_none(),
        "no more than `size` spawns"
    );

    let workers: Vec<WorkerHandle> = pending.into_iter().map(|spawn| spawn.accept()).collect();
    within(NO_TIME, "ready()", pool.ready()).await.unwrap();
    let status = pool.status();
    assert_eq!((status.workers, status.starting, status.ready), (5, 0, 5));
    assert_eq!(status.counters.spawned, 5);
    assert_eq!(spawns.spawn_count(), 5);
    assert!(workers.iter().all(|worker| worker.requests_seen() == 0));
}

#[tokio::test(start_paused = true)]
async fn fifty_requests_fired_while_every_worker_starts_all_succeed_after_the_handshakes() {
    let size = 4;
    let requests = 50;
    let (spawner, mut spawns) = MockSpawner::scripted();
    let pool = builder(spawner, size).build().unwrap();
    let calls: Vec<_> = (0..requests)
        .map(|n| spawn_execute(&pool, "work", json!({ "n": n })))
        .collect();

    let mut pending = Vec::new();
    for _ in 0..size {
        pending.push(
            within(NO_TIME, "a spawn", spawns.next_spawn())
                .await
                .unwrap(),
        );
    }
    let status = status_until(&pool, "every request to queue", |status| {
        status.queue_len == requests
    })
    .await;
    assert_eq!((status.starting, status.ready, status.busy), (size, 0, 0));
    assert_eq!(
        spawns.spawn_count(),
        4,
        "queued requests spawn no extra worker"
    );
    assert_eq!(
        status.counters.requests_ok + status.counters.requests_failed,
        0
    );

    // Each worker gets its first request right after its handshake, not before.
    let mut workers = Vec::new();
    let mut first_requests = Vec::new();
    for (accepted, spawn) in pending.into_iter().enumerate() {
        let mut worker = spawn.accept();
        assert_eq!(worker.requests_seen(), 0);
        let first = within(
            NO_TIME,
            "a request after the handshake",
            worker.next_request(),
        )
        .await
        .unwrap();
        first_requests.push((worker.worker_id(), first));
        assert_eq!(worker.requests_seen(), 1);
        let status = pool.status();
        assert_eq!(status.busy, accepted + 1);
        assert_eq!(status.starting, size - accepted - 1);
        assert_eq!(status.queue_len, requests - accepted - 1);
        workers.push(worker);
    }

    // Now every worker answers; every caller gets the answer to its own request.
    let responders: Vec<_> = workers.into_iter().map(respond).collect();
    for (worker_id, first) in first_requests {
        answer(worker_id, first);
    }
    let mut served_by = BTreeSet::new();
    for (n, call) in calls.into_iter().enumerate() {
        let result = within(NO_TIME, "a caller's answer", call)
            .await
            .unwrap()
            .unwrap_or_else(|error| panic!("request {n} failed: {error}"));
        assert_eq!(
            result["args"],
            json!({ "n": n }),
            "request {n} got another's reply"
        );
        served_by.insert(result["worker"].as_u64().unwrap());
    }
    assert_eq!(served_by, (1..=4).collect::<BTreeSet<u64>>());
    let status = pool.status();
    assert_eq!(status.counters.requests_ok, 50);
    assert_eq!(status.counters.requests_failed, 0);
    assert_eq!(status.counters.retries, 0);
    assert_eq!((status.ready, status.queue_len), (size, 0));

    let report = pool.shutdown(Duration::from_secs(1)).await;
    assert!(report.drained);
    let mut seen = 0;
    for responder in responders {
        // Each responder ends when its worker exits at shutdown.
        seen += within(NO_TIME, "a responder to end", responder)
            .await
            .unwrap();
    }
    assert_eq!(seen, 50, "every request reached a worker exactly once");
}
