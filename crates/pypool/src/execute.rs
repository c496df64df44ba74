//! The request path: breaker, checkout, call with a deadline, state machine,
//! recovery policy, retry.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pypool_breaker::{CallOutcome, CircuitBreaker, Permit};
use pypool_recovery::{AttemptContext, FailureClass, RandomSource, WorkerAction};
use pypool_seam::{CallError, Outcome, RemoteError, RemoteErrorKind, WorkerId};
use serde_json::{Map, Value};
use tokio::time::Instant;
use tracing::Instrument;

use crate::inner::Inner;
use crate::job::Job;
use crate::lease::Lease;
use crate::session::Route;
use crate::{PoolError, metrics};

/// What one attempt produced, and whether the policy wants another.
struct AttemptResult {
    result: Result<Value, PoolError>,
    retry_after: Option<Duration>,
    /// The worker that produced a result (for session affinity).
    worker_id: Option<WorkerId>,
}

impl AttemptResult {
    fn failed(error: PoolError) -> Self {
        Self {
            result: Err(error),
            retry_after: None,
            worker_id: None,
        }
    }
}

/// A command breaker's permit that is always settled: recorded with the
/// attempt's outcome, or released if the attempt never ran.
struct CommandPermit {
    inner: Arc<Inner>,
    command: String,
    permit: Option<Permit>,
}

impl CommandPermit {
    fn record(mut self, outcome: CallOutcome) {
        if let Some(permit) = self.permit.take() {
            let mut state = self.inner.lock();
            let label = metrics::command_label(&state, &self.command);
            if let Some(breaker) = state.command_breakers.get_mut(&self.command) {
                breaker.record(permit, outcome);
                metrics::breaker_state(&self.inner.config.name, &label, breaker.state());
            }
        }
    }
}

