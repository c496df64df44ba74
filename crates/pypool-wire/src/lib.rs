//! pypool's wire protocol: length-prefixed JSON frames between the Rust host
//! and its Python workers (`docs/PROTOCOL.md`).
//!
//! A frame is a 4-byte big-endian body length followed by that many bytes of
//! UTF-8 JSON holding one object tagged by its `"type"`. This crate provides:
//!
//! * the message types ([`Message`] and its parts), with their serde layout;
//! * [`MessageCodec`], a `tokio-util` codec (tokio-util's
//!   `LengthDelimitedCodec` underneath) for `FramedRead` / `FramedWrite`, and
//!   the synchronous [`encode_frame`] / [`decode_body`] for code outside tokio;
//! * [`WireError`], whose [`class`](WireError::class) names match the golden
//!   vectors in `tests/golden/` that the Python worker is tested against too;
//! * [`PendingTable`], which matches replies to the requests they answer.
//!
//! After any decode error the stream is dead: the reader cannot know where the
//! next frame starts, and the codec stays poisoned.
//!
//! # What this crate must not know
//!
//! It is the **only** crate that knows bytes and frames, and it knows nothing
//! else: no processes, pipes or signals (that is `pypool-process`), no tokio
//! runtime or tasks (the codec only works on buffers handed to it), and no
//! pools, workers' lifecycles or retry policies.
//!
//! ```
//! use pypool_wire::{decode_body, encode_frame, Message, Outcome, Reply};
//!
//! let reply = Message::Reply(Reply {
//!     id: 41,
//!     outcome: Outcome::Ok { result: serde_json::json!({"pong": true}) },
//!     usage: None,
//! });
//! let frame = encode_frame(&reply, pypool_wire::DEFAULT_MAX_FRAME_BYTES)?;
//! assert_eq!(&frame[4..], br#"{"type":"reply","id":41,"status":"ok","result":{"pong":true}}"#);
//! assert_eq!(decode_body(&frame[4..])?, reply);
//! # Ok::<(), pypool_wire::WireError>(())
//! ```

mod body;
mod codec;
mod error;
mod messages;
mod nesting;
mod pending;
mod protocol;
mod template;

pub use body::{decode_body, json_type};
pub use codec::{DEFAULT_MAX_FRAME_BYTES, MessageCodec, encode_frame};
pub use error::WireError;
pub use messages::{
    Cancel, Chunk, CommandInfo, Concurrency, Credit, Draining, Handshake, Message, NOT_STARTED,
    Outcome, PROTOCOL_VERSION, RemoteError, RemoteErrorKind, Reply, Request, RequestId,
    StartupError, StreamRequest,
};
pub use nesting::{MAX_NESTING_DEPTH, nesting_depth};
pub use pending::{DuplicateRequestId, PendingTable, UnknownReplyId};
pub use protocol::ProtocolMismatch;
pub use template::{TemplateCodec, TemplateCommand, TemplateEvent, encode_template_command};
