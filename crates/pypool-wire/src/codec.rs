//! [`MessageCodec`]: frames on a byte stream to and from [`Message`]s.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

use crate::body::{decode_body, encode_body};
use crate::{Message, WireError};

/// The default maximum body size in bytes (16 MiB), the same on host and worker.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Size of the big-endian `u32` length prefix in front of every body.
const PREFIX_BYTES: usize = 4;

/// The largest body a 4-byte length prefix can describe.
const MAX_PREFIX_VALUE: usize = u32::MAX as usize;

/// A `tokio-util` codec turning frames (4-byte big-endian length + UTF-8 JSON
/// body) into [`Message`]s and back. Use it with `FramedRead` / `FramedWrite`.
///
/// The framing itself is tokio-util's [`LengthDelimitedCodec`]; this codec
/// checks each length prefix before the body is read, so an oversized prefix
/// is a typed [`WireError::FrameTooLarge`] (and nothing is allocated for it)
/// and a zero prefix is a [`WireError::ZeroLength`].
///
/// # Poisoning
///
/// After a decode error the stream has lost its framing, so the codec is
/// poisoned: every later `decode` / `decode_eof` call returns the same error.
/// Encode errors do not poison it (nothing was written).
///
/// ```
/// use bytes::BytesMut;
/// use pypool_wire::{Message, MessageCodec, Request};
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = MessageCodec::default();
/// let request = Message::Request(Request {
///     id: 1,
///     command: "ping".into(),
///     args: Default::default(),
/// });
/// let mut buffer = BytesMut::new();
/// codec.encode(&request, &mut buffer)?;
/// assert_eq!(&buffer[..4], &[0, 0, 0, 52]);
/// assert_eq!(codec.decode(&mut buffer)?, Some(request));
/// # Ok::<(), pypool_wire::WireError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MessageCodec {
    frames: LengthDelimitedCodec,
    poisoned: Option<WireError>,
}

impl MessageCodec {
    /// A codec refusing bodies larger than `max_frame_bytes` (clamped to
    /// `u32::MAX`, the most a length prefix can describe).
    pub fn new(max_frame_bytes: usize) -> Self {
        let frames = LengthDelimitedCodec::builder()
            .big_endian()
            .length_field_type::<u32>()
            .max_frame_length(max_frame_bytes.min(MAX_PREFIX_VALUE))
            .new_codec();
        Self {
            frames,
            poisoned: None,
        }
    }

    /// The largest body, in bytes, this codec accepts or produces.
    pub fn max_frame_bytes(&self) -> usize {
        self.frames.max_frame_length()
    }

    /// The error that poisoned this codec, if a decode has failed.
    pub fn poisoned(&self) -> Option<&WireError> {
        self.poisoned.as_ref()
    }

    /// Checks a body length announced by a prefix, before the body is read.
    fn check_announced_length(&self, length: usize) -> Result<(), WireError> {
        let max = self.max_frame_bytes();
        if length == 0 {
            Err(WireError::ZeroLength)
        } else if length > max {
            Err(WireError::FrameTooLarge { length, max })
        } else {
            Ok(())
        }
    }

    /// Decodes one frame if `src` holds a whole one; never poisons.
    fn decode_frame(&mut self, src: &mut BytesMut) -> Result<Option<Message>, WireError> {
        let Some(body_length) = announced_length(src) else {
            return Ok(None);
        };
        self.check_announced_length(body_length)?;
        let frame_length = PREFIX_BYTES + body_length;
        if src.len() < frame_length {
            src.reserve(frame_length - src.len());
            return Ok(None);
        }
        // The whole frame is buffered, so the length-delimited codec reads its
        // prefix and body in this one call and never holds a half-read frame
        // (which would make the next `announced_length` read body bytes).
        match self.frames.decode(src)? {
            Some(body) => decode_body(&body).map(Some),
            None => Err(WireError::Io(std::sync::Arc::new(std::io::Error::other(
                "internal error in pypool-wire: the length-delimited codec did not return a fully buffered frame",
            )))),
        }
    }

    /// Records `result`'s error, if any, so every later decode returns it.
    fn poison_on_error<T>(&mut self, result: Result<T, WireError>) -> Result<T, WireError> {
        if let Err(error) = &result {
            self.poisoned = Some(error.clone());
        }
        result
    }
}

impl Default for MessageCodec {
    /// A codec with the [`DEFAULT_MAX_FRAME_BYTES`] limit.
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_BYTES)
    }
}

/// The body length announced by the prefix at the start of `src`, once all
/// four prefix bytes are there.
fn announced_length(src: &[u8]) -> Option<usize> {
    let prefix: [u8; PREFIX_BYTES] = src.get(..PREFIX_BYTES)?.try_into().ok()?;
    usize::try_from(u32::from_be_bytes(prefix)).ok()
}

impl Decoder for MessageCodec {
    type Item = Message;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, WireError> {
        if let Some(error) = &self.poisoned {
            return Err(error.clone());
        }
        let result = self.decode_frame(src);
        self.poison_on_error(result)
    }

    /// Like `decode`, but bytes left over at the end of the stream (part of a
    /// prefix or of a body) are a [`WireError::Truncated`].
    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, WireError> {
        if let Some(message) = self.decode(buf)? {
            return Ok(Some(message));
        }
        if buf.is_empty() {
            return Ok(None);
        }
        let expected = announced_length(buf).map_or(PREFIX_BYTES, |length| PREFIX_BYTES + length);
        let truncated = Err(WireError::Truncated {
            expected,
            got: buf.len(),
        });
        self.poison_on_error(truncated)
    }
}

impl Encoder<&Message> for MessageCodec {
    type Error = WireError;

    /// Appends one whole frame to `dst`, or nothing at all on error.
    fn encode(&mut self, message: &Message, dst: &mut BytesMut) -> Result<(), WireError> {
        let body = encode_body(message)?;
        let max = self.max_frame_bytes();
        if body.len() > max {
            return Err(WireError::FrameTooLarge {
                length: body.len(),
                max,
            });
        }
        self.frames.encode(Bytes::from(body), dst)?;
        Ok(())
    }
}

impl Encoder<Message> for MessageCodec {
    type Error = WireError;

    /// Appends one whole frame to `dst`, or nothing at all on error.
    fn encode(&mut self, message: Message, dst: &mut BytesMut) -> Result<(), WireError> {
        Encoder::<&Message>::encode(self, &message, dst)
    }
}

/// Encodes `message` as one complete frame (length prefix + body), for callers
/// outside tokio. Fails with [`WireError::FrameTooLarge`] when the body would
/// exceed `max_frame_bytes`.
///
/// ```
/// use pypool_wire::{decode_body, encode_frame, Message, StartupError, DEFAULT_MAX_FRAME_BYTES};
///
/// let message = Message::StartupError(StartupError {
///     kind: "internal".into(),
///     message: "boom".into(),
///     traceback: None,
/// });
/// let frame = encode_frame(&message, DEFAULT_MAX_FRAME_BYTES)?;
/// assert_eq!(decode_body(&frame[4..])?, message);
/// # Ok::<(), pypool_wire::WireError>(())
/// ```
pub fn encode_frame(message: &Message, max_frame_bytes: usize) -> Result<Vec<u8>, WireError> {
    let mut frame = BytesMut::new();
    MessageCodec::new(max_frame_bytes).encode(message, &mut frame)?;
    Ok(frame.into())
}
