//! Every golden vector in `tests/golden/vectors.json` (shared with the Python
//! worker's tests) decodes, encodes or fails exactly as the file says.
#![allow(clippy::unwrap_used, clippy::panic)] // tests: a panic is a failure report

use std::collections::BTreeSet;
use std::path::PathBuf;

use bytes::BytesMut;
use pypool_wire::{Message, MessageCodec, WireError, decode_body, encode_frame};
use serde::Deserialize;
use serde_json::Value;
use tokio_util::codec::Decoder;

/// Vectors whose bytes the Rust encoder writes with the same keys and values
/// but in another order, so they are compared as JSON values instead:
/// * `request_unicode_args`: `serde_json::Map` (without the `preserve_order`
///   feature) sorts `args` keys, writing `"n"` before `"text"`;
/// * `reply_error_full`: `RemoteError` declares `message` before
///   `exception_type`; Python wrote `exception_type` first.
const KEY_ORDER_DIFFERS: &[&str] = &["request_unicode_args", "reply_error_full"];

#[derive(Debug, Deserialize)]
struct GoldenFile {
    max_frame_bytes: usize,
    vectors: Vec<Vector>,
}

#[derive(Debug, Deserialize)]
struct Vector {
    name: String,
    file: String,
    expect: String,
    message: Option<Value>,
    normalized: Option<Value>,
    error: Option<String>,
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden")
}

fn golden() -> GoldenFile {
    let text = std::fs::read_to_string(golden_dir().join("vectors.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn frame_bytes(vector: &Vector) -> Vec<u8> {
    std::fs::read(golden_dir().join(&vector.file)).unwrap()
}

fn vectors_expecting<'a>(golden: &'a GoldenFile, expect: &str) -> Vec<&'a Vector> {
    let chosen: Vec<&Vector> = golden
        .vectors
        .iter()
        .filter(|vector| vector.expect == expect)
        .collect();
    assert!(!chosen.is_empty(), "no `{expect}` vectors in vectors.json");
    chosen
}

/// What the streaming decoder made of a byte stream fed `chunk` bytes at a time.
struct StreamOutcome {
    messages: Vec<Message>,
    /// The first error and how many bytes had been fed when it came.
    error: Option<(WireError, usize)>,
}

fn decode_stream(bytes: &[u8], max_frame_bytes: usize, chunk: usize) -> StreamOutcome {
    let mut codec = MessageCodec::new(max_frame_bytes);
    let mut buffer = BytesMut::new();
    let mut messages = Vec::new();
    let mut fed = 0;
    for piece in bytes.chunks(chunk) {
        buffer.extend_from_slice(piece);
        fed += piece.len();
        loop {
            match codec.decode(&mut buffer) {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => break,
                Err(error) => {
                    return StreamOutcome {
                        messages,
                        error: Some((error, fed)),
                    };
                }
            }
        }
    }
    loop {
        match codec.decode_eof(&mut buffer) {
            Ok(Some(message)) => messages.push(message),
            Ok(None) => {
                return StreamOutcome {
                    messages,
                    error: None,
                };
            }
            Err(error) => {
                return StreamOutcome {
                    messages,
                    error: Some((error, fed)),
                };
            }
        }
    }
}

#[test]
fn every_frame_file_is_listed_once_in_vectors_json() {
    let golden = golden();
    let listed: BTreeSet<&str> = golden.vectors.iter().map(|v| v.file.as_str()).collect();
    assert_eq!(listed.len(), golden.vectors.len(), "a file is listed twice");
    let on_disk: BTreeSet<String> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".bin"))
        .collect();
    let listed: BTreeSet<String> = listed.into_iter().map(str::to_owned).collect();
    assert_eq!(on_disk, listed);
}

