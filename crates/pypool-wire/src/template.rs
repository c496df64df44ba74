//! The template's control protocol (fork start mode; `docs/PROTOCOL.md`,
//! "Template control").
//!
//! A *template* is a Python process that imported the handler modules and
//! preloads once and forks workers when the host asks. The host sends it
//! [`TemplateCommand`]s (one per packet of a `SOCK_SEQPACKET` socket, each a
//! frame; a `fork` carries the new worker's three descriptors as
//! `SCM_RIGHTS`), and reads [`TemplateEvent`]s from its stdout, framed like
//! every other message.

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

use crate::{StartupError, WireError};

/// Host → template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TemplateCommand {
    /// Fork a worker with this id. The packet carries three descriptors: the
    /// worker's stdin (read end), stdout (write end) and stderr (write end).
    Fork {
        /// The id the forked worker announces in its handshake.
        worker_id: u64,
    },
    /// Fork a *standby*: a worker forked and set up ahead of need (same three
    /// descriptors as `fork`), which waits before its handshake until the host
    /// adopts it by writing its real worker id to its stdin: 8 bytes,
    /// big-endian (the end of stdin first: it exits quietly). `worker_id` is
    /// the host's name for the process in the template's events (`forked`,
    /// `exited`) and in `release`; the worker announces the adopted id.
    Prefork {
        /// The host's name for the standby process.
        worker_id: u64,
    },
    /// The host has recorded the end of the worker forked under this id:
    /// the template may now reap it (until then the exited process stays a
    /// zombie, so its pid and process group cannot be reused).
    Release {
        /// The worker's id.
        worker_id: u64,
    },
}

/// Template → host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TemplateEvent {
    /// The template imported everything and waits for `fork` commands.
    TemplateReady {
        /// The template's pid (checked by the host to lie in the tree it spawned).
        pid: u32,
        /// How many threads the template had when it checked (the OS's count,
        /// `/proc/self/task`). More than 1: forking is unsafe.
        threads: u32,
    },
    /// The preloads or handler modules failed to import (same shape as the
    /// worker's `startup_error`).
    StartupError(StartupError),
    /// A worker was forked; `pid` is the template's direct child (the worker's
    /// guardian), checked by the host through `/proc`.
    Forked {
        /// The worker's id.
        worker_id: u64,
        /// The forked child's pid.
        pid: u32,
    },
    /// A `fork` failed in the template (the operating system refused).
    ForkFailed {
        /// The worker's id.
        worker_id: u64,
        /// What went wrong.
        message: String,
    },
    /// A forked child exited (not yet reaped: the template waits for `release`).
    Exited {
        /// The worker's id.
        worker_id: u64,
        /// Its exit code, if it exited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<i32>,
        /// The signal that killed it, if one did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
    },
}

/// Frames [`TemplateEvent`]s (decode) and [`TemplateCommand`]s (encode):
/// the same 4-byte big-endian length and JSON body as [`crate::MessageCodec`].
#[derive(Debug)]
pub struct TemplateCodec {
    frames: LengthDelimitedCodec,
}

impl TemplateCodec {
    /// A codec accepting bodies up to `max_frame_bytes`.
    pub fn new(max_frame_bytes: usize) -> Self {
        Self {
            frames: LengthDelimitedCodec::builder()
                .big_endian()
                .length_field_type::<u32>()
                .max_frame_length(max_frame_bytes.min(u32::MAX as usize))
                .new_codec(),
        }
    }
}

impl Decoder for TemplateCodec {
    type Item = TemplateEvent;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<TemplateEvent>, WireError> {
        let Some(body) = self
            .frames
            .decode(src)
            .map_err(|error| WireError::InvalidMessage {
                detail: error.to_string(),
            })?
        else {
            return Ok(None);
        };
        if body.is_empty() {
            return Err(WireError::ZeroLength);
        }
        serde_json::from_slice(&body).map_err(|error| WireError::InvalidMessage {
            detail: format!("not a template event: {error}"),
        })
    }
}

impl Encoder<&TemplateCommand> for TemplateCodec {
    type Error = WireError;

    fn encode(&mut self, command: &TemplateCommand, dst: &mut BytesMut) -> Result<(), WireError> {
        let body = serde_json::to_vec(command).map_err(|error| WireError::InvalidMessage {
            detail: error.to_string(),
        })?;
        self.frames
            .encode(Bytes::from(body), dst)
            .map_err(|error| WireError::InvalidMessage {
                detail: error.to_string(),
            })
    }
}

/// One [`TemplateCommand`] as a frame (one packet of the control socket).
pub fn encode_template_command(command: &TemplateCommand) -> Result<Vec<u8>, WireError> {
    let mut frame = BytesMut::new();
    TemplateCodec::new(crate::DEFAULT_MAX_FRAME_BYTES).encode(command, &mut frame)?;
    Ok(frame.into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn commands_are_framed_json_tagged_by_type() {
        let frame = encode_template_command(&TemplateCommand::Fork { worker_id: 7 }).unwrap();
        assert_eq!(&frame[..4], &[0, 0, 0, 29]);
        assert_eq!(&frame[4..], br#"{"type":"fork","worker_id":7}"#);
        let frame = encode_template_command(&TemplateCommand::Prefork { worker_id: 9 }).unwrap();
        assert_eq!(&frame[4..], br#"{"type":"prefork","worker_id":9}"#);
    }

    #[test]
    fn events_decode_and_garbage_is_an_error() {
        let mut codec = TemplateCodec::new(1024);
        let mut buf = BytesMut::new();
        for body in [
            &br#"{"type":"template_ready","pid":4,"threads":1}"#[..],
            br#"{"type":"exited","worker_id":3,"signal":9}"#,
            br#"{"type":"startup_error","kind":"handler_import","message":"boom"}"#,
        ] {
            buf.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
            buf.extend_from_slice(body);
        }
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(TemplateEvent::TemplateReady { pid: 4, threads: 1 })
        );
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(TemplateEvent::Exited {
                worker_id: 3,
                code: None,
                signal: Some(9)
            })
        );
        assert!(matches!(
            codec.decode(&mut buf).unwrap(),
            Some(TemplateEvent::StartupError(StartupError { kind, .. })) if kind == "handler_import"
        ));
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(&[0, 0, 0, 3]);
        buf.extend_from_slice(b"{x}");
        assert!(codec.decode(&mut buf).is_err());
    }
}
