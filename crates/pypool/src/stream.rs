//! Streamed requests: `execute_stream` and `execute_program_stream`.
//!
//! An [`ExecuteStream`] is a hand-written [`Stream`] over the seam's
//! [`ReplyStream`]: it polls the worker's chunks directly (no task, no
//! channel in between) and adds what the pool owes every request — the
//! lease (one capacity slot of the worker, held until the stream ends), the
//! breaker permit, the deadline over the whole stream, the optional idle
//! limit between items, the settle of the attempt and its metrics.
//!
//! How a stream ends, and when its worker slot is settled:
//!
//! * its final reply (or a typed error: the worker's error, `worker_exited`
//!   after the chunks already delivered, a protocol violation): settled at
//!   once through the same settle as `execute` (`Core::finish`), never
//!   retried;
//! * its deadline or idle limit: the caller gets the error at once; the
//!   request is cancelled on the worker and settled when the worker ends it
//!   within `Timeouts::cancel_grace` (else the worker is killed and
//!   replaced) — the path a plain call's deadline takes;
//! * the caller drops it: the same cancel and grace, in a task; a worker
//!   that ends the request in time is kept and nothing counts against the
//!   command.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use pypool_recovery::WorkerAction;
use pypool_seam::{CallError, Outcome, ReplyStream, StreamItem as WireItem, WorkerId};
use serde_json::{Map, Value};
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use crate::core::Ending;
use crate::execute::{class_of_call, class_of_remote, pool_error_of_call};
use crate::inner::Inner;
use crate::job::{Job, JobKey, ProgramKey};
use crate::lease::{CommandPermit, Lease};
use crate::session::Route;
use crate::{PoolError, metrics};

/// One item of an [`ExecuteStream`]: the handler's chunks in order, then its
/// final result. An error, when the stream ends with one, comes as the
/// stream's last item (`Err`) instead of `Done`.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    /// A value the handler yielded (a generator's `yield`; for a streamed
    /// `dspy` program, `{"field", "chunk", "predictor"}`).
    Chunk(Value),
    /// The handler's final result (a generator's return value, `null` when
    /// it returns nothing; a `dspy` program's output fields). Nothing follows.
    Done(Value),
}

/// The reply of a streamed request: a [`Stream`] of
/// `Result<StreamItem, PoolError>` — [`StreamItem::Chunk`]s in order, then
/// one [`StreamItem::Done`] or one `Err`, then `None`.
///
/// * **Memory.** At most the pool's stream window
///   ([`PoolBuilder::stream_window`](crate::PoolBuilder::stream_window))
///   of chunks waits in the host: a consumer that stops reading pauses the
///   handler on the worker.
/// * **Capacity.** The stream holds one slot of its worker's capacity from
///   the moment it is sent until it ends.
/// * **Dropping** it before its end cancels the request on the worker; the
///   slot is freed when the worker ends the request, or the worker is
///   killed and replaced after `Timeouts::cancel_grace`.
/// * **Time.** `Timeouts::request` covers the whole stream, from sending
///   it to its end; `Timeouts::stream_idle` (optional) bounds each wait
///   for the next item.
/// * **Never retried** once sent: a worker dying mid-stream ends it with
///   [`PoolError::WorkerExited`] after the chunks already delivered. Only a
///   request that never reached a worker (it was draining) is sent again,
///   under the recovery rules, as `execute` would.
///
/// Nothing happens until the stream is first polled.
#[must_use = "a stream does nothing unless polled"]
pub struct ExecuteStream {
    state: State,
    usage: Option<Value>,
    worker_id: Option<WorkerId>,
}

enum State {
    /// Refused before reaching the pool (bad arguments, reserved command).
    Refused(PoolError),
    /// Looking up the program, checking out a worker, sending.
    Opening(Pin<Box<dyn Future<Output = Result<Open, PoolError>> + Send>>),
    /// Sent: reading chunks.
    Streaming(Box<Open>),
    /// The end (or an error) was returned.
    Ended,
}

impl std::fmt::Debug for ExecuteStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Refused(_) => "refused",
            State::Opening(_) => "opening",
            State::Streaming(_) => "streaming",
            State::Ended => "ended",
        };
        f.debug_struct("ExecuteStream")
            .field("state", &state)
            .field("worker_id", &self.worker_id)
            .finish()
    }
}

