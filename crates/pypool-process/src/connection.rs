//! A live connection to a Python worker process.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use pypool_seam::{
    CallError, Handshake, Outcome, PushError, Replied, ReplyStream, Request, RequestId,
    StreamControl, StreamSender, WorkerConnection, WorkerExit, WorkerId, stream_channel,
};
use pypool_wire::{
    Cancel, Chunk, Credit, Message, MessageCodec, NOT_STARTED, PendingTable, StreamRequest,
    WireError,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{oneshot, watch};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::memory;
use crate::signals::SpawnedProcess;

/// How long the reader waits, after the worker closed its frame stream, for
/// the process to exit before it kills the process group.
const EXIT_AFTER_EOF_GRACE: Duration = Duration::from_secs(2);

type ReplySender = oneshot::Sender<Result<Replied, CallError>>;

/// Who waits for a request's reply.
#[derive(Debug)]
enum Waiter {
    /// A `call`: the reply, once.
    Call(ReplySender),
    /// A `call_stream`: its chunks, then the reply.
    Stream {
        sender: StreamSender,
        /// The `seq` the next chunk must carry.
        next_seq: u64,
    },
}

impl Waiter {
    /// Delivers the end of the request, with the reply's `usage` (a dropped
    /// caller is ignored).
    fn finish(self, end: Result<Outcome, CallError>, usage: Option<serde_json::Value>) {
        match self {
            Self::Call(reply) => {
                let _ = reply.send(end.map(|outcome| Replied { outcome, usage }));
            }
            Self::Stream { sender, .. } => sender.finish_with_usage(end, usage),
        }
    }
}

/// The worker's stdin as a frame sink.
type FrameWriter = FramedWrite<Box<dyn AsyncWrite + Send + Unpin>, MessageCodec>;

/// The worker's stdin while it is open (`None` once closed).
struct Stdin(Option<FrameWriter>);

impl std::fmt::Debug for Stdin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Stdin(open)"
        } else {
            "Stdin(closed)"
        })
    }
}

/// Why the connection can no longer carry requests.
#[derive(Debug, Clone)]
enum Dead {
    Exited(WorkerExit),
    Protocol(String),
    Closed(String),
}

#[derive(Debug)]
struct State {
    pending: PendingTable<Waiter>,
    dead: Option<Dead>,
    /// The worker said `draining`: no request is queued after this is set.
    draining: bool,
    /// Requests and cancels not yet handed to the frame writer, in the order
    /// they are to be written (a cancel always after its request).
    outbox: VecDeque<Message>,
    /// The connection was dropped: the writer closes the worker's stdin.
    closing: bool,
}

#[derive(Debug)]
struct Shared {
    worker_id: WorkerId,
    /// The process the spawner started: the only target of our signals.
    process: Arc<SpawnedProcess>,
    /// The worker's own pid as its handshake reported it (checked, at the
    /// handshake, to lie inside `process`'s tree); used to read its memory,
    /// never to signal.
    reported_pid: u32,
    state: Mutex<State>,
    exit: watch::Receiver<Option<WorkerExit>>,
    /// Becomes `true` when the reader has stopped (the frame stream ended or
    /// broke), so every reply the worker sent has been delivered.
    reader_done: watch::Sender<bool>,
    /// Wakes the writer to close the worker's stdin once the worker drains.
    drained: tokio::sync::Notify,
    /// The worker's stdin; `None` once closed. A caller writes its own
    /// request (one task hop less on every call); the writer task writes
    /// cancels, and whatever a caller abandoned mid-write.
    writer: tokio::sync::Mutex<Stdin>,
    /// Wakes the writer task: the outbox holds frames no caller will write.
    write_wanted: tokio::sync::Notify,
}

/// Marks the reader done when dropped (on every way out of `read_replies`).
struct ReaderDone(Arc<Shared>);