#[test]
fn message_vectors_decode_to_their_normalized_json() {
    let golden = golden();
    for vector in vectors_expecting(&golden, "message") {
        let bytes = frame_bytes(vector);
        let expected = vector
            .normalized
            .as_ref()
            .or(vector.message.as_ref())
            .unwrap();
        for chunk in [bytes.len(), 1, 3] {
            let outcome = decode_stream(&bytes, golden.max_frame_bytes, chunk);
            assert!(
                outcome.error.is_none(),
                "{}: {:?}",
                vector.name,
                outcome.error
            );
            assert_eq!(outcome.messages.len(), 1, "{}", vector.name);
            let reencoded = serde_json::to_value(&outcome.messages[0]).unwrap();
            assert_eq!(&reencoded, expected, "{} (chunks of {chunk})", vector.name);
        }
        let direct = decode_body(&bytes[4..]).unwrap();
        assert_eq!(
            &serde_json::to_value(&direct).unwrap(),
            expected,
            "{}",
            vector.name
        );
    }
}

#[test]
fn message_vectors_without_normalized_form_encode_back_to_their_bytes() {
    let golden = golden();
    for vector in vectors_expecting(&golden, "message") {
        if vector.normalized.is_some() {
            continue;
        }
        let bytes = frame_bytes(vector);
        let message = decode_body(&bytes[4..]).unwrap();
        let encoded = encode_frame(&message, golden.max_frame_bytes).unwrap();
        if KEY_ORDER_DIFFERS.contains(&vector.name.as_str()) {
            assert_ne!(
                encoded, bytes,
                "{} now matches byte for byte: drop it from KEY_ORDER_DIFFERS",
                vector.name
            );
            assert_eq!(encoded.len(), bytes.len(), "{}", vector.name);
            assert_eq!(encoded[..4], bytes[..4], "{}: length prefix", vector.name);
            let ours: Value = serde_json::from_slice(&encoded[4..]).unwrap();
            let theirs: Value = serde_json::from_slice(&bytes[4..]).unwrap();
            assert_eq!(ours, theirs, "{}", vector.name);
        } else {
            assert_eq!(
                String::from_utf8_lossy(&encoded),
                String::from_utf8_lossy(&bytes),
                "{}",
                vector.name
            );
            assert_eq!(encoded, bytes, "{}", vector.name);
        }
    }
}

#[test]
fn error_vectors_fail_with_their_class_through_the_streaming_decoder() {
    let golden = golden();
    for vector in vectors_expecting(&golden, "error") {
        let bytes = frame_bytes(vector);
        let expected = vector.error.as_deref().unwrap();
        for chunk in [bytes.len().max(1), 1] {
            let outcome = decode_stream(&bytes, golden.max_frame_bytes, chunk);
            assert!(outcome.messages.is_empty(), "{}", vector.name);
            let (error, fed) = outcome
                .error
                .unwrap_or_else(|| panic!("{}: decoded without error", vector.name));
            assert_eq!(
                error.class(),
                expected,
                "{} (chunks of {chunk}): {error}",
                vector.name
            );
            if expected == "frame_too_large" && chunk == 1 {
                assert_eq!(
                    fed, 4,
                    "{}: must fail on the prefix, before the body",
                    vector.name
                );
            }
        }
    }
}

#[test]
fn error_vectors_with_a_whole_frame_fail_with_their_class_through_decode_body() {
    let golden = golden();
    for vector in vectors_expecting(&golden, "error") {
        let bytes = frame_bytes(vector);
        let expected = vector.error.as_deref().unwrap();
        if matches!(expected, "frame_too_large" | "truncated") {
            continue; // framing errors: there is no whole body to hand over
        }
        let error = decode_body(&bytes[4..]).unwrap_err();
        assert_eq!(error.class(), expected, "{}: {error}", vector.name);
    }
}

#[test]
fn key_order_exceptions_name_existing_vectors() {
    let golden = golden();
    for name in KEY_ORDER_DIFFERS {
        assert!(
            golden
                .vectors
                .iter()
                .any(|v| v.name == *name && v.expect == "message"),
            "{name} is not a message vector"
        );
    }
}
