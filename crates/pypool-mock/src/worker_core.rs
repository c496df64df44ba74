//! The state one mock worker shares between its connection (the pool's side)
//! and whatever answers its requests (a test's `WorkerHandle` or a behaviour
//! task): the in-flight table, the exit, and what the host has asked of it.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use pypool_seam::{
    CallError, Handshake, Outcome, PushError, Replied, ReplyStream, Request, RequestId,
    StreamControl, StreamSender, WorkerExit, WorkerId, stream_channel,
};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use crate::stats::StatsInner;

/// The resident memory a mock worker reports until told otherwise (32 MiB).
pub const DEFAULT_RSS_BYTES: u64 = 32 * 1024 * 1024;

/// What became of a reply the worker side sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use = "a reply may have been discarded; check whether the caller got it"]
pub enum Delivery {
    /// The caller waiting on the request received the reply.
    Delivered,
    /// The caller had abandoned the request (dropped its `call` future): the
    /// reply was discarded, as the real connection discards late replies. The
    /// request no longer counts as in flight.
    Discarded,
    /// The request was no longer in flight: the worker had exited, or the
    /// connection died (protocol violation, kill) before the reply. Nothing was
    /// sent.
    NotInFlight,
}

/// The receiving end of a worker's requests, handed to whoever answers them.
pub(crate) type RequestReceiver = mpsc::UnboundedReceiver<Request>;

type ReplySender = oneshot::Sender<Result<Replied, CallError>>;

/// What became of a chunk the worker side sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use = "a chunk may not have been sent; check why"]
pub enum ChunkDelivery {
    /// Buffered in the host for the stream's consumer.
    Buffered,
    /// The consumer had dropped the stream (a cancel is on its way): the
    /// chunk was discarded, as the real connection discards it.
    Discarded,
    /// The stream has no credit left: a real worker waits for a grant
    /// (see [`PendingRequest::send_chunk_when_credited`](crate::PendingRequest::send_chunk_when_credited)).
    /// Nothing was sent.
    NoCredit,
    /// The request was sent with `call`, not `call_stream`: it cannot stream.
    NotAStream,
    /// The request is no longer in flight (answered, or the worker is gone).
    NotInFlight,
}

/// Who waits for a request's answer.
#[derive(Debug)]
enum Waiter {
    Call(ReplySender),
    Stream {
        sender: StreamSender,
        /// The stream's initial credit.
        window: u32,
        /// Chunks the worker may send in all: the window plus every grant.
        granted: watch::Sender<u64>,
        sent: u64,
    },
}

impl Waiter {
    /// Delivers the end (with the reply's usage); whether the caller was
    /// still there to get it.
    fn finish(self, end: Result<Outcome, CallError>, usage: Option<Value>) -> bool {
        match self {
            Self::Call(reply) => reply
                .send(end.map(|outcome| Replied { outcome, usage }))
                .is_ok(),
            Self::Stream { sender, .. } => {
                let present = !sender.consumer_gone();
                sender.finish_with_usage(end, usage);
                present
            }
        }
    }
}

/// Why the connection refuses new calls.
#[derive(Debug, Clone)]
enum Refusal {
    /// The worker exited on its own: new calls report that exit.
    Exited(WorkerExit),
    /// The host closed the connection, or the worker broke the protocol.
    Closed(String),
}

#[derive(Debug)]
struct CoreState {
    in_flight: HashMap<RequestId, Waiter>,
    requests: Option<mpsc::UnboundedSender<Request>>,
    refusal: Option<Refusal>,
    terminating: bool,
    resident_memory: Option<u64>,
}

