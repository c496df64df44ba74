//! Session affinity: hint, strict and strict_fail_fast modes, rebinding, and crashes of the bound worker (never an error because of affinity).
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use pypool::{AffinityMode, PoolError, Session, WorkerExit, WorkerId};
use serde_json::{Value, json};
use support::fake_runtime::OCCUPY;
use support::{
    NO_TIME, fake_pool, scripted_builder, served_by, spawn_execute, spawn_session_execute,
    start_pool, status_until, until_gone, until_ready, within,
};
use tokio::time::Instant;

const HINT_WAIT: Duration = Duration::from_millis(50);

async fn echo(session: &Session, n: u64) -> WorkerId {
    let result = within(
        NO_TIME,
        "the session's call",
        session.execute("echo", json!({ "n": n })),
    )
    .await;
    served_by(&result.unwrap())
}

async fn anonymous_echo(pool: &pypool::Pool) -> WorkerId {
    let result = within(
        NO_TIME,
        "an anonymous call",
        pool.execute("echo", Value::Null),
    )
    .await;
    served_by(&result.unwrap())
}

#[tokio::test(start_paused = true)]
async fn hint_consecutive_calls_of_a_session_stay_on_its_worker_while_it_is_free() {
    let (pool, _spawns, runtime) = fake_pool(3).await;
    let alice = pool.session("alice").unwrap();
    let bob = pool.session("bob").unwrap();
    let started = Instant::now();
    let home = echo(&alice, 0).await;
    let bobs_home = echo(&bob, 100).await;
    assert_ne!(
        home, bobs_home,
        "bob's first call took the next free worker"
    );

    // Anonymous calls take the first free worker, so they move around the
    // pool and use the sessions' workers too; the sessions' calls do not move.
    let mut anonymous = Vec::new();
    for n in 1..=20 {
        anonymous.push(anonymous_echo(&pool).await);
        anonymous.push(anonymous_echo(&pool).await);
        assert_eq!(echo(&alice, n).await, home, "alice's call {n}");
        assert_eq!(echo(&bob, 100 + n).await, bobs_home, "bob's call {n}");
    }
    anonymous.sort_unstable();
    anonymous.dedup();
    assert!(
        anonymous.len() >= 2 && (anonymous.contains(&home) || anonymous.contains(&bobs_home)),
        "anonymous calls moved around the pool ({anonymous:?}), sessions did not"
    );
    assert_eq!(started.elapsed(), Duration::ZERO, "no call waited");
    let counters = pool.status().counters;
    assert_eq!(
        (
            counters.affinity_hits,
            counters.affinity_misses,
            counters.affinity_spills
        ),
        (40, 2, 0),
        "each session's first call was unbound, every later one found its worker"
    );
    let numbers_on = |worker| {
        runtime
            .requests(worker)
            .into_iter()
            .filter_map(|seen| seen.args.get("n").and_then(Value::as_u64))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        numbers_on(home),
        (0..=20).collect::<Vec<_>>(),
        "alice's worker served all of alice's calls, in order, and none of bob's"
    );
    assert_eq!(
        numbers_on(bobs_home),
        (100..=120).collect::<Vec<_>>(),
        "bob's worker served all of bob's calls, in order, and none of alice's"
    );
}

#[tokio::test(start_paused = true)]
async fn hint_waits_for_a_worker_busy_shorter_than_the_wait_and_stays_on_it() {
    let (pool, _spawns, runtime) = fake_pool(2).await;
    let alice = pool.session("alice").unwrap();
    let home = echo(&alice, 0).await;
    let occupied = spawn_session_execute(&alice, OCCUPY, json!({}));
    assert_eq!(runtime.wait_occupied(1).await, [home]);

    let started = Instant::now();
    let call = spawn_session_execute(&alice, "echo", json!({ "n": 1 }));
    status_until(&pool, "alice's call to wait for her worker", |status| {
        status.queue_len == 1 && status.ready == 1
    })
    .await;
    tokio::time::advance(HINT_WAIT / 2).await;
    runtime.release(home);
    let result = within(NO_TIME, "alice's call", call)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(served_by(&result), home);
    assert_eq!(started.elapsed(), HINT_WAIT / 2);
    occupied.await.unwrap().unwrap();
    let other = runtime.workers().into_iter().find(|w| *w != home).unwrap();
    assert!(
        runtime.requests(other).is_empty(),
        "the free worker was not used"
    );
}

