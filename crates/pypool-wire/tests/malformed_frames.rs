//! Bad frames and bad bodies fail with the right typed error, and a decoder
//! that failed once stays failed.
#![allow(clippy::unwrap_used, clippy::panic)] // tests: a panic is a failure report

use bytes::{BufMut, BytesMut};
use pypool_wire::{Message, MessageCodec, Request, WireError, decode_body, encode_frame};
use serde_json::{Map, Value, json};
use tokio_util::codec::{Decoder, Encoder};

fn frame(body: &[u8]) -> Vec<u8> {
    let mut bytes = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    bytes.extend_from_slice(body);
    bytes
}

fn ping(id: u64) -> Message {
    Message::Request(Request {
        id,
        command: "ping".into(),
        args: Map::new(),
    })
}

fn padded_request(padding: usize) -> Message {
    let mut args = Map::new();
    args.insert("pad".into(), Value::String("x".repeat(padding)));
    Message::Request(Request {
        id: 9,
        command: "echo".into(),
        args,
    })
}

/// Decodes `bytes` (all available at once) and then signals end of stream.
fn decode_all(codec: &mut MessageCodec, bytes: &[u8]) -> Result<Vec<Message>, WireError> {
    let mut buffer = BytesMut::from(bytes);
    let mut messages = Vec::new();
    while let Some(message) = codec.decode(&mut buffer)? {
        messages.push(message);
    }
    while let Some(message) = codec.decode_eof(&mut buffer)? {
        messages.push(message);
    }
    Ok(messages)
}

fn body_error(body: &str) -> WireError {
    decode_body(body.as_bytes()).unwrap_err()
}

#[test]
fn stream_ending_inside_the_prefix_is_truncated() {
    let mut codec = MessageCodec::default();
    let mut buffer = BytesMut::from(&[0u8, 0, 0][..]);
    assert_eq!(codec.decode(&mut buffer).unwrap(), None);
    let error = codec.decode_eof(&mut buffer).unwrap_err();
    assert!(
        matches!(
            error,
            WireError::Truncated {
                expected: 4,
                got: 3
            }
        ),
        "{error:?}"
    );
}

