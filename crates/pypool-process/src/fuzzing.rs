//! Fuzzing support: generated and mutated worker output, decoded by the wire
//! codec and read by a [`ProcessConnection`] over an in-memory stream.
//!
//! Built for `cargo xtask fuzz` (feature `fuzzing`, the `fuzz` example) and
//! for the replay of the kept regression vectors
//! (`tests/golden/fuzz_vectors.txt`), which runs as a unit test of this
//! crate. Not a stable API.
//!
//! A [`Case`] is one worker's stdout after its handshake: a few frames (valid
//! replies, replies for unknown ids, duplicate handshakes, requests in the
//! wrong direction, garbage bodies, huge or zero length prefixes, invalid
//! UTF-8 or JSON, deep nesting, a truncated tail), then possibly mutated
//! (bit flips, overwritten, inserted, deleted or duplicated bytes, a cut).
//! Everything about a case follows from its seed.
//!
//! [`run_case`] feeds the bytes to [`MessageCodec`] in random chunks and, on a
//! current-thread runtime, to a [`ProcessConnection`] whose host side has a
//! few requests pending; every call must end with a reply or a typed
//! [`CallError`], within a bound.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use futures::future::join_all;
use pypool_seam::{CallError, Handshake, Outcome, Request, WorkerConnection, WorkerExit};
use pypool_wire::{DEFAULT_MAX_FRAME_BYTES, MessageCodec, PROTOCOL_VERSION};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::watch;
use tokio_util::codec::{Decoder, FramedRead};

use crate::ProcessConnection;
use crate::signals::SpawnedProcess;

/// How long one case may take on the connection before it counts as a hang.
pub const CASE_BOUND: Duration = Duration::from_secs(5);

/// The worker id every case's handshake announces.
const WORKER_ID: u64 = 7;

/// A pid no signal can reach: `u32::MAX` does not fit a `pid_t`, so the
/// connection's kill on a protocol violation is a no-op (never pid 0, which
/// would be the fuzzer's own process group).
const UNSIGNALLABLE_PID: u32 = u32::MAX;

/// The id of the request sent after the stream was read, to learn the
/// connection's verdict; generated frames never use it. Small, so the probe
/// fits the smallest maximum frame size a case uses (64 bytes).
const PROBE_ID: u64 = 999_999;

/// SplitMix64: small, fast, deterministic; good enough to generate inputs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`0` when `bound` is 0).
    pub fn below(&mut self, bound: usize) -> usize {
        if bound == 0 {
            return 0;
        }
        usize::try_from(self.next_u64() % bound as u64).unwrap_or(0)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        self.next_u64().to_le_bytes()[0]
    }

    fn bytes(&mut self, count: usize) -> Vec<u8> {
        (0..count).map(|_| self.byte()).collect()
    }
}

/// The seed of case `index` of a run started with `seed`.
pub fn case_seed(seed: u64, index: u64) -> u64 {
    Rng::new(seed ^ index.wrapping_mul(0xD6E8_FEB8_6659_FD93)).next_u64()
}

/// How many frames [`Case::generate`] makes for `seed` (1 to 6), known
/// without generating the case, so a run can choose its cases up front.
pub fn frame_count(seed: u64) -> u64 {
    1 + Rng::new(seed ^ 0x5EED_F4A3_E5C0_u64).next_u64() % 6
}

/// One fuzz input: a worker's stdout after the handshake, and what the host
/// expects of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// The seed the case was generated from (0 for a hand-written case).
    pub seed: u64,
    /// The codec's maximum body size for this case.
    pub max_frame_bytes: usize,
    /// How many requests the host has pending (ids 1..=pending).
    pub pending: u64,
    /// Seeds the sizes of the chunks the stream arrives in.
    pub chunk_seed: u64,
    /// Frames generated before mutation.
    pub frames: u64,
    /// The bytes the worker wrote.
    pub stream: Vec<u8>,
}

