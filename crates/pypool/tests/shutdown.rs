//! Failure mode: the pool stopping (shutdown with work in flight, dropping the last handle).
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use pypool::{PoolError, ShutdownReport, Status, WorkerExit};
use pypool_mock::{Delivery, MockSpawner, WorkerHandle};
use serde_json::json;
use support::scripted::{builder, next_request, next_spawn, scripted_pool};
use support::{PATIENCE, busy_worker_id, eventually, spawn_execute, spawn_shutdown, within};
use tokio::time::Instant;

/// A shutdown in which every worker finished its work and none was killed.
const DRAINED: ShutdownReport = ShutdownReport {
    drained: true,
    killed: 0,
};

/// Finds the handle of the worker the status shows busy.
fn busy_worker(status: &Status, workers: &[WorkerHandle]) -> usize {
    let busy = busy_worker_id(status);
    workers.iter().position(|w| w.worker_id() == busy).unwrap()
}

#[tokio::test(start_paused = true)]
async fn shutdown_refuses_new_and_queued_requests_and_lets_the_in_flight_one_finish() {
    let (pool, _spawns, mut workers) = scripted_pool(1, |b| b).await;
    let worker = &mut workers[0];
    let in_flight = spawn_execute(&pool, "echo", json!({ "n": 1 }));
    let request = next_request(worker).await;
    let queued = spawn_execute(&pool, "summarise", json!({ "n": 2 }));
    eventually(&pool, "a request waits", |s| s.queue_len == 1).await;

    let stopping = spawn_shutdown(&pool, Duration::from_secs(10));
    let status = eventually(&pool, "shutdown started", |s| s.shutting_down).await;
    assert_eq!(status.draining, 1, "the busy worker drains");

    // New requests fail at once.
    let asked = Instant::now();
    let refused = pool.execute("echo", json!({ "n": 3 })).await.unwrap_err();
    assert_eq!(asked.elapsed(), Duration::ZERO);
    assert!(
        matches!(&refused, PoolError::ShuttingDown { command } if command == "echo"),
        "{refused:?}"
    );
    // The queued one was refused too, naming its command.
    let queued = within(PATIENCE, "the queued caller hears", queued)
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&queued, PoolError::ShuttingDown { command } if command == "summarise"),
        "{queued:?}"
    );
    assert_eq!(pool.status().queue_len, 0);
    assert!(!worker.was_terminated(), "not stopped mid-request");

    // The in-flight request finishes before the deadline; its caller gets the reply.
    assert_eq!(request.reply(json!({ "n": 1 })), Delivery::Delivered);
    assert_eq!(in_flight.await.unwrap().unwrap(), json!({ "n": 1 }));
    let report = within(PATIENCE, "shutdown returns", stopping)
        .await
        .unwrap();
    assert_eq!(report, DRAINED);
    assert!(worker.was_terminated());
    assert_eq!(
        worker.try_exit(),
        Some(WorkerExit::code(0)),
        "stopped by SIGTERM"
    );
    assert_eq!(worker.requests_seen(), 1);
    let status = pool.status();
    assert_eq!((status.workers, status.retiring), (0, 0));
    assert_eq!(status.counters.replaced, 0);
    assert!(matches!(
        pool.ready().await,
        Err(PoolError::ShuttingDown { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn shutdown_terminates_idle_workers_at_once_and_busy_ones_after_their_request() {
    let (pool, _spawns, mut workers) = scripted_pool(2, |b| b).await;
    let in_flight = spawn_execute(&pool, "echo", json!({ "n": 1 }));
    let status = eventually(&pool, "one worker is busy", |s| s.busy == 1).await;
    let busy = busy_worker(&status, &workers);
    let idle = 1 - busy;
    let request = next_request(&mut workers[busy]).await;

    let stopping = spawn_shutdown(&pool, Duration::from_secs(10));
    within(
        PATIENCE,
        "the idle worker gets SIGTERM",
        workers[idle].terminated(),
    )
    .await;
    let exit = within(PATIENCE, "the idle worker exits", workers[idle].exited()).await;
    assert_eq!(exit, WorkerExit::code(0));
    assert!(
        !workers[busy].was_terminated(),
        "the busy one finishes first"
    );

    assert_eq!(request.reply(json!("done")), Delivery::Delivered);
    assert_eq!(in_flight.await.unwrap().unwrap(), json!("done"));
    let report = within(PATIENCE, "shutdown returns", stopping)
        .await
        .unwrap();
    assert_eq!(report, DRAINED);
    assert_eq!(workers[busy].try_exit(), Some(WorkerExit::code(0)));
    assert_eq!(pool.status().workers, 0);
}

#[tokio::test(start_paused = true)]
async fn a_request_still_running_at_the_deadline_gets_its_worker_killed() {
    let (pool, _spawns, mut workers) = scripted_pool(1, |b| b).await;
    let worker = &mut workers[0];
    let in_flight = spawn_execute(&pool, "echo", json!({ "n": 1 }));
    let request = next_request(worker).await;

    let started = Instant::now();
    let report = pool.shutdown(Duration::from_secs(2)).await;
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(2),
        "no longer than the deadline"
    );
    assert_eq!(
        report,
        ShutdownReport {
            drained: false,
            killed: 1
        }
    );
    assert!(worker.was_killed());
    assert_eq!(worker.try_exit(), Some(WorkerExit::signal(9)));

    let error = in_flight.await.unwrap().unwrap_err();
    assert!(
        matches!(&error, PoolError::Connection { worker_id, command, .. }
            if *worker_id == worker.worker_id() && command == "echo"),
        "{error:?}"
    );
    assert_eq!(request.reply(json!("too late")), Delivery::NotInFlight);
    let status = pool.status();
    assert_eq!((status.workers, status.retiring), (0, 0));
    assert_eq!(
        status.counters.replaced, 0,
        "nothing is replaced while shutting down"
    );
    assert_eq!(status.counters.requests_failed, 1);
}

#[tokio::test(start_paused = true)]
async fn a_worker_still_starting_at_shutdown_is_killed_when_it_arrives() {
    let (spawner, mut spawns) = MockSpawner::scripted();
    let pool = builder(spawner, 2).build().unwrap();
    let first = next_spawn(&mut spawns).await;
    let late = next_spawn(&mut spawns).await;
    let ready = first.accept();
    eventually(&pool, "one worker is ready", |s| s.ready == 1).await;

    let report = pool.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report, DRAINED);
    assert_eq!(ready.try_exit(), Some(WorkerExit::code(0)));
    // The second worker finishes its handshake after the pool stopped.
    let late = late.accept();
    within(PATIENCE, "the late worker is killed", late.killed()).await;
    assert_eq!(late.requests_seen(), 0);
    assert_eq!(pool.status().workers, 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_pool_handle_kills_every_worker() {
    let (pool, spawns, workers) = scripted_pool(2, |b| b).await;
    let stats = spawns.stats();
    let clone = pool.clone();
    drop(pool);
    assert!(
        workers.iter().all(|w| !w.was_killed()),
        "a clone still holds the pool"
    );
    assert_eq!(clone.status().workers, 2);

    drop(clone);
    for worker in &workers {
        assert!(
            worker.was_killed(),
            "worker {} still alive",
            worker.worker_id()
        );
        assert_eq!(worker.try_exit(), Some(WorkerExit::signal(9)));
    }
    assert_eq!(stats.kills(), 2);
    assert_eq!(stats.workers_alive(), 0);
}