impl Drop for ReaderDone {
    fn drop(&mut self) {
        self.0.reader_done.send_replace(true);
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn error_for(&self, dead: &Dead, request_id: u64) -> CallError {
        match dead {
            Dead::Exited(exit) => CallError::WorkerExited {
                worker_id: self.worker_id,
                request_id,
                exit: *exit,
            },
            Dead::Protocol(detail) => CallError::ProtocolViolation {
                worker_id: self.worker_id,
                detail: detail.clone(),
            },
            Dead::Closed(reason) => CallError::Closed {
                worker_id: self.worker_id,
                reason: reason.clone(),
            },
        }
    }

    /// Refuses request `request_id` if the connection is dead or the worker
    /// is draining (it takes no more requests).
    fn check_open(&self, state: &State, request_id: u64) -> Result<(), CallError> {
        if let Some(dead) = &state.dead {
            return Err(self.error_for(dead, request_id));
        }
        if state.draining {
            return Err(CallError::NotSent {
                worker_id: self.worker_id,
                request_id,
                reason: "the worker is stopping (draining) and takes no more requests".to_owned(),
            });
        }
        Ok(())
    }

    /// Marks the connection dead (first reason wins) and fails every pending call.
    fn die(&self, dead: Dead) {
        let mut state = self.lock();
        let dead = state.dead.get_or_insert(dead).clone();
        for (request_id, waiter) in state.pending.drain() {
            waiter.finish(Err(self.error_for(&dead, request_id)), None);
        }
    }
}

/// A worker process that has completed its handshake; see the crate docs.
///
/// Dropping it kills the worker's whole process group.
#[derive(Debug)]
pub struct ProcessConnection {
    handshake: Handshake,
    shared: Arc<Shared>,
    /// Kept as long as the connection: a forked worker's template.
    _keep_alive: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl ProcessConnection {
    /// Wires a connection onto a worker's pipes after its handshake was read
    /// from `frames`. `exit` reports the process's end.
    pub(crate) fn start<R, W>(
        handshake: Handshake,
        frames: FramedRead<R, MessageCodec>,
        stdin: W,
        max_frame_bytes: usize,
        exit: watch::Receiver<Option<WorkerExit>>,
        process: Arc<SpawnedProcess>,
    ) -> Self
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let shared = Arc::new(Shared {
            worker_id: handshake.worker_id,
            process,
            reported_pid: handshake.pid,
            state: Mutex::new(State {
                pending: PendingTable::new(),
                dead: None,
                draining: false,
                outbox: VecDeque::new(),
                closing: false,
            }),
            exit,
            reader_done: watch::Sender::new(false),
            drained: tokio::sync::Notify::new(),
            writer: tokio::sync::Mutex::new(Stdin(Some(FramedWrite::new(
                Box::new(stdin),
                MessageCodec::new(max_frame_bytes),
            )))),
            write_wanted: tokio::sync::Notify::new(),
        });
        tokio::spawn(write_requests(Arc::clone(&shared)));
        tokio::spawn(read_replies(Arc::clone(&shared), frames));
        Self {
            handshake,
            shared,
            _keep_alive: None,
        }
    }

    /// Keeps `keep_alive` (a forked worker's template) as long as this connection.
    pub(crate) fn keeping_alive(
        mut self,
        keep_alive: Option<Arc<dyn std::any::Any + Send + Sync>>,
    ) -> Self {
        self._keep_alive = keep_alive;
        self
    }
}

/// Wakes the writer task if the caller that was writing the outbox is
/// dropped before its frames were out (they must still be written).
struct WriteOnDrop<'a> {
    shared: &'a Shared,
    done: bool,
}

impl Drop for WriteOnDrop<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.shared.write_wanted.notify_one();
        }
    }
}

impl Shared {
    /// Writes every frame of the outbox, in order, and flushes them; the one
    /// writer of the worker's stdin at a time (the mutex), so frames never
    /// interleave. A caller dropped part-way leaves nothing lost: a frame is
    /// taken from the outbox only once the sink can take it whole, and what
    /// is taken but not yet flushed stays in the sink's buffer for the next
    /// writer (the writer task, woken by [`WriteOnDrop`]).
    async fn write_outbox(&self) {
        let mut guard = WriteOnDrop {
            shared: self,
            done: false,
        };
        let mut writer = self.writer.lock().await;
        if let Some(sink) = writer.0.as_mut() {
            if !self.feed_and_flush(sink).await {
                // Broken or closed: the reader reports how the worker ended.
                writer.0 = None;
            }
        }
        guard.done = true;
    }

    /// Feeds the outbox to `sink` and flushes; false when the sink is broken.
    async fn feed_and_flush(&self, sink: &mut FrameWriter) -> bool {
        loop {
            if let Err(error) = futures::future::poll_fn(|cx| {
                futures::Sink::<Message>::poll_ready(std::pin::Pin::new(&mut *sink), cx)
            })
            .await
            {
                tracing::debug!(worker_id = self.worker_id, %error, "writing to worker failed");
                return false;
            }
            let Some(message) = self.lock().outbox.pop_front() else {
                break;
            };
            let request_id = match &message {
                Message::Request(request) => request.id,
                Message::StreamRequest(request) => request.id,
                Message::Cancel(cancel) => cancel.id,
                Message::Credit(credit) => credit.id,
                _ => continue,
            };
            let is_request = matches!(message, Message::Request(_) | Message::StreamRequest(_));
            match futures::Sink::<Message>::start_send(std::pin::Pin::new(&mut *sink), message) {
                Ok(()) => {}
                Err(WireError::Io(error)) => {
                    tracing::debug!(worker_id = self.worker_id, %error, "writing to worker failed");
                    return false;
                }
                Err(error) => {
                    // Nothing was written (the codec never writes a partial
                    // frame), but the protocol says the connection is dead.
                    self.refuse(request_id, is_request, &error);
                    return false;
                }
            }
        }
        match futures::future::poll_fn(|cx| {
            futures::Sink::<Message>::poll_flush(std::pin::Pin::new(&mut *sink), cx)
        })
        .await
        {
            Ok(()) => true,
            Err(error) => {
                // The worker closed its stdin: it is exiting. The reader sees
                // the end of the frame stream and reports the exit.
                tracing::debug!(worker_id = self.worker_id, %error, "writing to worker failed");
                false
            }
        }
    }