impl Case {
    /// Generates the case for `seed`.
    pub fn generate(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let max_frame_bytes = match rng.below(4) {
            0 => 64,
            1 => 1024,
            2 => 64 * 1024,
            _ => DEFAULT_MAX_FRAME_BYTES,
        };
        let pending = rng.below(4) as u64;
        let chunk_seed = rng.next_u64();
        let frames = frame_count(seed);
        let mut stream = Vec::new();
        for _ in 0..frames {
            push_frame(&mut rng, &mut stream, pending, max_frame_bytes);
        }
        if rng.chance(50) {
            for _ in 0..1 + rng.below(4) {
                mutate(&mut rng, &mut stream);
            }
        }
        Self {
            seed,
            max_frame_bytes,
            pending,
            chunk_seed,
            frames,
            stream,
        }
    }

    /// One line of `tests/golden/fuzz_vectors.txt`, without the expectation.
    pub fn to_fields(&self) -> String {
        format!(
            "seed={:016x} max={} pending={} chunks={:016x} frames={} bytes={}",
            self.seed,
            self.max_frame_bytes,
            self.pending,
            self.chunk_seed,
            self.frames,
            hex(&self.stream)
        )
    }

    /// Parses the fields [`Case::to_fields`] writes (in any order; unknown
    /// fields such as `expect=` are skipped).
    pub fn from_fields(line: &str) -> Result<Self, String> {
        let mut case = Self {
            seed: 0,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            pending: 0,
            chunk_seed: 0,
            frames: 0,
            stream: Vec::new(),
        };
        for field in line.split_whitespace() {
            let (key, value) = field
                .split_once('=')
                .ok_or_else(|| format!("`{field}` is not key=value"))?;
            let bad = |error: &dyn std::fmt::Display| format!("bad `{key}`: {error}");
            match key {
                "seed" => case.seed = u64::from_str_radix(value, 16).map_err(|e| bad(&e))?,
                "max" => case.max_frame_bytes = value.parse().map_err(|e| bad(&e))?,
                "pending" => case.pending = value.parse().map_err(|e| bad(&e))?,
                "chunks" => {
                    case.chunk_seed = u64::from_str_radix(value, 16).map_err(|e| bad(&e))?
                }
                "frames" => case.frames = value.parse().map_err(|e| bad(&e))?,
                "bytes" => case.stream = unhex(value).map_err(|e| bad(&e))?,
                _ => {}
            }
        }
        Ok(case)
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

fn unhex(text: &str) -> Result<Vec<u8>, String> {
    if text.len() % 2 != 0 {
        return Err("odd number of hex digits".into());
    }
    (0..text.len())
        .step_by(2)
        .map(|at| {
            text.get(at..at + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("not hex at {at}"))
        })
        .collect()
}

fn push_body(stream: &mut Vec<u8>, body: &[u8]) {
    let length = u32::try_from(body.len()).unwrap_or(u32::MAX);
    stream.extend_from_slice(&length.to_be_bytes());
    stream.extend_from_slice(body);
}

fn random_json(rng: &mut Rng, depth: usize) -> String {
    match rng.below(if depth > 3 { 5 } else { 8 }) {
        0 => "null".into(),
        1 => "true".into(),
        2 => format!("{}", rng.next_u64() as i64),
        3 => format!("{}", (rng.next_u64() % 100_000) as f64 / 7.0),
        4 => format!(
            "\"{}\"",
            ["", "héllo", "世界 🐍", "a\\nb", "\\u00e9"][rng.below(5)]
        ),
        5 => {
            let items: Vec<String> = (0..rng.below(4))
                .map(|_| random_json(rng, depth + 1))
                .collect();
            format!("[{}]", items.join(","))
        }
        _ => {
            let items: Vec<String> = (0..rng.below(4))
                .map(|i| format!("\"k{i}\":{}", random_json(rng, depth + 1)))
                .collect();
            format!("{{{}}}", items.join(","))
        }
    }
}

fn reply_id(rng: &mut Rng, pending: u64) -> u64 {
    if pending > 0 && rng.chance(85) {
        1 + rng.next_u64() % pending
    } else {
        match rng.below(3) {
            0 => 0,
            1 => match rng.next_u64() {
                PROBE_ID => 0,
                id => id,
            },
            _ => pending + 1,
        }
    }
}

/// Appends one generated frame (or frame-shaped bytes) to `stream`.
fn push_frame(rng: &mut Rng, stream: &mut Vec<u8>, pending: u64, max: usize) {
    match rng.below(24) {
        0..=9 => {
            let id = reply_id(rng, pending);
            let body = format!(
                r#"{{"type":"reply","id":{id},"status":"ok","result":{}}}"#,
                random_json(rng, 0)
            );
            push_body(stream, body.as_bytes());
        }
        10 => {
            let id = reply_id(rng, pending);
            let kind = ["handler_error", "unknown_command", "weird_kind", ""][rng.below(4)];
            let body = format!(
                r#"{{"type":"reply","id":{id},"status":"error","error":{{"kind":"{kind}","message":"boom"}}}}"#
            );
            push_body(stream, body.as_bytes());
        }
        11 => {
            // A duplicate handshake (sometimes claiming pid 0 or another worker).
            let pid = [0, 1, u32::MAX, 4242][rng.below(4)];
            let body = format!(
                r#"{{"type":"handshake","protocol":{PROTOCOL_VERSION},"worker_id":{},"pid":{pid},"python_version":"3.11.0","commands":[]}}"#,
                rng.below(10)
            );
            push_body(stream, body.as_bytes());
        }
        12 => push_body(
            stream,
            br#"{"type":"startup_error","kind":"import_error","message":"late"}"#,
        ),
        13 => push_body(
            stream,
            br#"{"type":"request","id":1,"command":"ping","args":{}}"#,
        ),
        14 => {
            let length = 1 + rng.below(64);
            let body = rng.bytes(length);
            push_body(stream, &body);
        }
        15 => {
            // A length prefix over the maximum (up to u32::MAX), then some bytes.
            let over = u64::try_from(max).unwrap_or(u64::MAX) + 1 + rng.next_u64() % 1000;
            let length = if rng.chance(50) {
                u32::MAX
            } else {
                u32::try_from(over).unwrap_or(u32::MAX)
            };
            stream.extend_from_slice(&length.to_be_bytes());
            let tail = rng.below(16);
            stream.extend(rng.bytes(tail));
        }
        16 => stream.extend_from_slice(&[0, 0, 0, 0]),
        17 => {
            let mut body = br#"{"type":"reply","id":1,"status":"ok","result":"x"}"#.to_vec();
            let at = rng.below(body.len());
            body.insert(at, [0xff, 0xc3, 0x80, 0xed][rng.below(4)]);
            push_body(stream, &body);
        }
        18 => {
            let text = [
                r#"{"type":"reply","id":1,"status":"ok","result":"#,
                r#"{"type":"reply","id":1} trailing"#,
                r#"{"type":"reply","id":1,"status":"ok","result":NaN}"#,
                "nul",
                "{'type':'reply'}",
                "",
            ][rng.below(6)];
            if text.is_empty() {
                stream.extend_from_slice(&[0, 0, 0, 0]);
            } else {
                push_body(stream, text.as_bytes());
            }
        }
        19 => {
            let text = [
                "[1,2,3]",
                "42",
                r#"{"id":1}"#,
                r#"{"type":"draining_or_unknown"}"#,
                r#"{"type":"reply","id":-1,"status":"ok","result":1}"#,
                r#"{"type":"reply","id":"1","status":"ok","result":1}"#,
                r#"{"type":"reply","id":18446744073709551616,"status":"ok","result":1}"#,
                r#"{"type":"reply","id":1.5,"status":"ok","result":1}"#,
                r#"{"type":"reply","id":1,"status":"maybe"}"#,
                r#"{"type":"reply","id":1,"status":"ok"}"#,
                r#"{"type":"reply","id":1,"status":"error","error":{"kind":1}}"#,
            ][rng.below(11)];
            push_body(stream, text.as_bytes());
        }
        20 => {
            let depth = [100, 127, 128, 129, 1000, 20_000][rng.below(6)];
            let id = reply_id(rng, pending);
            let body = format!(
                r#"{{"type":"reply","id":{id},"status":"ok","result":{}{}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            );
            push_body(stream, body.as_bytes());
        }
        21 => {
            let length = rng.below(32);
            stream.extend(rng.bytes(length));
        }
        22 => {
            // A frame cut short: the prefix announces more than follows.
            let body = br#"{"type":"reply","id":1,"status":"ok","result":[1,2,3]}"#;
            let keep = rng.below(body.len());
            let length = u32::try_from(body.len()).unwrap_or(0);
            stream.extend_from_slice(&length.to_be_bytes());
            stream.extend_from_slice(&body[..keep]);
        }
        _ => {
            // The same reply twice: the second one has an unknown id.
            let id = reply_id(rng, pending);
            let body = format!(r#"{{"type":"reply","id":{id},"status":"ok","result":null}}"#);
            push_body(stream, body.as_bytes());
            push_body(stream, body.as_bytes());
        }
    }
}

fn mutate(rng: &mut Rng, stream: &mut Vec<u8>) {
    if stream.is_empty() {
        let count = 1 + rng.below(8);
        stream.extend(rng.bytes(count));
        return;
    }
    let at = rng.below(stream.len());
    match rng.below(7) {
        0 => stream[at] ^= 1 << rng.below(8),
        1 => stream[at] = rng.byte(),
        2 => {
            let count = 1 + rng.below(8);
            let extra = rng.bytes(count);
            stream.splice(at..at, extra);
        }
        3 => {
            let end = (at + 1 + rng.below(8)).min(stream.len());
            stream.drain(at..end);
        }
        4 => stream.truncate(at),
        5 => {
            let end = (at + 1 + rng.below(16)).min(stream.len());
            let copy = stream[at..end].to_vec();
            stream.splice(at..at, copy);
        }
        _ => {
            // Overwrite four bytes with a big-endian length (often huge).
            let length = match rng.below(3) {
                0 => u32::MAX,
                1 => 0x7fff_ffff,
                _ => u32::try_from(rng.next_u64() >> 40).unwrap_or(0),
            };
            for (offset, byte) in length.to_be_bytes().into_iter().enumerate() {
                if let Some(slot) = stream.get_mut(at + offset) {
                    *slot = byte;
                }
            }
        }
    }
}

/// The sizes of the chunks a case's stream arrives in.
fn chunk_sizes(seed: u64) -> impl FnMut() -> usize {
    let mut rng = Rng::new(seed);
    move || match rng.below(4) {
        0 => 1,
        1 => 1 + rng.below(8),
        2 => 1 + rng.below(256),
        _ => 64 * 1024,
    }
}

/// What the codec made of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecVerdict {
    /// Messages decoded before the stream ended or broke.
    pub messages: u64,
    /// The error class that ended decoding (`WireError::class`), or `"eof"`.
    pub end: &'static str,
}

/// Decodes `case`'s stream with [`MessageCodec`], fed in random chunks,
/// until a clean end or the first error.
pub fn decode_with_codec(case: &Case) -> CodecVerdict {
    let mut codec = MessageCodec::new(case.max_frame_bytes);
    let mut buffer = BytesMut::new();
    let mut next_chunk = chunk_sizes(case.chunk_seed);
    let mut messages = 0;
    let mut rest = case.stream.as_slice();
    loop {
        let take = next_chunk().min(rest.len());
        let (chunk, after) = rest.split_at(take);
        rest = after;
        buffer.extend_from_slice(chunk);
        let at_end = rest.is_empty();
        loop {
            let decoded = if at_end {
                codec.decode_eof(&mut buffer)
            } else {
                codec.decode(&mut buffer)
            };
            match decoded {
                Ok(Some(_)) => messages += 1,
                Ok(None) => break,
                Err(error) => {
                    // A poisoned codec must keep saying so.
                    let again = codec.decode(&mut buffer).err().map(|e| e.class());
                    let end = if again == Some(error.class()) {
                        error.class()
                    } else {
                        "unpoisoned"
                    };
                    return CodecVerdict { messages, end };
                }
            }
        }
        if at_end {
            return CodecVerdict {
                messages,
                end: "eof",
            };
        }
    }
}

/// An in-memory worker stdout delivering a case's bytes in random chunks,
/// sometimes answering `Pending` first (and waking itself at once).
struct ChunkedStream {
    data: Vec<u8>,
    at: usize,
    next_chunk: Box<dyn FnMut() -> usize + Send>,
    stall: bool,
}

impl AsyncRead for ChunkedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.stall {
            this.stall = false;
            context.waker().wake_by_ref();
            return Poll::Pending;
        }
        let size = (this.next_chunk)();
        this.stall = size % 3 == 0;
        let end = (this.at + size.min(buf.remaining())).min(this.data.len());
        buf.put_slice(&this.data[this.at..end]);
        this.at = end;
        Poll::Ready(Ok(()))
    }
}

/// What a [`ProcessConnection`] made of a case: how each pending call ended,
/// then how a call made after the stream was read ended (the connection's
/// verdict), each as a kind name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderVerdict {
    /// One kind per pending call, then the probe's.
    pub calls: Vec<&'static str>,
}

