//! Failure mode: workers that reach a recycle limit (requests served, memory, age).
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use pypool::{Pool, Timeouts, WorkerExit, WorkerState};
use pypool_mock::{Delivery, SpawnHandle, WorkerHandle};
use serde_json::json;
use support::scripted::{accept_spawn, next_request, next_spawn, scripted_pool};
use support::{PATIENCE, eventually, spawn_execute, within};

const MIB: u64 = 1024 * 1024;

/// Runs one `echo` request with `n` on `worker`, which must be the one that gets it.
async fn serve_one(pool: &Pool, worker: &mut WorkerHandle, n: u64) {
    let call = spawn_execute(pool, "echo", json!({ "n": n }));
    let request = next_request(worker).await;
    assert_eq!(request.request().args["n"], json!(n));
    assert_eq!(request.reply(json!({ "n": n })), Delivery::Delivered);
    assert_eq!(call.await.unwrap().unwrap(), json!({ "n": n }));
}

/// Asserts `old` stopped gracefully: asked to terminate (SIGTERM) and exited
/// with code 0 on its own, not with the signal 9 of a kill.
async fn assert_stopped_gracefully(old: &WorkerHandle) {
    within(
        PATIENCE,
        "the old worker is asked to terminate",
        old.terminated(),
    )
    .await;
    let exit = within(PATIENCE, "the old worker exits", old.exited()).await;
    assert_eq!(exit, WorkerExit::code(0), "a recycled worker is not killed");
}

/// Accepts the replacement spawn and waits until it is the pool's only, idle, worker.
async fn accept_replacement(pool: &Pool, spawns: &mut SpawnHandle) -> WorkerHandle {
    let new = accept_spawn(spawns).await;
    eventually(pool, "the replacement is the only worker, idle", |s| {
        s.workers == 1 && s.ready == 1 && s.worker_details[0].id == new.worker_id()
    })
    .await;
    new
}

#[tokio::test(start_paused = true)]
async fn max_requests_recycles_the_worker_after_its_third_reply_reaches_the_caller() {
    let (pool, mut spawns, mut workers) = scripted_pool(1, |b| b.max_requests(3)).await;
    let mut old = workers.remove(0);
    for n in 1..=2 {
        serve_one(&pool, &mut old, n).await;
        let status = pool.status();
        assert_eq!(status.counters.recycled, 0);
        assert_eq!(status.worker_details[0].requests_served, n);
        assert!(!old.was_terminated());
    }
    serve_one(&pool, &mut old, 3).await;
    assert_stopped_gracefully(&old).await;
    assert_eq!(old.requests_seen(), 3);

    let mut new = accept_replacement(&pool, &mut spawns).await;
    let status = pool.status();
    assert_eq!(status.counters.recycled, 1);
    assert_eq!(status.counters.replaced, 0, "recycling is not a failure");
    assert_eq!(status.counters.spawned, 2);
    assert_eq!(status.counters.requests_ok, 3);
    serve_one(&pool, &mut new, 4).await;
    assert_eq!(old.requests_seen(), 3, "the old worker got nothing more");
}

#[tokio::test(start_paused = true)]
async fn a_request_queued_behind_a_recycled_worker_goes_to_its_replacement() {
    let (pool, mut spawns, mut workers) = scripted_pool(1, |b| b.max_requests(1)).await;
    let mut old = workers.remove(0);
    let first = spawn_execute(&pool, "echo", json!({ "n": 1 }));
    let first_request = next_request(&mut old).await;
    let second = spawn_execute(&pool, "echo", json!({ "n": 2 }));
    eventually(&pool, "the second request waits", |s| s.queue_len == 1).await;

    assert_eq!(first_request.reply(json!(1)), Delivery::Delivered);
    assert_eq!(first.await.unwrap().unwrap(), json!(1));
    assert_stopped_gracefully(&old).await;
    assert_eq!(
        old.requests_seen(),
        1,
        "the recycled worker took no new request"
    );

    let mut new = accept_spawn(&mut spawns).await;
    let second_request = next_request(&mut new).await;
    assert_eq!(second_request.request().args["n"], json!(2));
    assert_eq!(second_request.reply(json!(2)), Delivery::Delivered);
    assert_eq!(second.await.unwrap().unwrap(), json!(2));
    // max_requests(1): the replacement is recycled in turn.
    within(PATIENCE, "the replacement is recycled", new.terminated()).await;
    let third = next_spawn(&mut spawns).await;
    assert_eq!(third.worker_id(), new.worker_id() + 1);
    assert_eq!(pool.status().counters.recycled, 2);
}