    /// A frame could not be encoded: its request fails as never sent, and the
    /// connection dies (the worker is killed).
    fn refuse(&self, request_id: u64, is_request: bool, error: &WireError) {
        let reason = error.to_string();
        let taken = if is_request {
            self.lock().pending.take(request_id).ok()
        } else {
            None
        };
        if let Some(waiter) = taken {
            waiter.finish(
                Err(CallError::NotSent {
                    worker_id: self.worker_id,
                    request_id,
                    reason: reason.clone(),
                }),
                None,
            );
        }
        self.die(Dead::Closed(format!(
            "request {request_id} could not be encoded: {reason}"
        )));
        self.process.kill_tree();
    }
}

/// Writes the frames no caller writes (cancels, and what a dropped caller left
/// behind), and closes the worker's stdin once the worker drains (after
/// writing what is left: the worker answers it `not_started`) or the
/// connection is dropped.
async fn write_requests(shared: Arc<Shared>) {
    loop {
        tokio::select! {
            biased;
            () = shared.write_wanted.notified() => {
                if shared.lock().closing {
                    break;
                }
                shared.write_outbox().await;
            }
            () = shared.drained.notified() => {
                // The worker is draining: nothing is queued after the flag was
                // set, so write what is left and close its stdin, which lets
                // it exit.
                shared.write_outbox().await;
                tracing::debug!(worker_id = shared.worker_id, "worker is draining; closing its stdin");
                break;
            }
        }
    }
    drop(shared.writer.lock().await.0.take());
}

/// Reads replies and hands each to its caller, until the stream ends or breaks.
async fn read_replies<R: AsyncRead + Unpin>(
    shared: Arc<Shared>,
    mut frames: FramedRead<R, MessageCodec>,
) {
    let _done = ReaderDone(Arc::clone(&shared));
    let violation = loop {
        match frames.next().await {
            Some(Ok(Message::Reply(reply))) => {
                let (taken, already_dead) = {
                    let mut state = shared.lock();
                    (state.pending.take(reply.id), state.dead.is_some())
                };
                match taken {
                    // A dropped receiver means the caller abandoned the request:
                    // its late reply is discarded here, never delivered elsewhere.
                    Ok(waiter) => {
                        waiter.finish(not_started(&shared, reply.id, reply.outcome), reply.usage);
                    }
                    // The host already gave up on this connection (killed it):
                    // whatever still arrives is of no interest.
                    Err(_) if already_dead => return,
                    Err(unknown) => break unknown.to_string(),
                }
            }
            Some(Ok(Message::Chunk(chunk))) => match deliver_chunk(&shared, chunk) {
                ChunkFate::Delivered => {}
                ChunkFate::Ignore => return,
                ChunkFate::Violation(violation) => break violation,
            },
            Some(Ok(Message::Draining(_))) => {
                tracing::debug!(worker_id = shared.worker_id, "worker is draining");
                shared.lock().draining = true;
                shared.drained.notify_one();
            }
            Some(Ok(other)) => {
                break format!(
                    "sent a `{}` message where only replies are allowed",
                    kind_of(&other)
                );
            }
            Some(Err(error)) => break error.to_string(),
            None => {
                let exit = wait_for_exit(&shared).await;
                shared.die(Dead::Exited(exit));
                return;
            }
        }
    };
    tracing::error!(worker_id = shared.worker_id, %violation, "worker broke the protocol; killing it");
    shared.die(Dead::Protocol(violation));
    shared.process.kill_tree();
}

/// What became of a chunk the worker sent.
enum ChunkFate {
    /// Buffered for its stream's consumer (or discarded: the consumer is gone).
    Delivered,
    /// The connection is dead already: stop reading.
    Ignore,
    /// The worker broke the protocol.
    Violation(String),
}

fn deliver_chunk(shared: &Shared, chunk: Chunk) -> ChunkFate {
    let mut state = shared.lock();
    let already_dead = state.dead.is_some();
    match state.pending.get_mut(chunk.id) {
        Some(Waiter::Stream { sender, next_seq }) => {
            if chunk.seq != *next_seq {
                return ChunkFate::Violation(format!(
                    "sent chunk {} of stream {} where chunk {next_seq} was due",
                    chunk.seq, chunk.id
                ));
            }
            *next_seq += 1;
            match sender.push(chunk.data) {
                // A consumer that let go is cancelling the request: its chunks
                // are discarded, as a late reply is.
                Ok(()) | Err(PushError::ConsumerGone | PushError::Ended) => ChunkFate::Delivered,
                Err(error @ PushError::OverCredit { .. }) => {
                    ChunkFate::Violation(format!("stream {}: {error}", chunk.id))
                }
                Err(other) => ChunkFate::Violation(format!("stream {}: {other}", chunk.id)),
            }
        }
        Some(Waiter::Call(_)) => ChunkFate::Violation(format!(
            "sent a chunk for request {}, which was not sent as a stream_request",
            chunk.id
        )),
        None if already_dead => ChunkFate::Ignore,
        None => ChunkFate::Violation(format!(
            "sent a chunk for request {}, which is not pending (never sent or already answered)",
            chunk.id
        )),
    }
}