impl ReaderVerdict {
    /// The kinds joined by `,`.
    pub fn summary(&self) -> String {
        self.calls.join(",")
    }
}

/// The kind name of a call's result; every failure is a typed [`CallError`].
pub fn call_kind(result: &Result<Outcome, CallError>) -> &'static str {
    match result {
        Ok(Outcome::Ok { .. }) => "ok",
        Ok(Outcome::Error { .. }) => "remote_error",
        Err(CallError::WorkerExited { .. }) => "worker_exited",
        Err(CallError::ProtocolViolation { .. }) => "protocol_violation",
        Err(CallError::Closed { .. }) => "closed",
        Err(CallError::NotSent { .. }) => "not_sent",
        Err(CallError::DuplicateRequestId { .. }) => "duplicate_request_id",
        Err(_) => "other_call_error",
    }
}

fn request(id: u64) -> Request {
    Request {
        id,
        command: "ping".into(),
        args: serde_json::Map::new(),
    }
}

/// Reads `case`'s stream through a [`ProcessConnection`] (must run on a
/// current-thread runtime so the pending calls are registered before the
/// reader runs). `None` if the case did not finish within [`CASE_BOUND`].
pub async fn read_with_connection(case: &Case) -> Option<ReaderVerdict> {
    let handshake = Handshake {
        protocol: PROTOCOL_VERSION,
        worker_id: WORKER_ID,
        pid: UNSIGNALLABLE_PID,
        python_version: "3.11.0-fuzz".into(),
        commands: Vec::new(),
        capacity: 1,
    };
    let stdout = ChunkedStream {
        data: case.stream.clone(),
        at: 0,
        next_chunk: Box::new(chunk_sizes(case.chunk_seed)),
        stall: false,
    };
    let frames = FramedRead::new(stdout, MessageCodec::new(case.max_frame_bytes));
    // The process has "exited" already, so the end of the stream is reported
    // at once instead of after the exit grace.
    let (_exit_sender, exit) = watch::channel(Some(WorkerExit::code(0)));
    let connection = Arc::new(ProcessConnection::start(
        handshake,
        frames,
        tokio::io::sink(),
        case.max_frame_bytes,
        exit,
        Arc::new(SpawnedProcess::never_signalled()),
    ));
    let work = async {
        let mut calls: Vec<_> = (1..=case.pending)
            .map(|id| {
                let connection = Arc::clone(&connection);
                Box::pin(async move { connection.call(request(id)).await })
            })
            .collect();
        // Register every pending request before the reader task first runs.
        for call in &mut calls {
            let _ = futures::poll!(call.as_mut());
        }
        let mut kinds: Vec<&'static str> = join_all(calls).await.iter().map(call_kind).collect();
        let probe = connection.call(request(PROBE_ID)).await;
        kinds.push(call_kind(&probe));
        ReaderVerdict { calls: kinds }
    };
    tokio::time::timeout(CASE_BOUND, work).await.ok()
}

