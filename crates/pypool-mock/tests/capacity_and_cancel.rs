//! Capacity (several requests at once), the host's cancel, and instant
//! workers.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{ok_result, request, scripted_worker, spawn_request, start_call};
use pypool_mock::{Behaviour, Delivery, MockSpawner};
use pypool_seam::{CallError, Outcome, RemoteErrorKind, WorkerSpawner};
use serde_json::json;
use tokio::time::Instant;

async fn four_calls_take(capacity: u32) -> Duration {
    let behaviour = Behaviour::default()
        .fixed_latency(Duration::from_millis(100))
        .capacity(capacity);
    let spawner = MockSpawner::with_behaviour(behaviour).unwrap();
    let connection = spawner.spawn(spawn_request(1)).await.unwrap();
    assert_eq!(connection.capacity(), capacity.max(1) as usize);
    assert_eq!(connection.handshake().capacity, capacity.max(1));
    let started = Instant::now();
    let calls: Vec<_> = (1..=4)
        .map(|id| start_call(&connection, id, "echo"))
        .collect();
    for call in calls {
        ok_result(call.await.unwrap());
    }
    assert_eq!(spawner.stats().requests_served(), 4);
    started.elapsed()
}

#[tokio::test(start_paused = true)]
async fn a_worker_serves_up_to_its_capacity_at_once() {
    assert_eq!(
        four_calls_take(1).await,
        Duration::from_millis(400),
        "one at a time"
    );
    assert_eq!(
        four_calls_take(2).await,
        Duration::from_millis(200),
        "two at a time"
    );
    assert_eq!(
        four_calls_take(4).await,
        Duration::from_millis(100),
        "all at once"
    );
}

#[tokio::test(start_paused = true)]
async fn a_behaviour_worker_answers_a_cancel_at_once_with_cancelled() {
    let behaviour = Behaviour::default().fixed_latency(Duration::from_secs(10));
    let spawner = MockSpawner::with_behaviour(behaviour).unwrap();
    let connection = spawner.spawn(spawn_request(1)).await.unwrap();
    let started = Instant::now();
    let call = start_call(&connection, 7, "echo");
    tokio::task::yield_now().await;
    assert_eq!(connection.in_flight(), 1);
    connection.cancel(7);
    match call.await.unwrap() {
        Ok(Outcome::Error { error }) => assert_eq!(error.kind, RemoteErrorKind::Cancelled),
        other => panic!("expected a cancelled reply, got {other:?}"),
    }
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(connection.in_flight(), 0);
    // The worker serves on.
    let answer = connection.call(request(8, "echo")).await;
    assert_eq!(ok_result(answer)["worker_id"], json!(1));
}

#[tokio::test(start_paused = true)]
async fn a_scripted_test_sees_each_cancel_and_answers_it_as_it_likes() {
    let (_spawner, _spawns, connection, mut worker) = scripted_worker().await;
    let first = start_call(&connection, 1, "slow");
    let second = start_call(&connection, 2, "slow");
    let one = worker.next_request().await.unwrap();
    let two = worker.next_request().await.unwrap();

    // A cancel for an id not in flight is ignored.
    connection.cancel(99);
    assert_eq!(worker.try_next_cancel(), None);

    connection.cancel(1);
    connection.cancel(2);
    assert_eq!(worker.next_cancel().await, Some(1));
    assert_eq!(worker.next_cancel().await, Some(2));
    assert_eq!(worker.cancels_seen(), 2);
    // The first had not started: `cancelled`. The second was running a sync
    // handler: it finishes and sends its own result.
    assert_eq!(one.reply_cancelled(), Delivery::Delivered);
    assert_eq!(two.reply(json!("done anyway")), Delivery::Delivered);
    match first.await.unwrap() {
        Ok(Outcome::Error { error }) => assert_eq!(error.kind, RemoteErrorKind::Cancelled),
        other => panic!("expected cancelled, got {other:?}"),
    }
    assert_eq!(ok_result(second.await.unwrap()), json!("done anyway"));
}

#[tokio::test(start_paused = true)]
async fn an_instant_worker_answers_inside_the_call() {
    let spawner = MockSpawner::with_behaviour(Behaviour::default().instant(true)).unwrap();
    let connection = spawner.spawn(spawn_request(3)).await.unwrap();
    for id in 1..=100 {
        let answer = ok_result(connection.call(request(id, "ping")).await);
        assert_eq!(answer, json!({"pong": true, "worker_id": 3}));
    }
    assert_eq!(spawner.stats().requests_served(), 100);
    connection.kill();
    assert!(matches!(
        connection.call(request(101, "ping")).await,
        Err(CallError::Closed { .. })
    ));
}
