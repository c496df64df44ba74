//! One worker as the core keeps it: its state machine (which also counts
//! the requests it holds against its capacity) and its connection handle.

use std::collections::HashSet;

use pypool_breaker::Permit;
use pypool_lifecycle::{Occupancy, State, WorkerLifecycle};

use super::WorkerHandle;
use crate::job::ProgramKey;

/// A worker slot in the books. A slot exists from the moment a spawn is
/// decided until the worker is removed; its handle exists only after the
/// handshake.
#[derive(Debug)]
pub(super) struct Worker<H> {
    pub(super) lifecycle: WorkerLifecycle,
    pub(super) handle: Option<H>,
    /// Spawned above `size` to absorb load; retired when idle.
    pub(super) overflow: bool,
    /// Lent to the health checker (not in the idle list, not busy with a request).
    pub(super) health_checking: bool,
    /// The spawn breaker's permit for this worker's start, settled when the
    /// worker first proves itself or dies.
    pub(super) spawn_permit: Option<Permit>,
    /// The version of the pool's settings this worker has applied (0: none).
    pub(super) settings_version: u64,
    /// Programs this worker is known to hold in its cache.
    pub(super) programs: HashSet<ProgramKey>,
}

impl<H: WorkerHandle> Worker<H> {
    pub(super) fn starting(lifecycle: WorkerLifecycle, overflow: bool) -> Self {
        Self {
            lifecycle,
            handle: None,
            overflow,
            health_checking: false,
            spawn_permit: None,
            settings_version: 0,
            programs: HashSet::new(),
        }
    }

    /// Whether the worker stops on its own (it said `draining`).
    pub(super) fn is_draining(&self) -> bool {
        self.handle.as_ref().is_some_and(WorkerHandle::is_draining)
    }

    /// Requests lent this worker and not yet settled (its state machine's count).
    pub(super) fn in_flight(&self) -> usize {
        usize::try_from(self.lifecycle.in_flight()).unwrap_or(usize::MAX)
    }

    /// How many requests the worker holds at once (its handshake's, at least 1).
    pub(super) fn capacity(&self) -> usize {
        usize::try_from(self.lifecycle.capacity()).unwrap_or(usize::MAX)
    }

    /// Whether the worker is partially busy and may take one more request
    /// now: requests in flight, fewer than its capacity, not marked to stop.
    pub(super) fn has_spare_room(&self) -> bool {
        self.lifecycle.occupancy() == Occupancy::Partial
            && !self.health_checking
            && self.lifecycle.state() == State::Busy
            && !self.is_draining()
    }
}
