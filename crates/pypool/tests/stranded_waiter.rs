//! A caller that gave up while queued must not strand the next one: the
//! pool's idle worker goes to the next caller at once, without anyone
//! reading the pool's status (which prunes the queue) in between.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::scripted::{next_request, scripted_pool};
use support::{NO_TIME, spawn_execute, within};

#[tokio::test(start_paused = true)]
async fn a_dropped_queued_caller_does_not_strand_the_next_caller() {
    let (pool, _spawns, mut workers) = scripted_pool(1, |builder| {
        builder.timeouts(pypool::Timeouts {
            checkout: Duration::from_secs(5),
            ..pypool::Timeouts::default()
        })
    })
    .await;
    let worker = &mut workers[0];

    // The only worker is busy; a second caller queues, then goes away.
    let first = spawn_execute(&pool, "echo", json!({"n": 1}));
    let pending = next_request(worker).await;
    let queued = spawn_execute(&pool, "echo", json!({"n": 2}));
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    queued.abort();
    assert!(queued.await.unwrap_err().is_cancelled());

    // The first request ends: its worker has nobody to serve and goes idle.
    let _ = pending.reply(json!("one"));
    assert_eq!(first.await.unwrap().unwrap(), json!("one"));

    // A new caller gets the idle worker at once.
    let third = spawn_execute(&pool, "echo", Value::Null);
    let request = within(
        NO_TIME,
        "the third request to reach the idle worker",
        worker.next_request(),
    )
    .await
    .unwrap();
    let _ = request.reply(json!("three"));
    assert_eq!(
        within(NO_TIME, "the third caller's answer", third)
            .await
            .unwrap()
            .unwrap(),
        json!("three")
    );
}