impl Drop for CommandPermit {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            let mut state = self.inner.lock();
            if let Some(breaker) = state.command_breakers.get_mut(&self.command) {
                breaker.release(permit);
            }
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
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            attempt = attempt.saturating_add(1);
            let outcome = self
                .attempt(job, &label, route, binding.take(), attempt, started)
                .await;
            match outcome.result {
                Ok(value) => {
                    self.lock().counters.requests_ok += 1;
                    if let (Some(route), Some(worker_id)) = (route, outcome.worker_id) {
                        self.stores.affinity.bind(&route.session, worker_id).await;
                    }
                    return Ok(value);
                }
                Err(error) => match outcome.retry_after {
                    Some(delay) => {
                        tracing::debug!(command, attempt, %error, ?delay, "retrying");
                        self.lock().counters.retries += 1;
                        tokio::time::sleep(delay).await;
                    }
                    None => {
                        let label = {
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

    async fn attempt(
        self: &Arc<Self>,
        job: &Job,
        command: &str,
        route: Option<&Route>,
        binding: Option<Option<WorkerId>>,
        attempt: u32,
        started: Instant,
    ) -> AttemptResult {
        let permit = match self.admit(command) {
            Ok(permit) => permit,
            Err(error) => return AttemptResult::failed(error),
        };
        let waiting = Instant::now();
        let checked_out = match route {
            Some(route) => self.checkout_routed(command, route, binding).await,
            None => self.checkout(command).await,
        };
        let lease = match checked_out {
            Ok(lease) => lease,
            Err(error) => return AttemptResult::failed(error),
        };
        metrics::checkout_wait(&self.config.name, waiting.elapsed());
        let job = job.clone();
        let span = tracing::info_span!(
            "pypool.request",
            worker_id = lease.worker_id(),
            command,
            attempt
        );
        // The call runs in its own task: if the caller goes away, the worker
        // still finishes (or hits the deadline and is killed) and is checked
        // back in — never handed out with a reply pending.
        let inner = Arc::clone(self);
        let task = tokio::spawn(
            async move {
                inner
                    .run_on_worker(lease, job, permit, attempt, started)
                    .await
            }
            .instrument(span),
        );
        match task.await {
            Ok(result) => result,
            Err(join_error) => AttemptResult {
                result: Err(PoolError::Connection {
                    worker_id: 0,
                    command: command.to_owned(),
                    request_id: 0,
                    detail: format!("the request task ended abnormally: {join_error}"),
                }),
                retry_after: None,
                worker_id: None,
            },
        }
    }

    /// Takes a permit from `command`'s circuit breaker.
    #[allow(
        clippy::result_large_err,
        reason = "the error becomes the caller's result at once; boxing it would only be undone"
    )]
    fn admit(self: &Arc<Self>, command: &str) -> Result<CommandPermit, PoolError> {
        let mut state = self.lock();
        if !state.command_breakers.contains_key(command) {
            let breaker = CircuitBreaker::new(self.config.command_breaker, Arc::clone(&self.clock));
            state.command_breakers.insert(command.to_owned(), breaker);
        }
        let admitted = state
            .command_breakers
            .get_mut(command)
            .map(CircuitBreaker::try_acquire);
        match admitted {
            Some(Ok(permit)) => Ok(CommandPermit {
                inner: Arc::clone(self),
                command: command.to_owned(),
                permit: Some(permit),
            }),
            Some(Err(rejected)) => Err(PoolError::CircuitOpen {
                command: command.to_owned(),
                retry_after: rejected.retry_after,
            }),
            None => Ok(CommandPermit {
                inner: Arc::clone(self),
                command: command.to_owned(),
                permit: None,
            }),
        }
    }

    async fn run_on_worker(
        self: Arc<Self>,
        lease: Lease,
        job: Job,
        permit: CommandPermit,
        attempt: u32,
        started: Instant,
    ) -> AttemptResult {
        let worker_id = lease.worker_id();
        let command = job.label();
        let deadline = self.config.timeouts.request;
        let sent = Instant::now();
        let in_flight_id = AtomicU64::new(0);
        let called =
            tokio::time::timeout(deadline, self.perform(&lease, &job, &in_flight_id)).await;
        let request_id = in_flight_id.load(Ordering::Relaxed);
        let mut reached_worker = true;
        let (result, failure, replied) = match called {
            Ok(Ok(Outcome::Ok { result })) => (Ok(result), None, true),
            Ok(Ok(Outcome::Error { error })) => {
                let class = class_of_remote(&error);
                let error = PoolError::Remote {
                    worker_id,
                    command: command.clone(),
                    request_id,
                    error,
                };
                (Err(error), Some(class), true)
            }
            Ok(Err(call_error)) => {
                reached_worker = !matches!(call_error, CallError::NotSent { .. });
                let class = class_of_call(&call_error);
                (
                    Err(pool_error_of_call(call_error, &command, request_id)),
                    Some(class),
                    false,
                )
            }
            Err(_elapsed) => {
                let error = PoolError::DeadlineExceeded {
                    worker_id,
                    command: command.clone(),
                    request_id,
                    deadline,
                };
                (Err(error), Some(FailureClass::DeadlineExceeded), false)
            }
        };
        let label = metrics::command_label(&self.lock(), &command);
        metrics::request_duration(&self.config.name, label, sent.elapsed(), result.is_ok());
        let Some(failure) = failure else {
            lease.finish(true, WorkerAction::Keep);
            permit.record(CallOutcome::Success);
            return AttemptResult {
                result,
                retry_after: None,
                worker_id: Some(worker_id),
            };
        };
        let decision = {
            let mut state = self.lock();
            let idempotent = state.idempotent.get(&command).copied().unwrap_or(false);
            let context = AttemptContext {
                attempt,
                elapsed: started.elapsed(),
                reached_worker,
                idempotent,
            };
            let rng: &mut dyn RandomSource = &mut state.rng;
            self.recovery.decide(&failure, &context, rng)
        };
        if let Err(error) = &result {
            tracing::debug!(%error, ?decision, "attempt failed");
        }
        lease.finish(replied, decision.worker);
        permit.record(if counts_against_command(&failure) {
            CallOutcome::Failure
        } else {
            CallOutcome::Success
        });
        AttemptResult {
            result,
            worker_id: None,
            retry_after: decision.retry_delay(),
        }
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
