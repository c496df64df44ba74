//! Failure mode: an operator misreading the pool (status snapshots, their JSON and counters).
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use pypool::{Pool, PoolError, WorkerExit};
use pypool_mock::{Delivery, MockSpawner, PendingRequest, WorkerHandle};
use serde_json::{Value, json};
use support::scripted::{accept_all, accept_spawn, builder, next_request, scripted_pool};
use support::{PATIENCE, eventually, spawn_execute, spawn_shutdown, within};

/// The next request sent to either worker, and which one got it.
async fn next_on_either(workers: &mut [WorkerHandle]) -> (usize, PendingRequest) {
    let [first, second] = workers else {
        panic!("two workers expected")
    };
    within(PATIENCE, "a request", async {
        tokio::select! {
            request = first.next_request() => (0, request.unwrap()),
            request = second.next_request() => (1, request.unwrap()),
        }
    })
    .await
}

fn json_of(pool: &Pool) -> Value {
    serde_json::to_value(pool.status()).unwrap()
}

fn states(status: &Value) -> Vec<&str> {
    status["worker_details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|worker| worker["state"].as_str().unwrap())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn status_serialises_with_snake_case_states_and_counters_that_move() {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let pool = builder(spawner, 2).name("summaries").build().unwrap();
    let starting = json_of(&pool);
    assert_eq!(starting["starting"], json!(2));
    assert_eq!(states(&starting), ["starting", "starting"]);
    let mut workers = accept_all(&pool, &mut spawns, 2).await;

    let ready = json_of(&pool);
    assert_eq!(ready["name"], json!("summaries"));
    assert_eq!(ready["size"], json!(2));
    assert_eq!(ready["workers"], json!(2));
    assert_eq!(ready["ready"], json!(2));
    assert_eq!(ready["queue_len"], json!(0));
    assert_eq!(ready["shutting_down"], json!(false));
    assert_eq!(ready["spawn_breaker"], json!("closed"));
    assert_eq!(states(&ready), ["ready", "ready"]);
    let first = &ready["worker_details"][0];
    assert_eq!(first["id"], json!(workers[0].worker_id()));
    assert_eq!(first["pid"], json!(workers[0].handshake().pid));
    assert_eq!(first["health"], json!("unknown"));
    assert_eq!(first["requests_served"], json!(0));
    assert_eq!(first["overflow"], json!(false));
    assert_eq!(
        ready["counters"],
        json!({
            "spawned": 2, "spawn_failures": 0, "replaced": 0, "recycled": 0,
            "requests_ok": 0, "requests_failed": 0, "retries": 0,
            "affinity_hits": 0, "affinity_misses": 0, "affinity_spills": 0
        })
    );

    // One result, one Python exception.
    let ok = spawn_execute(&pool, "echo", json!({ "n": 1 }));
    let (index, request) = next_on_either(&mut workers).await;
    let busy = json_of(&pool);
    assert_eq!(busy["busy"], json!(1));
    assert_eq!(busy["worker_details"][index]["state"], json!("busy"));
    assert_eq!(request.reply(json!(1)), Delivery::Delivered);
    assert_eq!(ok.await.unwrap().unwrap(), json!(1));
    let raising = spawn_execute(&pool, "echo", json!({ "n": 2 }));
    let (_, request) = next_on_either(&mut workers).await;
    assert_eq!(
        request.python_error("ValueError", "bad n"),
        Delivery::Delivered
    );
    assert!(matches!(
        raising.await.unwrap(),
        Err(PoolError::Remote { .. })
    ));
    let after = json_of(&pool);
    assert_eq!(after["counters"]["requests_ok"], json!(1));
    assert_eq!(after["counters"]["requests_failed"], json!(1));
    assert_eq!(after["worker_details"][index]["health"], json!("healthy"));
    assert_eq!(after["worker_details"][index]["requests_served"], json!(1));

    // A crash on an idempotent command (`info`, from the handshake): retried
    // on the other worker, and the crashed one is replaced.
    let retried = spawn_execute(&pool, "info", Value::Null);
    let (crashed, request) = next_on_either(&mut workers).await;
    assert!(request.crash(WorkerExit::signal(9)));
    let request = next_request(&mut workers[1 - crashed]).await;
    assert_eq!(request.command(), "info");
    assert_eq!(request.reply(json!({ "info": true })), Delivery::Delivered);
    assert_eq!(retried.await.unwrap().unwrap(), json!({ "info": true }));
    let _replacement = accept_spawn(&mut spawns).await;
    eventually(&pool, "the replacement is ready", |s| s.ready == 2).await;
    let counters = json_of(&pool)["counters"].clone();
    assert_eq!(
        counters,
        json!({
            "spawned": 3, "spawn_failures": 0, "replaced": 1, "recycled": 0,
            "requests_ok": 2, "requests_failed": 1, "retries": 1,
            "affinity_hits": 0, "affinity_misses": 0, "affinity_spills": 0
        })
    );
}

#[tokio::test(start_paused = true)]
async fn a_degraded_and_a_draining_worker_show_as_such() {
    let (pool, _spawns, mut workers) = scripted_pool(2, |b| {
        b.health_check_interval(Some(Duration::from_secs(10)))
            .health_failure_threshold(3)
    })
    .await;

    // Both idle workers are pinged; one fails its ping.
    let (failing, ping) = next_on_either(&mut workers).await;
    assert_eq!(ping.command(), "ping");
    assert_eq!(
        ping.python_error("RuntimeError", "wedged"),
        Delivery::Delivered
    );
    let passing = 1 - failing;
    let ping = next_request(&mut workers[passing]).await;
    assert_eq!(ping.reply(json!({ "pong": true })), Delivery::Delivered);
    eventually(&pool, "both idle again", |s| {
        s.ready == 2 && s.checking == 0
    })
    .await;
    let status = json_of(&pool);
    assert_eq!(status["degraded"], json!(1));
    let failed = &status["worker_details"][failing];
    assert_eq!(failed["state"], json!("degraded"));
    assert_eq!(failed["consecutive_health_failures"], json!(1));
    assert_eq!(status["worker_details"][passing]["state"], json!("ready"));

    // A request in flight when shutdown starts: its worker drains.
    let call = spawn_execute(&pool, "echo", Value::Null);
    let (busy, request) = next_on_either(&mut workers).await;
    let stopping = spawn_shutdown(&pool, Duration::from_secs(10));
    let status = eventually(&pool, "shutdown started", |s| s.shutting_down).await;
    let status = serde_json::to_value(status).unwrap();
    assert_eq!(status["shutting_down"], json!(true));
    assert_eq!(status["draining"], json!(1));
    assert_eq!(states(&status), ["draining"]);
    assert_eq!(
        status["worker_details"][0]["id"],
        json!(workers[busy].worker_id())
    );
    assert_eq!(request.reply(json!(null)), Delivery::Delivered);
    assert_eq!(call.await.unwrap().unwrap(), json!(null));
    assert!(
        within(PATIENCE, "shutdown returns", stopping)
            .await
            .unwrap()
            .drained
    );
}
