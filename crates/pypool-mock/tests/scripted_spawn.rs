//! Scripted mode: the test decides how each spawn ends.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{HANDSHAKE_TIMEOUT, spawn_request, start_spawn};
use pypool_mock::{MOCK_PYTHON_VERSION, MockSpawner, command};
use pypool_seam::{SpawnError, SpawnRequest, WorkerExit, WorkerSpawner};
use pypool_wire::PROTOCOL_VERSION;
use tokio::time::Instant;

#[tokio::test]
async fn accept_sends_the_default_handshake_with_configured_commands() {
    let (spawner, mut spawns) =
        MockSpawner::scripted_with_commands([command("summarise", false), command("embed", true)]);
    let spawning = start_spawn(&spawner, spawn_request(3));

    let pending = spawns.next_spawn().await.unwrap();
    assert_eq!(pending.request(), &spawn_request(3));
    assert_eq!(pending.worker_id(), 3);
    let worker = pending.accept();
    let connection = spawning.await.unwrap().unwrap();

    let handshake = connection.handshake();
    assert_eq!(handshake.protocol, PROTOCOL_VERSION);
    assert_eq!(handshake.worker_id, 3);
    assert_eq!(connection.worker_id(), 3);
    assert_eq!(handshake.pid, 10_003);
    assert_eq!(handshake.python_version, MOCK_PYTHON_VERSION);
    let commands: Vec<_> = handshake
        .commands
        .iter()
        .map(|c| (c.name.as_str(), c.idempotent))
        .collect();
    assert_eq!(
        commands,
        [
            ("ping", true),
            ("info", true),
            ("summarise", false),
            ("embed", true)
        ]
    );
    assert_eq!(worker.handshake(), handshake);
    assert_eq!(connection.try_exit(), None);
    assert_eq!(spawns.spawn_count(), 1);
}

#[tokio::test]
async fn fail_returns_the_scripted_error() {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let spawning = start_spawn(&spawner, spawn_request(1));
    spawns
        .next_spawn()
        .await
        .unwrap()
        .fail(SpawnError::Refused {
            reason: "breaker open".into(),
        });
    let error = spawning.await.unwrap().unwrap_err();
    assert!(
        matches!(&error, SpawnError::Refused { reason } if reason == "breaker open"),
        "{error:?}"
    );
    assert_eq!(spawner.stats().spawn_failures(), 1);
    assert_eq!(spawner.stats().workers_started(), 0);
}

