//! Failure mode: a worker that is stopping on its own (SIGTERM) says it is
//! draining; the pool finishes the request it runs, lends it to no other
//! request, retires it gracefully and starts a replacement (issue 10, item 4).
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use pypool_mock::Delivery;
use serde_json::json;
use support::scripted::{accept_spawn, next_request, scripted_pool};
use support::{PATIENCE, eventually, spawn_execute, within};

#[tokio::test(start_paused = true)]
async fn a_draining_worker_finishes_its_request_and_is_never_lent_again() {
    let (pool, mut spawns, mut workers) = scripted_pool(1, |b| b).await;
    let mut old = workers.remove(0);
    let first = spawn_execute(&pool, "echo", json!({ "n": 1 }));
    let request = next_request(&mut old).await;
    // SIGTERM arrives while the request runs: the worker says `draining`,
    // then finishes and replies.
    old.start_draining();
    assert_eq!(request.reply(json!({ "n": 1 })), Delivery::Delivered);
    assert_eq!(first.await.unwrap().unwrap(), json!({ "n": 1 }));
    within(PATIENCE, "the draining worker is retired", old.terminated()).await;
    // The next request goes to the replacement, never to the draining worker.
    let second = spawn_execute(&pool, "echo", json!({ "n": 2 }));
    let mut new = accept_spawn(&mut spawns).await;
    let request = next_request(&mut new).await;
    assert_eq!(request.reply(json!({ "n": 2 })), Delivery::Delivered);
    assert_eq!(second.await.unwrap().unwrap(), json!({ "n": 2 }));
    assert_eq!(old.requests_seen(), 1);
    eventually(&pool, "the replacement is the only worker", |s| {
        s.workers == 1 && s.worker_details[0].id == new.worker_id()
    })
    .await;
    assert_eq!(pool.status().counters.requests_failed, 0);
}

#[tokio::test(start_paused = true)]
async fn an_idle_worker_that_starts_draining_is_retired_at_its_next_checkout() {
    let (pool, mut spawns, mut workers) = scripted_pool(1, |b| b).await;
    let old = workers.remove(0);
    old.start_draining();
    let call = spawn_execute(&pool, "echo", json!({ "n": 7 }));
    within(PATIENCE, "the draining worker is retired", old.terminated()).await;
    let mut new = accept_spawn(&mut spawns).await;
    let request = next_request(&mut new).await;
    assert_eq!(request.reply(json!({ "n": 7 })), Delivery::Delivered);
    assert_eq!(call.await.unwrap().unwrap(), json!({ "n": 7 }));
    assert_eq!(old.requests_seen(), 0);
}
