//! Failure mode: a request on a shared worker is still running after its
//! deadline and the cancel grace, so the worker is killed. The other
//! requests it held end with `worker_exited`: an idempotent one is retried
//! on the replacement, a non-idempotent one that was delivered is not.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use pypool::Timeouts;
use pypool_mock::Delivery;
use serde_json::json;
use support::capacity::{accept_with_capacity, pool_of, request_on};
use support::{NO_TIME, spawn_execute, within};

const DEADLINE: Duration = Duration::from_secs(10);
const GRACE: Duration = Duration::from_millis(500);

#[tokio::test(start_paused = true)]
async fn a_deadline_kill_ends_the_siblings_and_retries_the_idempotent_one() {
    let (pool, mut spawns, mut workers) = pool_of(
        1,
        3,
        &[("slow", false), ("lookup", true), ("charge", false)],
        |builder| {
            builder.timeouts(Timeouts {
                request: DEADLINE,
                cancel_grace: GRACE,
                ..Timeouts::default()
            })
        },
    )
    .await;
    let worker = &mut workers[0];
    let slow = spawn_execute(&pool, "slow", json!({}));
    let slow_request = request_on(worker).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    let lookup = spawn_execute(&pool, "lookup", json!({ "key": "a" }));
    let lookup_request = request_on(worker).await;
    let charge = spawn_execute(&pool, "charge", json!({ "amount": 1 }));
    let charge_request = request_on(worker).await;

    // The slow request reaches its deadline: cancelled, its caller answered.
    let cancelled = within(DEADLINE, "the cancel", worker.next_cancel())
        .await
        .unwrap();
    assert_eq!(cancelled, slow_request.id());
    let error = within(NO_TIME, "the slow caller", slow)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(error.kind(), "deadline_exceeded");
    slow_request.hang();
    // The siblings are still running on the worker during the grace.
    assert!(!worker.was_killed());
    assert!(!lookup.is_finished() && !charge.is_finished());

    // The grace passes: the worker is killed, the siblings end with it.
    within(GRACE + NO_TIME, "the kill", worker.killed()).await;
    drop((lookup_request, charge_request));
    let error = within(NO_TIME, "the charge caller", charge)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(error.kind(), "worker_exited", "{error:?}");

    // The idempotent lookup is retried on the replacement.
    let mut replacement = within(
        Duration::from_secs(5),
        "the replacement",
        accept_with_capacity(&pool, &mut spawns, 3),
    )
    .await;
    let retried = within(
        Duration::from_secs(5),
        "the retried lookup",
        replacement.next_request(),
    )
    .await
    .unwrap();
    assert_eq!(retried.command(), "lookup");
    assert_eq!(retried.reply(json!("found")), Delivery::Delivered);
    let result = within(Duration::from_secs(5), "the lookup caller", lookup)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result, json!("found"));
    let status = pool.status();
    assert_eq!(status.counters.replaced, 1);
    assert!(status.counters.retries >= 1);
}
