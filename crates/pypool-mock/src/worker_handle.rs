//! Scripted mode: the test's grip on one accepted worker and its requests.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use pypool_seam::{Handshake, Outcome, RemoteError, Request, RequestId, WorkerExit, WorkerId};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::remote_error::python_exception;
use crate::worker_core::{ChunkDelivery, Delivery, RequestReceiver, WorkerCore};

/// Drives one scripted mock worker: receives the requests the pool sends it,
/// and makes it crash, answer, hang or misbehave. Dropping the handle leaves
/// the worker alive but deaf: later requests are never answered.
pub struct WorkerHandle {
    core: Arc<WorkerCore>,
    requests: RequestReceiver,
    cancels: Option<tokio::sync::mpsc::UnboundedReceiver<RequestId>>,
}

impl WorkerHandle {
    pub(crate) fn new(core: Arc<WorkerCore>, requests: RequestReceiver) -> Self {
        let cancels = core.take_cancels();
        Self {
            core,
            requests,
            cancels,
        }
    }

    /// Waits for the host's next cancel (the id of a request in flight when
    /// it was sent), in sending order. The request stays in flight: answer
    /// it (with [`PendingRequest::reply_cancelled`], a result, or not at all)
    /// as the scenario needs. `None` if the worker's cancels were already
    /// taken by its other handle.
    pub async fn next_cancel(&mut self) -> Option<RequestId> {
        self.cancels.as_mut()?.recv().await
    }

    /// The next cancel if one was already sent, without waiting.
    pub fn try_next_cancel(&mut self) -> Option<RequestId> {
        self.cancels.as_mut()?.try_recv().ok()
    }

    /// How many cancels for requests in flight the host has sent.
    pub fn cancels_seen(&self) -> u64 {
        self.core.cancels_seen()
    }

    /// How many credit grants for streams in flight the host has sent.
    pub fn grants_seen(&self) -> u64 {
        self.core.grants_seen()
    }

    /// The worker's id.
    pub fn worker_id(&self) -> WorkerId {
        self.core.worker_id()
    }

    /// The handshake the worker sent.
    pub fn handshake(&self) -> &Handshake {
        self.core.handshake()
    }

    /// Waits for the next request the pool sends, in sending order. Requests
    /// that were failed meanwhile (the worker crashed, was killed, broke the
    /// protocol) are skipped. `None` once the worker has exited and every
    /// request sent before is taken.
    pub async fn next_request(&mut self) -> Option<PendingRequest> {
        while let Some(request) = self.requests.recv().await {
            if let Some(pending) = self.pending(request) {
                return Some(pending);
            }
        }
        None
    }

    /// The next request if one was already sent, without waiting.
    pub fn try_next_request(&mut self) -> Option<PendingRequest> {
        while let Ok(request) = self.requests.try_recv() {
            if let Some(pending) = self.pending(request) {
                return Some(pending);
            }
        }
        None
    }

    fn pending(&self, request: Request) -> Option<PendingRequest> {
        self.core.is_in_flight(request.id).then(|| PendingRequest {
            core: Arc::clone(&self.core),
            request,
        })
    }

    /// The worker dies now with `exit`: every call in flight fails with
    /// [`CallError::WorkerExited`](pypool_seam::CallError::WorkerExited), and
    /// later calls too. Returns `false` if it had already exited.
    pub fn crash(&self, exit: WorkerExit) -> bool {
        self.core.crash(exit)
    }

    /// The worker writes a malformed frame: every call in flight fails with
    /// [`CallError::ProtocolViolation`](pypool_seam::CallError::ProtocolViolation),
    /// and the connection kills the worker (exit: signal 9) as the real one
    /// does; [`was_killed`](Self::was_killed) stays about the pool's own
    /// `kill()`. Returns `false` if it had already exited.
    pub fn send_garbage(&self) -> bool {
        self.core.violate_protocol("it sent a malformed frame")
    }

    /// The worker says it is draining (as a real one does on SIGTERM): the
    /// connection reports `is_draining()`, so the pool lends it no more
    /// requests. It keeps answering what it was already sent.
    pub fn start_draining(&self) {
        self.core.start_draining();
    }

    /// Whether the pool has called `terminate()` on the connection.
    pub fn was_terminated(&self) -> bool {
        self.core.was_terminated()
    }

    /// Whether the pool has called `kill()` on the connection, or dropped it.
    pub fn was_killed(&self) -> bool {
        self.core.was_killed()
    }

    /// Resolves once the pool has called `terminate()` (at once if it has).
    pub async fn terminated(&self) {
        self.core.terminated().await;
    }

    /// Resolves once the pool has killed the worker or dropped its
    /// connection (at once if it has).
    pub async fn killed(&self) {
        self.core.killed().await;
    }

    /// Resolves with the worker's exit once it has exited.
    pub async fn exited(&self) -> WorkerExit {
        self.core.exited().await
    }

    /// The worker's exit, if it has exited.
    pub fn try_exit(&self) -> Option<WorkerExit> {
        self.core.try_exit()
    }

    /// Sets the resident memory the connection reports.
    pub fn set_rss(&self, bytes: u64) {
        self.core.set_resident_memory(Some(bytes));
    }

