//! Failure mode: an operator misreading the pool (status snapshots, their JSON and counters).
#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use pypool::{Pool, PoolError, Status, WorkerExit};
use pypool_mock::{Delivery, MockSpawner, PendingRequest, WorkerHandle};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// Waits, without letting time pass, until `condition` holds.
async fn eventually(pool: &Pool, what: &str, condition: impl Fn(&Status) -> bool) -> Status {
    for _ in 0..1_000 {
        let status = pool.status();
        if condition(&status) {
            return status;
        }
        tokio::task::yield_now().await;
    }
    panic!("never true: {what}; last status: {:#?}", pool.status());
}

/// Awaits `event`, failing the test (rather than hanging it) if it has not
/// happened within ten minutes of paused time.
async fn within<T>(what: &str, event: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(600), event).await {
        Ok(value) => value,
        Err(_elapsed) => panic!("{what} did not happen"),
    }
}

fn spawn_execute(pool: &Pool, command: &str, args: Value) -> JoinHandle<Result<Value, PoolError>> {
    let pool = pool.clone();
    let command = command.to_owned();
    tokio::spawn(async move { pool.execute(&command, args).await })
}

/// The next request sent to either worker, and which one got it.
async fn next_on_either(workers: &mut [WorkerHandle]) -> (usize, PendingRequest) {
    let [first, second] = workers else {
        panic!("two workers expected")
    };
    within("a request", async {
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
    let pool = Pool::builder()
        .name("summaries")
        .size(2)
        .health_check_interval(None)
        .spawner(spawner)
        .build()
        .unwrap();
    let starting = json_of(&pool);
    assert_eq!(starting["starting"], json!(2));
    assert_eq!(states(&starting), ["starting", "starting"]);
    let mut workers = Vec::new();
    for _ in 0..2 {
        workers.push(
            within("a spawn", spawns.next_spawn())
                .await
                .unwrap()
                .accept(),
        );
    }
    pool.ready().await.unwrap();
    workers.sort_by_key(WorkerHandle::worker_id);

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
            "requests_ok": 0, "requests_failed": 0, "retries": 0
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
    let request = within("the retry", workers[1 - crashed].next_request())
        .await
        .unwrap();
    assert_eq!(request.command(), "info");
    assert_eq!(request.reply(json!({ "info": true })), Delivery::Delivered);
    assert_eq!(retried.await.unwrap().unwrap(), json!({ "info": true }));
    let _replacement = within("a replacement spawn", spawns.next_spawn())
        .await
        .unwrap()
        .accept();
    eventually(&pool, "the replacement is ready", |s| s.ready == 2).await;
    let counters = json_of(&pool)["counters"].clone();
    assert_eq!(
        counters,
        json!({
            "spawned": 3, "spawn_failures": 0, "replaced": 1, "recycled": 0,
            "requests_ok": 2, "requests_failed": 1, "retries": 1
        })
    );
}

#[tokio::test(start_paused = true)]
async fn a_degraded_and_a_draining_worker_show_as_such() {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let pool = Pool::builder()
        .size(2)
        .health_check_interval(Some(Duration::from_secs(10)))
        .health_failure_threshold(3)
        .spawner(spawner)
        .build()
        .unwrap();
    let mut workers = Vec::new();
    for _ in 0..2 {
        workers.push(
            within("a spawn", spawns.next_spawn())
                .await
                .unwrap()
                .accept(),
        );
    }
    pool.ready().await.unwrap();
    workers.sort_by_key(WorkerHandle::worker_id);

    // Both idle workers are pinged; one fails its ping.
    let (failing, ping) = next_on_either(&mut workers).await;
    assert_eq!(ping.command(), "ping");
    assert_eq!(
        ping.python_error("RuntimeError", "wedged"),
        Delivery::Delivered
    );
    let passing = 1 - failing;
    let ping = within("the other ping", workers[passing].next_request())
        .await
        .unwrap();
    assert_eq!(ping.reply(json!({ "pong": true })), Delivery::Delivered);
    eventually(&pool, "both idle again", |s| s.ready == 2).await;
    let status = json_of(&pool);
    assert_eq!(status["degraded"], json!(1));
    let failed = &status["worker_details"][failing];
    assert_eq!(failed["state"], json!("degraded"));
    assert_eq!(failed["consecutive_health_failures"], json!(1));
    assert_eq!(status["worker_details"][passing]["state"], json!("ready"));

    // A request in flight when shutdown starts: its worker drains.
    let call = spawn_execute(&pool, "echo", Value::Null);
    let (busy, request) = next_on_either(&mut workers).await;
    let stopping = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.shutdown(Duration::from_secs(10)).await })
    };
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
    assert!(within("shutdown returns", stopping).await.unwrap().drained);
}
