//! Failure mode: the pool's size changing at runtime (growing, shrinking with busy workers).
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use pypool::{Pool, PoolError, WorkerExit, WorkerState};
use pypool_mock::{Delivery, PendingRequest, WorkerHandle};
use serde_json::{Value, json};
use support::scripted::{accept_spawn, next_request, next_spawn, scripted_pool};
use support::{PATIENCE, eventually, spawn_execute, within};
use tokio::task::JoinHandle;

/// Starts `count` requests and returns them with the index of the worker each landed on.
async fn occupy(
    pool: &Pool,
    workers: &mut [WorkerHandle],
    count: usize,
) -> Vec<(JoinHandle<Result<Value, PoolError>>, usize, PendingRequest)> {
    let mut busy = Vec::new();
    for n in 0..count {
        let call = spawn_execute(pool, "echo", json!({ "n": n }));
        let status = eventually(pool, "one more worker is busy", |s| s.busy == n + 1).await;
        let index = workers
            .iter()
            .position(|w| {
                busy.iter().all(|(_, taken, _)| *taken != w.worker_id())
                    && status
                        .worker_details
                        .iter()
                        .any(|d| d.id == w.worker_id() && d.state == WorkerState::Busy)
            })
            .unwrap();
        let request = next_request(&mut workers[index]).await;
        busy.push((call, workers[index].worker_id(), request));
    }
    busy.into_iter()
        .map(|(call, id, request)| {
            let index = workers.iter().position(|w| w.worker_id() == id).unwrap();
            (call, index, request)
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn growing_spawns_the_difference_concurrently() {
    let (pool, mut spawns, _workers) = scripted_pool(1, |b| b).await;
    pool.resize(3);
    let status = pool.status();
    assert_eq!(status.size, 3);
    assert_eq!((status.workers, status.starting, status.ready), (3, 2, 1));

    // Both spawns are under way before either finishes.
    let a = next_spawn(&mut spawns).await;
    let b = next_spawn(&mut spawns).await;
    assert_eq!(spawns.spawn_count(), 3);
    let _a = a.accept();
    let _b = b.accept();
    let status = eventually(&pool, "three workers ready", |s| s.ready == 3).await;
    assert_eq!((status.size, status.workers, status.starting), (3, 3, 0));
    assert_eq!(status.counters.spawned, 3);
    assert!(
        spawns.try_next_spawn().is_none(),
        "no more than the difference"
    );
}

#[tokio::test(start_paused = true)]
async fn growing_serves_a_waiting_request_with_the_new_worker() {
    let (pool, mut spawns, mut workers) = scripted_pool(1, |b| b).await;
    let first = spawn_execute(&pool, "echo", json!({ "n": 1 }));
    let first_request = next_request(&mut workers[0]).await;
    let second = spawn_execute(&pool, "echo", json!({ "n": 2 }));
    eventually(&pool, "a request waits", |s| s.queue_len == 1).await;

    pool.resize(2);
    let mut new = accept_spawn(&mut spawns).await;
    let second_request = next_request(&mut new).await;
    assert_eq!(second_request.request().args["n"], json!(2));
    assert_eq!(second_request.reply(json!(2)), Delivery::Delivered);
    assert_eq!(second.await.unwrap().unwrap(), json!(2));
    assert_eq!(first_request.reply(json!(1)), Delivery::Delivered);
    assert_eq!(first.await.unwrap().unwrap(), json!(1));
    let status = eventually(&pool, "both idle", |s| s.ready == 2).await;
    assert_eq!((status.size, status.workers), (2, 2));
}

#[tokio::test(start_paused = true)]
async fn shrinking_retires_idle_workers_gracefully_at_once() {
    let (pool, mut spawns, workers) = scripted_pool(3, |b| b).await;
    pool.resize(1);
    let status = pool.status();
    assert_eq!(status.size, 1);
    assert_eq!((status.workers, status.ready), (1, 1), "retired at once");
    let kept = status.worker_details[0].id;

    let status = eventually(&pool, "the retired workers are gone", |s| s.retiring == 0).await;
    assert_eq!(status.workers, 1);
    for worker in &workers {
        if worker.worker_id() == kept {
            assert!(!worker.was_terminated() && worker.try_exit().is_none());
        } else {
            assert!(
                worker.was_terminated(),
                "worker {} kept",
                worker.worker_id()
            );
            assert_eq!(
                worker.try_exit(),
                Some(WorkerExit::code(0)),
                "SIGTERM, not SIGKILL"
            );
        }
    }
    assert_eq!(status.counters.replaced, 0);
    assert_eq!(status.counters.recycled, 0);
    assert_eq!(spawns.spawn_count(), 3, "nothing replaced them");

    // And back up again.
    pool.resize(2);
    let status = pool.status();
    assert_eq!((status.size, status.workers, status.starting), (2, 2, 1));
    let _new = accept_spawn(&mut spawns).await;
    let status = eventually(&pool, "two workers ready", |s| s.ready == 2).await;
    assert_eq!((status.size, status.workers), (2, 2));
}

#[tokio::test(start_paused = true)]
async fn shrinking_retires_busy_workers_after_their_request() {
    let (pool, spawns, mut workers) = scripted_pool(3, |b| b).await;
    let mut busy = occupy(&pool, &mut workers, 2).await;
    let idle = (0..3)
        .find(|i| busy.iter().all(|(_, taken, _)| taken != i))
        .unwrap();

    pool.resize(1);
    let status = pool.status();
    assert_eq!(status.size, 1);
    assert_eq!((status.workers, status.busy, status.ready), (2, 2, 0));
    within(
        PATIENCE,
        "the idle worker gets SIGTERM",
        workers[idle].terminated(),
    )
    .await;

    // The first busy worker to finish goes: the pool is still above its size.
    let (call, first, request) = busy.remove(0);
    assert!(!workers[first].was_terminated(), "not interrupted");
    assert_eq!(request.reply(json!("first")), Delivery::Delivered);
    assert_eq!(call.await.unwrap().unwrap(), json!("first"));
    within(
        PATIENCE,
        "the first busy worker gets SIGTERM",
        workers[first].terminated(),
    )
    .await;
    let exit = within(PATIENCE, "it exits", workers[first].exited()).await;
    assert_eq!(exit, WorkerExit::code(0));

    // The last one is the pool's one worker now: it stays.
    let (call, last, request) = busy.remove(0);
    assert_eq!(request.reply(json!("last")), Delivery::Delivered);
    assert_eq!(call.await.unwrap().unwrap(), json!("last"));
    let status = eventually(&pool, "one idle worker", |s| {
        s.ready == 1 && s.retiring == 0
    })
    .await;
    assert_eq!((status.size, status.workers), (1, 1));
    assert_eq!(status.worker_details[0].id, workers[last].worker_id());
    assert!(!workers[last].was_terminated());
    assert_eq!(spawns.spawn_count(), 3, "nothing replaced them");
}

#[tokio::test(start_paused = true)]
async fn shrinking_drops_workers_still_starting_before_ready_ones() {
    let (pool, mut spawns, workers) = scripted_pool(1, |b| b).await;
    pool.resize(3);
    let late_a = next_spawn(&mut spawns).await;
    let late_b = next_spawn(&mut spawns).await;

    pool.resize(1);
    let status = pool.status();
    assert_eq!((status.size, status.workers, status.starting), (1, 1, 0));
    assert_eq!(status.ready, 1, "the ready worker is kept");
    assert_eq!(status.worker_details[0].id, workers[0].worker_id());

    // The abandoned spawns finish after all: those workers are killed, not used.
    let late_a = late_a.accept();
    let late_b = late_b.accept();
    within(PATIENCE, "the first late worker is killed", late_a.killed()).await;
    within(
        PATIENCE,
        "the second late worker is killed",
        late_b.killed(),
    )
    .await;
    let status = eventually(&pool, "one worker", |s| s.workers == 1 && s.ready == 1).await;
    assert_eq!(status.worker_details[0].id, workers[0].worker_id());
    assert!(!workers[0].was_terminated());
    assert_eq!(status.counters.spawned, 1, "the late workers never joined");
}
