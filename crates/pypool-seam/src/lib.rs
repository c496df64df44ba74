//! The seam between the pool and its workers.
//!
//! The pool facade (`pypool`) drives workers only through the two traits here:
//! [`WorkerSpawner`] starts a worker and waits for its handshake, and
//! [`WorkerConnection`] sends it requests and watches it exit. Two
//! implementations sit behind the seam: the real Python process
//! (`pypool-process`) and the scriptable in-process mock (`pypool-mock`), which
//! is what lets the whole test suite run without Python.
//!
//! This crate must not know how a worker is implemented: no processes, no
//! bytes, no frames, no tokio. It knows the message *types* of `pypool-wire`
//! (requests, outcomes, handshakes) but never their encoding.

mod errors;
mod exit;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use errors::{CallError, SpawnError};
pub use exit::WorkerExit;
pub use pypool_wire::{
    Cancel, CommandInfo, Concurrency, Handshake, MAX_NESTING_DEPTH, Outcome, PROTOCOL_VERSION,
    RemoteError, RemoteErrorKind, Request, RequestId, nesting_depth,
};

/// The pool's name for a worker; unique among a pool's workers. A start that
/// failed (no handshake) may be retried under the same id.
pub type WorkerId = u64;

/// What the pool asks of one spawn. How to start a worker (interpreter,
/// handler modules, environment) is the spawner's own configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnRequest {
    /// The id the new worker must announce in its handshake.
    pub worker_id: WorkerId,
    /// How long the worker may take from spawn to a valid handshake.
    pub handshake_timeout: Duration,
}

/// Starts workers. Implementations must be cheap to share across tasks.
#[async_trait]
pub trait WorkerSpawner: Send + Sync + fmt::Debug + 'static {
    /// Starts one worker and waits for its handshake.
    ///
    /// Returns only once the worker has sent a valid handshake for
    /// `request.worker_id` in the host's protocol version, or an error saying
    /// why not (including, where the worker died, what it printed on stderr).
    /// A worker that is not handed back is killed before this returns.
    async fn spawn(&self, request: SpawnRequest) -> Result<Arc<dyn WorkerConnection>, SpawnError>;
}

/// A live connection to one worker that has completed its handshake.
///
/// Dropping the last handle kills the worker (for processes: its whole
/// process group).
#[async_trait]
pub trait WorkerConnection: Send + Sync + fmt::Debug {
    /// The handshake the worker sent.
    fn handshake(&self) -> &Handshake;

    /// The worker's id (same as `handshake().worker_id`).
    fn worker_id(&self) -> WorkerId {
        self.handshake().worker_id
    }

    /// Sends `request` and waits for its reply.
    ///
    /// Several calls may be in flight at once; replies are matched by id.
    /// Dropping the returned future abandons the request: its late reply is
    /// discarded, never delivered to another call. A deadline is the caller's
    /// business (wrap the future in a timeout).
    async fn call(&self, request: Request) -> Result<Outcome, CallError>;

    /// How many requests have been sent and not yet answered, including
    /// abandoned ones whose reply has not arrived.
    fn in_flight(&self) -> usize;
    /// How many requests the worker holds at once (its handshake's
    /// `capacity`, at least 1).
    fn capacity(&self) -> usize {
        usize::try_from(self.handshake().capacity.max(1)).unwrap_or(usize::MAX)
    }
    /// Asks the worker to stop working on `request_id` (a `cancel` frame).
    /// The pending `call` still ends exactly once: with the worker's reply
    /// (its result if it finished first, or a `cancelled` error), or with
    /// the connection's death. A cancel for an id not in flight is ignored.
    fn cancel(&self, request_id: RequestId);

    /// Resolves when the worker has exited (immediately if it already has).
    async fn exited(&self) -> WorkerExit;

    /// The exit, if the worker has already exited.
    fn try_exit(&self) -> Option<WorkerExit>;

    /// Asks the worker to stop after its current request (SIGTERM for a process).
    fn terminate(&self);

    /// Stops the worker at once (for a process: SIGKILL to the process the
    /// host spawned, its group and its descendants).
    fn kill(&self);

    /// The worker's resident memory in bytes, if the platform can tell.
    fn resident_memory_bytes(&self) -> Option<u64>;

    /// The operating-system pid of the process the host itself spawned for
    /// this worker (the one it signals), if there is one. Not
    /// `handshake().pid`, which is only what the worker says about itself.
    fn process_id(&self) -> Option<u32> {
        None
    }

    /// Whether the worker said it is stopping (a process received SIGTERM):
    /// it takes no more requests (a call fails at once with
    /// [`CallError::NotSent`], which is safe to retry elsewhere) and will exit
    /// on its own. Default: never.
    fn is_draining(&self) -> bool {
        false
    }
}
