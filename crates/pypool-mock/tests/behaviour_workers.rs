//! Behaviour mode: spawning, default and custom handlers, shutdown, memory.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{HANDSHAKE_TIMEOUT, ok_result, request, request_with, spawn_request};
use pypool_mock::{Behaviour, BehaviourError, MockSpawner, SpawnFailure, python_exception};
use pypool_seam::{CallError, Outcome, SpawnError, SpawnRequest, WorkerExit, WorkerSpawner};
use serde_json::json;
use tokio::time::Instant;

#[tokio::test]
async fn default_workers_pong_echo_and_describe_themselves() {
    let spawner =
        MockSpawner::with_behaviour(Behaviour::default().command("summarise", false)).unwrap();
    let connection = spawner.spawn(spawn_request(4)).await.unwrap();
    let handshake = connection.handshake();
    assert_eq!((handshake.worker_id, handshake.pid), (4, 10_004));
    assert_eq!(handshake.commands.len(), 3);

    let pong = ok_result(connection.call(request(1, "ping")).await);
    assert_eq!(pong, json!({"pong": true, "worker_id": 4}));
    let echo = ok_result(
        connection
            .call(request_with(2, "summarise", json!({"text": "abc"})))
            .await,
    );
    assert_eq!(echo, json!({"echo": {"text": "abc"}, "worker_id": 4}));
    let info = ok_result(connection.call(request(3, "info")).await);
    assert_eq!(info["pid"], json!(10_004));
    assert_eq!(info["commands"], json!(["ping", "info", "summarise"]));
    assert_eq!(spawner.stats().requests_served(), 3);
}

#[tokio::test]
async fn a_custom_handler_answers_everything_but_ping_and_info() {
    let behaviour = Behaviour::default().handler(|request| match request.command.as_str() {
        "double" => {
            let n = request.args.get("n").and_then(|n| n.as_i64()).unwrap_or(0);
            Ok(json!(n * 2))
        }
        other => Err(python_exception("KeyError", other)),
    });
    let spawner = MockSpawner::with_behaviour(behaviour).unwrap();
    let connection = spawner.spawn(spawn_request(1)).await.unwrap();

    let doubled = connection
        .call(request_with(1, "double", json!({"n": 21})))
        .await;
    assert_eq!(ok_result(doubled), json!(42));
    match connection.call(request(2, "missing")).await {
        Ok(Outcome::Error { error }) => {
            assert_eq!(error.exception_type.as_deref(), Some("KeyError"));
            assert_eq!(error.message, "missing");
        }
        other => panic!("unexpected {other:?}"),
    }
    let pong = ok_result(connection.call(request(3, "ping")).await);
    assert_eq!(pong["pong"], json!(true));
    // A handler's own error is not an injected one.
    assert_eq!(spawner.stats().python_errors_injected(), 0);
}

#[tokio::test]
async fn the_first_n_spawns_fail_then_spawning_works() {
    let spawner =
        MockSpawner::with_behaviour(Behaviour::default().spawn_failure(SpawnFailure::FirstN(2)))
            .unwrap();
    for worker_id in 1..=2 {
        match spawner.spawn(spawn_request(worker_id)).await.unwrap_err() {
            SpawnError::StartupFailed {
                worker_id: failed,
                kind,
                ..
            } => assert_eq!((failed, kind.as_str()), (worker_id, "handler_import")),
            other => panic!("unexpected {other:?}"),
        }
    }
    let connection = spawner.spawn(spawn_request(3)).await.unwrap();
    assert_eq!(connection.worker_id(), 3);
    let stats = spawner.stats();
    assert_eq!((stats.spawns(), stats.spawn_failures()), (3, 2));
    assert_eq!(stats.workers_started(), 1);
}

#[tokio::test]
async fn every_nth_spawn_fails() {
    let spawner =
        MockSpawner::with_behaviour(Behaviour::default().spawn_failure(SpawnFailure::EveryNth(3)))
            .unwrap();
    let mut failed = Vec::new();
    for worker_id in 1..=7 {
        if spawner.spawn(spawn_request(worker_id)).await.is_err() {
            failed.push(worker_id);
        }
    }
    assert_eq!(failed, [3, 6]);
}