/// A `not_started` error reply becomes [`CallError::NotSent`]: the request
/// never ran, so the pool may send it to another worker.
fn not_started(shared: &Shared, request_id: u64, outcome: Outcome) -> Result<Outcome, CallError> {
    match outcome {
        Outcome::Error { error } if error.kind.as_str() == NOT_STARTED => Err(CallError::NotSent {
            worker_id: shared.worker_id,
            request_id,
            reason: format!(
                "the worker is stopping and did not start it ({})",
                error.message
            ),
        }),
        outcome => Ok(outcome),
    }
}

async fn wait_for_exit(shared: &Shared) -> WorkerExit {
    let mut exit = shared.exit.clone();
    let waited = tokio::time::timeout(EXIT_AFTER_EOF_GRACE, exit.wait_for(Option::is_some))
        .await
        .ok()
        .and_then(|seen| seen.ok().and_then(|seen| *seen));
    if let Some(exit) = waited {
        return exit;
    }
    shared.process.kill_tree();
    let seen = exit
        .wait_for(Option::is_some)
        .await
        .ok()
        .and_then(|seen| *seen);
    seen.unwrap_or_default()
}

fn kind_of(message: &Message) -> &'static str {
    match message {
        Message::Handshake(_) => "handshake",
        Message::StartupError(_) => "startup_error",
        Message::Request(_) => "request",
        Message::Reply(_) => "reply",
        Message::Draining(_) => "draining",
        Message::Cancel(_) => "cancel",
        Message::StreamRequest(_) => "stream_request",
        Message::Chunk(_) => "chunk",
        Message::Credit(_) => "credit",
    }
}

#[async_trait]
impl WorkerConnection for ProcessConnection {
    fn handshake(&self) -> &Handshake {
        &self.handshake
    }

    async fn call(&self, request: Request) -> Result<Outcome, CallError> {
        self.call_with_usage(request)
            .await
            .map(|replied| replied.outcome)
    }

    async fn call_with_usage(&self, request: Request) -> Result<Replied, CallError> {
        let request_id = request.id;
        let reply = {
            let mut state = self.shared.lock();
            self.shared.check_open(&state, request_id)?;
            let (sender, reply) = oneshot::channel();
            if state
                .pending
                .insert(request_id, Waiter::Call(sender))
                .is_err()
            {
                return Err(CallError::DuplicateRequestId {
                    worker_id: self.shared.worker_id,
                    request_id,
                });
            }
            // Queued while holding the lock, so a concurrent `die` either saw
            // this entry (and fails it) or happened before (and we returned).
            // Should the writer be closed already, the entry stays pending
            // until the reader reports why.
            state.outbox.push_back(Message::Request(request));
            reply
        };
        self.shared.write_outbox().await;
        reply.await.unwrap_or_else(|_| {
            Err(CallError::Closed {
                worker_id: self.shared.worker_id,
                reason: "the connection was dropped".to_owned(),
            })
        })
    }

    async fn call_stream(
        &self,
        request: Request,
        window: NonZeroU32,
    ) -> Result<ReplyStream, CallError> {
        let request_id = request.id;
        let stream = {
            let mut state = self.shared.lock();
            self.shared.check_open(&state, request_id)?;
            if state.pending.contains(request_id) {
                return Err(CallError::DuplicateRequestId {
                    worker_id: self.shared.worker_id,
                    request_id,
                });
            }
            let control = Arc::new(Control {
                shared: Arc::clone(&self.shared),
            });
            let (sender, stream) =
                stream_channel(self.shared.worker_id, request_id, window, control);
            let waiter = Waiter::Stream {
                sender,
                next_seq: 0,
            };
            if state.pending.insert(request_id, waiter).is_err() {
                return Err(CallError::DuplicateRequestId {
                    worker_id: self.shared.worker_id,
                    request_id,
                });
            }
            // Queued under the lock, as `call` does, so its credits and its
            // cancel follow it.
            state
                .outbox
                .push_back(Message::StreamRequest(StreamRequest::new(
                    request,
                    window.get(),
                )));
            stream
        };
        // Written by the caller, as `call` does. Should this future be dropped
        // part-way, the stream it holds is dropped too: its cancel is queued
        // after the request, and the writer task writes both.
        self.shared.write_outbox().await;
        Ok(stream)
    }

    fn in_flight(&self) -> usize {
        self.shared.lock().pending.len()
    }

    fn cancel(&self, request_id: RequestId) {
        self.shared.send_cancel(request_id);
    }

    async fn exited(&self) -> WorkerExit {
        let mut exit = self.shared.exit.clone();
        let seen = exit
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|seen| *seen);
        // The spawned process (the guardian, or a wrapper) can end a moment
        // before the worker's stdout does: let the reader deliver what the
        // worker sent, and report the exit to pending calls, first.
        let mut reader_done = self.shared.reader_done.subscribe();
        let _ =
            tokio::time::timeout(EXIT_AFTER_EOF_GRACE, reader_done.wait_for(|done| *done)).await;
        seen.unwrap_or_default()
    }

    fn try_exit(&self) -> Option<WorkerExit> {
        *self.shared.exit.borrow()
    }

    fn terminate(&self) {
        self.shared.process.terminate();
    }

    fn kill(&self) {
        // A worker that already exited was not killed by the host: its
        // callers learn how it ended (the reader may not have got there yet).
        let dead = match self.try_exit() {
            Some(exit) => Dead::Exited(exit),
            None => Dead::Closed("the host killed the worker".to_owned()),
        };
        self.shared.die(dead);
        self.shared.process.kill_tree();
    }

    fn process_id(&self) -> Option<u32> {
        Some(self.shared.process.pid())
    }

    fn is_draining(&self) -> bool {
        self.shared.lock().draining
    }

    fn resident_memory_bytes(&self) -> Option<u64> {
        if self.try_exit().is_some() {
            return None;
        }
        memory::resident_bytes(self.shared.reported_pid)
    }
}