#[tokio::test(start_paused = true)]
async fn a_worker_above_max_memory_is_recycled_after_its_current_request() {
    let (pool, mut spawns, mut workers) = scripted_pool(1, |b| b.max_memory_bytes(100 * MIB)).await;
    let mut old = workers.remove(0);
    // The mock starts at 32 MiB: below the limit, nothing happens.
    serve_one(&pool, &mut old, 1).await;
    assert_eq!(pool.status().counters.recycled, 0);
    assert!(!old.was_terminated());

    // It grows past the limit while serving a request.
    let call = spawn_execute(&pool, "echo", json!({ "n": 2 }));
    let request = next_request(&mut old).await;
    old.set_rss(150 * MIB);
    assert!(!old.was_terminated(), "not interrupted mid-request");
    assert_eq!(request.reply(json!(2)), Delivery::Delivered);
    assert_eq!(call.await.unwrap().unwrap(), json!(2));
    assert_stopped_gracefully(&old).await;

    let mut new = accept_replacement(&pool, &mut spawns).await;
    assert_eq!(pool.status().counters.recycled, 1);
    serve_one(&pool, &mut new, 3).await;
}

#[tokio::test(start_paused = true)]
async fn an_idle_worker_above_max_memory_is_recycled_at_its_next_health_check() {
    let (pool, mut spawns, mut workers) = scripted_pool(1, |b| {
        b.max_memory_bytes(100 * MIB)
            .health_check_interval(Some(Duration::from_secs(10)))
    })
    .await;
    let mut old = workers.remove(0);
    old.set_rss(150 * MIB);
    let ping = next_request(&mut old).await;
    assert_eq!(ping.command(), "ping");
    assert_eq!(ping.reply(json!({ "pong": true })), Delivery::Delivered);
    assert_stopped_gracefully(&old).await;
    accept_replacement(&pool, &mut spawns).await;
    let status = pool.status();
    assert_eq!(status.counters.recycled, 1);
    assert_eq!(status.counters.replaced, 0);
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_reaches_max_age_mid_request_is_recycled_after_it() {
    let timeouts = Timeouts {
        request: Duration::from_secs(120),
        ..Timeouts::default()
    };
    let (pool, mut spawns, mut workers) =
        scripted_pool(1, |b| b.max_age(Duration::from_secs(60)).timeouts(timeouts)).await;
    let mut old = workers.remove(0);
    serve_one(&pool, &mut old, 1).await;
    assert_eq!(pool.status().counters.recycled, 0);

    let call = spawn_execute(&pool, "echo", json!({ "n": 2 }));
    let request = next_request(&mut old).await;
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(pool.status().worker_details[0].state, WorkerState::Busy);
    assert!(!old.was_terminated(), "not interrupted mid-request");
    assert_eq!(request.reply(json!(2)), Delivery::Delivered);
    assert_eq!(call.await.unwrap().unwrap(), json!(2));
    assert_stopped_gracefully(&old).await;

    accept_replacement(&pool, &mut spawns).await;
    assert_eq!(pool.status().counters.recycled, 1);
}

#[tokio::test(start_paused = true)]
async fn an_idle_worker_past_max_age_is_not_handed_a_new_request() {
    let (pool, mut spawns, mut workers) =
        scripted_pool(1, |b| b.max_age(Duration::from_secs(60))).await;
    let old = workers.remove(0);
    tokio::time::advance(Duration::from_secs(61)).await;

    let call = spawn_execute(&pool, "echo", json!({ "n": 1 }));
    let mut new = accept_spawn(&mut spawns).await;
    assert_stopped_gracefully(&old).await;
    assert_eq!(old.requests_seen(), 0, "the old worker got nothing");
    let request = next_request(&mut new).await;
    assert_eq!(request.reply(json!(1)), Delivery::Delivered);
    assert_eq!(call.await.unwrap().unwrap(), json!(1));
    let status = pool.status();
    assert_eq!(status.counters.recycled, 1);
    assert_eq!((status.workers, status.ready), (1, 1));
}
