//! Failure mode: a stream that runs too long, or goes quiet. The request
//! deadline covers the whole stream (chunks arriving do not extend it); the
//! optional idle limit bounds each wait for the next item. Either way the
//! consumer gets the error after the chunks delivered, and the request is
//! cancelled: kept if the worker ends it within the grace, else killed.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use futures::StreamExt;
use pypool::{PoolError, StreamItem, Timeouts};
use pypool_mock::{ChunkDelivery, Delivery};
use serde_json::json;
use support::scripted::{next_request, refill, scripted_pool};
use support::{NO_TIME, spawn_execute, within};
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(10);
const IDLE: Duration = Duration::from_secs(1);
const GRACE: Duration = Duration::from_secs(2);

fn timeouts(idle: Option<Duration>) -> Timeouts {
    Timeouts {
        request: DEADLINE,
        cancel_grace: GRACE,
        stream_idle: idle,
        ..Timeouts::default()
    }
}

#[tokio::test(start_paused = true)]
async fn the_deadline_covers_the_whole_stream() {
    let (pool, _spawns, mut workers) =
        scripted_pool(1, |builder| builder.timeouts(timeouts(Some(IDLE)))).await;
    let worker = &mut workers[0];
    let started = Instant::now();
    let mut stream = pool.execute_stream("gen", json!({}));
    let (first, request) = tokio::join!(stream.next(), async {
        let request = next_request(worker).await;
        assert_eq!(request.send_chunk(json!(0)), ChunkDelivery::Buffered);
        request
    });
    assert!(first.unwrap().is_ok());
    // A chunk every half second: never idle, but past the deadline at last.
    // The handler stops producing when it sees the cancel.
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let producing = tokio::spawn(async move {
        let mut n = 1;
        loop {
            tokio::select! {
                _ = &mut stopped => return request,
                () = tokio::time::sleep(IDLE / 2) => {}
            }
            if request.send_chunk(json!(n)) != ChunkDelivery::Buffered {
                return request;
            }
            n += 1;
        }
    });
    let mut chunks = 1;
    let error = loop {
        match within(DEADLINE * 2, "the next item", stream.next())
            .await
            .unwrap()
        {
            Ok(StreamItem::Chunk(_)) => chunks += 1,
            Ok(StreamItem::Done(result)) => panic!("ended with {result}"),
            Err(error) => break error,
        }
    };
    assert!(
        matches!(error, PoolError::DeadlineExceeded { deadline, .. } if deadline == DEADLINE),
        "{error:?}"
    );
    assert_eq!(started.elapsed(), DEADLINE, "cut at the deadline");
    assert!(
        chunks >= 19,
        "chunks before the deadline were delivered: {chunks}"
    );
    assert!(stream.next().await.is_none());

    let cancelled = within(NO_TIME, "the cancel", worker.next_cancel())
        .await
        .unwrap();
    stop.send(()).unwrap();
    let request = within(IDLE, "the producer to stop", producing)
        .await
        .unwrap();
    assert_eq!(cancelled, request.id());
    // The handler stops within the grace: the worker is kept.
    assert_eq!(request.reply_cancelled(), Delivery::Delivered);
    let call = spawn_execute(&pool, "echo", json!({}));
    let pending = within(NO_TIME, "the next call", worker.next_request())
        .await
        .unwrap();
    assert_eq!(pending.reply(json!("ok")), Delivery::Delivered);
    assert_eq!(call.await.unwrap().unwrap(), json!("ok"));
    assert!(!worker.was_killed());
    assert_eq!(pool.status().counters.requests_failed, 1);
}

#[tokio::test(start_paused = true)]
async fn an_idle_stream_is_cut_and_its_silent_worker_killed_after_the_grace() {
    let (pool, mut spawns, mut workers) =
        scripted_pool(1, |builder| builder.timeouts(timeouts(Some(IDLE)))).await;
    let worker = &mut workers[0];
    let mut stream = pool.execute_stream("gen", json!({}));
    let (first, request) = tokio::join!(stream.next(), async {
        let request = next_request(worker).await;
        assert_eq!(request.send_chunk(json!(0)), ChunkDelivery::Buffered);
        request
    });
    assert!(first.unwrap().is_ok());
    let quiet = Instant::now();
    let error = within(DEADLINE, "the idle limit", stream.next())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(error, PoolError::StreamIdle { idle, .. } if idle == IDLE),
        "{error:?}"
    );
    assert_eq!(error.kind(), "stream_idle");
    assert_eq!(quiet.elapsed(), IDLE);
    within(NO_TIME, "the cancel", worker.next_cancel())
        .await
        .unwrap();
    request.hang();
    tokio::time::advance(GRACE - Duration::from_millis(1)).await;
    assert!(!worker.was_killed());
    within(Duration::from_millis(2), "the kill", worker.killed()).await;
    let (_replacement, status) = refill(&pool, &mut spawns, 1).await;
    assert_eq!(status.counters.replaced, 1);
}

#[tokio::test(start_paused = true)]
async fn without_an_idle_limit_a_quiet_stream_waits_until_its_deadline() {
    let (pool, _spawns, mut workers) =
        scripted_pool(1, |builder| builder.timeouts(timeouts(None))).await;
    let worker = &mut workers[0];
    let started = Instant::now();
    let mut stream = pool.execute_stream("gen", json!({}));
    let (item, request) = tokio::join!(stream.next(), async {
        let request = next_request(worker).await;
        assert_eq!(request.send_chunk(json!("late")), ChunkDelivery::Buffered);
        request
    });
    assert!(item.unwrap().is_ok());
    let error = within(DEADLINE * 2, "the deadline", stream.next())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(error.kind(), "deadline_exceeded");
    assert_eq!(started.elapsed(), DEADLINE);
    drop(request);
}
