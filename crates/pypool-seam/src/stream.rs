//! Streaming replies on the host side: a bounded buffer between whatever
//! reads a worker's chunks (a connection's reader) and the caller consuming
//! them, which returns credit as it reads and cancels when it lets go.
//!
//! It is plain `std` (a mutex and a waker) so both sides of the seam, the
//! real process connection and the mock, share one implementation and one
//! set of semantics.

use std::collections::VecDeque;
use std::fmt;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use futures::Stream;
use serde_json::Value;

use crate::{CallError, Outcome, RequestId, WorkerId};

/// How many chunks of one stream the host holds when the caller does not
/// say: the initial credit of a `stream_request`.
pub const DEFAULT_STREAM_WINDOW: NonZeroU32 = match NonZeroU32::new(32) {
    Some(window) => window,
    None => NonZeroU32::MIN,
};

/// One item of a [`ReplyStream`].
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    /// A value the handler yielded, in order.
    Chunk(Value),
    /// The request's final reply; nothing follows it.
    End(Outcome),
}

/// How a [`ReplyStream`] talks back to the worker it reads from. Both calls
/// must return at once (queue a frame, never wait for the worker).
pub trait StreamControl: Send + Sync + fmt::Debug {
    /// The consumer read `grant` chunks: the worker may send that many more.
    fn grant(&self, request_id: RequestId, grant: u32);
    /// The consumer dropped the stream before its end: stop the request.
    fn cancel(&self, request_id: RequestId);
}

/// Why a chunk could not be buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The buffer holds as many chunks as the window: the worker sent a chunk
    /// it had no credit for (a protocol violation).
    #[error(
        "the worker sent more chunks than it had credit for (window of {window}); it broke the protocol"
    )]
    OverCredit {
        /// The stream's window.
        window: u32,
    },
    /// The consumer dropped the stream (its request is being cancelled): the
    /// chunk is discarded, as a late reply is.
    #[error("the stream's consumer is gone; the chunk is discarded")]
    ConsumerGone,
    /// The stream already ended (its final reply or an error was delivered).
    #[error("the stream already ended")]
    Ended,
}

#[derive(Debug)]
struct Buffer {
    chunks: VecDeque<Value>,
    end: Option<Result<Outcome, CallError>>,
    /// The final reply's `usage`, once it arrived.
    usage: Option<Value>,
    /// The end was set (it may have been taken by the consumer since).
    ended: bool,
    consumer_gone: bool,
    waker: Option<Waker>,
}

#[derive(Debug)]
struct Shared {
    worker_id: WorkerId,
    request_id: RequestId,
    window: u32,
    buffer: Mutex<Buffer>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A bounded buffer for one streaming request: the [`StreamSender`] is the
/// connection's (it pushes chunks and ends the stream), the [`ReplyStream`]
/// the caller's.
///
/// The buffer never holds more than `window` chunks: the worker starts with
/// `window` credit and the stream grants credit back only for chunks the
/// consumer has taken out (in batches of half the window), so a worker that
/// respects its credit always finds room, and one that does not gets
/// [`PushError::OverCredit`].
pub fn stream_channel(
    worker_id: WorkerId,
    request_id: RequestId,
    window: NonZeroU32,
    control: Arc<dyn StreamControl>,
) -> (StreamSender, ReplyStream) {
    let shared = Arc::new(Shared {
        worker_id,
        request_id,
        window: window.get(),
        buffer: Mutex::new(Buffer {
            chunks: VecDeque::new(),
            end: None,
            usage: None,
            ended: false,
            consumer_gone: false,
            waker: None,
        }),
    });
    let batch = window.get().div_ceil(2);
    (
        StreamSender {
            shared: Arc::clone(&shared),
        },
        ReplyStream {
            shared,
            control,
            consumed: 0,
            batch,
            done: false,
        },
    )
}

/// The connection's end of a stream: buffers chunks, then delivers the end.
/// Dropped without [`finish`](Self::finish), it ends the stream with
/// [`CallError::Closed`].
#[derive(Debug)]
pub struct StreamSender {
    shared: Arc<Shared>,
}

impl StreamSender {
    /// The request this stream answers.
    pub fn request_id(&self) -> RequestId {
        self.shared.request_id
    }

