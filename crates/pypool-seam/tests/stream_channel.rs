//! The host-side buffer of a streaming reply: bounded by its window, credit
//! returned as the consumer reads, cancel when the consumer lets go, the end
//! after every chunk already delivered.
#![allow(clippy::unwrap_used, clippy::panic)] // tests: a panic is a failure report

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use futures::{FutureExt, StreamExt};
use pypool_seam::{
    CallError, Outcome, PushError, ReplyStream, RequestId, StreamControl, StreamItem, WorkerExit,
    stream_channel,
};
use serde_json::json;

#[derive(Debug, Default)]
struct Recorder {
    grants: Mutex<Vec<(RequestId, u32)>>,
    cancels: Mutex<Vec<RequestId>>,
}

impl StreamControl for Recorder {
    fn grant(&self, request_id: RequestId, grant: u32) {
        self.grants.lock().unwrap().push((request_id, grant));
    }
    fn cancel(&self, request_id: RequestId) {
        self.cancels.lock().unwrap().push(request_id);
    }
}

fn window(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

/// The next item if one is ready now (the stream never needs a runtime to be polled).
fn ready(stream: &mut ReplyStream) -> Option<Option<Result<StreamItem, CallError>>> {
    stream.next().now_or_never()
}

#[test]
fn the_buffer_refuses_a_chunk_beyond_the_window() {
    let control = Arc::new(Recorder::default());
    let (sender, stream) = stream_channel(1, 7, window(3), control);
    for i in 0..3 {
        sender.push(json!(i)).unwrap();
    }
    assert_eq!(
        sender.push(json!(3)),
        Err(PushError::OverCredit { window: 3 })
    );
    assert_eq!(stream.buffered_chunks(), 3);
}

#[test]
fn reading_returns_credit_in_batches_of_half_the_window() {
    let control = Arc::new(Recorder::default());
    let (sender, mut stream) = stream_channel(1, 7, window(4), control.clone());
    for i in 0..4 {
        sender.push(json!(i)).unwrap();
    }
    assert_eq!(
        ready(&mut stream),
        Some(Some(Ok(StreamItem::Chunk(json!(0)))))
    );
    assert!(control.grants.lock().unwrap().is_empty());
    assert_eq!(
        ready(&mut stream),
        Some(Some(Ok(StreamItem::Chunk(json!(1)))))
    );
    assert_eq!(*control.grants.lock().unwrap(), vec![(7, 2)]);
    // The granted room is there again.
    sender.push(json!(4)).unwrap();
    sender.push(json!(5)).unwrap();
    assert_eq!(
        sender.push(json!(6)),
        Err(PushError::OverCredit { window: 4 })
    );
}

#[test]
fn the_end_follows_every_buffered_chunk_then_the_stream_is_over() {
    let control = Arc::new(Recorder::default());
    let (sender, mut stream) = stream_channel(1, 7, window(8), control.clone());
    assert_eq!(ready(&mut stream), None, "nothing yet: pending");
    sender.push(json!("a")).unwrap();
    sender.push(json!("b")).unwrap();
    sender.finish(Err(CallError::WorkerExited {
        worker_id: 1,
        request_id: 7,
        exit: WorkerExit::signal(9),
    }));
    assert_eq!(sender.push(json!("c")), Err(PushError::Ended));
    assert_eq!(
        ready(&mut stream),
        Some(Some(Ok(StreamItem::Chunk(json!("a")))))
    );
    assert_eq!(
        ready(&mut stream),
        Some(Some(Ok(StreamItem::Chunk(json!("b")))))
    );
    assert!(matches!(
        ready(&mut stream),
        Some(Some(Err(CallError::WorkerExited { request_id: 7, .. })))
    ));
    assert_eq!(ready(&mut stream), Some(None));
    drop(stream);
    assert!(
        control.cancels.lock().unwrap().is_empty(),
        "an ended stream is not cancelled"
    );
}

#[test]
fn dropping_the_stream_before_its_end_cancels_and_discards_later_chunks() {
    let control = Arc::new(Recorder::default());
    let (sender, stream) = stream_channel(1, 7, window(2), control.clone());
    sender.push(json!(1)).unwrap();
    drop(stream);
    assert_eq!(*control.cancels.lock().unwrap(), vec![7]);
    assert!(sender.consumer_gone());
    assert_eq!(sender.buffered_chunks(), 0, "the buffered chunks are freed");
    assert_eq!(sender.push(json!(2)), Err(PushError::ConsumerGone));
    sender.finish(Ok(Outcome::Ok {
        result: json!(null),
    }));
}

#[test]
fn a_sender_dropped_without_an_end_ends_the_stream_closed() {
    let control = Arc::new(Recorder::default());
    let (sender, mut stream) = stream_channel(3, 7, window(2), control);
    drop(sender);
    assert!(matches!(
        ready(&mut stream),
        Some(Some(Err(CallError::Closed { worker_id: 3, .. })))
    ));
}

#[test]
fn an_ended_stream_yields_its_end_alone() {
    let mut stream = ReplyStream::ended(1, 9, Ok(Outcome::Ok { result: json!(5) }));
    assert_eq!(
        ready(&mut stream),
        Some(Some(Ok(StreamItem::End(Outcome::Ok { result: json!(5) }))))
    );
    assert_eq!(ready(&mut stream), Some(None));
}
