//! The request path: breaker, checkout, call with a deadline, state machine,
//! recovery policy, retry.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pypool_recovery::FailureClass;
use pypool_seam::{CallError, Outcome, RemoteError, RemoteErrorKind, WorkerId};
use serde_json::{Map, Value};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::Instrument;

use crate::core::{Ending, Settled};
use crate::inner::Inner;
use crate::job::{Job, JobKey, ProgramKey};
use crate::lease::{CommandPermit, Lease};
use crate::session::Route;
use crate::{PoolError, metrics};

/// What one attempt produced, and whether the policy wants another.
struct AttemptResult {
    result: Result<Value, PoolError>,
    retry_after: Option<Duration>,
    /// The worker that produced a result (for session affinity).
    worker_id: Option<WorkerId>,
    /// Whether the attempt ran on a worker and was settled (counters
    /// included) by [`Inner::finish_attempt`].
    settled: bool,
    /// The request's metric label, when settled.
    label: String,
}

impl AttemptResult {
    fn failed(error: PoolError) -> Self {
        Self {
            result: Err(error),
            retry_after: None,
            worker_id: None,
            settled: false,
            label: String::new(),
        }
    }
}

impl Inner {
    /// Runs `command` with `args` on some worker, retrying where the recovery
    /// policy says it is safe.
    pub(crate) async fn execute(
        self: &Arc<Self>,
        command: &str,
        args: Map<String, Value>,
    ) -> Result<Value, PoolError> {
        let job = Job::Command {
            command: command.to_owned(),
            args,
        };
        self.run(&job, None).await
    }

    /// Runs `job` on some worker (the session's, where `route` says so),
    /// retrying where the recovery policy says it is safe.
    pub(crate) async fn run(
        self: &Arc<Self>,
        job: &Job,
        route: Option<&Route>,
    ) -> Result<Value, PoolError> {
        self.run_with_binding(job, route, None).await
    }

