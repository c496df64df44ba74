//! Behaviour: a session bound to a worker of capacity above 1 uses that
//! worker while it has room; when it is full, strict mode waits for a slot
//! on it and hint mode goes elsewhere after its wait.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use pypool::AffinityMode;
use pypool_mock::{Delivery, PendingRequest, WorkerHandle};
use serde_json::json;
use support::capacity::{in_flight_on, pool_of};
use support::{NO_TIME, spawn_session_execute, status_until, within};

const CAPACITY: u32 = 2;

/// The request that arrived on one of `workers` (without time passing),
/// and the index of that worker.
async fn next_on_any(workers: &mut [WorkerHandle]) -> (usize, PendingRequest) {
    for _ in 0..1_000 {
        for (index, worker) in workers.iter_mut().enumerate() {
            if let Some(request) = worker.try_next_request() {
                return (index, request);
            }
        }
        tokio::task::yield_now().await;
    }
    panic!("no request arrived on any worker");
}

/// Binds `session` to a worker with one call; returns that worker's index.
async fn bind(session: &pypool::Session, workers: &mut [WorkerHandle]) -> usize {
    let call = spawn_session_execute(session, "work", json!({ "bind": true }));
    let (home, request) = next_on_any(workers).await;
    assert_eq!(request.reply(json!("bound")), Delivery::Delivered);
    within(NO_TIME, "the binding call", call)
        .await
        .unwrap()
        .unwrap();
    home
}

async fn bound_session_fills_its_worker(mode: AffinityMode) {
    let (pool, _spawns, mut workers) =
        pool_of(2, CAPACITY, &[], |builder| builder.affinity_mode(mode)).await;
    let alice = pool.session("alice").unwrap();
    let home = bind(&alice, &mut workers).await;
    let home_id = workers[home].worker_id();
    let first = spawn_session_execute(&alice, "work", json!({ "n": 0 }));
    let (on, request) = next_on_any(&mut workers).await;
    assert_eq!(on, home);
    // While it runs, alice's second call shares the same worker (it has room).
    let second = spawn_session_execute(&alice, "work", json!({ "n": 1 }));
    let (on, second_request) = next_on_any(&mut workers).await;
    assert_eq!(on, home, "the bound worker had room");
    let status = pool.status();
    assert_eq!(in_flight_on(&status, home_id), 2);
    assert_eq!(status.ready, 1, "the other worker stayed idle");
    let mut pending = vec![request, second_request];

    // The bound worker is full now.
    let third = spawn_session_execute(&alice, "work", json!({ "n": 2 }));
    match mode {
        AffinityMode::Strict => {
            status_until(&pool, "alice's third call to wait", |status| {
                status.queue_len == 1
            })
            .await;
            tokio::time::advance(Duration::from_secs(5)).await;
            assert!(workers.iter_mut().all(|w| w.try_next_request().is_none()));
            // A slot frees on the bound worker: the waiting call takes it.
            let done = pending.remove(0);
            assert_eq!(done.reply(json!("done")), Delivery::Delivered);
            let (on, request) = next_on_any(&mut workers).await;
            assert_eq!(on, home, "strict waits for its own worker");
            pending.push(request);
        }
        AffinityMode::Hint { wait } => {
            status_until(&pool, "alice's third call to wait", |status| {
                status.queue_len == 1
            })
            .await;
            tokio::time::advance(wait).await;
            let (on, request) = next_on_any(&mut workers).await;
            assert_ne!(on, home, "hint spills when its worker is full");
            pending.push(request);
            assert_eq!(pool.status().counters.affinity_spills, 1);
        }
        other => panic!("not tested here: {other:?}"),
    }
    for request in pending {
        assert_eq!(request.reply(json!("ok")), Delivery::Delivered);
    }
    for call in [first, second, third] {
        within(NO_TIME, "an answer", call).await.unwrap().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn strict_uses_its_worker_while_it_has_room_then_waits_for_a_slot() {
    bound_session_fills_its_worker(AffinityMode::Strict).await;
}

#[tokio::test(start_paused = true)]
async fn hint_uses_its_worker_while_it_has_room_then_goes_elsewhere() {
    bound_session_fills_its_worker(AffinityMode::Hint {
        wait: Duration::from_millis(50),
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn strict_fail_fast_refuses_only_when_its_worker_is_full() {
    let (pool, _spawns, mut workers) = pool_of(2, CAPACITY, &[], |builder| builder).await;
    let alice = pool
        .session("alice")
        .unwrap()
        .with_affinity(AffinityMode::StrictFailFast);
    let home = bind(&alice, &mut workers).await;
    let first = spawn_session_execute(&alice, "work", json!({ "n": 0 }));
    let (on, first_request) = next_on_any(&mut workers).await;
    assert_eq!(on, home);
    let second = spawn_session_execute(&alice, "work", json!({ "n": 1 }));
    let (on, second_request) = next_on_any(&mut workers).await;
    assert_eq!(on, home, "partially busy is not busy");
    let error = alice.execute("work", json!({ "n": 2 })).await.unwrap_err();
    assert_eq!(error.kind(), "worker_busy");
    assert_eq!(first_request.reply(json!(0)), Delivery::Delivered);
    assert_eq!(second_request.reply(json!(1)), Delivery::Delivered);
    within(NO_TIME, "first", first).await.unwrap().unwrap();
    within(NO_TIME, "second", second).await.unwrap().unwrap();
}