/// The outcome of one case, as compared against a kept vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseVerdict {
    /// What the codec said.
    pub codec: CodecVerdict,
    /// What the connection said; `None` is a hang.
    pub reader: Option<ReaderVerdict>,
}

impl CaseVerdict {
    /// `<codec end>/<messages>/<reader summary or "hang">`, as kept in the vectors file.
    pub fn expectation(&self) -> String {
        format!(
            "{}/{}/{}",
            self.codec.end,
            self.codec.messages,
            self.reader
                .as_ref()
                .map_or_else(|| "hang".to_owned(), ReaderVerdict::summary)
        )
    }
}

/// Runs one case through the codec and the connection on `runtime` (a
/// current-thread runtime with time enabled).
pub fn run_case(case: &Case, runtime: &tokio::runtime::Runtime) -> CaseVerdict {
    let codec = decode_with_codec(case);
    let reader = runtime.block_on(read_with_connection(case));
    CaseVerdict { codec, reader }
}

/// A current-thread runtime suitable for [`run_case`].
pub fn case_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
}

/// The kept vectors: `(case, expectation)` per non-comment line of `text`.
pub fn parse_vectors(text: &str) -> Result<Vec<(Case, String)>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|(number, line)| {
            let case = Case::from_fields(line).map_err(|e| format!("line {}: {e}", number + 1))?;
            let expect = line
                .split_whitespace()
                .find_map(|field| field.strip_prefix("expect="))
                .ok_or_else(|| format!("line {}: no expect= field", number + 1))?;
            Ok((case, expect.to_owned()))
        })
        .collect()
}

