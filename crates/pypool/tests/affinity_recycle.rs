//! The affinity path applies the recycle limits like any checkout: a bound
//! session's worker past its age limit is recycled, not lent once more.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use pypool::AffinityMode;
use serde_json::json;
use support::{NO_TIME, scripted_builder, served_by, spawn_session_execute, start_pool, within};

async fn bound_worker_past_its_age_is_recycled(mode: AffinityMode) {
    let (builder, spawns) = scripted_builder(1);
    let builder = builder.max_age(Duration::from_secs(60)).affinity_mode(mode);
    let (pool, mut spawns, runtime) = start_pool(builder, spawns, 1).await;
    let alice = pool.session("alice").unwrap();
    let home = served_by(&alice.execute("echo", json!({})).await.unwrap());
    let served_before = runtime.requests(home).len();

    tokio::time::advance(Duration::from_secs(61)).await;
    let call = spawn_session_execute(&alice, "echo", json!({"n": 1}));
    // The bound worker is recycled at checkout; its replacement serves the call.
    let replacement = within(NO_TIME, "the replacement", runtime.accept_next(&mut spawns)).await;
    let result = within(NO_TIME, "alice's call", call)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(served_by(&result), replacement);
    assert_ne!(
        served_by(&result),
        home,
        "a worker past its age limit is not lent"
    );
    assert_eq!(
        runtime.requests(home).len(),
        served_before,
        "worker {home} served nothing past its age limit"
    );
    let counters = pool.status().counters;
    assert!(counters.recycled >= 1);
    assert_eq!(
        (counters.affinity_hits, counters.affinity_misses),
        (0, 2),
        "unbound first, then its worker gone: two misses, no hit"
    );
}

#[tokio::test(start_paused = true)]
async fn hint_mode_recycles_the_bound_worker_past_its_age() {
    bound_worker_past_its_age_is_recycled(AffinityMode::Hint {
        wait: Duration::from_millis(50),
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn strict_mode_recycles_the_bound_worker_past_its_age() {
    bound_worker_past_its_age_is_recycled(AffinityMode::Strict).await;
}