impl Shared {
    /// Queues a `cancel` for a request still waiting for its reply, for the
    /// writer task (a cancel cannot wait for the worker's stdin).
    fn send_cancel(&self, request_id: RequestId) {
        let mut state = self.lock();
        // Only a request still waiting for its reply is worth a frame; the
        // call itself stays pending until the worker answers it (exactly once:
        // `cancelled`, or its result if it finished first) or dies. A
        // draining worker finishes or refuses everything it holds anyway.
        if state.dead.is_some() || state.draining || !state.pending.contains(request_id) {
            return;
        }
        // Queued under the lock, like a request, so the cancel follows its
        // request.
        state
            .outbox
            .push_back(Message::Cancel(Cancel { id: request_id }));
        drop(state);
        self.write_wanted.notify_one();
    }
}

/// A stream's way back to its worker: credit as its consumer reads, a cancel
/// when the consumer lets go. Both are queued in the outbox for the writer
/// task (neither may wait); once the connection is dropped (or dead) they are
/// not queued at all.
#[derive(Debug)]
struct Control {
    shared: Arc<Shared>,
}

impl StreamControl for Control {
    fn grant(&self, request_id: RequestId, grant: u32) {
        let mut state = self.shared.lock();
        if state.dead.is_some() || state.closing || !state.pending.contains(request_id) {
            return;
        }
        // Queued under the lock, so it follows the stream's request. A grant
        // for the same stream still waiting at the end of the outbox takes
        // this one in: one frame for both.
        if let Some(Message::Credit(queued)) = state.outbox.back_mut()
            && queued.id == request_id
            && let Some(sum) = queued.grant.checked_add(grant)
        {
            queued.grant = sum;
            return;
        }
        state.outbox.push_back(Message::Credit(Credit {
            id: request_id,
            grant,
        }));
        drop(state);
        self.shared.write_wanted.notify_one();
    }

    fn cancel(&self, request_id: RequestId) {
        self.shared.send_cancel(request_id);
    }
}