#[tokio::test]
async fn exit_before_handshake_reports_the_exit_and_stderr() {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let spawning = start_spawn(&spawner, spawn_request(4));
    spawns
        .next_spawn()
        .await
        .unwrap()
        .exit_before_handshake(WorkerExit::code(1), "ImportError: boom\n");
    let error = spawning.await.unwrap().unwrap_err();
    match error {
        SpawnError::ExitedBeforeHandshake {
            worker_id,
            exit,
            stderr_tail,
        } => {
            assert_eq!(worker_id, 4);
            assert_eq!(exit, WorkerExit::code(1));
            assert_eq!(stderr_tail, "ImportError: boom\n");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn startup_error_reports_kind_and_message() {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let spawning = start_spawn(&spawner, spawn_request(2));
    spawns
        .next_spawn()
        .await
        .unwrap()
        .startup_error("handler_import", "No module named 'nope'");
    match spawning.await.unwrap().unwrap_err() {
        SpawnError::StartupFailed {
            worker_id,
            kind,
            message,
            ..
        } => {
            assert_eq!((worker_id, kind.as_str()), (2, "handler_import"));
            assert_eq!(message, "No module named 'nope'");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn hang_times_out_after_exactly_the_handshake_timeout() {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let started = Instant::now();
    let spawning = start_spawn(&spawner, spawn_request(5));
    spawns.next_spawn().await.unwrap().hang();
    let error = spawning.await.unwrap().unwrap_err();
    assert_eq!(started.elapsed(), HANDSHAKE_TIMEOUT);
    match error {
        SpawnError::HandshakeTimeout {
            worker_id, timeout, ..
        } => assert_eq!((worker_id, timeout), (5, HANDSHAKE_TIMEOUT)),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn undecided_spawn_is_still_pending_just_before_the_timeout() {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let spawning = start_spawn(&spawner, spawn_request(1));
    // Held, not decided: the spawn waits.
    let _pending = spawns.next_spawn().await.unwrap();
    tokio::time::advance(HANDSHAKE_TIMEOUT - Duration::from_millis(1)).await;
    tokio::task::yield_now().await;
    assert!(!spawning.is_finished());
    tokio::time::advance(Duration::from_millis(1)).await;
    let error = spawning.await.unwrap().unwrap_err();
    assert!(
        matches!(error, SpawnError::HandshakeTimeout { .. }),
        "{error:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_a_pending_spawn_hangs_it() {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let started = Instant::now();
    let spawning = start_spawn(&spawner, spawn_request(1));
    drop(spawns.next_spawn().await.unwrap());
    let error = spawning.await.unwrap().unwrap_err();
    assert!(
        matches!(error, SpawnError::HandshakeTimeout { .. }),
        "{error:?}"
    );
    assert_eq!(started.elapsed(), HANDSHAKE_TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn accepting_after_the_timeout_kills_the_worker() {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let spawning = start_spawn(&spawner, spawn_request(1));
    let pending = spawns.next_spawn().await.unwrap();
    let error = spawning.await.unwrap().unwrap_err();
    assert!(
        matches!(error, SpawnError::HandshakeTimeout { .. }),
        "{error:?}"
    );

    let worker = pending.accept();
    assert!(worker.was_killed());
    assert_eq!(worker.try_exit(), Some(WorkerExit::signal(9)));
    assert_eq!(spawner.stats().workers_alive(), 0);
}

#[tokio::test]
async fn a_handshake_for_another_worker_id_is_refused_and_the_worker_killed() {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let spawning = start_spawn(&spawner, spawn_request(6));
    let pending = spawns.next_spawn().await.unwrap();
    let mut handshake = pending.default_handshake();
    handshake.worker_id = 7;
    let worker = pending.accept_with(handshake);
    match spawning.await.unwrap().unwrap_err() {
        SpawnError::BadHandshake {
            worker_id, reason, ..
        } => {
            assert_eq!(worker_id, 6);
            assert!(reason.contains("worker id 7"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(worker.was_killed());
    assert_eq!(worker.exited().await, WorkerExit::signal(9));
}

#[tokio::test]
async fn another_protocol_version_is_refused() {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let spawning = start_spawn(&spawner, spawn_request(1));
    let pending = spawns.next_spawn().await.unwrap();
    let mut handshake = pending.default_handshake();
    handshake.protocol = PROTOCOL_VERSION + 1;
    let worker = pending.accept_with(handshake);
    match spawning.await.unwrap().unwrap_err() {
        SpawnError::ProtocolMismatch {
            worker_version,
            host_version,
            ..
        } => assert_eq!(
            (worker_version, host_version),
            (PROTOCOL_VERSION + 1, PROTOCOL_VERSION)
        ),
        other => panic!("unexpected {other:?}"),
    }
    assert!(worker.was_killed());
}

#[tokio::test]
async fn spawns_arrive_in_order_and_are_counted() {
    let (spawner, mut spawns) = MockSpawner::scripted();
    assert_eq!(spawns.spawn_count(), 0);
    assert!(spawns.try_next_spawn().is_none());
    let first = start_spawn(&spawner, spawn_request(1));
    let second = start_spawn(&spawner, spawn_request(2));
    let a = spawns.next_spawn().await.unwrap();
    let b = spawns.next_spawn().await.unwrap();
    assert_eq!((a.worker_id(), b.worker_id()), (1, 2));
    assert_eq!(spawns.spawn_count(), 2);
    let _worker_b = b.accept();
    let _worker_a = a.accept();
    let first = first.await.unwrap().unwrap();
    let second = second.await.unwrap().unwrap();
    assert_eq!((first.worker_id(), second.worker_id()), (1, 2));
    assert_eq!(spawner.stats().workers_alive(), 2);

    drop(spawner);
    assert!(spawns.next_spawn().await.is_none());
}

#[tokio::test]
async fn spawning_without_a_spawn_handle_is_refused() {
    let (spawner, spawns) = MockSpawner::scripted();
    drop(spawns);
    let request = SpawnRequest {
        worker_id: 1,
        handshake_timeout: HANDSHAKE_TIMEOUT,
    };
    let error = spawner.spawn(request).await.unwrap_err();
    assert!(matches!(error, SpawnError::Refused { .. }), "{error:?}");
}
