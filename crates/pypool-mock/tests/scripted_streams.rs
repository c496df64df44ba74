//! Streaming replies on mock workers: a scripted test drives a stream chunk
//! by chunk under its credit, sees the grants and the cancel of a dropped
//! stream, and crashes the worker mid-stream; a behaviour worker streams on
//! its own. No Python anywhere.
#![allow(clippy::unwrap_used, clippy::panic)] // tests: a panic is a failure report

mod common;

use std::num::NonZeroU32;
use std::time::Duration;

use common::{request, scripted_worker, spawn_request};
use futures::StreamExt;
use pypool_mock::{Behaviour, ChunkDelivery, Delivery, MockSpawner};
use pypool_seam::{CallError, Outcome, ReplyStream, StreamItem, WorkerExit, WorkerSpawner};
use serde_json::json;

fn window(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

async fn next(stream: &mut ReplyStream) -> Option<Result<StreamItem, CallError>> {
    tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("the stream yields")
}

#[tokio::test(start_paused = true)]
async fn a_scripted_stream_moves_one_chunk_at_a_time_under_its_credit() {
    let (_spawner, _spawns, connection, mut worker) = scripted_worker().await;
    let mut stream = connection
        .call_stream(request(1, "tokens"), window(2))
        .await
        .unwrap();
    let pending = worker.next_request().await.unwrap();
    assert_eq!(pending.stream_window(), Some(2));
    assert_eq!(pending.credit(), Some(2));
    assert_eq!(pending.send_chunk(json!("a")), ChunkDelivery::Buffered);
    assert_eq!(pending.send_chunk(json!("b")), ChunkDelivery::Buffered);
    assert_eq!(
        pending.send_chunk(json!("c")),
        ChunkDelivery::NoCredit,
        "the window is full"
    );
    assert_eq!(stream.buffered_chunks(), 2);
    assert_eq!(
        next(&mut stream).await,
        Some(Ok(StreamItem::Chunk(json!("a"))))
    );
    assert_eq!(
        worker.grants_seen(),
        1,
        "reading one chunk of a window of 2 grants 1"
    );
    assert_eq!(pending.credit(), Some(1));
    assert_eq!(
        pending.send_chunk_when_credited(json!("c")).await,
        ChunkDelivery::Buffered
    );
    assert_eq!(pending.reply(json!({"done": true})), Delivery::Delivered);
    assert_eq!(
        next(&mut stream).await,
        Some(Ok(StreamItem::Chunk(json!("b"))))
    );
    assert_eq!(
        next(&mut stream).await,
        Some(Ok(StreamItem::Chunk(json!("c"))))
    );
    assert_eq!(
        next(&mut stream).await,
        Some(Ok(StreamItem::End(Outcome::Ok {
            result: json!({"done": true})
        })))
    );
    assert_eq!(next(&mut stream).await, None);
    assert_eq!(connection.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_chunk_waits_for_credit_until_the_consumer_reads() {
    let (_spawner, _spawns, connection, mut worker) = scripted_worker().await;
    let mut stream = connection
        .call_stream(request(1, "tokens"), window(1))
        .await
        .unwrap();
    let pending = worker.next_request().await.unwrap();
    assert_eq!(pending.send_chunk(json!(0)), ChunkDelivery::Buffered);
    let producer = tokio::spawn(async move {
        let delivery = pending.send_chunk_when_credited(json!(1)).await;
        (delivery, pending)
    });
    tokio::task::yield_now().await;
    assert!(!producer.is_finished(), "no credit: the producer waits");
    assert_eq!(
        next(&mut stream).await,
        Some(Ok(StreamItem::Chunk(json!(0))))
    );
    let (delivery, pending) = producer.await.unwrap();
    assert_eq!(delivery, ChunkDelivery::Buffered);
    assert_eq!(
        next(&mut stream).await,
        Some(Ok(StreamItem::Chunk(json!(1))))
    );
    drop(pending);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_stream_cancels_it_and_later_chunks_are_discarded() {
    let (_spawner, _spawns, connection, mut worker) = scripted_worker().await;
    let stream = connection
        .call_stream(request(4, "tokens"), window(4))
        .await
        .unwrap();
    let pending = worker.next_request().await.unwrap();
    assert_eq!(pending.send_chunk(json!(0)), ChunkDelivery::Buffered);
    drop(stream);
    assert_eq!(worker.next_cancel().await, Some(4));
    assert_eq!(
        connection.in_flight(),
        1,
        "in flight until the worker answers"
    );
    assert_eq!(pending.send_chunk(json!(1)), ChunkDelivery::Discarded);
    assert_eq!(pending.reply_cancelled(), Delivery::Discarded);
    assert_eq!(connection.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_crash_mid_stream_ends_it_with_worker_exited_after_the_delivered_chunks() {
    let (_spawner, _spawns, connection, mut worker) = scripted_worker().await;
    let mut stream = connection
        .call_stream(request(9, "tokens"), window(8))
        .await
        .unwrap();
    let pending = worker.next_request().await.unwrap();
    for i in 0..3 {
        assert_eq!(pending.send_chunk(json!(i)), ChunkDelivery::Buffered);
    }
    assert!(pending.crash(WorkerExit::signal(9)));
    for i in 0..3 {
        assert_eq!(
            next(&mut stream).await,
            Some(Ok(StreamItem::Chunk(json!(i))))
        );
    }
    assert_eq!(
        next(&mut stream).await,
        Some(Err(CallError::WorkerExited {
            worker_id: 1,
            request_id: 9,
            exit: WorkerExit::signal(9)
        }))
    );
    assert_eq!(next(&mut stream).await, None);
}

#[tokio::test(start_paused = true)]
async fn a_plain_call_cannot_send_chunks() {
    let (_spawner, _spawns, connection, mut worker) = scripted_worker().await;
    let call = tokio::spawn({
        let connection = connection.clone();
        async move { connection.call(request(2, "ping")).await }
    });
    let pending = worker.next_request().await.unwrap();
    assert_eq!(pending.stream_window(), None);
    assert_eq!(pending.send_chunk(json!(1)), ChunkDelivery::NotAStream);
    assert_eq!(pending.reply(json!(1)), Delivery::Delivered);
    assert!(call.await.unwrap().is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_behaviour_worker_streams_its_chunks_under_credit_then_answers() {
    let spawner = MockSpawner::with_behaviour(
        Behaviour::default()
            .fixed_latency(Duration::from_millis(5))
            .stream_chunks(10),
    )
    .unwrap();
    let worker = spawner.spawn(spawn_request(3)).await.unwrap();
    let mut stream = worker
        .call_stream(request(1, "tokens"), window(3))
        .await
        .unwrap();
    for seq in 0..10 {
        assert_eq!(
            next(&mut stream).await,
            Some(Ok(StreamItem::Chunk(json!({ "seq": seq }))))
        );
        assert!(stream.buffered_chunks() <= 3);
    }
    assert!(matches!(
        next(&mut stream).await,
        Some(Ok(StreamItem::End(Outcome::Ok { .. })))
    ));
    assert_eq!(worker.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_scripted_reply_can_carry_usage_for_calls_and_streams() {
    let (_spawner, _spawns, connection, mut worker) = scripted_worker().await;
    let call = tokio::spawn({
        let connection = connection.clone();
        async move { connection.call_with_usage(request(1, "qa")).await }
    });
    let usage = json!({"calls": 1, "prompt_tokens": 10, "completion_tokens": 2});
    let pending = worker.next_request().await.unwrap();
    assert_eq!(
        pending.reply_with_usage(json!("four"), usage.clone()),
        Delivery::Delivered
    );
    let replied = call.await.unwrap().unwrap();
    assert_eq!(
        replied.outcome,
        Outcome::Ok {
            result: json!("four")
        }
    );
    assert_eq!(replied.usage, Some(usage.clone()));

    let mut stream = connection
        .call_stream(request(2, "qa"), window(2))
        .await
        .unwrap();
    let pending = worker.next_request().await.unwrap();
    assert_eq!(stream.usage(), None);
    assert_eq!(
        pending.reply_with_usage(json!("five"), usage.clone()),
        Delivery::Delivered
    );
    assert!(matches!(
        next(&mut stream).await,
        Some(Ok(StreamItem::End(_)))
    ));
    assert_eq!(stream.usage(), Some(usage));
}