#[tokio::test(start_paused = true)]
async fn hint_runs_elsewhere_when_the_worker_stays_busy_past_the_wait_and_rebinds() {
    let (pool, _spawns, runtime) = fake_pool(2).await;
    let alice = pool.session("alice").unwrap();
    let home = echo(&alice, 0).await;
    let occupied = spawn_session_execute(&alice, OCCUPY, json!({}));
    assert_eq!(runtime.wait_occupied(1).await, [home]);

    let started = Instant::now();
    let result = within(
        HINT_WAIT + NO_TIME,
        "alice's call",
        alice.execute("echo", json!({ "n": 1 })),
    )
    .await
    .unwrap();
    let moved_to = served_by(&result);
    assert_ne!(moved_to, home);
    assert_eq!(
        started.elapsed(),
        HINT_WAIT,
        "it waited the hint, then moved"
    );

    // Rebound: the next call goes straight to the new worker, no waiting.
    let started = Instant::now();
    assert_eq!(echo(&alice, 2).await, moved_to);
    assert_eq!(started.elapsed(), Duration::ZERO);
    runtime.release(home);
    occupied.await.unwrap().unwrap();
    // First call unbound (miss); the occupy and the rebound call on their
    // worker (hits); the call that moved (spill).
    let counters = pool.status().counters;
    assert_eq!(
        (
            counters.affinity_hits,
            counters.affinity_misses,
            counters.affinity_spills
        ),
        (2, 1, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn strict_waits_for_the_bound_worker_even_when_another_is_free() {
    let (builder, spawns) = scripted_builder(2);
    let (pool, _spawns, runtime) =
        start_pool(builder.affinity_mode(AffinityMode::Strict), spawns, 2).await;
    let alice = pool.session("alice").unwrap();
    let home = echo(&alice, 0).await;
    let other = runtime.workers().into_iter().find(|w| *w != home).unwrap();
    let occupied = spawn_session_execute(&alice, OCCUPY, json!({}));
    assert_eq!(runtime.wait_occupied(1).await, [home]);

    let started = Instant::now();
    let mut call = spawn_session_execute(&alice, "echo", json!({ "n": 1 }));
    let waited = tokio::time::timeout(Duration::from_secs(10), &mut call).await;
    assert!(waited.is_err(), "still waiting for worker {home}");
    let status = pool.status();
    assert_eq!((status.queue_len, status.ready), (1, 1), "{status:?}");
    assert!(
        runtime.requests(other).is_empty(),
        "the free worker was not used"
    );

    runtime.release(home);
    let result = within(NO_TIME, "alice's call", call)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(served_by(&result), home);
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    occupied.await.unwrap().unwrap();
    assert!(runtime.requests(other).is_empty());
}

#[tokio::test(start_paused = true)]
async fn strict_fail_fast_fails_at_once_when_the_bound_worker_is_busy() {
    let (pool, _spawns, runtime) = fake_pool(2).await;
    let alice = pool
        .session("alice")
        .unwrap()
        .with_affinity(AffinityMode::StrictFailFast);
    let home = echo(&alice, 0).await;
    let other = runtime.workers().into_iter().find(|w| *w != home).unwrap();
    let occupied = spawn_session_execute(&alice, OCCUPY, json!({}));
    assert_eq!(runtime.wait_occupied(1).await, [home]);

    let started = Instant::now();
    let error = alice.execute("echo", json!({ "n": 1 })).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert!(
        matches!(&error, PoolError::WorkerBusy { session, worker_id } if session == "alice" && *worker_id == home),
        "{error:?}"
    );
    assert_eq!(error.kind(), "worker_busy");
    assert_eq!(
        error.to_string(),
        format!(
            "session `alice` is bound to worker {home}, which is busy (affinity mode strict_fail_fast); retry, or use the hint or strict mode"
        )
    );
    assert!(runtime.requests(other).is_empty());

    runtime.release(home);
    occupied.await.unwrap().unwrap();
    assert_eq!(
        echo(&alice, 2).await,
        home,
        "served once its worker is free"
    );
}

/// After its bound worker crashed (mid-request or idle), the session's next
/// calls are served by another worker, which becomes its new home.
async fn served_elsewhere_after_a_crash(mode: AffinityMode, while_occupied: bool) {
    let (pool, mut spawns, runtime) = fake_pool(2).await;
    let alice = pool.session("alice").unwrap().with_affinity(mode);
    let home = echo(&alice, 0).await;
    if while_occupied {
        let occupied = spawn_session_execute(&alice, OCCUPY, json!({}));
        assert_eq!(runtime.wait_occupied(1).await, [home]);
        runtime.crash(home, WorkerExit::signal(9));
        let error = within(NO_TIME, "the occupy call", occupied)
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(error, PoolError::WorkerExited { worker_id, .. } if worker_id == home),
            "{error:?}"
        );
    } else {
        runtime.crash(home, WorkerExit::signal(9));
        until_gone(&pool, home).await;
    }

    // Served at once by the surviving worker, before any replacement exists.
    let survivor = echo(&alice, 1).await;
    assert_ne!(survivor, home, "{mode:?}");
    let replacement = runtime.accept_next(&mut spawns).await;
    until_ready(&pool, replacement).await;
    // The survivor is the session's new home even when it is not the next free worker.
    for n in 2..6 {
        anonymous_echo(&pool).await;
        assert_eq!(echo(&alice, n).await, survivor, "{mode:?} call {n}");
    }
    assert_eq!(pool.status().counters.replaced, 1);
}

#[tokio::test(start_paused = true)]
async fn after_the_bound_worker_crashes_mid_request_the_session_is_served_elsewhere_in_every_mode()
{
    for mode in [
        AffinityMode::default(),
        AffinityMode::Strict,
        AffinityMode::StrictFailFast,
    ] {
        served_elsewhere_after_a_crash(mode, true).await;
    }
}

#[tokio::test(start_paused = true)]
async fn after_the_bound_worker_crashes_while_idle_the_session_is_served_elsewhere_in_every_mode() {
    for mode in [
        AffinityMode::default(),
        AffinityMode::Strict,
        AffinityMode::StrictFailFast,
    ] {
        served_elsewhere_after_a_crash(mode, false).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_waiting_for_its_worker_when_it_crashes_is_served_at_once_by_a_free_worker() {
    for mode in [AffinityMode::Strict, AffinityMode::default()] {
        let (pool, _spawns, runtime) = fake_pool(2).await;
        let alice = pool.session("alice").unwrap().with_affinity(mode);
        let home = echo(&alice, 0).await;
        let occupied = spawn_session_execute(&alice, OCCUPY, json!({}));
        assert_eq!(runtime.wait_occupied(1).await, [home]);
        let waiting = spawn_session_execute(&alice, "echo", json!({ "n": 1 }));
        status_until(&pool, "alice's call to wait for her worker", |status| {
            status.queue_len == 1 && status.ready == 1
        })
        .await;

        let started = Instant::now();
        runtime.crash(home, WorkerExit::signal(9));
        // No replacement is accepted: the free worker must serve the call.
        let result = within(NO_TIME, "the waiting call", waiting).await.unwrap();
        let result = result.unwrap_or_else(|error| panic!("{mode:?}: {error}"));
        assert_ne!(served_by(&result), home);
        assert_eq!(started.elapsed(), Duration::ZERO, "{mode:?}");
        assert!(occupied.await.unwrap().is_err());
        // An anonymous call still finds a worker as well.
        let _ = within(
            NO_TIME,
            "an anonymous call",
            spawn_execute(&pool, "echo", json!({})),
        )
        .await
        .unwrap()
        .unwrap();
    }
}
