//! Property tests: any message survives encoding and decoding, however the
//! byte stream carrying it is split.
#![allow(clippy::unwrap_used, clippy::panic)] // tests: a panic is a failure report

use bytes::BytesMut;
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use pypool_wire::{
    Cancel, Chunk, CommandInfo, Concurrency, Credit, DEFAULT_MAX_FRAME_BYTES, Handshake, Message,
    MessageCodec, Outcome, RemoteError, RemoteErrorKind, Reply, Request, StartupError,
    StreamRequest, decode_body, encode_frame,
};
use serde_json::{Map, Value};
use tokio_util::codec::{Decoder, Encoder};

const ROUNDTRIP_CASES: u32 = 512;
const STREAM_CASES: u32 = 256;

fn text() -> impl Strategy<Value = String> {
    // Any Unicode scalar values, including control characters, quotes and
    // backslashes, which JSON must escape.
    prop_oneof![any::<String>(), "[a-z_\"\\\\\n\u{0}-\u{1f}é世🐍]{0,12}"]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |number| number.is_finite())
            .prop_map(Value::from),
        text().prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(text(), inner, 0..6).prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    btree_map(text(), json_value(), 0..6).prop_map(|map| map.into_iter().collect())
}

fn remote_error_kind() -> impl Strategy<Value = RemoteErrorKind> {
    prop_oneof![
        Just(RemoteErrorKind::PythonException),
        Just(RemoteErrorKind::UnknownCommand),
        Just(RemoteErrorKind::InvalidArguments),
        Just(RemoteErrorKind::InvalidResult),
        Just(RemoteErrorKind::Internal),
        // `from_wire` turns a known spelling into its variant, as decoding does.
        text().prop_map(|kind| RemoteErrorKind::from_wire(&kind)),
    ]
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        json_value().prop_map(|result| Outcome::Ok { result }),
        (
            remote_error_kind(),
            text(),
            option::of(text()),
            option::of(text())
        )
            .prop_map(
                |(kind, message, exception_type, traceback)| Outcome::Error {
                    error: RemoteError {
                        kind,
                        message,
                        exception_type,
                        traceback
                    },
                }
            ),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (
            any::<u32>(),
            any::<u64>(),
            any::<u32>(),
            text(),
            vec(
                (
                    text(),
                    any::<bool>(),
                    prop_oneof![
                        Just(Concurrency::Serial),
                        Just(Concurrency::Threads),
                        Just(Concurrency::Async)
                    ]
                )
                    .prop_map(|(name, idempotent, concurrency)| CommandInfo {
                        name,
                        idempotent,
                        concurrency
                    }),
                0..5
            ),
            1..=u32::MAX,
        )
            .prop_map(
                |(protocol, worker_id, pid, python_version, commands, capacity)| {
                    Message::Handshake(Handshake {
                        protocol,
                        worker_id,
                        pid,
                        python_version,
                        commands,
                        capacity,
                    })
                }
            ),
        any::<u64>().prop_map(|id| Message::Cancel(Cancel { id })),
        (text(), text(), option::of(text())).prop_map(|(kind, message, traceback)| {
            Message::StartupError(StartupError {
                kind,
                message,
                traceback,
            })
        }),
        (any::<u64>(), text(), json_object())
            .prop_map(|(id, command, args)| Message::Request(Request { id, command, args })),
        (any::<u64>(), outcome(), option::of(json_object())).prop_map(|(id, outcome, usage)| {
            Message::Reply(Reply {
                id,
                outcome,
                usage: usage.map(Value::Object),
            })
        }),
        (any::<u64>(), text(), json_object(), any::<u32>()).prop_map(
            |(id, command, args, credit)| Message::StreamRequest(StreamRequest {
                id,
                command,
                args,
                credit
            })
        ),
        (any::<u64>(), any::<u64>(), json_object()).prop_map(|(id, seq, data)| Message::Chunk(
            Chunk {
                id,
                seq,
                data: serde_json::Value::Object(data)
            }
        )),
        (any::<u64>(), any::<u32>()).prop_map(|(id, grant)| Message::Credit(Credit { id, grant })),
    ]
}

/// Feeds `stream` to a fresh codec in pieces cut at `cuts` and decodes everything.
fn decode_in_pieces(stream: &[u8], cuts: &[usize]) -> Result<Vec<Message>, pypool_wire::WireError> {
    let mut codec = MessageCodec::default();
    let mut buffer = BytesMut::new();
    let mut decoded = Vec::new();
    let mut start = 0;
    for end in cuts.iter().copied().chain([stream.len()]) {
        buffer.extend_from_slice(&stream[start..end]);
        start = end;
        while let Some(message) = codec.decode(&mut buffer)? {
            decoded.push(message);
        }
    }
    while let Some(message) = codec.decode_eof(&mut buffer)? {
        decoded.push(message);
    }
    Ok(decoded)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(ROUNDTRIP_CASES))]

    #[test]
    fn any_message_roundtrips_through_the_codec(message in message()) {
        let mut codec = MessageCodec::default();
        let mut buffer = BytesMut::new();
        codec.encode(&message, &mut buffer).unwrap();
        let frame = buffer.to_vec();

        let body_length = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        prop_assert_eq!(body_length, frame.len() - 4);
        prop_assert_eq!(&encode_frame(&message, DEFAULT_MAX_FRAME_BYTES).unwrap(), &frame);
        prop_assert_eq!(&decode_body(&frame[4..]).unwrap(), &message);

        let decoded = codec.decode(&mut buffer).unwrap();
        prop_assert_eq!(decoded.as_ref(), Some(&message));
        prop_assert!(buffer.is_empty());
        prop_assert_eq!(codec.decode_eof(&mut buffer).unwrap(), None);
    }

    #[test]
    fn owned_and_borrowed_encoders_write_the_same_frame(message in message()) {
        let mut by_reference = BytesMut::new();
        let mut by_value = BytesMut::new();
        MessageCodec::default().encode(&message, &mut by_reference).unwrap();
        MessageCodec::default().encode(message, &mut by_value).unwrap();
        prop_assert_eq!(by_reference, by_value);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(STREAM_CASES))]

    #[test]
    fn a_stream_of_frames_split_anywhere_decodes_to_the_same_messages(
        messages in vec(message(), 1..6),
        cut_points in vec(any::<proptest::sample::Index>(), 0..12),
    ) {
        let mut stream = Vec::new();
        for message in &messages {
            stream.extend(encode_frame(message, DEFAULT_MAX_FRAME_BYTES).unwrap());
        }
        let mut cuts: Vec<usize> = cut_points.iter().map(|index| index.index(stream.len() + 1)).collect();
        cuts.sort_unstable();
        prop_assert_eq!(decode_in_pieces(&stream, &cuts).unwrap(), messages.clone());

        let byte_by_byte: Vec<usize> = (1..stream.len()).collect();
        prop_assert_eq!(decode_in_pieces(&stream, &byte_by_byte).unwrap(), messages);
    }

    #[test]
    fn a_stream_cut_short_inside_a_frame_is_truncated(
        messages in vec(message(), 1..4),
        cut in any::<proptest::sample::Index>(),
    ) {
        let mut stream = Vec::new();
        let mut frame_ends = Vec::new();
        for message in &messages {
            stream.extend(encode_frame(message, DEFAULT_MAX_FRAME_BYTES).unwrap());
            frame_ends.push(stream.len());
        }
        let end = cut.index(stream.len());
        prop_assume!(end > 0 && !frame_ends.contains(&end));
        let error = decode_in_pieces(&stream[..end], &[]).unwrap_err();
        prop_assert_eq!(error.class(), "truncated");
    }
}