/// Whether every kind in `verdict` is one a hostile stream may produce (a
/// reply, or a typed error that says the worker is at fault).
pub fn is_typed(verdict: &CaseVerdict) -> bool {
    let codec_ok = matches!(
        verdict.codec.end,
        "eof"
            | "frame_too_large"
            | "zero_length"
            | "truncated"
            | "invalid_utf8"
            | "invalid_json"
            | "invalid_message"
    );
    let reader_ok = verdict.reader.as_ref().is_some_and(|reader| {
        reader.calls.iter().all(|kind| {
            matches!(
                *kind,
                "ok" | "remote_error" | "worker_exited" | "protocol_violation"
            )
        })
    });
    codec_ok && reader_ok
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    const VECTORS: &str = include_str!("../../../tests/golden/fuzz_vectors.txt");

    #[test]
    fn kept_fuzz_vectors_replay_with_the_same_typed_outcome() {
        let runtime = case_runtime().unwrap();
        let vectors = parse_vectors(VECTORS).unwrap();
        assert!(vectors.len() >= 10, "only {} vectors", vectors.len());
        for (case, expect) in vectors {
            let verdict = run_case(&case, &runtime);
            assert!(is_typed(&verdict), "seed {:016x}: {verdict:?}", case.seed);
            assert_eq!(verdict.expectation(), expect, "seed {:016x}", case.seed);
        }
    }

    #[test]
    fn generation_is_deterministic_by_seed() {
        for index in 0..200 {
            let seed = case_seed(42, index);
            assert_eq!(Case::generate(seed), Case::generate(seed));
            let case = Case::generate(seed);
            assert_eq!(Case::from_fields(&case.to_fields()).unwrap(), case);
        }
    }

    #[test]
    fn a_clean_reply_stream_answers_every_pending_call() {
        let mut stream = Vec::new();
        for id in 1..=2 {
            push_body(
                &mut stream,
                format!(r#"{{"type":"reply","id":{id},"status":"ok","result":{id}}}"#).as_bytes(),
            );
        }
        let case = Case {
            seed: 0,
            max_frame_bytes: 1024,
            pending: 2,
            chunk_seed: 9,
            frames: 2,
            stream,
        };
        let verdict = run_case(&case, &case_runtime().unwrap());
        assert_eq!(verdict.expectation(), "eof/2/ok,ok,worker_exited");
    }
}
