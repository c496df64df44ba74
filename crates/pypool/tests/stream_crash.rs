//! Failure mode: a worker dies mid-stream. The consumer gets the chunks
//! already delivered, then `worker_exited`; the stream is not retried (not
//! even for an idempotent command), and the worker is replaced.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use futures::StreamExt;
use pypool::WorkerExit;
use pypool::{PoolError, StreamItem};
use pypool_mock::{ChunkDelivery, MockSpawner, command};
use serde_json::json;
use support::scripted::{accept_all, builder, next_request, refill};
use support::{NO_TIME, within};

#[tokio::test(start_paused = true)]
async fn a_crash_mid_stream_ends_it_with_worker_exited_after_the_chunks_and_no_retry() {
    // `gen` is idempotent: a plain call would be retried after a crash.
    let (spawner, mut spawns) = MockSpawner::scripted_with_commands([command("gen", true)]);
    let pool = builder(spawner, 1).build().unwrap();
    let mut workers = accept_all(&pool, &mut spawns, 1).await;
    let worker = &mut workers[0];
    let reading = tokio::spawn(pool.execute_stream("gen", json!({})).collect::<Vec<_>>());
    let request = next_request(worker).await;
    for n in 0..2 {
        assert_eq!(request.send_chunk(json!(n)), ChunkDelivery::Buffered);
    }
    assert!(request.crash(WorkerExit::signal(11)));
    let items = within(NO_TIME, "the stream's end", reading).await.unwrap();
    assert_eq!(items.len(), 3, "{items:?}");
    assert_eq!(items[0].as_ref().unwrap(), &StreamItem::Chunk(json!(0)));
    assert_eq!(items[1].as_ref().unwrap(), &StreamItem::Chunk(json!(1)));
    match &items[2] {
        Err(PoolError::WorkerExited { exit, command, .. }) => {
            assert_eq!(exit.signal, Some(11));
            assert_eq!(command, "gen");
        }
        other => panic!("expected worker_exited, got {other:?}"),
    }

    let (mut replacement, status) = refill(&pool, &mut spawns, 1).await;
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(
        replacement.try_next_request().is_none(),
        "the stream was sent again"
    );
    assert_eq!(status.counters.retries, 0);
    assert_eq!(status.counters.requests_failed, 1);
}

#[tokio::test(start_paused = true)]
async fn a_crash_before_any_chunk_is_not_retried_either() {
    let (spawner, mut spawns) = MockSpawner::scripted_with_commands([command("gen", true)]);
    let pool = builder(spawner, 1).build().unwrap();
    let mut workers = accept_all(&pool, &mut spawns, 1).await;
    let reading = tokio::spawn(pool.execute_stream("gen", json!({})).collect::<Vec<_>>());
    let request = next_request(&mut workers[0]).await;
    assert!(request.crash(WorkerExit::code(1)));
    let items = within(NO_TIME, "the stream's end", reading).await.unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].as_ref().unwrap_err().kind(), "worker_exited");
    let (mut replacement, _status) = refill(&pool, &mut spawns, 1).await;
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(
        replacement.try_next_request().is_none(),
        "the stream was sent again"
    );
}
