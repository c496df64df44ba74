//! Failure mode: callers that go away (dropped, timed-out or aborted `execute` futures).
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use pypool::{BreakerConfig, Pool, PoolBuilder, PoolError, WorkerState};
use pypool_mock::{Delivery, WorkerHandle};
use serde_json::{Value, json};
use support::scripted::{next_request, scripted_pool, scripted_pool_announcing};
use support::{eventually, spawn_execute};
use tokio::task::JoinHandle;

/// Aborts `task` and waits until its future is dropped.
async fn abort(task: JoinHandle<Result<Value, PoolError>>) {
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_caller_leaks_no_worker_and_its_late_reply_reaches_no_one() {
    let (pool, _spawns, mut workers) = scripted_pool(1, |b| b).await;
    let worker = &mut workers[0];

    // The caller gives up after 1 s while its request is on the worker.
    let (timed_out, abandoned) = tokio::join!(
        tokio::time::timeout(
            Duration::from_secs(1),
            pool.execute("echo", json!({ "n": 1 }))
        ),
        next_request(worker),
    );
    assert!(timed_out.is_err(), "the caller gave up: {timed_out:?}");
    let status = pool.status();
    assert_eq!(
        (status.busy, status.ready),
        (1, 0),
        "the worker still runs it"
    );

    // A new caller queues behind the abandoned request...
    let next = spawn_execute(&pool, "echo", json!({ "n": 2 }));
    eventually(&pool, "the new request waits", |s| s.queue_len == 1).await;
    assert!(worker.try_next_request().is_none());

    // ...and the abandoned request's reply arrives only now. The pool still
    // listens for it (so the worker is never lent with a reply pending).
    let abandoned_id = abandoned.id();
    assert_eq!(
        abandoned.reply(json!({ "reply_to": 1 })),
        Delivery::Delivered
    );
    let second = next_request(worker).await;
    assert_eq!(second.request().args["n"], json!(2));
    assert!(second.id() > abandoned_id, "requests in order");
    assert_eq!(second.reply(json!({ "reply_to": 2 })), Delivery::Delivered);
    assert_eq!(
        next.await.unwrap().unwrap(),
        json!({ "reply_to": 2 }),
        "the new caller gets its own reply, never the stale one"
    );
    assert_eq!(worker.requests_seen(), 2);
    let status = eventually(&pool, "the worker is idle", |s| s.ready == 1).await;
    assert_eq!(status.queue_len, 0);
    assert_eq!(status.worker_details[0].state, WorkerState::Ready);
}

#[tokio::test(start_paused = true)]
async fn a_select_that_drops_the_execute_future_leaks_no_worker() {
    let (pool, _spawns, mut workers) = scripted_pool(1, |b| b).await;
    let worker = &mut workers[0];
    let abandoned = tokio::select! {
        result = pool.execute("echo", json!({ "n": 1 })) => panic!("not answered yet: {result:?}"),
        request = next_request(worker) => request,
    };
    assert_eq!(abandoned.request().args["n"], json!(1));
    assert_eq!(abandoned.reply(json!("late")), Delivery::Delivered);
    eventually(&pool, "the worker is idle", |s| s.ready == 1).await;

    let (result, request) = tokio::join!(pool.execute("echo", json!({ "n": 2 })), async {
        let request = next_request(worker).await;
        assert_eq!(request.request().args["n"], json!(2));
        request.reply(json!("fresh"))
    });
    assert_eq!(request, Delivery::Delivered);
    assert_eq!(result.unwrap(), json!("fresh"));
}

#[tokio::test(start_paused = true)]
async fn an_aborted_task_mid_request_leaks_no_worker() {
    let (pool, _spawns, mut workers) = scripted_pool(1, |b| b).await;
    let worker = &mut workers[0];
    let task = spawn_execute(&pool, "echo", json!({ "n": 1 }));
    let abandoned = next_request(worker).await;
    abort(task).await;
    assert_eq!(pool.status().busy, 1);
    assert_eq!(abandoned.reply(json!("late")), Delivery::Delivered);
    eventually(&pool, "the worker is idle", |s| s.ready == 1 && s.busy == 0).await;

    let next = spawn_execute(&pool, "echo", json!({ "n": 2 }));
    let request = next_request(worker).await;
    assert_eq!(request.request().args["n"], json!(2));
    assert_eq!(request.reply(json!("fresh")), Delivery::Delivered);
    assert_eq!(next.await.unwrap().unwrap(), json!("fresh"));
}

#[tokio::test(start_paused = true)]
async fn a_dropped_waiter_leaves_the_queue_and_frees_its_place_under_the_bound() {
    let (pool, _spawns, mut workers) = scripted_pool(1, |b| b.queue_bound(2)).await;
    let worker = &mut workers[0];
    let a = spawn_execute(&pool, "echo", json!({ "n": 1 }));
    let request_a = next_request(worker).await;
    let b = spawn_execute(&pool, "echo", json!({ "n": 2 }));
    eventually(&pool, "b waits", |s| s.queue_len == 1).await;
    let c = spawn_execute(&pool, "echo", json!({ "n": 3 }));
    eventually(&pool, "b and c wait", |s| s.queue_len == 2).await;
    let refused = pool.execute("echo", json!({ "n": 4 })).await.unwrap_err();
    assert!(
        matches!(
            refused,
            PoolError::Overloaded {
                queued: 2,
                bound: 2
            }
        ),
        "{refused:?}"
    );

    // b's caller goes away: its place is free again.
    abort(b).await;
    assert_eq!(pool.status().queue_len, 1);
    let e = spawn_execute(&pool, "echo", json!({ "n": 5 }));
    eventually(&pool, "c and e wait", |s| s.queue_len == 2).await;
    assert!(!e.is_finished(), "e was queued, not refused");

    // The worker serves a, then c and e in order; b never reaches it.
    assert_eq!(request_a.reply(json!(1)), Delivery::Delivered);
    assert_eq!(a.await.unwrap().unwrap(), json!(1));
    for (task, n) in [(c, 3), (e, 5)] {
        let request = next_request(worker).await;
        assert_eq!(request.request().args["n"], json!(n));
        assert_eq!(request.reply(json!(n)), Delivery::Delivered);
        assert_eq!(task.await.unwrap().unwrap(), json!(n));
    }
    assert_eq!(worker.requests_seen(), 3);
    let status = eventually(&pool, "the worker is idle", |s| s.ready == 1).await;
    assert_eq!(status.queue_len, 0);
}

#[tokio::test(start_paused = true)]
async fn a_caller_leaving_just_as_the_worker_is_handed_to_it_leaks_nothing() {
    let (pool, _spawns, mut workers) = scripted_pool(1, |b| b).await;
    let worker = &mut workers[0];
    let a = spawn_execute(&pool, "echo", json!({ "n": 1 }));
    let request_a = next_request(worker).await;
    let b = spawn_execute(&pool, "echo", json!({ "n": 2 }));
    eventually(&pool, "b waits", |s| s.queue_len == 1).await;

    // In one step: the worker frees up for b, and b's caller goes away.
    assert_eq!(request_a.reply(json!(1)), Delivery::Delivered);
    b.abort();
    assert_eq!(a.await.unwrap().unwrap(), json!(1));
    assert!(b.await.unwrap_err().is_cancelled());

    eventually(&pool, "the worker is idle", |s| {
        s.ready == 1 && s.queue_len == 0
    })
    .await;
    let c = spawn_execute(&pool, "echo", json!({ "n": 3 }));
    let request_c = next_request(worker).await;
    assert_eq!(request_c.request().args["n"], json!(3));
    assert_eq!(request_c.reply(json!(3)), Delivery::Delivered);
    assert_eq!(c.await.unwrap().unwrap(), json!(3));
    assert_eq!(worker.requests_seen(), 2, "b's request was never sent");
}

/// A command breaker that opens after one failure and lets one probe through after 5 s.
fn touchy_breaker(builder: PoolBuilder) -> PoolBuilder {
    builder.command_breaker(BreakerConfig {
        consecutive_failures: 1,
        reset_timeout: Duration::from_secs(5),
        half_open_probes: 1,
        half_open_successes_to_close: 1,
        ..BreakerConfig::default()
    })
}

/// Trips `flaky`'s breaker with one Python exception, then waits until it is half-open.
async fn trip_and_wait_half_open(pool: &Pool, worker: &mut WorkerHandle) {
    let failing = spawn_execute(pool, "flaky", Value::Null);
    let request = next_request(worker).await;
    assert_eq!(
        request.python_error("RuntimeError", "downstream is down"),
        Delivery::Delivered
    );
    let error = failing.await.unwrap().unwrap_err();
    assert!(matches!(error, PoolError::Remote { .. }), "{error:?}");
    let rejected = pool.execute("flaky", Value::Null).await.unwrap_err();
    assert!(
        matches!(rejected, PoolError::CircuitOpen { retry_after, .. } if retry_after == Duration::from_secs(5)),
        "{rejected:?}"
    );
    tokio::time::advance(Duration::from_secs(5)).await;
}

#[tokio::test(start_paused = true)]
async fn a_probe_cancelled_while_queued_gives_its_breaker_permit_back() {
    let (pool, _spawns, mut workers) =
        scripted_pool_announcing(1, &["flaky", "slow"], touchy_breaker).await;
    let worker = &mut workers[0];
    trip_and_wait_half_open(&pool, worker).await;

    // The worker is busy with another command; the probe waits in the queue.
    let slow = spawn_execute(&pool, "slow", Value::Null);
    let slow_request = next_request(worker).await;
    let probe = spawn_execute(&pool, "flaky", Value::Null);
    eventually(&pool, "the probe waits", |s| s.queue_len == 1).await;
    // While it waits, it holds the only probe slot.
    let rejected = pool.execute("flaky", Value::Null).await.unwrap_err();
    assert!(
        matches!(rejected, PoolError::CircuitOpen { .. }),
        "{rejected:?}"
    );

    abort(probe).await;
    assert_eq!(pool.status().queue_len, 0);
    // The slot is free again: the next call is admitted as the probe and queues.
    let second_probe = spawn_execute(&pool, "flaky", Value::Null);
    eventually(&pool, "the second probe waits", |s| s.queue_len == 1).await;
    assert!(!second_probe.is_finished(), "admitted, not rejected");

    assert_eq!(slow_request.reply(json!("slow")), Delivery::Delivered);
    assert_eq!(slow.await.unwrap().unwrap(), json!("slow"));
    let probe_request = next_request(worker).await;
    assert_eq!(probe_request.command(), "flaky");
    assert_eq!(probe_request.reply(json!("ok")), Delivery::Delivered);
    assert_eq!(second_probe.await.unwrap().unwrap(), json!("ok"));

    // The probe succeeded: the breaker is closed, calls flow.
    let (result, delivery) = tokio::join!(pool.execute("flaky", Value::Null), async {
        next_request(worker).await.reply(json!("again"))
    });
    assert_eq!(delivery, Delivery::Delivered);
    assert_eq!(result.unwrap(), json!("again"));
}

#[tokio::test(start_paused = true)]
async fn a_probe_whose_caller_left_mid_request_still_decides_the_breaker() {
    let (pool, _spawns, mut workers) =
        scripted_pool_announcing(1, &["flaky", "slow"], touchy_breaker).await;
    let worker = &mut workers[0];
    trip_and_wait_half_open(&pool, worker).await;

    let probe = spawn_execute(&pool, "flaky", Value::Null);
    let probe_request = next_request(worker).await;
    abort(probe).await;
    // The probe is still running on the worker: no second probe meanwhile.
    let rejected = pool.execute("flaky", Value::Null).await.unwrap_err();
    assert!(
        matches!(rejected, PoolError::CircuitOpen { .. }),
        "{rejected:?}"
    );

    // Its success closes the breaker even though nobody waits for it.
    assert_eq!(probe_request.reply(json!("ok")), Delivery::Delivered);
    eventually(&pool, "the worker is idle", |s| s.ready == 1).await;
    let (result, delivery) = tokio::join!(pool.execute("flaky", Value::Null), async {
        next_request(worker).await.reply(json!("flowing"))
    });
    assert_eq!(delivery, Delivery::Delivered);
    assert_eq!(result.unwrap(), json!("flowing"));
}