    /// [`Inner::run`] with the session's binding already looked up
    /// (`Some(binding)`), concurrently with the program's definition: the
    /// first attempt uses it instead of a second store round trip (with a
    /// shared store that is one network round trip saved per call); a retry
    /// looks the binding up afresh.
    pub(crate) async fn run_with_binding(
        self: &Arc<Self>,
        job: &Job,
        route: Option<&Route>,
        mut binding: Option<Option<WorkerId>>,
    ) -> Result<Value, PoolError> {
        let label = job.label();
        let command = label.as_str();
        let key = job.key();
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            attempt = attempt.saturating_add(1);
            let outcome = self
                .attempt(job, &label, &key, route, binding.take(), attempt, started)
                .await;
            match outcome.result {
                Ok(value) => {
                    if let (Some(route), Some(worker_id)) = (route, outcome.worker_id) {
                        self.stores.affinity.bind(&route.session, worker_id).await;
                    }
                    return Ok(value);
                }
                Err(error) => match outcome.retry_after {
                    Some(delay) => {
                        tracing::debug!(command, attempt, %error, ?delay, "retrying");
                        tokio::time::sleep(delay).await;
                    }
                    None => {
                        let label = if outcome.settled {
                            // Counted when the attempt was settled.
                            outcome.label
                        } else {
                            self.lock().core.count_unsettled_failure(command)
                        };
                        metrics::request_failed(&self.config.name, label, error.kind());
                        return Err(error);
                    }
                },
            }
        }
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one attempt of one request: every argument is its own fact"
    )]
    async fn attempt(
        self: &Arc<Self>,
        job: &Job,
        command: &str,
        key: &JobKey,
        route: Option<&Route>,
        binding: Option<Option<WorkerId>>,
        attempt: u32,
        started: Instant,
    ) -> AttemptResult {
        let waiting = Instant::now();
        let checked_out = match route {
            Some(route) => self.checkout_routed(command, key, route, binding).await,
            // One lock take: breaker admission and checkout together.
            None => self.checkout_admitted(command, key).await,
        };
        let (lease, permit) = match checked_out {
            Ok(checked_out) => checked_out,
            Err(error) => return AttemptResult::failed(error),
        };
        self.metrics.checkout_wait(waiting.elapsed());
        let job = job.clone();
        let key = key.clone();
        let span = tracing::info_span!(
            "pypool.request",
            worker_id = lease.worker_id(),
            command,
            attempt
        );
        // The call runs in the caller's task (no scheduler hop) but is
        // detachable: once the caller's answer is known (at a deadline, before
        // the cancel's grace ends) or if the caller goes away, the rest runs
        // in a task of its own — so the worker still finishes (or is killed)
        // and is checked back in, never handed out with a reply pending.
        let inner = Arc::clone(self);
        let (answer, answered) = oneshot::channel();
        let call = async move {
            inner
                .run_on_worker(lease, job, key, permit, attempt, started, answer)
                .await;
        }
        .instrument(span);
        let attempt_call = Detachable {
            call: Some(Box::pin(call)),
            answered,
        };
        match attempt_call.await {
            Ok(result) => result,
            Err(_task_gone) => AttemptResult::failed(PoolError::Connection {
                worker_id: 0,
                command: command.to_owned(),
                request_id: 0,
                detail: "the request task ended abnormally without an answer".to_owned(),
            }),
        }
    }

    /// Takes a permit from the breaker guarding `key`.
    #[allow(
        clippy::result_large_err,
        reason = "the error becomes the caller's result at once; boxing it would only be undone"
    )]
    pub(crate) fn admit(
        self: &Arc<Self>,
        command: &str,
        key: &JobKey,
    ) -> Result<CommandPermit, PoolError> {
        let admitted = self.lock().core.admit(key);
        match admitted {
            Ok(permit) => Ok(CommandPermit::new(Arc::clone(self), permit)),
            Err(rejected) => Err(PoolError::CircuitOpen {
                command: command.to_owned(),
                retry_after: rejected.retry_after,
            }),
        }
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one attempt of one request: every argument is its own fact"
    )]
    async fn run_on_worker(
        self: Arc<Self>,
        lease: Lease,
        job: Job,
        key: JobKey,
        permit: CommandPermit,
        attempt: u32,
        started: Instant,
        answer: oneshot::Sender<AttemptResult>,
    ) {
        let worker_id = lease.worker_id();
        let command = job.label();
        let deadline = self.config.timeouts.request;
        let sent = Instant::now();
        let in_flight_id = AtomicU64::new(0);
        let mut answer = Some(answer);
        let mut learned = None;
        let mut usage = None;
        let (called, late) = {
            let call = self.perform(&lease, &job, &in_flight_id, &mut learned, &mut usage);
            tokio::pin!(call);
            match tokio::time::timeout(deadline, &mut call).await {
                Ok(called) => (Some(called), None),
                Err(_elapsed) => {
                    // The deadline: cancel the request, answer the caller now,
                    // and give the request a grace period to end.
                    let request_id = in_flight_id.load(Ordering::Relaxed);
                    lease.connection().cancel(request_id);
                    let (retry_after, label) =
                        self.lock()
                            .core
                            .deadline(&key, &command, attempt, started.elapsed());
                    metrics::request_duration(
                        &self.config.name,
                        label.clone(),
                        sent.elapsed(),
                        false,
                    );
                    let error = PoolError::DeadlineExceeded {
                        worker_id,
                        command: command.clone(),
                        request_id,
                        deadline,
                    };
                    tracing::debug!(%error, ?retry_after, "request cancelled at its deadline");
                    if let Some(answer) = answer.take() {
                        let _caller_gone = answer.send(AttemptResult {
                            result: Err(error),
                            retry_after,
                            worker_id: None,
                            settled: true,
                            label,
                        });
                    }
                    let grace = self.config.timeouts.cancel_grace;
                    let late = if grace.is_zero() {
                        None
                    } else {
                        tokio::time::timeout(grace, &mut call).await.ok()
                    };
                    (None, Some(late))
                }
            }
        };
        if let Some(late) = late {
            // An answer (its result, or `cancelled`) within the grace: the
            // worker is fine. None: it is killed (the other requests it
            // holds end with `worker_exited`) and replaced.
            let replied = matches!(late, Some(Ok(_answered)));
            self.settle_after_grace(lease, permit, replied, &command);
            return;
        }
        let request_id = in_flight_id.load(Ordering::Relaxed);
        let mut reached_worker = true;
        let (result, failure, replied) = match called {
            Some(Ok(Outcome::Ok { result })) => (Ok(result), None, true),
            Some(Ok(Outcome::Error { error })) => {
                let class = class_of_remote(&error);
                let error = PoolError::Remote {
                    worker_id,
                    command: command.clone(),
                    request_id,
                    error,
                };
                (Err(error), Some(class), true)
            }
            Some(Err(call_error)) => {
                reached_worker = !matches!(call_error, CallError::NotSent { .. });
                let call_error = self.as_seen_by_caller(call_error, request_id);
                let class = class_of_call(&call_error);
                (
                    Err(pool_error_of_call(call_error, &command, request_id)),
                    Some(class),
                    false,
                )
            }
            None => return,
        };
        let took = sent.elapsed();
        let succeeded = failure.is_none();
        let settled = self.finish_attempt(
            lease,
            permit,
            &key,
            &command,
            learned,
            Ending {
                failure,
                replied,
                reached_worker,
                attempt,
                elapsed: started.elapsed(),
                retriable: true,
            },
        );
        metrics::request_duration(
            &self.config.name,
            settled.label.clone(),
            took,
            result.is_ok(),
        );
        if let Some(usage) = &usage {
            self.metrics.record_usage(&self.config.name, &key, usage);
        }
        if let (Err(error), Some(decision)) = (&result, &settled.decision) {
            tracing::debug!(%error, ?decision, "attempt failed");
        }
        if let Some(answer) = answer.take() {
            let _caller_gone = answer.send(AttemptResult {
                result,
                worker_id: succeeded.then_some(worker_id),
                retry_after: settled.retry_after,
                settled: true,
                label: settled.label,
            });
        }
    }

    /// After a cancelled request's grace period: its worker and its breaker
    /// permit (a deadline counts against the command), in one lock take.
    pub(crate) fn settle_after_grace(
        &self,
        lease: Lease,
        permit: CommandPermit,
        replied: bool,
        command: &str,
    ) {
        let worker_id = lease.worker_id();
        lease.disarm();
        let permit = permit.take();
        if !replied {
            self.note_killed_at_deadline(worker_id);
        }
        let (breaker, label) = self.decide(|books, fx| {
            books
                .core
                .finish_after_grace(worker_id, permit, replied, command, fx)
        });
        if let Some(breaker) = breaker {
            metrics::breaker_state(&self.config.name, &label, breaker);
        }
    }

    /// Settles one attempt in one lock take: the recovery policy's verdict,
    /// the worker's state machine and its next use, the breaker, the
    /// counters and the metric label.
    pub(crate) fn finish_attempt(
        self: &Arc<Self>,
        lease: Lease,
        permit: CommandPermit,
        key: &JobKey,
        command: &str,
        learned: Option<ProgramKey>,
        ending: Ending,
    ) -> Settled {
        let worker_id = lease.worker_id();
        lease.disarm();
        let permit = permit.take();
        let settled = self.decide(|books, fx| {
            books
                .core
                .finish(worker_id, permit, key, command, learned, ending, fx)
        });
        if let Some(breaker) = settled.breaker {
            metrics::breaker_state(&self.config.name, &settled.label, breaker);
        }
        settled
    }
}

