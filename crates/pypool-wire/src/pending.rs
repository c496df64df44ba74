//! [`PendingTable`]: matching replies to the requests they answer.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use crate::RequestId;

/// The requests sent on one connection and still waiting for their reply,
/// each with whatever the caller needs to deliver it (typically a oneshot
/// sender).
///
/// It is a pure table: no I/O, no locking, no timing. A reply whose id is not
/// in the table ([`UnknownReplyId`]) is a protocol violation by the peer.
///
/// ```
/// use pypool_wire::PendingTable;
///
/// let mut pending = PendingTable::new();
/// pending.insert(1, "caller one")?;
/// assert_eq!(pending.take(1)?, "caller one");
/// assert!(pending.take(1).is_err()); // already answered
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct PendingTable<T> {
    waiting: HashMap<RequestId, T>,
}

/// A request id was inserted while a request with the same id is still pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "request id {id} is already waiting for a reply on this connection; use a fresh id per request"
)]
pub struct DuplicateRequestId {
    /// The id used twice.
    pub id: RequestId,
}

/// A reply arrived for an id that is not pending: never sent, or already answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "reply for request id {id}, which is not pending (never sent or already answered); the peer broke the protocol"
)]
pub struct UnknownReplyId {
    /// The id the reply carried.
    pub id: RequestId,
}

impl<T> PendingTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self {
            waiting: HashMap::new(),
        }
    }

    /// Records that request `id` is waiting, with `waiter` to deliver its reply
    /// to. Fails, leaving the table unchanged, if `id` is already pending.
    pub fn insert(&mut self, id: RequestId, waiter: T) -> Result<(), DuplicateRequestId> {
        match self.waiting.entry(id) {
            Entry::Occupied(_) => Err(DuplicateRequestId { id }),
            Entry::Vacant(slot) => {
                slot.insert(waiter);
                Ok(())
            }
        }
    }

    /// Removes and returns the waiter of request `id`, which a reply answers.
    pub fn take(&mut self, id: RequestId) -> Result<T, UnknownReplyId> {
        self.waiting.remove(&id).ok_or(UnknownReplyId { id })
    }

    /// The waiter of request `id`, left in the table (a streaming reply's
    /// chunks go to it before its final reply takes it).
    pub fn get_mut(&mut self, id: RequestId) -> Option<&mut T> {
        self.waiting.get_mut(&id)
    }

    /// Whether request `id` is waiting for its reply.
    pub fn contains(&self, id: RequestId) -> bool {
        self.waiting.contains_key(&id)
    }

    /// How many requests are waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether no request is waiting.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Empties the table, yielding every waiting request in no particular
    /// order; used when the peer dies, to fail every pending call.
    pub fn drain(&mut self) -> impl Iterator<Item = (RequestId, T)> + '_ {
        self.waiting.drain()
    }
}

impl<T> Default for PendingTable<T> {
    fn default() -> Self {
        Self::new()
    }
}
