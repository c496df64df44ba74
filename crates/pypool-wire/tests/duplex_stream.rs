//! The codec on a real byte stream: `FramedWrite` and `FramedRead` over a
//! `tokio::io::duplex` pipe whose small buffer splits frames across reads.
#![allow(clippy::unwrap_used, clippy::panic)] // tests: a panic is a failure report

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use pypool_wire::{Message, MessageCodec, Outcome, Reply, Request, WireError, encode_frame};
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{FramedRead, FramedWrite};

/// Smaller than most frames below, so every frame arrives in several reads.
const PIPE_BUFFER_BYTES: usize = 16;

fn messages() -> Vec<Message> {
    let mut big_args = Map::new();
    big_args.insert("text".into(), Value::String("héllo 世界 🐍 ".repeat(500)));
    vec![
        Message::Request(Request {
            id: 1,
            command: "ping".into(),
            args: Map::new(),
        }),
        Message::Request(Request {
            id: 2,
            command: "summarise".into(),
            args: big_args,
        }),
        Message::Reply(Reply {
            id: 1,
            outcome: Outcome::Ok {
                result: json!({"pong": true}),
            },
            usage: None,
        }),
        Message::Reply(Reply {
            id: u64::MAX,
            outcome: Outcome::Ok {
                result: Value::Null,
            },
            usage: None,
        }),
    ]
}

#[tokio::test]
async fn messages_cross_a_pipe_in_order_and_the_stream_ends_cleanly() {
    let (writer_end, reader_end) = tokio::io::duplex(PIPE_BUFFER_BYTES);
    let mut writer = FramedWrite::new(writer_end, MessageCodec::default());
    let mut reader = FramedRead::new(reader_end, MessageCodec::default());
    let sent = messages();

    let write_all = async {
        for message in &sent {
            writer.send(message).await.unwrap();
        }
        SinkExt::<&Message>::close(&mut writer).await.unwrap();
        drop(writer);
    };
    let read_all = async {
        let mut received = Vec::new();
        while let Some(message) = reader.next().await {
            received.push(message.unwrap());
        }
        received
    };
    let ((), received) = tokio::join!(write_all, read_all);
    assert_eq!(received, sent);
}

#[tokio::test]
async fn a_peer_dying_mid_frame_is_truncated_after_the_whole_frames() {
    let (mut writer_end, reader_end) = tokio::io::duplex(PIPE_BUFFER_BYTES);
    let mut reader = FramedRead::new(reader_end, MessageCodec::default());
    let first = messages().remove(0);
    let second = encode_frame(&messages().remove(1), 1 << 20).unwrap();

    let write = async {
        writer_end
            .write_all(&encode_frame(&first, 1 << 20).unwrap())
            .await
            .unwrap();
        writer_end
            .write_all(&second[..second.len() / 2])
            .await
            .unwrap();
        writer_end.shutdown().await.unwrap();
        drop(writer_end);
    };
    let read = async {
        let message = reader.next().await.unwrap().unwrap();
        let error = reader.next().await.unwrap().unwrap_err();
        (message, error)
    };
    let ((), (message, error)) = tokio::join!(write, read);
    assert_eq!(message, first);
    match error {
        WireError::Truncated { expected, got } => {
            assert_eq!(expected, second.len());
            assert_eq!(got, second.len() / 2);
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    assert_eq!(
        reader.decoder().poisoned().map(WireError::class),
        Some("truncated")
    );
}

#[tokio::test]
async fn an_oversized_frame_from_the_peer_fails_without_waiting_for_its_body() {
    let (mut writer_end, reader_end) = tokio::io::duplex(PIPE_BUFFER_BYTES);
    let mut reader = FramedRead::new(reader_end, MessageCodec::new(1024));
    // Only the prefix is written and the pipe stays open: the error must come
    // from the prefix alone.
    writer_end.write_all(&2048_u32.to_be_bytes()).await.unwrap();
    // A codec that waited for the body would wait forever: bound the wait so
    // such a regression fails instead of hanging.
    let next = tokio::time::timeout(Duration::from_secs(10), reader.next());
    let error = next
        .await
        .expect("the prefix alone must fail")
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            error,
            WireError::FrameTooLarge {
                length: 2048,
                max: 1024
            }
        ),
        "{error:?}"
    );
    drop(writer_end);
}

#[tokio::test]
async fn sending_an_oversized_message_fails_and_the_sink_stays_usable() {
    let (writer_end, reader_end) = tokio::io::duplex(PIPE_BUFFER_BYTES);
    let mut writer = FramedWrite::new(writer_end, MessageCodec::new(64));
    let mut reader = FramedRead::new(reader_end, MessageCodec::new(64));
    let small = messages().remove(0);
    let big = messages().remove(1);

    let error = writer.send(&big).await.unwrap_err();
    assert_eq!(error.class(), "frame_too_large");

    let write = async {
        writer.send(&small).await.unwrap();
        SinkExt::<&Message>::close(&mut writer).await.unwrap();
        drop(writer);
    };
    let read = async { reader.next().await.unwrap().unwrap() };
    let ((), received) = tokio::join!(write, read);
    assert_eq!(received, small);
}
