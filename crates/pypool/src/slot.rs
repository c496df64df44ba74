//! One worker as the pool keeps it: its state machine, its connection, and
//! the task that watches it exit.

use std::sync::Arc;

use pypool_breaker::Permit;
use pypool_lifecycle::WorkerLifecycle;
use pypool_seam::WorkerConnection;
use tokio::task::JoinHandle;

/// A worker slot in the pool's table. A slot exists from the moment a spawn
/// is decided until the worker is removed; its connection exists only after
/// the handshake.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) lifecycle: WorkerLifecycle,
    pub(crate) connection: Option<Arc<dyn WorkerConnection>>,
    /// Spawned above `size` to absorb load; retired when idle.
    pub(crate) overflow: bool,
    /// Lent to the health checker (not in the idle list, not busy with a request).
    pub(crate) health_checking: bool,
    /// Watches the process exit; aborted with the slot so that it never keeps
    /// a removed worker's connection (and so its process) alive.
    pub(crate) exit_watch: Option<JoinHandle<()>>,
    /// The spawn breaker's permit for this worker's start, settled when the
    /// worker first proves itself or dies.
    pub(crate) spawn_permit: Option<Permit>,
    /// The version of the pool's settings this worker has applied (0: none).
    pub(crate) settings_version: u64,
    /// Programs (namespace, id, version) this worker is known to hold in its cache.
    pub(crate) programs: std::collections::HashSet<crate::job::ProgramKey>,
    /// Requests lent this worker and not yet settled (at most `capacity`).
    pub(crate) in_flight: usize,
    /// How many requests the worker holds at once (its handshake's, at least 1).
    pub(crate) capacity: usize,
}

impl Slot {
    pub(crate) fn starting(lifecycle: WorkerLifecycle, overflow: bool) -> Self {
        Self {
            lifecycle,
            connection: None,
            overflow,
            health_checking: false,
            exit_watch: None,
            spawn_permit: None,
            settings_version: 0,
            programs: std::collections::HashSet::new(),
            in_flight: 0,
            capacity: 1,
        }
    }
}

impl Slot {
    /// Whether the worker is partially busy and may take one more request
    /// now: requests in flight, fewer than its capacity, not marked to stop.
    pub(crate) fn has_spare_room(&self) -> bool {
        self.in_flight > 0
            && self.in_flight < self.capacity
            && !self.health_checking
            && self.lifecycle.state() == pypool_lifecycle::State::Busy
            && self
                .connection
                .as_ref()
                .is_some_and(|connection| !connection.is_draining())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(watch) = self.exit_watch.take() {
            watch.abort();
        }
    }
}