/// One attempt's work on its worker, run in the caller's task until the
/// caller's answer arrives; whatever is left then (a cancelled request's
/// grace) — or everything left if the caller goes away — is spawned.
struct Detachable {
    call: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
    answered: oneshot::Receiver<AttemptResult>,
}

impl Detachable {
    /// Moves the unfinished work to a task of its own.
    fn detach(&mut self) {
        if let Some(call) = self.call.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(call);
                }
                // No runtime (it is shutting down): dropping the work drops its
                // lease, which gives the worker back.
                Err(_) => drop(call),
            }
        }
    }
}

impl std::future::Future for Detachable {
    type Output = Result<AttemptResult, oneshot::error::RecvError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = &mut *self;
        if let Some(call) = this.call.as_mut() {
            if call.as_mut().poll(context).is_ready() {
                this.call = None;
            }
        }
        match std::pin::Pin::new(&mut this.answered).poll(context) {
            std::task::Poll::Ready(answer) => {
                this.detach();
                std::task::Poll::Ready(answer)
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

impl Drop for Detachable {
    fn drop(&mut self) {
        self.detach();
    }
}

/// How a worker's error reply is classified.
pub(crate) fn class_of_remote(error: &RemoteError) -> FailureClass {
    match error.kind {
        RemoteErrorKind::InvalidArguments
        | RemoteErrorKind::UnknownCommand
        | RemoteErrorKind::InvalidInput
        | RemoteErrorKind::ProgramNotCached => FailureClass::InvalidInput,
        RemoteErrorKind::Internal => FailureClass::WorkerInternalError,
        // The host cancels only a request past its deadline.
        RemoteErrorKind::Cancelled => FailureClass::DeadlineExceeded,
        RemoteErrorKind::PythonException
        | RemoteErrorKind::InvalidResult
        | RemoteErrorKind::Other(_) => FailureClass::PythonException,
    }
}

/// How a failed call is classified.
pub(crate) fn class_of_call(error: &CallError) -> FailureClass {
    match error {
        CallError::WorkerExited { exit, .. } => FailureClass::WorkerExited {
            code: exit.code,
            signal: exit.signal,
        },
        CallError::ProtocolViolation { .. } => FailureClass::ProtocolViolation,
        _ => FailureClass::ConnectionLost,
    }
}

pub(crate) fn pool_error_of_call(error: CallError, command: &str, request_id: u64) -> PoolError {
    let command = command.to_owned();
    match error {
        CallError::WorkerExited {
            worker_id, exit, ..
        } => PoolError::WorkerExited {
            worker_id,
            command,
            request_id,
            exit,
        },
        CallError::ProtocolViolation { worker_id, detail } => PoolError::ProtocolViolation {
            worker_id,
            command,
            request_id,
            detail,
        },
        CallError::Closed { worker_id, reason } => PoolError::Connection {
            worker_id,
            command,
            request_id,
            detail: reason,
        },
        CallError::NotSent {
            worker_id, reason, ..
        } => PoolError::Connection {
            worker_id,
            command,
            request_id,
            detail: format!("the request was not sent: {reason}"),
        },
        other => PoolError::Connection {
            worker_id: 0,
            command,
            request_id,
            detail: other.to_string(),
        },
    }
}
