//! Checking that a worker speaks this crate's protocol version.

use crate::{Handshake, PROTOCOL_VERSION};

/// A worker announced a protocol version other than [`PROTOCOL_VERSION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the worker speaks protocol version {worker}, this host speaks {host}; install matching versions of pypool and pypool_worker"
)]
pub struct ProtocolMismatch {
    /// The version in the worker's handshake.
    pub worker: u32,
    /// [`PROTOCOL_VERSION`].
    pub host: u32,
}

impl Handshake {
    /// Succeeds when the worker speaks [`PROTOCOL_VERSION`].
    ///
    /// ```
    /// use pypool_wire::{Handshake, PROTOCOL_VERSION};
    ///
    /// let mut handshake = Handshake {
    ///     protocol: PROTOCOL_VERSION,
    ///     worker_id: 0,
    ///     pid: 1,
    ///     python_version: "3.12.1".into(),
    ///     commands: Vec::new(),
    ///     capacity: 1,
    /// };
    /// assert!(handshake.check_protocol().is_ok());
    /// handshake.protocol += 1;
    /// assert_eq!(handshake.check_protocol().unwrap_err().worker, PROTOCOL_VERSION + 1);
    /// ```
    pub fn check_protocol(&self) -> Result<(), ProtocolMismatch> {
        if self.protocol == PROTOCOL_VERSION {
            Ok(())
        } else {
            Err(ProtocolMismatch {
                worker: self.protocol,
                host: PROTOCOL_VERSION,
            })
        }
    }
}
