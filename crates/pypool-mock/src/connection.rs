//! The pool's side of a mock worker: a [`WorkerConnection`].

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use std::num::NonZeroU32;

use pypool_seam::{
    CallError, Handshake, Outcome, Replied, ReplyStream, Request, WorkerConnection, WorkerExit,
};

use crate::behaviour_worker::BehaviourShared;
use crate::worker_core::WorkerCore;

/// A connection to one mock worker, as handed to the pool by
/// [`MockSpawner`](crate::MockSpawner). Dropping it (the last `Arc` of it)
/// kills the worker, like dropping a real process connection.
pub struct MockConnection {
    core: Arc<WorkerCore>,
    /// Instant behaviour: answers computed inside `call`.
    instant: Option<Arc<BehaviourShared>>,
}

impl MockConnection {
    pub(crate) fn new(core: Arc<WorkerCore>) -> Self {
        Self {
            core,
            instant: None,
        }
    }

    /// A connection that answers every request inside `call` (see
    /// [`Behaviour::instant`](crate::Behaviour::instant)).
    pub(crate) fn instant(core: Arc<WorkerCore>, shared: Arc<BehaviourShared>) -> Self {
        Self {
            core,
            instant: Some(shared),
        }
    }
}

impl fmt::Debug for MockConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockConnection")
            .field("worker_id", &self.core.worker_id())
            .field("in_flight", &self.core.in_flight())
            .field("exit", &self.core.try_exit())
            .finish()
    }
}

#[async_trait]
impl WorkerConnection for MockConnection {
    fn handshake(&self) -> &Handshake {
        self.core.handshake()
    }

    async fn call(&self, request: Request) -> Result<Outcome, CallError> {
        self.call_with_usage(request)
            .await
            .map(|replied| replied.outcome)
    }

    /// Carries the usage a scripted test answered with
    /// ([`PendingRequest::reply_with_usage`](crate::PendingRequest::reply_with_usage)).
    async fn call_with_usage(&self, request: Request) -> Result<Replied, CallError> {
        if let Some(shared) = &self.instant {
            self.core.check_open(request.id)?;
            self.core.count_instant();
            return Ok(Replied {
                outcome: shared.answer(&self.core, &request),
                usage: None,
            });
        }
        let reply = self.core.send(request)?;
        // Dropping this future drops `reply`: the request stays in flight in
        // the core until the worker side answers, and that answer is discarded.
        match reply.await {
            Ok(outcome) => outcome,
            Err(_never_answered) => Err(CallError::Closed {
                worker_id: self.core.worker_id(),
                reason: "the mock worker dropped the request without an answer".to_owned(),
            }),
        }
    }

    /// Streams like the real connection (a bounded buffer of `window`
    /// chunks, credit as the stream is read, a cancel when it is dropped): a
    /// scripted test sends the chunks through the [`PendingRequest`], a
    /// behaviour worker sends [`Behaviour::stream_chunks`] chunks before its
    /// answer, an instant worker answers at once without chunks.
    ///
    /// [`PendingRequest`]: crate::PendingRequest
    /// [`Behaviour::stream_chunks`]: crate::Behaviour::stream_chunks
    async fn call_stream(
        &self,
        request: Request,
        window: NonZeroU32,
    ) -> Result<ReplyStream, CallError> {
        if let Some(shared) = &self.instant {
            self.core.check_open(request.id)?;
            self.core.count_instant();
            let outcome = shared.answer(&self.core, &request);
            return Ok(ReplyStream::ended(
                self.core.worker_id(),
                request.id,
                Ok(outcome),
            ));
        }
        self.core.send_stream(request, window)
    }

    fn in_flight(&self) -> usize {
        self.core.in_flight()
    }

    /// The handshake's capacity (see [`Behaviour::capacity`](crate::Behaviour::capacity)).
    fn capacity(&self) -> usize {
        self.core.capacity()
    }

    /// Passes the cancel to the worker side: a scripted test sees it with
    /// [`WorkerHandle::next_cancel`](crate::WorkerHandle::next_cancel) and
    /// answers as it likes; a behaviour-mode worker answers the request
    /// `cancelled` at once. A cancel for an id not in flight is ignored.
    fn cancel(&self, request_id: pypool_seam::RequestId) {
        self.core.cancel(request_id);
    }

    async fn exited(&self) -> WorkerExit {
        self.core.exited().await
    }

    fn try_exit(&self) -> Option<WorkerExit> {
        self.core.try_exit()
    }

    fn terminate(&self) {
        self.core.terminate();
    }

    fn kill(&self) {
        self.core.kill("killed by the host");
    }

    fn resident_memory_bytes(&self) -> Option<u64> {
        self.core.resident_memory()
    }

    /// The mock's made-up pid (it stands for the process it "spawned").
    fn process_id(&self) -> Option<u32> {
        Some(self.core.handshake().pid)
    }

    fn is_draining(&self) -> bool {
        self.core.is_draining()
    }
}

impl Drop for MockConnection {
    fn drop(&mut self) {
        self.core.kill("killed because its connection was dropped");
    }
}
