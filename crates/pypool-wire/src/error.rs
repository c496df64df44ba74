//! What can go wrong with frames and message bodies.

use std::sync::Arc;

/// A framing, encoding or I/O failure on the frame stream.
///
/// # The stream is dead after a decode error
///
/// Every variant except [`WireError::Io`] is produced by this crate itself.
/// When one of them comes out of *decoding* ([`MessageCodec`]'s `Decoder`
/// impl or [`decode_body`]), the byte stream has lost its framing: the reader
/// cannot know where the next frame starts, so the connection must be closed
/// (the host kills the worker). [`MessageCodec`] stays poisoned and returns the
/// same error from every later `decode` call.
///
/// When [`WireError::FrameTooLarge`] or [`WireError::InvalidMessage`] comes
/// out of *encoding*, nothing was written: the message could not be sent, but
/// the stream itself is intact.
///
/// [`WireError::Io`] comes from the caller's transport (a broken pipe, a
/// closed descriptor); what it means for the connection is up to the caller.
///
/// The type is cheap to clone (the I/O error is shared), so one failure can be
/// reported to every caller waiting on the connection.
///
/// [`MessageCodec`]: crate::MessageCodec
/// [`decode_body`]: crate::decode_body
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A length prefix (decode) or an encoded body (encode) exceeds the configured maximum.
    #[error(
        "frame of {length} bytes exceeds the maximum of {max} bytes (raise max_frame_bytes on both host and worker)"
    )]
    FrameTooLarge {
        /// The announced (decode) or encoded (encode) body size in bytes.
        length: usize,
        /// The configured maximum body size in bytes.
        max: usize,
    },
    /// A length prefix announced an empty body.
    #[error(
        "a frame announced an empty body, which is not a message (the peer is not speaking the pypool protocol)"
    )]
    ZeroLength,
    /// The stream ended inside a length prefix or a body.
    #[error(
        "the stream ended inside a frame after {got} of {expected} bytes (the peer closed the pipe or died mid-write)"
    )]
    Truncated {
        /// Bytes of the unfinished frame (prefix included) the stream should have carried.
        expected: usize,
        /// Bytes of it the stream did carry.
        got: usize,
    },
    /// A frame body is not valid UTF-8.
    #[error(
        "frame body is not valid UTF-8 (first bad byte at offset {valid_up_to}); the peer is not speaking the pypool protocol"
    )]
    InvalidUtf8 {
        /// Length of the longest valid UTF-8 prefix of the body.
        valid_up_to: usize,
    },
    /// A frame body is UTF-8 but not valid JSON.
    #[error("frame body is not valid JSON: {detail}")]
    InvalidJson {
        /// What the JSON parser said.
        detail: String,
    },
    /// A frame body is valid JSON but not a valid message (decode), or a
    /// message cannot be serialised (encode).
    #[error("frame body is not a valid pypool message: {detail}")]
    InvalidMessage {
        /// What is wrong with it: not an object, an unknown or missing `type`,
        /// a missing field, a field of the wrong type.
        detail: String,
    },
    /// The transport failed (what the operating system said).
    #[error("I/O error on the frame stream: {0}")]
    Io(#[source] Arc<std::io::Error>),
}

impl WireError {
    /// The error class as named in `tests/golden/vectors.json` and by the
    /// Python worker: `frame_too_large`, `zero_length`, `truncated`,
    /// `invalid_utf8`, `invalid_json`, `invalid_message` or `io`.
    pub fn class(&self) -> &'static str {
        match self {
            Self::FrameTooLarge { .. } => "frame_too_large",
            Self::ZeroLength => "zero_length",
            Self::Truncated { .. } => "truncated",
            Self::InvalidUtf8 { .. } => "invalid_utf8",
            Self::InvalidJson { .. } => "invalid_json",
            Self::InvalidMessage { .. } => "invalid_message",
            Self::Io(_) => "io",
        }
    }
}

impl From<std::io::Error> for WireError {
    fn from(error: std::io::Error) -> Self {
        Self::Io(Arc::new(error))
    }
}
