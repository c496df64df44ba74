//! Failure mode: a worker holding several requests dies. Every request it
//! held ends with `worker_exited`, but that is one failure of the worker,
//! not one per request: the command's breaker counts the exit once, so a
//! single crash of a shared worker does not open the circuit for everyone
//! (found by the chaos benchmark: one SIGKILL among 64 in-flight pings
//! opened `ping`'s breaker for 5 s). Crashes of separate workers still
//! count one each, so a command that keeps killing its worker still trips.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use pypool::{BreakerConfig, Pool, PoolBuilder};
use pypool_mock::{Delivery, SpawnHandle, WorkerHandle};
use pypool_seam::WorkerExit;
use serde_json::json;
use support::capacity::{pool_of, request_on};
use support::{NO_TIME, caller_error, eventually, spawn_execute, until_ready, within};

/// Consecutive failures that open the command breaker in these tests.
const TRIP_AFTER: u32 = 5;
/// More requests on one worker than [`TRIP_AFTER`].
const IN_FLIGHT: usize = 8;

/// The command breaker opens after [`TRIP_AFTER`] consecutive failures,
/// for an hour.
fn tripping_at_five(builder: PoolBuilder) -> PoolBuilder {
    builder.command_breaker(BreakerConfig {
        consecutive_failures: TRIP_AFTER,
        // Open for longer than the paced replacement spawns take.
        reset_timeout: Duration::from_secs(3600),
        ..BreakerConfig::default()
    })
}

#[tokio::test(start_paused = true)]
async fn one_crash_of_a_shared_worker_does_not_open_the_commands_breaker() {
    let (pool, _spawns, mut workers) =
        pool_of(2, IN_FLIGHT as u32, &[("work", false)], tripping_at_five).await;
    // Both workers full: IN_FLIGHT requests on each.
    let calls: Vec<_> = (0..2 * IN_FLIGHT)
        .map(|n| spawn_execute(&pool, "work", json!({ "n": n })))
        .collect();
    let mut held = Vec::new();
    for worker in &mut workers {
        let mut requests = Vec::new();
        for _ in 0..IN_FLIGHT {
            requests.push(request_on(worker).await);
        }
        held.push(requests);
    }
    let survivors = held.pop().unwrap();
    assert!(workers[0].crash(WorkerExit::signal(9)));
    drop(held);
    eventually(&pool, "the crashed worker's requests to fail", |status| {
        status.counters.requests_failed == IN_FLIGHT as u64
    })
    .await;

    // A new call is admitted (the circuit stayed closed) and runs on the
    // surviving worker once it has room.
    let after = spawn_execute(&pool, "work", json!({ "n": "after" }));
    for request in survivors {
        assert_eq!(request.reply(json!("ok")), Delivery::Delivered);
    }
    let request = within(
        NO_TIME,
        "the call after the crash",
        workers[1].next_request(),
    )
    .await
    .expect("the call reaches the surviving worker instead of failing `circuit_open`");
    assert_eq!(request.reply(json!("done")), Delivery::Delivered);
    assert_eq!(after.await.unwrap().unwrap(), json!("done"));
    let mut exited = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(result) => assert_eq!(result, json!("ok")),
            Err(error) => {
                assert_eq!(error.kind(), "worker_exited");
                exited += 1;
            }
        }
    }
    assert_eq!(exited, IN_FLIGHT);
}

#[tokio::test(start_paused = true)]
async fn a_command_that_kills_worker_after_worker_still_opens_its_breaker() {
    let (pool, mut spawns, mut workers) =
        pool_of(1, 2, &[("explode", false)], tripping_at_five).await;
    let mut worker = workers.remove(0);
    // Five crashes in a row, each of its own worker: five failures.
    for round in 0..TRIP_AFTER {
        let call = spawn_execute(&pool, "explode", json!({ "round": round }));
        let request = request_on(&mut worker).await;
        assert!(request.crash(WorkerExit::signal(11)));
        assert_eq!(caller_error(call).await.kind(), "worker_exited");
        worker = accept_paced(&pool, &mut spawns).await;
    }
    let call = spawn_execute(&pool, "explode", json!({ "round": "sixth" }));
    assert_eq!(caller_error(call).await.kind(), "circuit_open");
    assert!(worker.try_next_request().is_none());
}

/// Accepts the replacement of a crashed worker (its spawn is paced by the
/// recovery policy's backoff, so time has to pass) with capacity 2.
async fn accept_paced(pool: &Pool, spawns: &mut SpawnHandle) -> WorkerHandle {
    let spawn = within(
        Duration::from_secs(60),
        "the replacement's spawn",
        spawns.next_spawn(),
    )
    .await
    .unwrap();
    let mut handshake = spawn.default_handshake();
    handshake.capacity = 2;
    let worker = spawn.accept_with(handshake);
    until_ready(pool, worker.worker_id()).await;
    worker
}
