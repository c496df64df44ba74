//! Defect: a partially busy worker (capacity above 1) past a recycle limit
//! was lent more requests — through session affinity, or as the least-loaded
//! worker — because only an idle worker's checkout checked the limits. It
//! must drain instead: finish what it holds, take nothing new, be replaced.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use pypool::AffinityMode;
use pypool_mock::Delivery;
use serde_json::json;
use support::capacity::{accept_with_capacity, pool_of, request_on};
use support::{NO_TIME, spawn_execute, spawn_session_execute, within};

const CAPACITY: u32 = 3;
const MAX_AGE: Duration = Duration::from_secs(10);

async fn partially_busy_worker_past_its_age_takes_nothing_new(mode: Option<AffinityMode>) {
    let (pool, mut spawns, mut workers) = pool_of(1, CAPACITY, &[], |builder| {
        let builder = builder.max_age(MAX_AGE);
        match mode {
            Some(mode) => builder.affinity_mode(mode),
            None => builder,
        }
    })
    .await;
    let home = &mut workers[0];
    let alice = pool.session("alice").unwrap();
    // Bind alice to the only worker.
    let bind = spawn_session_execute(&alice, "work", json!({ "bind": true }));
    assert_eq!(
        request_on(home).await.reply(json!("bound")),
        Delivery::Delivered
    );
    within(NO_TIME, "the binding call", bind)
        .await
        .unwrap()
        .unwrap();

    // One request keeps the worker partially busy while it ages past its limit.
    let first = spawn_execute(&pool, "work", json!({ "n": 0 }));
    let first_request = request_on(home).await;
    tokio::time::advance(MAX_AGE + Duration::from_secs(1)).await;

    // The next call must not land on the worker past its age limit.
    let second = match mode {
        Some(_) => spawn_session_execute(&alice, "work", json!({ "n": 1 })),
        None => spawn_execute(&pool, "work", json!({ "n": 1 })),
    };
    let mut replacement = accept_with_capacity(&pool, &mut spawns, CAPACITY).await;
    let second_request = request_on(&mut replacement).await;
    assert!(
        home.try_next_request().is_none(),
        "the worker past its age limit took a new request"
    );
    assert_eq!(second_request.reply(json!(1)), Delivery::Delivered);
    within(NO_TIME, "the second call", second)
        .await
        .unwrap()
        .unwrap();
    // What it held still finishes there.
    assert_eq!(first_request.reply(json!(0)), Delivery::Delivered);
    within(NO_TIME, "the first call", first)
        .await
        .unwrap()
        .unwrap();
    assert!(pool.status().counters.recycled >= 1);
}

#[tokio::test(start_paused = true)]
async fn strict_affinity_does_not_lend_a_partially_busy_worker_past_its_limit() {
    partially_busy_worker_past_its_age_takes_nothing_new(Some(AffinityMode::Strict)).await;
}

#[tokio::test(start_paused = true)]
async fn hint_affinity_does_not_lend_a_partially_busy_worker_past_its_limit() {
    partially_busy_worker_past_its_age_takes_nothing_new(Some(AffinityMode::Hint {
        wait: Duration::from_millis(50),
    }))
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_plain_call_does_not_share_a_worker_past_its_limit() {
    partially_busy_worker_past_its_age_takes_nothing_new(None).await;
}