    /// Makes the connection report that resident memory is unknown.
    pub fn clear_rss(&self) {
        self.core.set_resident_memory(None);
    }

    /// How many requests the pool has sent this worker (refused calls not counted).
    pub fn requests_seen(&self) -> u64 {
        self.core.requests_seen()
    }

    /// How many requests await a reply, abandoned ones included.
    pub fn in_flight(&self) -> usize {
        self.core.in_flight()
    }
}

impl fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerHandle")
            .field("worker_id", &self.worker_id())
            .field("in_flight", &self.in_flight())
            .field("exit", &self.try_exit())
            .finish_non_exhaustive()
    }
}

/// One request the pool sent to a scripted worker, waiting for the test to
/// decide its fate. Dropping it is the same as [`PendingRequest::hang`]: the
/// request stays in flight.
pub struct PendingRequest {
    core: Arc<WorkerCore>,
    request: Request,
}

impl PendingRequest {
    /// The request as the pool sent it.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The request's id.
    pub fn id(&self) -> RequestId {
        self.request.id
    }

    /// The request's command name.
    pub fn command(&self) -> &str {
        &self.request.command
    }

    /// The initial credit (window) of a request sent with `call_stream`;
    /// `None` for a plain `call` (or once it is answered).
    pub fn stream_window(&self) -> Option<u32> {
        self.core.stream_window(self.request.id)
    }

    /// How many more chunks the stream may send now: its window plus the
    /// host's grants, minus the chunks sent. `None` if it is not a stream in
    /// flight.
    pub fn credit(&self) -> Option<u64> {
        self.core.credit(self.request.id)
    }

    /// The handler yields `data`: one chunk, sent at once if the stream has
    /// credit ([`ChunkDelivery::NoCredit`] and nothing sent otherwise, as a
    /// real worker waits). Answer the request (e.g. [`reply`](Self::reply))
    /// to end the stream, or [`crash`](Self::crash) mid-stream.
    pub fn send_chunk(&self, data: Value) -> ChunkDelivery {
        self.core.push_chunk(self.request.id, data)
    }

    /// [`send_chunk`](Self::send_chunk) once the stream has credit: waits
    /// for the host's grant (as a paused generator does).
    /// [`ChunkDelivery::NotInFlight`] if the request is answered meanwhile
    /// (for example the worker crashed).
    pub async fn send_chunk_when_credited(&self, data: Value) -> ChunkDelivery {
        if !self.core.wait_for_credit(self.request.id).await {
            return match self.core.credit(self.request.id) {
                None if self.core.is_in_flight(self.request.id) => ChunkDelivery::NotAStream,
                _ => ChunkDelivery::NotInFlight,
            };
        }
        self.send_chunk(data)
    }

    /// The worker replies with `result`.
    pub fn reply(self, result: Value) -> Delivery {
        self.core.deliver(self.request.id, Outcome::Ok { result })
    }

    /// The worker replies with `result` and a `usage` object beside it (as a
    /// `dspy` program reports its LM usage); `call_with_usage` and
    /// `ReplyStream::usage` see it.
    pub fn reply_with_usage(self, result: Value, usage: Value) -> Delivery {
        self.core
            .deliver_with_usage(self.request.id, Outcome::Ok { result }, Some(usage))
    }

    /// The worker replies with `error`.
    pub fn reply_error(self, error: RemoteError) -> Delivery {
        self.core.deliver(self.request.id, Outcome::Error { error })
    }

    /// The handler raised `exception_type(message)`: a `python_exception` error reply.
    pub fn python_error(self, exception_type: &str, message: &str) -> Delivery {
        self.reply_error(python_exception(exception_type, message))
    }

    /// The worker answers `cancelled` (as for a request cancelled before it
    /// started, or a cancelled async handler).
    pub fn reply_cancelled(self) -> Delivery {
        self.reply_error(crate::remote_error::cancelled())
    }

    /// The worker replies with `result` after `delay` on tokio's clock.
    pub fn reply_after(self, delay: Duration, result: Value) -> JoinHandle<Delivery> {
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            self.reply(result)
        })
    }

    /// The worker never answers this request; it stays in flight.
    pub fn hang(self) {}

    /// The worker dies with `exit` while handling this request (see
    /// [`WorkerHandle::crash`]). Returns `false` if it had already exited.
    pub fn crash(self, exit: WorkerExit) -> bool {
        self.core.crash(exit)
    }

    /// Instead of a reply, the worker writes a malformed frame (see
    /// [`WorkerHandle::send_garbage`]).
    pub fn send_garbage(self) -> bool {
        self.core.violate_protocol("it sent a malformed frame")
    }

    /// The worker replies to a request id that is not in flight: a protocol
    /// violation, handled like [`send_garbage`](Self::send_garbage).
    pub fn reply_unknown_id(self) -> bool {
        let unknown = self.core.unused_request_id(self.request.id);
        self.core.violate_protocol(&format!(
            "it replied to request {unknown}, which is not in flight"
        ))
    }
}

impl fmt::Debug for PendingRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingRequest")
            .field("worker_id", &self.core.worker_id())
            .field("request", &self.request)
            .finish()
    }
}