impl Drop for ProcessConnection {
    fn drop(&mut self) {
        self.shared
            .die(Dead::Closed("the connection was dropped".to_owned()));
        self.shared.lock().closing = true;
        self.shared.write_wanted.notify_one();
        self.shared.process.kill_tree();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use pypool_seam::{RemoteError, RemoteErrorKind};
    use pypool_wire::{Draining, Reply, encode_frame};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    const MAX: usize = 1 << 20;

    /// A stand-in process in its own group: dropping the connection kills
    /// the group of the handshake's pid, which must never be the test's own.
    fn stand_in() -> std::process::Child {
        use std::os::unix::process::CommandExt;
        std::process::Command::new("sleep")
            .arg("60")
            .process_group(0)
            .spawn()
            .unwrap()
    }

    fn handshake(pid: u32) -> Handshake {
        Handshake {
            protocol: pypool_wire::PROTOCOL_VERSION,
            worker_id: 4,
            pid,
            python_version: "3.11.7".into(),
            commands: Vec::new(),
            capacity: 1,
        }
    }

    /// A connection over in-memory pipes; returns the worker's ends
    /// (its stdout to write frames to, its stdin to read requests from).
    fn connect(
        pid: u32,
    ) -> (
        ProcessConnection,
        DuplexStream,
        FramedRead<DuplexStream, MessageCodec>,
    ) {
        connect_through(pid, 1 << 16)
    }

    /// [`connect`] with a pipe to the worker's stdin holding `stdin_bytes`.
    fn connect_through(
        pid: u32,
        stdin_bytes: usize,
    ) -> (
        ProcessConnection,
        DuplexStream,
        FramedRead<DuplexStream, MessageCodec>,
    ) {
        let (host_out, worker_out) = tokio::io::duplex(1 << 16);
        let (host_in, worker_in) = tokio::io::duplex(stdin_bytes);
        let (_exit_tx, exit) = watch::channel(None);
        std::mem::forget(_exit_tx);
        let connection = ProcessConnection::start(
            handshake(pid),
            FramedRead::new(host_out, MessageCodec::new(MAX)),
            host_in,
            MAX,
            exit,
            Arc::new(SpawnedProcess::new(pid).unwrap()),
        );
        (
            connection,
            worker_out,
            FramedRead::new(worker_in, MessageCodec::new(MAX)),
        )
    }

    async fn send(worker_out: &mut DuplexStream, message: Message) {
        worker_out
            .write_all(&encode_frame(&message, MAX).unwrap())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn draining_refuses_new_calls_closes_stdin_and_not_started_is_never_sent() {
        let mut stand_in = stand_in();
        let (connection, mut worker_out, mut worker_in) = connect(stand_in.id());
        let connection = Arc::new(connection);
        // A request already sent before the worker drained.
        let sent = tokio::spawn({
            let connection = Arc::clone(&connection);
            async move {
                connection
                    .call(Request {
                        id: 1,
                        command: "work".into(),
                        args: serde_json::Map::new(),
                    })
                    .await
            }
        });
        let Some(Ok(Message::Request(request))) = worker_in.next().await else {
            panic!("the request reaches the worker")
        };
        assert_eq!(request.id, 1);
        send(&mut worker_out, Message::Draining(Draining {})).await;
        // The host closes the worker's stdin: the worker reads EOF.
        assert!(worker_in.next().await.is_none(), "stdin is closed");
        assert!(connection.is_draining());
        // New calls fail at once, as never sent.
        let refused = connection
            .call(Request {
                id: 2,
                command: "work".into(),
                args: serde_json::Map::new(),
            })
            .await;
        assert!(
            matches!(refused, Err(CallError::NotSent { request_id: 2, .. })),
            "{refused:?}"
        );
        // The worker did not start request 1: `not_started` is a never-sent error.
        send(
            &mut worker_out,
            Message::Reply(Reply {
                id: 1,
                outcome: Outcome::Error {
                    error: RemoteError {
                        kind: RemoteErrorKind::Other(NOT_STARTED.into()),
                        message: "worker 4 is stopping".into(),
                        exception_type: None,
                        traceback: None,
                    },
                },
                usage: None,
            }),
        )
        .await;
        let outcome = sent.await.unwrap();
        assert!(
            matches!(&outcome, Err(CallError::NotSent { request_id: 1, reason, .. }) if reason.contains("stopping")),
            "{outcome:?}"
        );
        let mut rest = Vec::new();
        let _ = worker_in.get_mut().read_to_end(&mut rest).await;
        assert!(rest.is_empty());
        drop(connection);
        let _ = stand_in.kill();
        let _ = stand_in.wait();
    }

    /// Reads the worker's stdin until `seen` holds `count` messages.
    async fn read_frames(
        worker_in: &mut FramedRead<DuplexStream, MessageCodec>,
        bytes: &mut Vec<u8>,
        seen: &mut Vec<Message>,
        count: usize,
    ) {
        let mut chunk = [0u8; 1024];
        while seen.len() < count {
            let read = tokio::time::timeout(
                Duration::from_secs(30),
                worker_in.get_mut().read(&mut chunk),
            )
            .await
            .expect("the frames left behind are written")
            .unwrap();
            assert!(read > 0, "the worker's stdin closed early");
            bytes.extend_from_slice(&chunk[..read]);
            while bytes.len() >= 4 {
                let length = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
                if bytes.len() < 4 + length {
                    break;
                }
                let message: Message = serde_json::from_slice(&bytes[4..4 + length])
                    .expect("whole frames, never interleaved");
                seen.push(message);
                bytes.drain(..4 + length);
            }
        }
    }

    #[tokio::test]
    async fn a_caller_dropped_while_writing_its_request_leaves_whole_frames_behind() {
        let mut stand_in = stand_in();
        // A 64-byte pipe: the caller's write of a 4 KiB request stalls part-way.
        let (connection, mut worker_out, mut worker_in) = connect_through(stand_in.id(), 64);
        let connection = Arc::new(connection);
        let big = |id: u64| Request {
            id,
            command: "work".into(),
            args: serde_json::json!({ "blob": "x".repeat(4096) })
                .as_object()
                .cloned()
                .unwrap(),
        };
        let stalled = tokio::spawn({
            let connection = Arc::clone(&connection);
            async move { connection.call(big(1)).await }
        });
        // The first bytes arrive: the caller is writing (and stalls there).
        let mut first = [0u8; 16];
        worker_in.get_mut().read_exact(&mut first).await.unwrap();
        stalled.abort();
        assert!(stalled.await.unwrap_err().is_cancelled());
        // With nothing else going on, the rest of frame 1 is written (by the
        // writer task: the caller that started it is gone), whole.
        let mut bytes = first.to_vec();
        let mut seen = Vec::new();
        read_frames(&mut worker_in, &mut bytes, &mut seen, 1).await;
        assert!(
            matches!(&seen[0], Message::Request(request) if request.id == 1),
            "{:?}",
            seen[0]
        );
        // Then another caller's request and a cancel: each whole.
        let next = tokio::spawn({
            let connection = Arc::clone(&connection);
            async move { connection.call(big(2)).await }
        });
        connection.cancel(1);
        read_frames(&mut worker_in, &mut bytes, &mut seen, 3).await;
        // Request 2 and the cancel of 1 were queued by two tasks at once:
        // either order, each whole, both after the half-written frame 1.
        assert!(
            seen[1..]
                .iter()
                .any(|message| matches!(message, Message::Request(request) if request.id == 2)),
            "{seen:?}"
        );
        assert!(
            seen[1..]
                .iter()
                .any(|message| matches!(message, Message::Cancel(cancel) if cancel.id == 1)),
            "{seen:?}"
        );
        send(
            &mut worker_out,
            Message::Reply(Reply {
                id: 2,
                outcome: Outcome::Ok {
                    result: serde_json::json!(2),
                },
                usage: None,
            }),
        )
        .await;
        assert!(next.await.unwrap().is_ok());
        drop(connection);
        let _ = stand_in.kill();
        let _ = stand_in.wait();
    }

    #[tokio::test]
    async fn cancel_writes_a_frame_after_its_request_only_while_it_is_pending() {
        let mut stand_in = stand_in();
        let (connection, mut worker_out, mut worker_in) = connect(stand_in.id());
        let connection = Arc::new(connection);
        let pending = tokio::spawn({
            let connection = Arc::clone(&connection);
            async move {
                connection
                    .call(Request {
                        id: 7,
                        command: "slow".into(),
                        args: serde_json::Map::new(),
                    })
                    .await
            }
        });
        let Some(Ok(Message::Request(request))) = worker_in.next().await else {
            panic!("the request reaches the worker")
        };
        assert_eq!(request.id, 7);
        connection.cancel(99); // not pending: nothing is written
        connection.cancel(7);
        let written = tokio::time::timeout(Duration::from_secs(30), worker_in.next()).await;
        let Ok(Some(Ok(Message::Cancel(cancel)))) = written else {
            panic!("the cancel follows its request, got {written:?}")
        };
        assert_eq!(cancel.id, 7);
        // The call still ends with the worker's one reply.
        send(
            &mut worker_out,
            Message::Reply(Reply {
                id: 7,
                outcome: Outcome::Error {
                    error: RemoteError {
                        kind: RemoteErrorKind::Cancelled,
                        message: "cancelled".into(),
                        exception_type: None,
                        traceback: None,
                    },
                },
                usage: None,
            }),
        )
        .await;
        let outcome = pending.await.unwrap();
        assert!(
            matches!(&outcome, Ok(Outcome::Error { error }) if error.kind == RemoteErrorKind::Cancelled),
            "{outcome:?}"
        );
        assert_eq!(connection.in_flight(), 0);
        // Answered: a late cancel writes nothing; the next frame is the next request.
        connection.cancel(7);
        let next = tokio::spawn({
            let connection = Arc::clone(&connection);
            async move {
                connection
                    .call(Request {
                        id: 8,
                        command: "ping".into(),
                        args: serde_json::Map::new(),
                    })
                    .await
            }
        });
        let Some(Ok(Message::Request(request))) = worker_in.next().await else {
            panic!("only the next request was written")
        };
        assert_eq!(request.id, 8);
        send(
            &mut worker_out,
            Message::Reply(Reply {
                id: 8,
                outcome: Outcome::Ok {
                    result: serde_json::json!(null),
                },
                usage: None,
            }),
        )
        .await;
        assert!(next.await.unwrap().is_ok());
        drop(connection);
        let _ = stand_in.kill();
        let _ = stand_in.wait();
    }

    fn stream_request(id: RequestId) -> Request {
        Request {
            id,
            command: "tokens".into(),
            args: serde_json::Map::new(),
        }
    }

    fn chunk(id: RequestId, seq: u64) -> Message {
        Message::Chunk(Chunk {
            id,
            seq,
            data: serde_json::json!(seq),
        })
    }

    async fn next_written(worker_in: &mut FramedRead<DuplexStream, MessageCodec>) -> Message {
        let written = tokio::time::timeout(Duration::from_secs(30), worker_in.next()).await;
        let Ok(Some(Ok(message))) = written else {
            panic!("the host writes a frame, got {written:?}")
        };
        message
    }

    async fn next_item(
        stream: &mut ReplyStream,
    ) -> Option<Result<pypool_seam::StreamItem, CallError>> {
        tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("the stream yields within the bound")
    }

    #[tokio::test]
    async fn a_stream_sends_its_window_as_credit_grants_as_it_is_read_and_ends_with_the_reply() {
        let mut stand_in = stand_in();
        let (connection, mut worker_out, mut worker_in) = connect(stand_in.id());
        let window = NonZeroU32::new(2).unwrap();
        let mut stream = connection
            .call_stream(stream_request(5), window)
            .await
            .unwrap();
        let Message::StreamRequest(request) = next_written(&mut worker_in).await else {
            panic!("a stream_request is written")
        };
        assert_eq!((request.id, request.credit), (5, 2));
        send(&mut worker_out, chunk(5, 0)).await;
        send(&mut worker_out, chunk(5, 1)).await;
        assert_eq!(
            next_item(&mut stream).await.unwrap().unwrap(),
            pypool_seam::StreamItem::Chunk(serde_json::json!(0))
        );
        let Message::Credit(credit) = next_written(&mut worker_in).await else {
            panic!("reading a chunk grants credit")
        };
        assert_eq!((credit.id, credit.grant), (5, 1));
        send(
            &mut worker_out,
            Message::Reply(Reply {
                id: 5,
                outcome: Outcome::Ok {
                    result: serde_json::json!("done"),
                },
                usage: None,
            }),
        )
        .await;
        assert_eq!(
            next_item(&mut stream).await.unwrap().unwrap(),
            pypool_seam::StreamItem::Chunk(serde_json::json!(1))
        );
        assert_eq!(
            next_item(&mut stream).await.unwrap().unwrap(),
            pypool_seam::StreamItem::End(Outcome::Ok {
                result: serde_json::json!("done")
            })
        );
        assert!(next_item(&mut stream).await.is_none());
        assert_eq!(connection.in_flight(), 0);
        drop(connection);
        let _ = stand_in.kill();
        let _ = stand_in.wait();
    }

    #[tokio::test]
    async fn a_chunk_beyond_the_credit_is_a_protocol_violation_after_the_delivered_chunks() {
        let mut stand_in = stand_in();
        let (connection, mut worker_out, mut worker_in) = connect(stand_in.id());
        let mut stream = connection
            .call_stream(stream_request(6), NonZeroU32::MIN)
            .await
            .unwrap();
        let _ = next_written(&mut worker_in).await;
        send(&mut worker_out, chunk(6, 0)).await;
        send(&mut worker_out, chunk(6, 1)).await;
        assert_eq!(
            next_item(&mut stream).await.unwrap().unwrap(),
            pypool_seam::StreamItem::Chunk(serde_json::json!(0))
        );
        let end = next_item(&mut stream).await.unwrap();
        assert!(
            matches!(&end, Err(CallError::ProtocolViolation { detail, .. }) if detail.contains("credit")),
            "{end:?}"
        );
        drop(connection);
        let _ = stand_in.kill();
        let _ = stand_in.wait();
    }

    #[tokio::test]
    async fn a_chunk_out_of_sequence_or_for_a_plain_call_is_a_protocol_violation() {
        let mut stand_in = stand_in();
        let (connection, mut worker_out, mut worker_in) = connect(stand_in.id());
        let mut stream = connection
            .call_stream(stream_request(8), NonZeroU32::MIN)
            .await
            .unwrap();
        let _ = next_written(&mut worker_in).await;
        send(&mut worker_out, chunk(8, 1)).await;
        let end = next_item(&mut stream).await.unwrap();
        assert!(
            matches!(&end, Err(CallError::ProtocolViolation { detail, .. }) if detail.contains("chunk 0 was due")),
            "{end:?}"
        );
        drop(connection);
        let _ = stand_in.kill();
        let _ = stand_in.wait();

        let mut stand_in = super::tests::stand_in();
        let (connection, mut worker_out, mut worker_in) = connect(stand_in.id());
        let connection = Arc::new(connection);
        let call = tokio::spawn({
            let connection = Arc::clone(&connection);
            async move { connection.call(stream_request(9)).await }
        });
        let _ = next_written(&mut worker_in).await;
        send(&mut worker_out, chunk(9, 0)).await;
        let outcome = call.await.unwrap();
        assert!(
            matches!(&outcome, Err(CallError::ProtocolViolation { detail, .. }) if detail.contains("not sent as a stream_request")),
            "{outcome:?}"
        );
        drop(connection);
        let _ = stand_in.kill();
        let _ = stand_in.wait();
    }

    #[tokio::test]
    async fn dropping_a_stream_cancels_it_and_its_late_chunks_are_discarded() {
        let mut stand_in = stand_in();
        let (connection, mut worker_out, mut worker_in) = connect(stand_in.id());
        let stream = connection
            .call_stream(stream_request(3), NonZeroU32::new(4).unwrap())
            .await
            .unwrap();
        let _ = next_written(&mut worker_in).await;
        send(&mut worker_out, chunk(3, 0)).await;
        drop(stream);
        let Message::Cancel(cancel) = next_written(&mut worker_in).await else {
            panic!("dropping the stream writes a cancel")
        };
        assert_eq!(cancel.id, 3);
        assert_eq!(
            connection.in_flight(),
            1,
            "in flight until the worker answers"
        );
        send(&mut worker_out, chunk(3, 1)).await;
        send(
            &mut worker_out,
            Message::Reply(Reply {
                id: 3,
                outcome: Outcome::Error {
                    error: RemoteError {
                        kind: RemoteErrorKind::Cancelled,
                        message: "cancelled".into(),
                        exception_type: None,
                        traceback: None,
                    },
                },
                usage: None,
            }),
        )
        .await;
        // The cancelled stream's reply frees it (a bounded wait for the reader).
        tokio::time::timeout(Duration::from_secs(30), async {
            while connection.in_flight() != 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the reply to the cancelled stream frees it");
        // The connection is still good: a plain call after it is answered.
        let connection = Arc::new(connection);
        let call = tokio::spawn({
            let connection = Arc::clone(&connection);
            async move { connection.call(stream_request(4)).await }
        });
        let Message::Request(request) = next_written(&mut worker_in).await else {
            panic!("the next request is written")
        };
        assert_eq!(request.id, 4);
        send(
            &mut worker_out,
            Message::Reply(Reply {
                id: 4,
                outcome: Outcome::Ok {
                    result: serde_json::json!(1),
                },
                usage: None,
            }),
        )
        .await;
        assert!(call.await.unwrap().is_ok());
        drop(connection);
        let _ = stand_in.kill();
        let _ = stand_in.wait();
    }
}