impl ExecuteStream {
    pub(crate) fn refused(error: PoolError) -> Self {
        Self {
            state: State::Refused(error),
            usage: None,
            worker_id: None,
        }
    }

    pub(crate) fn opening(
        opening: impl Future<Output = Result<Open, PoolError>> + Send + 'static,
    ) -> Self {
        Self {
            state: State::Opening(Box::pin(opening)),
            usage: None,
            worker_id: None,
        }
    }

    /// The worker serving the stream, once it was sent.
    pub fn worker_id(&self) -> Option<WorkerId> {
        self.worker_id
    }

    /// How many chunks wait in the host, read by nobody yet: at most the
    /// pool's stream window (0 before the stream is sent and after its end).
    pub fn buffered_chunks(&self) -> usize {
        match &self.state {
            State::Streaming(open) => open.reply.buffered_chunks(),
            _ => 0,
        }
    }

    /// The final reply's `usage` (a `dspy` program's LM usage: calls,
    /// prompt and completion tokens, cost), once the stream ended with a
    /// reply that reported one.
    pub fn usage(&self) -> Option<&Value> {
        self.usage.as_ref()
    }

    #[allow(
        clippy::result_large_err,
        reason = "the stream's item: the pool's one error type, as every call returns"
    )]
    fn end(&mut self, end: Result<Outcome, CallError>) -> Result<StreamItem, PoolError> {
        let State::Streaming(open) = std::mem::replace(&mut self.state, State::Ended) else {
            return Err(PoolError::Connection {
                worker_id: 0,
                command: String::new(),
                request_id: 0,
                detail: "a stream ended twice".to_owned(),
            });
        };
        let (result, usage) = open.finish(end);
        self.usage = usage;
        result.map(StreamItem::Done)
    }

    fn expire(&mut self, expiry: Expiry) -> PoolError {
        let State::Streaming(open) = std::mem::replace(&mut self.state, State::Ended) else {
            return PoolError::Connection {
                worker_id: 0,
                command: String::new(),
                request_id: 0,
                detail: "a stream expired after its end".to_owned(),
            };
        };
        open.expire(expiry)
    }
}

impl Stream for ExecuteStream {
    type Item = Result<StreamItem, PoolError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Ended => return Poll::Ready(None),
                State::Refused(_) => {
                    let State::Refused(error) = std::mem::replace(&mut this.state, State::Ended)
                    else {
                        return Poll::Ready(None);
                    };
                    return Poll::Ready(Some(Err(error)));
                }
                State::Opening(opening) => match opening.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(open)) => {
                        this.worker_id = Some(open.lease.worker_id());
                        this.state = State::Streaming(Box::new(open));
                    }
                    Poll::Ready(Err(error)) => {
                        this.state = State::Ended;
                        return Poll::Ready(Some(Err(error)));
                    }
                },
                State::Streaming(open) => {
                    if open.deadline.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Some(Err(this.expire(Expiry::Deadline))));
                    }
                    match Pin::new(&mut open.reply).poll_next(cx) {
                        Poll::Ready(Some(Ok(WireItem::Chunk(chunk)))) => {
                            if let Some((idle, timer)) = &mut open.idle {
                                timer.as_mut().reset(Instant::now() + *idle);
                            }
                            return Poll::Ready(Some(Ok(StreamItem::Chunk(chunk))));
                        }
                        Poll::Ready(Some(Ok(WireItem::End(outcome)))) => {
                            return Poll::Ready(Some(this.end(Ok(outcome))));
                        }
                        Poll::Ready(Some(Err(error))) => {
                            return Poll::Ready(Some(this.end(Err(error))));
                        }
                        Poll::Ready(None) => {
                            let worker_id = open.lease.worker_id();
                            return Poll::Ready(Some(this.end(Err(CallError::Closed {
                                worker_id,
                                reason: "the stream ended without a final reply".to_owned(),
                            }))));
                        }
                        Poll::Pending => {
                            if let Some((_, timer)) = &mut open.idle {
                                if timer.as_mut().poll(cx).is_ready() {
                                    return Poll::Ready(Some(Err(this.expire(Expiry::Idle))));
                                }
                            }
                            return Poll::Pending;
                        }
                    }
                }
            }
        }
    }
}

