//! Failure mode: a consumer that stops reading. The host holds at most the
//! stream window of chunks; the worker is paused (out of credit), not
//! buffered without limit, and resumes as the consumer reads again.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::num::NonZeroU32;
use std::time::Duration;

use futures::StreamExt;
use pypool::StreamItem;
use pypool_mock::{ChunkDelivery, Delivery};
use serde_json::json;
use support::scripted::{next_request, scripted_pool};
use support::{NO_TIME, within};

const WINDOW: u32 = 4;
const TOTAL: u64 = 40;

#[tokio::test(start_paused = true)]
async fn a_consumer_that_stops_reading_holds_at_most_the_window() {
    let (pool, _spawns, mut workers) = scripted_pool(1, |builder| {
        builder.stream_window(NonZeroU32::new(WINDOW).unwrap())
    })
    .await;
    let worker = &mut workers[0];
    let mut stream = pool.execute_stream("gen", json!({}));
    let (first, request) = tokio::join!(stream.next(), async {
        let request = next_request(worker).await;
        assert_eq!(request.send_chunk(json!(0)), ChunkDelivery::Buffered);
        request
    });
    assert_eq!(first.unwrap().unwrap(), StreamItem::Chunk(json!(0)));
    assert_eq!(request.stream_window(), Some(WINDOW));

    // The consumer stops reading; the handler produces as fast as it may.
    let mut sent: u64 = 1;
    while request.send_chunk(json!(sent)) == ChunkDelivery::Buffered {
        sent += 1;
        assert!(sent <= TOTAL, "the worker was never paused");
    }
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(request.send_chunk(json!(sent)), ChunkDelivery::NoCredit);
    assert_eq!(request.credit(), Some(0));
    let held = stream.buffered_chunks();
    assert!(
        held <= WINDOW as usize,
        "{held} chunks held, window {WINDOW}"
    );
    assert_eq!(held as u64, sent - 1, "every unread chunk is in the buffer");
    let grants_before = worker.grants_seen();

    // Reading again resumes the handler; it never has more than the window
    // outstanding.
    let producing = tokio::spawn(async move {
        let mut next = sent;
        while next < TOTAL {
            let credit = request.credit().unwrap();
            assert!(
                credit <= u64::from(WINDOW),
                "credit {credit} above the window"
            );
            assert_eq!(
                request.send_chunk_when_credited(json!(next)).await,
                ChunkDelivery::Buffered
            );
            next += 1;
        }
        assert_eq!(request.reply(json!("done")), Delivery::Delivered);
    });
    let mut seen = vec![json!(0)];
    while let Some(item) = within(Duration::from_secs(60), "the next item", stream.next()).await {
        assert!(stream.buffered_chunks() <= WINDOW as usize);
        match item.unwrap() {
            StreamItem::Chunk(chunk) => seen.push(chunk),
            StreamItem::Done(result) => {
                assert_eq!(result, json!("done"));
                break;
            }
        }
    }
    within(NO_TIME, "the producer", producing).await.unwrap();
    let expected: Vec<_> = (0..TOTAL).map(|n| json!(n)).collect();
    assert_eq!(seen, expected, "every chunk, in order");
    assert!(
        worker.grants_seen() > grants_before,
        "credit went back as it was read"
    );
}