    /// Buffers one chunk for the consumer; never waits.
    pub fn push(&self, chunk: Value) -> Result<(), PushError> {
        let waker = {
            let mut buffer = self.shared.lock();
            if buffer.ended {
                return Err(PushError::Ended);
            }
            if buffer.consumer_gone {
                return Err(PushError::ConsumerGone);
            }
            if buffer.chunks.len() >= self.shared.window as usize {
                return Err(PushError::OverCredit {
                    window: self.shared.window,
                });
            }
            buffer.chunks.push_back(chunk);
            buffer.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Ends the stream: the consumer reads the chunks already buffered, then
    /// `end` (the final reply, or why there is none). Later calls are ignored.
    pub fn finish(&self, end: Result<Outcome, CallError>) {
        self.finish_with_usage(end, None);
    }

    /// [`finish`](Self::finish) with the final reply's `usage`, which the
    /// consumer reads with [`ReplyStream::usage`].
    pub fn finish_with_usage(&self, end: Result<Outcome, CallError>, usage: Option<Value>) {
        let waker = {
            let mut buffer = self.shared.lock();
            if buffer.ended {
                return;
            }
            buffer.ended = true;
            buffer.usage = usage;
            if !buffer.consumer_gone {
                buffer.end = Some(end);
            }
            buffer.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Whether the consumer dropped the stream.
    pub fn consumer_gone(&self) -> bool {
        self.shared.lock().consumer_gone
    }

    /// How many chunks wait in the buffer.
    pub fn buffered_chunks(&self) -> usize {
        self.shared.lock().chunks.len()
    }
}

impl Drop for StreamSender {
    fn drop(&mut self) {
        if !self.shared.lock().ended {
            self.finish(Err(CallError::Closed {
                worker_id: self.shared.worker_id,
                reason: format!(
                    "the connection dropped stream {} without ending it",
                    self.shared.request_id
                ),
            }));
        }
    }
}

/// The caller's end of a streaming request: a [`Stream`] of
/// [`StreamItem::Chunk`]s, ending with one [`StreamItem::End`] (the final
/// reply) or one `Err` ([`CallError::WorkerExited`] after the chunks already
/// delivered when the worker died mid-stream), then `None`.
///
/// Reading a chunk returns credit to the worker (in batches of half the
/// window), so at most `window` chunks wait in the host however slow the
/// reader. Dropping the stream before its end cancels the request on the
/// worker; the request stays in flight on its connection until the worker
/// answers the cancel, and chunks arriving meanwhile are discarded.
pub struct ReplyStream {
    shared: Arc<Shared>,
    control: Arc<dyn StreamControl>,
    /// Chunks taken out since credit was last granted.
    consumed: u32,
    batch: u32,
    /// The end was returned: only `None` follows.
    done: bool,
}

impl ReplyStream {
    /// The request this stream answers.
    pub fn request_id(&self) -> RequestId {
        self.shared.request_id
    }

    /// The most chunks the host holds for this stream (its initial credit).
    pub fn window(&self) -> u32 {
        self.shared.window
    }

    /// How many chunks wait in the host, read by nobody yet (at most
    /// [`window`](Self::window)).
    pub fn buffered_chunks(&self) -> usize {
        self.shared.lock().chunks.len()
    }

    /// The final reply's `usage` (e.g. a streamed DSPy program's LM usage),
    /// once the stream has ended with a reply that reported one.
    pub fn usage(&self) -> Option<Value> {
        self.shared.lock().usage.clone()
    }

    /// A stream that ends at once with `end` and never talks to a worker
    /// (for a connection answering inside the call, or refusing to stream).
    pub fn ended(
        worker_id: WorkerId,
        request_id: RequestId,
        end: Result<Outcome, CallError>,
    ) -> Self {
        let (sender, stream) =
            stream_channel(worker_id, request_id, NonZeroU32::MIN, Arc::new(NoControl));
        sender.finish(end);
        stream
    }
}

impl fmt::Debug for ReplyStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyStream")
            .field("request_id", &self.shared.request_id)
            .field("window", &self.shared.window)
            .field("buffered", &self.buffered_chunks())
            .field("done", &self.done)
            .finish()
    }
}

impl Stream for ReplyStream {
    type Item = Result<StreamItem, CallError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let (chunk, ended) = {
            let mut buffer = self.shared.lock();
            match buffer.chunks.pop_front() {
                Some(chunk) => (Some(chunk), buffer.ended),
                None => match buffer.end.take() {
                    Some(end) => {
                        drop(buffer);
                        self.done = true;
                        return Poll::Ready(Some(end.map(StreamItem::End)));
                    }
                    None => {
                        buffer.waker = Some(cx.waker().clone());
                        return Poll::Pending;
                    }
                },
            }
        };
        let this = &mut *self;
        this.consumed += 1;
        if this.consumed >= this.batch {
            let grant = std::mem::take(&mut this.consumed);
            if !ended {
                this.control.grant(this.shared.request_id, grant);
            }
        }
        Poll::Ready(chunk.map(|chunk| Ok(StreamItem::Chunk(chunk))))
    }
}

impl Drop for ReplyStream {
    fn drop(&mut self) {
        let cancel = {
            let mut buffer = self.shared.lock();
            buffer.consumer_gone = true;
            buffer.chunks.clear();
            !buffer.ended
        };
        if cancel {
            self.control.cancel(self.shared.request_id);
        }
    }
}

#[derive(Debug)]
struct NoControl;

impl StreamControl for NoControl {
    fn grant(&self, _request_id: RequestId, _grant: u32) {}
    fn cancel(&self, _request_id: RequestId) {}
}