impl Drop for ExecuteStream {
    fn drop(&mut self) {
        if let State::Streaming(open) = std::mem::replace(&mut self.state, State::Ended) {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(open.wind_down(WindDown::ConsumerGone));
                }
                // No runtime (it is shutting down): dropping the reply
                // cancels the request and the lease gives the worker back.
                Err(_) => drop(open),
            }
        }
    }
}

/// Why a stream was cut short by the pool.
#[derive(Debug, Clone, Copy)]
enum Expiry {
    Deadline,
    Idle,
}

/// Why a stream is being cancelled on its worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WindDown {
    /// The pool cut it (deadline, idle limit): counts against the command.
    Expired,
    /// Its consumer dropped it: counts nothing if the worker ends it in time.
    ConsumerGone,
}

/// A stream sent to its worker: everything needed to settle it.
pub(crate) struct Open {
    inner: Arc<Inner>,
    lease: Lease,
    permit: CommandPermit,
    reply: ReplyStream,
    key: JobKey,
    command: String,
    learned: Option<ProgramKey>,
    attempt: u32,
    started: Instant,
    sent: Instant,
    deadline: Pin<Box<Sleep>>,
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
}

impl Open {
    /// The stream's end arrived: settles the attempt (never retried).
    fn finish(self, end: Result<Outcome, CallError>) -> (Result<Value, PoolError>, Option<Value>) {
        let Self {
            inner,
            lease,
            permit,
            reply,
            key,
            command,
            learned,
            attempt,
            started,
            sent,
            ..
        } = self;
        let usage = reply.usage();
        let request_id = reply.request_id();
        drop(reply);
        let worker_id = lease.worker_id();
        let (result, failure, replied, learned) = match end {
            Ok(Outcome::Ok { result }) => (Ok(result), None, true, learned),
            Ok(Outcome::Error { error }) => {
                let class = class_of_remote(&error);
                let error = PoolError::Remote {
                    worker_id,
                    command: command.clone(),
                    request_id,
                    error,
                };
                (Err(error), Some(class), true, None)
            }
            Err(call_error) => {
                let call_error = inner.as_seen_by_caller(call_error, request_id);
                let class = class_of_call(&call_error);
                let error = pool_error_of_call(call_error, &command, request_id);
                (Err(error), Some(class), false, None)
            }
        };
        let settled = inner.finish_attempt(
            lease,
            permit,
            &key,
            &command,
            learned,
            Ending {
                failure,
                replied,
                reached_worker: true,
                attempt,
                elapsed: started.elapsed(),
                retriable: false,
            },
        );
        let name = &inner.config.name;
        metrics::request_duration(name, settled.label.clone(), sent.elapsed(), result.is_ok());
        if let Err(error) = &result {
            metrics::request_failed(name, settled.label, error.kind());
        }
        if let Some(usage) = &usage {
            inner.metrics.record_usage(name, &key, usage);
        }
        (result, usage)
    }

    /// The deadline or the idle limit passed: the caller's error now, the
    /// cancel and its grace in a task.
    fn expire(self, expiry: Expiry) -> PoolError {
        let worker_id = self.lease.worker_id();
        let request_id = self.reply.request_id();
        let command = self.command.clone();
        let error = match expiry {
            Expiry::Deadline => PoolError::DeadlineExceeded {
                worker_id,
                command,
                request_id,
                deadline: self.inner.config.timeouts.request,
            },
            Expiry::Idle => PoolError::StreamIdle {
                worker_id,
                command,
                request_id,
                idle: self.idle.as_ref().map_or(Duration::ZERO, |(idle, _)| *idle),
            },
        };
        let label = self
            .inner
            .lock()
            .core
            .count_unsettled_failure(&self.command);
        let name = &self.inner.config.name;
        metrics::request_duration(name, label.clone(), self.sent.elapsed(), false);
        metrics::request_failed(name, label, error.kind());
        tracing::debug!(%error, "stream cancelled");
        tokio::spawn(self.wind_down(WindDown::Expired));
        error
    }