#[tokio::test(start_paused = true)]
async fn spawn_latency_delays_the_handshake_on_the_tokio_clock() {
    let latency = Duration::from_millis(750);
    let spawner = MockSpawner::with_behaviour(Behaviour::default().spawn_latency(latency)).unwrap();
    let started = Instant::now();
    let _connection = spawner.spawn(spawn_request(1)).await.unwrap();
    assert_eq!(started.elapsed(), latency);
}

#[tokio::test(start_paused = true)]
async fn a_spawn_slower_than_the_handshake_timeout_times_out() {
    let spawner =
        MockSpawner::with_behaviour(Behaviour::default().spawn_latency(Duration::from_secs(60)))
            .unwrap();
    let started = Instant::now();
    let error = spawner.spawn(spawn_request(1)).await.unwrap_err();
    assert!(
        matches!(error, SpawnError::HandshakeTimeout { .. }),
        "{error:?}"
    );
    assert_eq!(started.elapsed(), HANDSHAKE_TIMEOUT);
    assert_eq!(spawner.stats().workers_started(), 0);
}

#[tokio::test]
async fn an_unrunnable_behaviour_is_refused_with_the_reason() {
    let error = MockSpawner::with_behaviour(Behaviour::default().failure_rate(-0.1)).unwrap_err();
    assert_eq!(error, BehaviourError::FailureRateOutOfRange(-0.1));
    assert!(error.to_string().contains("between 0.0 and 1.0"));
}

#[tokio::test(start_paused = true)]
async fn terminate_finishes_the_running_request_then_exits_0() {
    let spawner =
        MockSpawner::with_behaviour(Behaviour::default().fixed_latency(Duration::from_millis(100)))
            .unwrap();
    let connection = spawner.spawn(spawn_request(1)).await.unwrap();
    let call = {
        let connection = Arc::clone(&connection);
        tokio::spawn(async move { connection.call(request(1, "echo")).await })
    };
    tokio::task::yield_now().await;
    assert_eq!(connection.in_flight(), 1);

    connection.terminate();
    assert!(matches!(
        connection.call(request(2, "echo")).await,
        Err(CallError::Closed { .. })
    ));
    assert!(call.await.unwrap().is_ok());
    assert_eq!(connection.exited().await, WorkerExit::code(0));
    assert_eq!(spawner.stats().workers_alive(), 0);
}

#[tokio::test(start_paused = true)]
async fn kill_mid_request_fails_it_and_the_worker_stops_serving() {
    let spawner =
        MockSpawner::with_behaviour(Behaviour::default().fixed_latency(Duration::from_secs(1)))
            .unwrap();
    let connection = spawner.spawn(spawn_request(1)).await.unwrap();
    let call = {
        let connection = Arc::clone(&connection);
        tokio::spawn(async move { connection.call(request(1, "echo")).await })
    };
    tokio::task::yield_now().await;
    assert_eq!(connection.in_flight(), 1);
    connection.kill();
    assert!(matches!(call.await.unwrap(), Err(CallError::Closed { .. })));
    assert_eq!(connection.try_exit(), Some(WorkerExit::signal(9)));
    assert_eq!(connection.in_flight(), 0);
    assert_eq!(spawner.stats().workers_alive(), 0);
}

#[tokio::test]
async fn resident_memory_grows_per_request() {
    let spawner = MockSpawner::with_behaviour(Behaviour::default().rss(1_000, 10)).unwrap();
    let connection = spawner
        .spawn(SpawnRequest {
            worker_id: 1,
            handshake_timeout: HANDSHAKE_TIMEOUT,
        })
        .await
        .unwrap();
    assert_eq!(connection.resident_memory_bytes(), Some(1_000));
    for id in 1..=5 {
        connection.call(request(id, "echo")).await.unwrap();
    }
    assert_eq!(connection.resident_memory_bytes(), Some(1_050));
}

#[tokio::test]
async fn dropping_a_behaviour_connection_kills_its_worker() {
    let spawner = MockSpawner::with_behaviour(Behaviour::default()).unwrap();
    let connection = spawner.spawn(spawn_request(1)).await.unwrap();
    assert_eq!(spawner.stats().workers_alive(), 1);
    drop(connection);
    let stats = spawner.stats();
    assert_eq!((stats.workers_alive(), stats.kills()), (0, 1));
}
