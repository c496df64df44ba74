//! The request path: breaker, checkout, call with a deadline, state machine,
//! recovery policy, retry.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pypool_breaker::CallOutcome;
use pypool_recovery::{AttemptContext, Decision, FailureClass, RandomSource, WorkerAction};
use pypool_seam::{CallError, Outcome, RemoteError, RemoteErrorKind, WorkerId};
use serde_json::{Map, Value};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::Instrument;

use crate::inner::{Inner, State};
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

/// How one attempt on a worker ended, for [`Inner::finish_attempt`].
struct Ending {
    /// `None`: the request succeeded.
    failure: Option<FailureClass>,
    /// Whether the worker replied.
    replied: bool,
    /// Whether the request reached the worker.
    reached_worker: bool,
    attempt: u32,
    started: Instant,
}

/// What [`Inner::finish_attempt`] decided.
struct Settled {
    retry_after: Option<Duration>,
    label: String,
    decision: Option<Decision>,
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
                            let mut state = self.lock();
                            state.counters.requests_failed += 1;
                            metrics::command_label(&state, command)
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
        let mut state = self.lock();
        self.admit_locked(&mut state, command, key)
    }

    /// [`Inner::admit`] under a lock the caller holds.
    #[allow(
        clippy::result_large_err,
        reason = "the error becomes the caller's result at once; boxing it would only be undone"
    )]
    pub(crate) fn admit_locked(
        self: &Arc<Self>,
        state: &mut State,
        command: &str,
        key: &JobKey,
    ) -> Result<CommandPermit, PoolError> {
        match state.admit(key, self.config.command_breaker, &self.clock) {
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
        let (called, late) = {
            let call = self.perform(&lease, &job, &in_flight_id, &mut learned);
            tokio::pin!(call);
            match tokio::time::timeout(deadline, &mut call).await {
                Ok(called) => (Some(called), None),
                Err(_elapsed) => {
                    // The deadline: cancel the request, answer the caller now,
                    // and give the request a grace period to end.
                    let request_id = in_flight_id.load(Ordering::Relaxed);
                    lease.connection().cancel(request_id);
                    let (retry_after, label) =
                        self.settle_deadline(&key, &command, attempt, started);
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
            let (replied, action) = match late {
                Some(Ok(_answered)) => (true, WorkerAction::Keep),
                Some(Err(_)) | None => (false, WorkerAction::Remove { replace: true }),
            };
            self.settle_after_grace(lease, permit, replied, action, &command);
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
                // The pool killed this worker because another request on it
                // outlived its deadline: this one ended with the worker.
                let call_error = match call_error {
                    CallError::Closed { worker_id, .. }
                        if self.was_killed_at_deadline(worker_id) =>
                    {
                        CallError::WorkerExited {
                            worker_id,
                            request_id,
                            exit: pypool_seam::WorkerExit::signal(9),
                        }
                    }
                    other => other,
                };
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
                started,
            },
        );
        metrics::request_duration(
            &self.config.name,
            settled.label.clone(),
            took,
            result.is_ok(),
        );
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

    /// At a request's deadline: the recovery policy's verdict for the caller
    /// (retry or not) and the counters, in one lock take; returns the retry
    /// delay and the metric label. The worker is settled after the grace
    /// ([`Inner::settle_after_grace`]).
    fn settle_deadline(
        &self,
        key: &JobKey,
        command: &str,
        attempt: u32,
        started: Instant,
    ) -> (Option<Duration>, String) {
        let mut state = self.lock();
        let context = AttemptContext {
            attempt,
            elapsed: started.elapsed(),
            reached_worker: true,
            idempotent: state.is_idempotent(key),
        };
        let rng: &mut dyn RandomSource = &mut state.rng;
        let decision = self
            .recovery
            .decide(&FailureClass::DeadlineExceeded, &context, rng);
        let retry_after = decision.retry_delay();
        if retry_after.is_some() {
            state.counters.retries += 1;
        } else {
            state.counters.requests_failed += 1;
        }
        (retry_after, metrics::command_label(&state, command))
    }

    /// After a cancelled request's grace period: its worker and its breaker
    /// permit (a deadline counts against the command), in one lock take.
    fn settle_after_grace(
        &self,
        lease: Lease,
        permit: CommandPermit,
        replied: bool,
        action: WorkerAction,
        command: &str,
    ) {
        let worker_id = lease.worker_id();
        lease.disarm();
        let permit = permit.take();
        if matches!(action, WorkerAction::Remove { .. }) {
            self.note_killed_at_deadline(worker_id);
        }
        let mut state = self.lock();
        self.release_locked(&mut state, worker_id, replied, action);
        let breaker = permit
            .and_then(|(key, permit)| state.record_permit(&key, permit, CallOutcome::Failure));
        let label = metrics::command_label(&state, command);
        drop(state);
        if let Some(breaker) = breaker {
            metrics::breaker_state(&self.config.name, &label, breaker);
        }
    }

    /// Settles one attempt in one lock take: the recovery policy's verdict,
    /// the worker's state machine and its next use, the breaker, the
    /// counters and the metric label.
    fn finish_attempt(
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
        let mut state = self.lock();
        if let Some(program) = learned {
            Inner::remember_program(&mut state, worker_id, program);
        }
        let decision = ending.failure.as_ref().map(|failure| {
            let context = AttemptContext {
                attempt: ending.attempt,
                elapsed: ending.started.elapsed(),
                reached_worker: ending.reached_worker,
                idempotent: state.is_idempotent(key),
            };
            let rng: &mut dyn RandomSource = &mut state.rng;
            self.recovery.decide(failure, &context, rng)
        });
        let action = decision
            .as_ref()
            .map_or(WorkerAction::Keep, |decision| decision.worker);
        self.release_locked(&mut state, worker_id, ending.replied, action);
        let outcome = match &ending.failure {
            Some(failure) if counts_against_command(failure) => CallOutcome::Failure,
            _ => CallOutcome::Success,
        };
        let label = metrics::command_label(&state, command);
        let breaker = permit.and_then(|(key, permit)| state.record_permit(&key, permit, outcome));
        let retry_after = decision.as_ref().and_then(Decision::retry_delay);
        match (&ending.failure, retry_after) {
            (None, _) => state.counters.requests_ok += 1,
            (Some(_), Some(_)) => state.counters.retries += 1,
            (Some(_), None) => state.counters.requests_failed += 1,
        }
        drop(state);
        if let Some(breaker) = breaker {
            metrics::breaker_state(&self.config.name, &label, breaker);
        }
        Settled {
            retry_after,
            label,
            decision,
        }
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
fn class_of_remote(error: &RemoteError) -> FailureClass {
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
fn class_of_call(error: &CallError) -> FailureClass {
    match error {
        CallError::WorkerExited { exit, .. } => FailureClass::WorkerExited {
            code: exit.code,
            signal: exit.signal,
        },
        CallError::ProtocolViolation { .. } => FailureClass::ProtocolViolation,
        _ => FailureClass::ConnectionLost,
    }
}

fn pool_error_of_call(error: CallError, command: &str, request_id: u64) -> PoolError {
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

/// Whether a failure says the command (or what it calls downstream) is
/// failing, as opposed to the caller's bad input.
fn counts_against_command(failure: &FailureClass) -> bool {
    !matches!(
        failure,
        FailureClass::InvalidInput | FailureClass::Overloaded
    )
}
