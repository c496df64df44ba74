//! Failure mode: the consumer drops a stream mid-way. The request is
//! cancelled on its worker; its slot is freed when the worker ends it (the
//! worker is kept), or the worker is killed and replaced after the cancel
//! grace. A later call gets a worker either way.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use futures::StreamExt;
use pypool::{StreamItem, Timeouts};
use pypool_mock::{ChunkDelivery, Delivery};
use serde_json::json;
use support::scripted::{next_request, refill, scripted_pool};
use support::{NO_TIME, spawn_execute, status_until, within};

const GRACE: Duration = Duration::from_secs(2);

fn timeouts() -> Timeouts {
    Timeouts {
        cancel_grace: GRACE,
        ..Timeouts::default()
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_a_stream_cancels_it_and_frees_the_worker_once_it_answers() {
    let (pool, _spawns, mut workers) =
        scripted_pool(1, |builder| builder.timeouts(timeouts())).await;
    let worker = &mut workers[0];
    let mut stream = pool.execute_stream("gen", json!({}));
    let (first, request) = tokio::join!(stream.next(), async {
        let request = next_request(worker).await;
        assert_eq!(request.send_chunk(json!(1)), ChunkDelivery::Buffered);
        request
    });
    assert_eq!(first.unwrap().unwrap(), StreamItem::Chunk(json!(1)));
    drop(stream);

    let cancelled = within(NO_TIME, "the cancel", worker.next_cancel())
        .await
        .unwrap();
    assert_eq!(cancelled, request.id());
    // Until the worker ends the request, its slot stays taken.
    let waiting = spawn_execute(&pool, "echo", json!({}));
    tokio::time::advance(GRACE / 2).await;
    assert!(
        worker.try_next_request().is_none(),
        "lent before the cancel was answered"
    );
    assert_eq!(pool.status().in_flight, 1);

    assert_eq!(request.reply_cancelled(), Delivery::Delivered);
    let pending = within(NO_TIME, "the next call", worker.next_request())
        .await
        .unwrap();
    assert_eq!(pending.reply(json!("next")), Delivery::Delivered);
    assert_eq!(waiting.await.unwrap().unwrap(), json!("next"));
    assert!(!worker.was_killed());
    let status = pool.status();
    assert_eq!(status.counters.replaced, 0);
    assert_eq!(
        status.counters.requests_failed, 0,
        "a consumer's drop is no failure"
    );
}

#[tokio::test(start_paused = true)]
async fn a_worker_ignoring_the_cancel_is_killed_after_the_grace_and_replaced() {
    let (pool, mut spawns, mut workers) =
        scripted_pool(1, |builder| builder.timeouts(timeouts())).await;
    let worker = &mut workers[0];
    let mut stream = pool.execute_stream("gen", json!({}));
    let (first, request) = tokio::join!(stream.next(), async {
        let request = next_request(worker).await;
        assert_eq!(request.send_chunk(json!(1)), ChunkDelivery::Buffered);
        request
    });
    assert!(first.unwrap().is_ok());
    drop(stream);
    within(NO_TIME, "the cancel", worker.next_cancel())
        .await
        .unwrap();
    // The handler keeps producing and never ends.
    let _ = request.send_chunk(json!(2));
    request.hang();
    tokio::time::advance(GRACE - Duration::from_millis(1)).await;
    assert!(!worker.was_killed(), "killed before the grace ended");
    within(Duration::from_millis(2), "the kill", worker.killed()).await;

    let (mut replacement, _status) = refill(&pool, &mut spawns, 1).await;
    let call = spawn_execute(&pool, "echo", json!({}));
    let pending = within(
        NO_TIME,
        "a call on the replacement",
        replacement.next_request(),
    )
    .await
    .unwrap();
    assert_eq!(pending.reply(json!("ok")), Delivery::Delivered);
    assert_eq!(call.await.unwrap().unwrap(), json!("ok"));
    status_until(&pool, "the replacement counted", |status| {
        status.counters.replaced == 1
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn dropping_a_stream_still_waiting_for_a_worker_leaves_the_queue() {
    let (pool, _spawns, mut workers) =
        scripted_pool(1, |builder| builder.timeouts(timeouts())).await;
    let worker = &mut workers[0];
    let busy = spawn_execute(&pool, "echo", json!({}));
    let held = within(NO_TIME, "the first call", worker.next_request())
        .await
        .unwrap();
    let mut stream = pool.execute_stream("gen", json!({}));
    // Polled once: it queues for the only worker.
    assert!(futures::poll!(stream.next()).is_pending());
    assert_eq!(pool.status().queue_len, 1);
    drop(stream);
    assert_eq!(held.reply(json!("first")), Delivery::Delivered);
    assert_eq!(busy.await.unwrap().unwrap(), json!("first"));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(
        worker.try_next_request().is_none(),
        "the dropped stream was sent"
    );
    assert_eq!(worker.cancels_seen(), 0);
    assert_eq!(pool.status().in_flight, 0);
}
