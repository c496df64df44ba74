//! Streaming replies from a real worker through `ProcessConnection`: chunks
//! in order then the final reply, a consumer that stops reading holds at most
//! its window of chunks (the generator is paused, not buffered), dropping the
//! stream cancels the generator, and a worker dying mid-stream ends it with
//! `worker_exited` after the chunks already delivered.
#![cfg(feature = "real-python")]
#![allow(clippy::panic, reason = "a test fails by panicking")]

use std::num::NonZeroU32;
use std::sync::Arc;

use futures::StreamExt;
use pypool_integration::{bounded, config, poll_until, request, spawn};
use pypool_seam::{
    CallError, Outcome, RemoteErrorKind, ReplyStream, StreamItem, WorkerConnection, WorkerExit,
};
use serde_json::{Value, json};

fn window(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("a window is at least 1")
}

async fn next(stream: &mut ReplyStream) -> Option<Result<StreamItem, CallError>> {
    bounded("the next stream item", stream.next()).await
}

async fn chunk(stream: &mut ReplyStream) -> Value {
    match next(stream).await {
        Some(Ok(StreamItem::Chunk(value))) => value,
        other => panic!("expected a chunk, got {other:?}"),
    }
}

async fn produced(worker: &Arc<dyn WorkerConnection>, id: u64, marker: &str) -> Value {
    match worker
        .call(request(id, "produced", json!({ "marker": marker })))
        .await
    {
        Ok(Outcome::Ok { result }) => result,
        other => panic!("produced: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_arrive_in_order_then_the_final_reply() {
    let worker = spawn(config(&["handlers_stream.py"]), 1)
        .await
        .expect("worker starts");
    let mut stream = worker
        .call_stream(request(1, "count", json!({ "n": 50 })), window(4))
        .await
        .expect("the stream starts");
    for i in 0..50 {
        assert_eq!(chunk(&mut stream).await, json!({ "i": i }));
    }
    assert_eq!(
        next(&mut stream).await,
        Some(Ok(StreamItem::End(Outcome::Ok {
            result: json!({ "total": 50 })
        })))
    );
    assert_eq!(next(&mut stream).await, None);
    assert_eq!(worker.in_flight(), 0);

    // An async generator too; and a plain call gets the list of values.
    let mut stream = worker
        .call_stream(request(2, "count_async", json!({ "n": 3 })), window(1))
        .await
        .expect("the stream starts");
    for i in 0..3 {
        assert_eq!(chunk(&mut stream).await, json!({ "i": i }));
    }
    assert_eq!(
        next(&mut stream).await,
        Some(Ok(StreamItem::End(Outcome::Ok {
            result: Value::Null
        })))
    );
    let listed = worker
        .call(request(3, "count", json!({ "n": 2 })))
        .await
        .expect("answered");
    assert_eq!(
        listed,
        Outcome::Ok {
            result: json!([{ "i": 0 }, { "i": 1 }])
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_stops_reading_holds_at_most_its_window_and_pauses_the_generator() {
    let worker = spawn(config(&["handlers_stream.py"]), 2)
        .await
        .expect("worker starts");
    let mut stream = worker
        .call_stream(request(1, "endless", json!({ "marker": "bp" })), window(4))
        .await
        .expect("the stream starts");
    poll_until("the window fills", || stream.buffered_chunks() == 4).await;
    // Two round trips later the generator has still produced only what it had
    // credit for, and the host holds exactly the window.
    for id in [10, 11] {
        assert_eq!(produced(&worker, id, "bp").await["produced"], json!(4));
    }
    assert_eq!(stream.buffered_chunks(), 4);
    // Reading resumes it; it never runs more than the window ahead of the reader.
    for read in 1..=40_u64 {
        assert_eq!(chunk(&mut stream).await["i"], json!(read - 1));
        assert!(stream.buffered_chunks() <= 4);
    }
    let made = produced(&worker, 12, "bp").await["produced"]
        .as_u64()
        .expect("a count");
    assert!(
        (40..=44).contains(&made),
        "produced {made} after 40 reads with a window of 4"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_stream_cancels_the_generator_and_frees_the_worker() {
    let worker = spawn(config(&["handlers_stream.py"]), 3)
        .await
        .expect("worker starts");
    for (id, command, marker) in [(1, "endless", "sync"), (2, "endless_async", "async")] {
        let mut stream = worker
            .call_stream(request(id, command, json!({ "marker": marker })), window(2))
            .await
            .expect("the stream starts");
        chunk(&mut stream).await;
        drop(stream);
        poll_until("the cancelled stream is answered", || {
            worker.in_flight() == 0
        })
        .await;
        let state = produced(&worker, id + 10, marker).await;
        assert!(
            state["closed"].is_string(),
            "{command}: the generator was closed: {state}"
        );
    }
    assert!(worker.try_exit().is_none(), "the worker keeps serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_dying_mid_stream_ends_it_with_worker_exited_after_the_delivered_chunks() {
    let worker = spawn(config(&["handlers_stream.py"]), 4)
        .await
        .expect("worker starts");
    let mut stream = worker
        .call_stream(request(7, "crash_after", json!({ "n": 3 })), window(8))
        .await
        .expect("the stream starts");
    for i in 0..3 {
        assert_eq!(chunk(&mut stream).await, json!({ "i": i }));
    }
    match next(&mut stream).await {
        Some(Err(CallError::WorkerExited {
            worker_id: 4,
            request_id: 7,
            exit,
        })) => assert_eq!(exit, WorkerExit::signal(9)),
        other => panic!("expected worker_exited, got {other:?}"),
    }
    assert_eq!(next(&mut stream).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generator_that_raises_ends_the_stream_with_its_error_after_its_chunks() {
    let worker = spawn(config(&["handlers_stream.py"]), 5)
        .await
        .expect("worker starts");
    let mut stream = worker
        .call_stream(
            request(1, "count", json!({ "n": 5, "fail_at": 2 })),
            window(8),
        )
        .await
        .expect("the stream starts");
    assert_eq!(chunk(&mut stream).await, json!({ "i": 0 }));
    assert_eq!(chunk(&mut stream).await, json!({ "i": 1 }));
    match next(&mut stream).await {
        Some(Ok(StreamItem::End(Outcome::Error { error }))) => {
            assert_eq!(error.kind, RemoteErrorKind::PythonException);
            assert_eq!(error.exception_type.as_deref(), Some("ValueError"));
        }
        other => panic!("expected the handler's error, got {other:?}"),
    }
}