/// One mock worker's shared state.
#[derive(Debug)]
pub(crate) struct WorkerCore {
    handshake: Handshake,
    state: Mutex<CoreState>,
    exit: watch::Sender<Option<WorkerExit>>,
    terminated: watch::Sender<bool>,
    killed: watch::Sender<bool>,
    requests_seen: AtomicU64,
    /// The worker said it is draining (see `WorkerConnection::is_draining`).
    draining: std::sync::atomic::AtomicBool,
    stats: Arc<StatsInner>,
    /// Where the host's cancels go (the ids of requests still in flight).
    cancels: mpsc::UnboundedSender<RequestId>,
    /// Their receiving end, until whoever answers requests takes it.
    cancels_rx: Mutex<Option<mpsc::UnboundedReceiver<RequestId>>>,
    cancels_seen: AtomicU64,
    grants_seen: AtomicU64,
}

impl WorkerCore {
    /// Marks the worker as draining (it will say so to the pool).
    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether the worker said it is draining.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// A live worker that announced `handshake`, and the receiver of the
    /// requests the pool sends it.
    pub(crate) fn start(
        handshake: Handshake,
        stats: Arc<StatsInner>,
    ) -> (Arc<Self>, RequestReceiver) {
        let (requests_tx, requests_rx) = mpsc::unbounded_channel();
        let (cancels, cancels_rx) = mpsc::unbounded_channel();
        stats.worker_started();
        let core = Arc::new(Self {
            handshake,
            state: Mutex::new(CoreState {
                in_flight: HashMap::new(),
                requests: Some(requests_tx),
                refusal: None,
                terminating: false,
                resident_memory: Some(DEFAULT_RSS_BYTES),
            }),
            exit: watch::Sender::new(None),
            terminated: watch::Sender::new(false),
            killed: watch::Sender::new(false),
            requests_seen: AtomicU64::new(0),
            draining: std::sync::atomic::AtomicBool::new(false),
            stats,
            cancels,
            cancels_rx: Mutex::new(Some(cancels_rx)),
            cancels_seen: AtomicU64::new(0),
            grants_seen: AtomicU64::new(0),
        });
        (core, requests_rx)
    }

