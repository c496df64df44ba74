//! Overflow workers are spawned for waiters any worker can serve, never for
//! callers pinned (strict affinity) to a busy worker: a new worker could not
//! serve them.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use pypool::AffinityMode;
use serde_json::json;
use support::{
    NO_TIME, occupy, scripted_builder, served_by, spawn_session_execute, start_pool, within,
};

#[tokio::test(start_paused = true)]
async fn a_strict_session_waiting_for_its_busy_worker_spawns_no_overflow_worker() {
    let (builder, spawns) = scripted_builder(1);
    let builder = builder.max_overflow(1).affinity_mode(AffinityMode::Strict);
    let (pool, mut spawns, runtime) = start_pool(builder, spawns, 1).await;
    let alice = pool.session("alice").unwrap();
    let home = served_by(&alice.execute("echo", json!({})).await.unwrap());

    let occupied = occupy(&pool, &runtime, 1).await;
    assert_eq!(occupied.workers, [home]);
    let call = spawn_session_execute(&alice, "echo", json!({"n": 1}));
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert!(!call.is_finished(), "alice waits for her worker");
    assert!(
        spawns.try_next_spawn().is_none(),
        "no overflow worker was spawned for a caller pinned to worker {home}"
    );

    occupied.release(&runtime).await;
    let result = within(NO_TIME, "alice's call", call)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(served_by(&result), home);
}