#[test]
fn stream_ending_inside_the_body_is_truncated() {
    let whole = encode_frame(&ping(1), 1024).unwrap();
    let mut codec = MessageCodec::default();
    let error = decode_all(&mut codec, &whole[..whole.len() - 5]).unwrap_err();
    match error {
        WireError::Truncated { expected, got } => {
            assert_eq!(expected, whole.len());
            assert_eq!(got, whole.len() - 5);
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
}

#[test]
fn stream_ending_after_whole_frames_is_clean() {
    let mut bytes = encode_frame(&ping(1), 1024).unwrap();
    bytes.extend(encode_frame(&ping(2), 1024).unwrap());
    let messages = decode_all(&mut MessageCodec::default(), &bytes).unwrap();
    assert_eq!(messages, vec![ping(1), ping(2)]);
}

#[test]
fn zero_length_prefix_is_rejected_even_when_a_valid_frame_follows() {
    let mut bytes = vec![0, 0, 0, 0];
    bytes.extend(encode_frame(&ping(1), 1024).unwrap());
    let error = decode_all(&mut MessageCodec::default(), &bytes).unwrap_err();
    assert!(matches!(error, WireError::ZeroLength), "{error:?}");
    assert!(matches!(decode_body(b""), Err(WireError::ZeroLength)));
}

#[test]
fn oversized_prefix_fails_on_the_prefix_alone_without_allocating_for_the_body() {
    let mut codec = MessageCodec::new(100);
    let mut buffer = BytesMut::with_capacity(8);
    buffer.put_u32(101);
    let error = codec.decode(&mut buffer).unwrap_err();
    assert!(
        matches!(
            error,
            WireError::FrameTooLarge {
                length: 101,
                max: 100
            }
        ),
        "{error:?}"
    );
    assert!(
        buffer.capacity() < 101,
        "reserved {} bytes for a refused frame",
        buffer.capacity()
    );

    let mut huge = BytesMut::from(&[0xff_u8, 0xff, 0xff, 0xff][..]);
    let error = MessageCodec::default().decode(&mut huge).unwrap_err();
    assert!(
        matches!(
            error,
            WireError::FrameTooLarge {
                length: 0xffff_ffff,
                max: 16_777_216
            }
        ),
        "{error:?}"
    );
}

#[test]
fn a_body_of_exactly_the_maximum_size_is_accepted_one_more_byte_is_not() {
    let message = padded_request(200);
    let exact = encode_frame(&message, usize::MAX).unwrap();
    let body_length = exact.len() - 4;

    let decoded = decode_all(&mut MessageCodec::new(body_length), &exact).unwrap();
    assert_eq!(decoded, vec![message.clone()]);
    assert_eq!(encode_frame(&message, body_length).unwrap(), exact);

    let error = decode_all(&mut MessageCodec::new(body_length - 1), &exact).unwrap_err();
    assert!(
        matches!(error, WireError::FrameTooLarge { length, max } if length == body_length && max == body_length - 1)
    );
}

#[test]
fn encoding_an_oversized_message_fails_and_writes_nothing() {
    let message = padded_request(500);
    let body_length = encode_frame(&message, usize::MAX).unwrap().len() - 4;
    let max = body_length - 1;

    let mut codec = MessageCodec::new(max);
    let mut buffer = BytesMut::from(&b"earlier frames"[..]);
    let error = codec.encode(&message, &mut buffer).unwrap_err();
    assert!(
        matches!(error, WireError::FrameTooLarge { length, max: m } if length == body_length && m == max),
        "{error:?}"
    );
    assert_eq!(&buffer[..], b"earlier frames");

    let error = codec.encode(message.clone(), &mut buffer).unwrap_err();
    assert_eq!(error.class(), "frame_too_large");
    assert_eq!(
        encode_frame(&message, max).unwrap_err().class(),
        "frame_too_large"
    );

    // The stream is intact: the same codec still encodes and decodes.
    assert!(codec.poisoned().is_none());
    let mut fresh = BytesMut::new();
    codec.encode(&ping(3), &mut fresh).unwrap();
    assert_eq!(codec.decode(&mut fresh).unwrap(), Some(ping(3)));
}

#[test]
fn max_frame_bytes_is_clamped_to_what_a_prefix_can_describe() {
    assert_eq!(
        MessageCodec::new(usize::MAX).max_frame_bytes(),
        u32::MAX as usize
    );
    assert_eq!(MessageCodec::default().max_frame_bytes(), 16 * 1024 * 1024);
    assert_eq!(MessageCodec::new(7).max_frame_bytes(), 7);
}

#[test]
fn invalid_utf8_reports_where_it_starts() {
    let error = decode_body(b"{\"type\":\"\xc3\x28\"}").unwrap_err();
    assert!(
        matches!(error, WireError::InvalidUtf8 { valid_up_to: 9 }),
        "{error:?}"
    );
    let error = decode_all(&mut MessageCodec::default(), &frame(b"\xff")).unwrap_err();
    assert_eq!(error.class(), "invalid_utf8");
}

#[test]
fn bodies_that_are_not_json_are_invalid_json() {
    for body in [
        "{\"type\":\"request\",\"id\":1,",
        "{\"type\":\"request\",\"id\":1,\"command\":\"ping\"} trailing",
        "{\"type\":\"gossip\",",
        "{\"type\":\"reply\",\"id\":1,\"status\":\"ok\",\"result\":NaN}",
        "   ",
        "{'type':'request'}",
    ] {
        let error = body_error(body);
        assert!(
            matches!(error, WireError::InvalidJson { .. }),
            "{body}: {error:?}"
        );
    }
}

#[test]
fn json_that_is_not_a_message_is_invalid_message() {
    let cases = [
        json!([1, 2, 3]),
        json!("request"),
        json!(null),
        json!(42),
        json!({"id": 1, "command": "ping"}),
        json!({"type": "gossip", "id": 1}),
        json!({"type": 1}),
        json!({"type": "request", "id": -1, "command": "ping"}),
        json!({"type": "request", "id": 1.5, "command": "ping"}),
        json!({"type": "request", "id": 18_446_744_073_709_551_616.0_f64, "command": "ping"}),
        json!({"type": "request", "id": 1, "command": "ping", "args": [1]}),
        json!({"type": "request", "id": 1, "command": 7}),
        json!({"type": "request", "id": 1}),
        json!({"type": "reply", "id": 1, "result": 1}),
        json!({"type": "reply", "id": 1, "status": "maybe", "result": 1}),
        json!({"type": "reply", "id": 1, "status": "error", "error": {"kind": 3, "message": "m"}}),
        json!({"type": "reply", "id": 1, "status": "error", "error": {"kind": "internal"}}),
        json!({"type": "handshake", "protocol": 1, "worker_id": 0, "pid": 4_294_967_296_u64,
               "python_version": "3.12", "commands": []}),
        json!({"type": "handshake", "protocol": 1, "worker_id": 0, "pid": 1, "python_version": "3.12"}),
        json!({"type": "handshake", "protocol": 1, "worker_id": 0, "pid": 1, "python_version": "3.12",
               "commands": [{"name": "ping", "idempotent": "yes"}]}),
        json!({"type": "startup_error", "kind": "internal"}),
    ];
    for case in cases {
        let body = case.to_string();
        let error = body_error(&body);
        assert!(
            matches!(error, WireError::InvalidMessage { .. }),
            "{body}: {error:?}"
        );
    }
}

#[test]
fn invalid_message_detail_says_what_is_wrong() {
    let error = body_error("[1,2,3]");
    assert_eq!(
        error.to_string(),
        "frame body is not a valid pypool message: expected a JSON object with a \"type\" field, got an array"
    );
    let error = body_error(r#"{"type":"gossip"}"#);
    assert!(error.to_string().contains("gossip"), "{error}");
}

#[test]
fn decoder_stays_poisoned_after_an_error() {
    let mut codec = MessageCodec::new(1024);
    let mut buffer = BytesMut::from(&frame(b"[1]")[..]);
    let first = codec.decode(&mut buffer).unwrap_err();
    assert_eq!(first.class(), "invalid_message");
    assert_eq!(
        codec.poisoned().map(WireError::class),
        Some("invalid_message")
    );

    buffer.extend_from_slice(&encode_frame(&ping(1), 1024).unwrap());
    for _ in 0..3 {
        let again = codec.decode(&mut buffer).unwrap_err();
        assert_eq!(again.to_string(), first.to_string());
    }
    let at_eof = codec.decode_eof(&mut buffer).unwrap_err();
    assert_eq!(at_eof.to_string(), first.to_string());
}

#[test]
fn decoder_stays_poisoned_after_a_truncation() {
    let mut codec = MessageCodec::default();
    let mut buffer = BytesMut::from(&[0u8, 0][..]);
    assert_eq!(
        codec.decode_eof(&mut buffer).unwrap_err().class(),
        "truncated"
    );
    let mut valid = BytesMut::from(&encode_frame(&ping(1), 1024).unwrap()[..]);
    assert_eq!(codec.decode(&mut valid).unwrap_err().class(), "truncated");
}

#[test]
fn error_messages_tell_the_user_what_to_do() {
    let too_large = WireError::FrameTooLarge {
        length: 17_000_000,
        max: 16_777_216,
    };
    assert_eq!(
        too_large.to_string(),
        "frame of 17000000 bytes exceeds the maximum of 16777216 bytes (raise max_frame_bytes on both host and worker)"
    );
    let truncated = WireError::Truncated {
        expected: 44,
        got: 21,
    };
    assert_eq!(
        truncated.to_string(),
        "the stream ended inside a frame after 21 of 44 bytes (the peer closed the pipe or died mid-write)"
    );
}

#[test]
fn every_error_has_its_golden_class_name() {
    let io = WireError::from(std::io::Error::new(
        std::io::ErrorKind::BrokenPipe,
        "pipe closed",
    ));
    assert!(std::error::Error::source(&io).is_some());
    assert!(io.to_string().contains("pipe closed"), "{io}");
    let cases = [
        (
            WireError::FrameTooLarge { length: 2, max: 1 },
            "frame_too_large",
        ),
        (WireError::ZeroLength, "zero_length"),
        (
            WireError::Truncated {
                expected: 4,
                got: 1,
            },
            "truncated",
        ),
        (WireError::InvalidUtf8 { valid_up_to: 0 }, "invalid_utf8"),
        (
            WireError::InvalidJson {
                detail: String::new(),
            },
            "invalid_json",
        ),
        (
            WireError::InvalidMessage {
                detail: String::new(),
            },
            "invalid_message",
        ),
        (io.clone(), "io"),
    ];
    for (error, class) in cases {
        assert_eq!(error.class(), class, "{error:?}");
    }
}