    /// Cancels the request on its worker and settles its slot when the
    /// worker ends it within the cancel grace; else the worker is killed
    /// and replaced (the deadline path of a plain call).
    async fn wind_down(self, why: WindDown) {
        let Self {
            inner,
            lease,
            permit,
            mut reply,
            command,
            ..
        } = self;
        lease.connection().cancel(reply.request_id());
        let grace = inner.config.timeouts.cancel_grace;
        let answered = !grace.is_zero()
            && tokio::time::timeout(grace, async {
                // Chunks still coming are read (and discarded) so the
                // worker is never stuck without credit before it sees the
                // cancel.
                loop {
                    match reply.next().await {
                        Some(Ok(WireItem::Chunk(_))) => {}
                        Some(Ok(WireItem::End(_))) => return true,
                        Some(Err(_)) | None => return false,
                    }
                }
            })
            .await
            .unwrap_or(false);
        drop(reply);
        if answered && why == WindDown::ConsumerGone {
            let worker_id = lease.worker_id();
            lease.disarm();
            let permit = permit.take();
            inner.decide(|books, fx| {
                books.core.release(worker_id, true, WorkerAction::Keep, fx);
                if let Some((key, permit)) = permit {
                    books.core.release_permit(&key, permit);
                }
            });
        } else {
            inner.settle_after_grace(lease, permit, answered, &command);
        }
    }
}

/// How sending a stream went, told by the sending task.
enum Opened {
    Open(Box<Open>),
    Failed {
        error: PoolError,
        retry_after: Option<Duration>,
    },
}

impl Inner {
    /// Checks out a worker for `job` (the session's, where `route` says),
    /// then sends it as a stream. A request that never reached a worker is
    /// tried again under the recovery rules; one that did never is.
    pub(crate) async fn open_stream(
        self: Arc<Self>,
        job: Job,
        route: Option<Route>,
        mut binding: Option<Option<WorkerId>>,
    ) -> Result<Open, PoolError> {
        let label = job.label();
        let key = job.key();
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            attempt = attempt.saturating_add(1);
            let waiting = Instant::now();
            let checked_out = match &route {
                Some(route) => {
                    self.checkout_routed(&label, &key, route, binding.take())
                        .await
                }
                None => self.checkout_admitted(&label, &key).await,
            };
            let (lease, permit) = match checked_out {
                Ok(checked_out) => checked_out,
                Err(error) => {
                    let metric = self.lock().core.count_unsettled_failure(&label);
                    metrics::request_failed(&self.config.name, metric, error.kind());
                    return Err(error);
                }
            };
            self.metrics.checkout_wait(waiting.elapsed());
            // Sending runs in a task of its own: if the caller drops the
            // stream meanwhile, the task still cancels and settles it.
            let (told, opened) = oneshot::channel();
            let sending = Sending {
                inner: Arc::clone(&self),
                lease,
                permit,
                job: job.clone(),
                key: key.clone(),
                label: label.clone(),
                route: route.clone(),
                attempt,
                started,
            };
            tokio::spawn(sending.run(told));
            match opened.await {
                Ok(Opened::Open(open)) => return Ok(*open),
                Ok(Opened::Failed {
                    error,
                    retry_after: Some(delay),
                }) => {
                    tracing::debug!(command = label, attempt, %error, ?delay, "stream not sent; retrying");
                    tokio::time::sleep(delay).await;
                }
                Ok(Opened::Failed {
                    error,
                    retry_after: None,
                }) => return Err(error),
                Err(_task_gone) => {
                    return Err(PoolError::Connection {
                        worker_id: 0,
                        command: label,
                        request_id: 0,
                        detail: "the stream's sending task ended abnormally".to_owned(),
                    });
                }
            }
        }
    }
}

/// Sends one stream attempt on its leased worker.
struct Sending {
    inner: Arc<Inner>,
    lease: Lease,
    permit: CommandPermit,
    job: Job,
    key: JobKey,
    label: String,
    route: Option<Route>,
    attempt: u32,
    started: Instant,
}