    fn lock(&self) -> MutexGuard<'_, CoreState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn handshake(&self) -> &Handshake {
        &self.handshake
    }

    pub(crate) fn worker_id(&self) -> WorkerId {
        self.handshake.worker_id
    }

    /// Whether a call may be made now: `Err` with the reason if the worker
    /// exited or its connection closed.
    pub(crate) fn check_open(&self, request_id: RequestId) -> Result<(), CallError> {
        self.refusal(&self.lock(), request_id)
    }

    /// Why a call with `request_id` is refused now, if it is: the worker
    /// exited or its connection closed.
    fn refusal(&self, state: &CoreState, request_id: RequestId) -> Result<(), CallError> {
        let worker_id = self.worker_id();
        match &state.refusal {
            Some(Refusal::Exited(exit)) => Err(CallError::WorkerExited {
                worker_id,
                request_id,
                exit: *exit,
            }),
            Some(Refusal::Closed(reason)) => Err(CallError::Closed {
                worker_id,
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Counts a request answered inside `call` (instant behaviour).
    pub(crate) fn count_instant(&self) {
        self.requests_seen.fetch_add(1, Ordering::Relaxed);
        self.stats.request_answered();
    }

    /// Refuses `request` as the real connection would: the worker exited or
    /// its connection closed, or the id is already in flight.
    fn admit(&self, state: &CoreState, request: &Request) -> Result<(), CallError> {
        self.refusal(state, request.id)?;
        if state.in_flight.contains_key(&request.id) {
            return Err(CallError::DuplicateRequestId {
                worker_id: self.worker_id(),
                request_id: request.id,
            });
        }
        Ok(())
    }

    /// Registers `request` as in flight and hands it to the worker side; the
    /// returned receiver yields its outcome.
    pub(crate) fn send(
        &self,
        request: Request,
    ) -> Result<oneshot::Receiver<Result<Replied, CallError>>, CallError> {
        let mut state = self.lock();
        self.admit(&state, &request)?;
        let (reply_tx, reply_rx) = oneshot::channel();
        state.in_flight.insert(request.id, Waiter::Call(reply_tx));
        self.requests_seen.fetch_add(1, Ordering::Relaxed);
        if let Some(requests) = &state.requests {
            // If nobody listens any more (the test dropped its handle), the
            // request stays in flight forever, like one sent to a hung worker.
            let _ignored = requests.send(request);
        }
        Ok(reply_rx)
    }

    /// Registers `request` as an in-flight stream with `window` credit and
    /// hands it to the worker side; the returned stream yields its chunks
    /// and its end.
    pub(crate) fn send_stream(
        self: &Arc<Self>,
        request: Request,
        window: NonZeroU32,
    ) -> Result<ReplyStream, CallError> {
        let mut state = self.lock();
        self.admit(&state, &request)?;
        let control = Arc::new(MockControl {
            core: Arc::downgrade(self),
        });
        let (sender, stream) = stream_channel(self.worker_id(), request.id, window, control);
        state.in_flight.insert(
            request.id,
            Waiter::Stream {
                sender,
                window: window.get(),
                granted: watch::Sender::new(u64::from(window.get())),
                sent: 0,
            },
        );
        self.requests_seen.fetch_add(1, Ordering::Relaxed);
        if let Some(requests) = &state.requests {
            let _ignored = requests.send(request);
        }
        Ok(stream)
    }

    /// The initial credit of stream `id`; `None` for a plain request or one
    /// not in flight.
    pub(crate) fn stream_window(&self, id: RequestId) -> Option<u32> {
        match self.lock().in_flight.get(&id) {
            Some(Waiter::Stream { window, .. }) => Some(*window),
            _ => None,
        }
    }

    /// How many more chunks stream `id` may send now (`None`: not a stream in flight).
    pub(crate) fn credit(&self, id: RequestId) -> Option<u64> {
        match self.lock().in_flight.get(&id) {
            Some(Waiter::Stream { granted, sent, .. }) => {
                Some(granted.borrow().saturating_sub(*sent))
            }
            _ => None,
        }
    }

    /// The host granted `grant` more chunks of stream `id`.
    fn grant(&self, id: RequestId, grant: u32) {
        if let Some(Waiter::Stream { granted, .. }) = self.lock().in_flight.get(&id) {
            granted.send_modify(|total| *total += u64::from(grant));
            self.grants_seen.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many credit grants for streams in flight the host sent.
    pub(crate) fn grants_seen(&self) -> u64 {
        self.grants_seen.load(Ordering::Relaxed)
    }

    /// Sends one chunk of stream `id` if it has credit.
    pub(crate) fn push_chunk(&self, id: RequestId, data: Value) -> ChunkDelivery {
        let mut state = self.lock();
        match state.in_flight.get_mut(&id) {
            None => ChunkDelivery::NotInFlight,
            Some(Waiter::Call(_)) => ChunkDelivery::NotAStream,
            Some(Waiter::Stream {
                sender,
                granted,
                sent,
                ..
            }) => {
                if *sent >= *granted.borrow() {
                    return ChunkDelivery::NoCredit;
                }
                *sent += 1;
                match sender.push(data) {
                    Ok(()) => ChunkDelivery::Buffered,
                    Err(PushError::OverCredit { .. }) => {
                        // Cannot happen while `sent` respects the credit; be explicit anyway.
                        *sent -= 1;
                        ChunkDelivery::NoCredit
                    }
                    Err(_) => ChunkDelivery::Discarded,
                }
            }
        }
    }

    /// Waits until stream `id` has credit for a chunk; `false` if it is no
    /// longer a stream in flight.
    pub(crate) async fn wait_for_credit(&self, id: RequestId) -> bool {
        let (mut granted, sent) = match self.lock().in_flight.get(&id) {
            Some(Waiter::Stream { granted, sent, .. }) => (granted.subscribe(), *sent),
            _ => return false,
        };
        // The watch's sender lives in the table: when the request is answered
        // it is dropped and the wait ends.
        granted.wait_for(|total| *total > sent).await.is_ok()
    }

    /// The host cancels request `id`: passed on to whoever answers requests
    /// if it is in flight, ignored otherwise (as the real worker does).
    pub(crate) fn cancel(&self, id: RequestId) {
        if self.is_in_flight(id) {
            self.cancels_seen.fetch_add(1, Ordering::Relaxed);
            let _ignored = self.cancels.send(id);
        }
    }

    /// The receiver of the host's cancels; `None` once taken.
    pub(crate) fn take_cancels(&self) -> Option<mpsc::UnboundedReceiver<RequestId>> {
        self.cancels_rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// How many cancels for requests in flight the host sent.
    pub(crate) fn cancels_seen(&self) -> u64 {
        self.cancels_seen.load(Ordering::Relaxed)
    }

    /// How many requests the worker holds at once.
    pub(crate) fn capacity(&self) -> usize {
        usize::try_from(self.handshake.capacity.max(1)).unwrap_or(usize::MAX)
    }

    /// Answers request `id` with `outcome`.
    pub(crate) fn deliver(&self, id: RequestId, outcome: Outcome) -> Delivery {
        self.deliver_with_usage(id, outcome, None)
    }

    /// Answers request `id` with `outcome` and a `usage` object beside it.
    pub(crate) fn deliver_with_usage(
        &self,
        id: RequestId,
        outcome: Outcome,
        usage: Option<Value>,
    ) -> Delivery {
        let mut state = self.lock();
        let Some(waiter) = state.in_flight.remove(&id) else {
            return Delivery::NotInFlight;
        };
        let delivery = match waiter.finish(Ok(outcome), usage) {
            true => Delivery::Delivered,
            false => {
                tracing::debug!(
                    worker_id = self.worker_id(),
                    request_id = id,
                    "discarding the late reply to an abandoned request"
                );
                Delivery::Discarded
            }
        };
        self.stats.request_answered();
        if state.terminating && state.in_flight.is_empty() {
            self.finish(&mut state, WorkerExit::code(0));
        }
        delivery
    }

    /// Whether request `id` still awaits a reply.
    pub(crate) fn is_in_flight(&self, id: RequestId) -> bool {
        self.lock().in_flight.contains_key(&id)
    }

    /// A request id no request in flight uses.
    pub(crate) fn unused_request_id(&self, near: RequestId) -> RequestId {
        let state = self.lock();
        let mut candidate = near.wrapping_add(1_000_000);
        while state.in_flight.contains_key(&candidate) {
            candidate = candidate.wrapping_add(1);
        }
        candidate
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.lock().in_flight.len()
    }

    pub(crate) fn requests_seen(&self) -> u64 {
        self.requests_seen.load(Ordering::Relaxed)
    }

    /// The worker dies on its own with `exit`; returns `false` if it had
    /// already exited.
    pub(crate) fn crash(&self, exit: WorkerExit) -> bool {
        let worker_id = self.worker_id();
        let mut state = self.lock();
        if self.try_exit().is_some() {
            return false;
        }
        tracing::debug!(worker_id, %exit, "mock worker crashes");
        state.refusal = Some(Refusal::Exited(exit));
        for (request_id, waiter) in state.in_flight.drain() {
            let _abandoned = waiter.finish(
                Err(CallError::WorkerExited {
                    worker_id,
                    request_id,
                    exit,
                }),
                None,
            );
        }
        self.finish(&mut state, exit);
        true
    }

    /// The worker breaks the protocol: every call in flight fails with
    /// `detail`, and the connection kills the worker as the real one does.
    /// Returns `false` if it had already exited.
    pub(crate) fn violate_protocol(&self, detail: &str) -> bool {
        let worker_id = self.worker_id();
        let mut state = self.lock();
        if self.try_exit().is_some() {
            return false;
        }
        tracing::debug!(worker_id, detail, "mock worker breaks the protocol");
        state.refusal = Some(Refusal::Closed(format!(
            "the worker broke the protocol ({detail}) and was killed"
        )));
        for (_, waiter) in state.in_flight.drain() {
            let _abandoned = waiter.finish(
                Err(CallError::ProtocolViolation {
                    worker_id,
                    detail: detail.to_owned(),
                }),
                None,
            );
        }
        self.finish(&mut state, WorkerExit::signal(9));
        true
    }

    /// The host kills the worker (`kill()` or dropping the connection).
    pub(crate) fn kill(&self, reason: &str) {
        let worker_id = self.worker_id();
        let mut state = self.lock();
        if !self.killed.send_replace(true) {
            self.stats.kill_observed();
        }
        if self.try_exit().is_some() {
            return;
        }
        tracing::debug!(worker_id, reason, "mock worker killed");
        let reason = format!("the worker was {reason}");
        state.refusal = Some(Refusal::Closed(reason.clone()));
        for (_, waiter) in state.in_flight.drain() {
            let _abandoned = waiter.finish(
                Err(CallError::Closed {
                    worker_id,
                    reason: reason.clone(),
                }),
                None,
            );
        }
        self.finish(&mut state, WorkerExit::signal(9));
    }

    /// The host asks the worker to stop once its requests are answered.
    pub(crate) fn terminate(&self) {
        let mut state = self.lock();
        if !self.terminated.send_replace(true) {
            self.stats.termination_observed();
        }
        if self.try_exit().is_some() || state.terminating {
            return;
        }
        tracing::debug!(
            worker_id = self.worker_id(),
            "mock worker asked to terminate"
        );
        state.terminating = true;
        state.refusal = Some(Refusal::Closed(
            "the worker was asked to terminate".to_owned(),
        ));
        if state.in_flight.is_empty() {
            self.finish(&mut state, WorkerExit::code(0));
        }
    }

    /// Records the exit; the caller holds the state lock.
    fn finish(&self, state: &mut CoreState, exit: WorkerExit) {
        state.requests = None;
        self.exit.send_replace(Some(exit));
        self.stats.worker_exited();
    }

    pub(crate) fn try_exit(&self) -> Option<WorkerExit> {
        *self.exit.borrow()
    }

    pub(crate) async fn exited(&self) -> WorkerExit {
        let mut exit = self.exit.subscribe();
        match exit.wait_for(Option::is_some).await {
            Ok(seen) => (*seen).unwrap_or_default(),
            // The sender lives as long as `self`; this cannot happen.
            Err(_closed) => WorkerExit::default(),
        }
    }

    pub(crate) fn was_terminated(&self) -> bool {
        *self.terminated.borrow()
    }

    pub(crate) fn was_killed(&self) -> bool {
        *self.killed.borrow()
    }

    pub(crate) async fn terminated(&self) {
        let mut flag = self.terminated.subscribe();
        let _seen = flag.wait_for(|terminated| *terminated).await;
    }

    pub(crate) async fn killed(&self) {
        let mut flag = self.killed.subscribe();
        let _seen = flag.wait_for(|killed| *killed).await;
    }

    pub(crate) fn resident_memory(&self) -> Option<u64> {
        self.lock().resident_memory
    }

    pub(crate) fn set_resident_memory(&self, bytes: Option<u64>) {
        self.lock().resident_memory = bytes;
    }
}

/// A mock stream's way back to its worker side: grants raise its credit, a
/// cancel goes where every cancel goes.
#[derive(Debug)]
struct MockControl {
    core: Weak<WorkerCore>,
}

impl StreamControl for MockControl {
    fn grant(&self, request_id: RequestId, grant: u32) {
        if let Some(core) = self.core.upgrade() {
            core.grant(request_id, grant);
        }
    }

    fn cancel(&self, request_id: RequestId) {
        if let Some(core) = self.core.upgrade() {
            core.cancel(request_id);
        }
    }
}
