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
//!
//! Streaming replies ([`WorkerConnection::call_stream`]) reach the caller as a
//! [`ReplyStream`]: a bounded buffer (plain `std`, a `futures` `Stream`)
//! that both implementations fill through a [`StreamSender`], so the mock
//! and the real process share its semantics (window, credit, cancel on drop).

mod errors;
mod exit;
mod stream;

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use errors::{CallError, SpawnError};
pub use exit::WorkerExit;
pub use pypool_wire::{
    Cancel, CommandInfo, Concurrency, Handshake, MAX_NESTING_DEPTH, Outcome, PROTOCOL_VERSION,
    RemoteError, RemoteErrorKind, Request, RequestId, nesting_depth,
};
pub use stream::{
    DEFAULT_STREAM_WINDOW, PushError, ReplyStream, StreamControl, StreamItem, StreamSender,
    stream_channel,
};

/// A reply's outcome with what the worker reported beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Replied {
    /// The result or error.
    pub outcome: Outcome,
    /// The reply's `usage` object, when the handler reported one (a `dspy`
    /// program's LM usage: calls, prompt and completion tokens, cost).
    pub usage: Option<serde_json::Value>,
}

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

    /// [`call`](Self::call), also returning what the reply reported beside
    /// its outcome (the reply's `usage`, e.g. a DSPy program's LM usage).
    /// The default implementation reports no usage.
    async fn call_with_usage(&self, request: Request) -> Result<Replied, CallError> {
        self.call(request).await.map(|outcome| Replied {
            outcome,
            usage: None,
        })
    }

    /// Sends `request` as a streaming request (`stream_request`, initial
    /// credit `window`) and returns at once with the stream of its reply:
    /// the chunks the handler yields, then its final reply, or an error.
    ///
    /// * At most `window` chunks wait in the host, however slowly the stream
    ///   is read: the worker sends a chunk only with credit, and the stream
    ///   grants credit back as it is read.
    /// * Dropping the stream before its end cancels the request on the
    ///   worker (a `cancel` frame). The request stays in flight
    ///   ([`in_flight`](Self::in_flight)) until the worker answers, as an
    ///   abandoned `call` does.
    /// * A worker dying mid-stream ends it with [`CallError::WorkerExited`]
    ///   after the chunks already delivered. A stream is never retried here.
    /// * A deadline or an idle timeout is the caller's business.
    ///
    /// Errors returned at once are those of `call` that need no reply (the
    /// connection is dead or draining, a duplicate id). The default
    /// implementation, for connections that cannot stream, returns
    /// [`CallError::StreamingUnsupported`] without sending anything.
    async fn call_stream(
        &self,
        request: Request,
        window: NonZeroU32,
    ) -> Result<ReplyStream, CallError> {
        let _ = window;
        Err(CallError::StreamingUnsupported {
            worker_id: self.worker_id(),
            request_id: request.id,
        })
    }

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