impl Sending {
    async fn run(self, told: oneshot::Sender<Opened>) {
        let Self {
            inner,
            lease,
            permit,
            job,
            key,
            label,
            route,
            attempt,
            started,
        } = self;
        let worker_id = lease.worker_id();
        let timeouts = inner.config.timeouts;
        let sent = Instant::now();
        let deadline_at = sent + timeouts.request;
        let in_flight_id = AtomicU64::new(0);
        let performed = tokio::time::timeout_at(
            deadline_at,
            inner.perform_stream(&lease, &job, inner.config.stream_window, &in_flight_id),
        )
        .await;
        let request_id = in_flight_id.load(Ordering::Relaxed);
        match performed {
            Ok((Ok(reply), learned)) => {
                if let Some(route) = &route {
                    // The session prefers the worker that took its stream.
                    inner.stores.affinity.bind(&route.session, worker_id).await;
                }
                let open = Open {
                    inner: Arc::clone(&inner),
                    lease,
                    permit,
                    reply,
                    key,
                    command: label,
                    learned,
                    attempt,
                    started,
                    sent,
                    deadline: Box::pin(tokio::time::sleep_until(deadline_at)),
                    idle: timeouts
                        .stream_idle
                        .map(|idle| (idle, Box::pin(tokio::time::sleep(idle)))),
                };
                if let Err(Opened::Open(open)) = told.send(Opened::Open(Box::new(open))) {
                    // The caller dropped the stream while it was being sent.
                    open.wind_down(WindDown::ConsumerGone).await;
                }
            }
            Ok((Err(call_error), _)) => {
                let reached_worker = !matches!(call_error, CallError::NotSent { .. });
                let class = class_of_call(&call_error);
                let error = pool_error_of_call(call_error, &label, request_id);
                let settled = inner.finish_attempt(
                    lease,
                    permit,
                    &key,
                    &label,
                    None,
                    Ending {
                        failure: Some(class),
                        replied: false,
                        reached_worker,
                        attempt,
                        elapsed: started.elapsed(),
                        retriable: !reached_worker,
                    },
                );
                if settled.retry_after.is_none() {
                    metrics::request_failed(&inner.config.name, settled.label, error.kind());
                }
                let _caller_gone = told.send(Opened::Failed {
                    error,
                    retry_after: settled.retry_after,
                });
            }
            Err(_elapsed) => {
                // Stuck bringing the worker's settings up to date: the
                // deadline of a plain call, without waiting for a grace.
                lease.connection().cancel(request_id);
                let metric = inner.lock().core.count_unsettled_failure(&label);
                let error = PoolError::DeadlineExceeded {
                    worker_id,
                    command: label.clone(),
                    request_id,
                    deadline: timeouts.request,
                };
                metrics::request_failed(&inner.config.name, metric, error.kind());
                inner.settle_after_grace(lease, permit, false, &label);
                let _caller_gone = told.send(Opened::Failed {
                    error,
                    retry_after: None,
                });
            }
        }
    }
}

/// A command's stream, validated before anything else happens.
#[allow(
    clippy::result_large_err,
    reason = "the pool's one error type, as every call returns"
)]
pub(crate) fn command_stream(
    inner: &Arc<Inner>,
    route: Option<Route>,
    command: &str,
    args: Value,
) -> ExecuteStream {
    let args = match crate::pool::check_command(command)
        .and_then(|()| crate::pool::object_args(command, args))
    {
        Ok(args) => args,
        Err(error) => return ExecuteStream::refused(error),
    };
    let job = Job::Command {
        command: command.to_owned(),
        args,
    };
    ExecuteStream::opening(Arc::clone(inner).open_stream(job, route, None))
}

/// A program's stream: inputs validated at once, the program (and the
/// session's binding) looked up when the stream is first polled.
#[allow(
    clippy::result_large_err,
    reason = "the pool's one error type, as every call returns"
)]
pub(crate) fn program_stream(
    inner: &Arc<Inner>,
    route: Option<Route>,
    id: &str,
    inputs: Value,
) -> ExecuteStream {
    let inputs: Map<String, Value> = match crate::pool::object_args(id, inputs)
        .and_then(|inputs| crate::pool::check_depth(id, &inputs, 1).map(|()| inputs))
    {
        Ok(inputs) => inputs,
        Err(error) => return ExecuteStream::refused(error),
    };
    let inner = Arc::clone(inner);
    let id = id.to_owned();
    ExecuteStream::opening(async move {
        let (program, binding) = inner.lookup_program_for(route.as_ref(), &id).await?;
        let job = Job::Program {
            inputs,
            program: Box::new(program),
        };
        inner.open_stream(job, route, binding).await
    })
}
