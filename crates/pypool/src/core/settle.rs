//! Settling: a request's outcome goes to the recovery policy, its breaker,
//! the counters and its worker's state machine; then the worker's next use
//! is decided (hand to a waiter, park idle, recycle, retire).

use std::time::Duration;

use pypool_breaker::{BreakerState, CallOutcome, Permit};
use pypool_lifecycle::{Event, FailureSeverity, State};
use pypool_recovery::{AttemptContext, Decision, FailureClass, RandomSource, WorkerAction};
use pypool_seam::WorkerId;

use super::{BreakerKey, Core, Effect, Effects, Note, Retirement, WaiterToken, WorkerHandle};
use crate::job::{JobKey, ProgramKey};
use crate::metrics::labels;

/// How one attempt on a worker ended.
#[derive(Debug, Clone)]
pub(crate) struct Ending {
    /// `None`: the request succeeded.
    pub(crate) failure: Option<FailureClass>,
    /// Whether the worker replied.
    pub(crate) replied: bool,
    /// Whether the request reached the worker.
    pub(crate) reached_worker: bool,
    /// The attempt's number, from 1.
    pub(crate) attempt: u32,
    /// Time since the request's first attempt started.
    pub(crate) elapsed: Duration,
}

/// What settling an attempt decided.
#[derive(Debug)]
pub(crate) struct Settled {
    /// Retry after this delay, or not at all.
    pub(crate) retry_after: Option<Duration>,
    /// The request's metric label.
    pub(crate) label: String,
    /// The recovery policy's decision, for a failure.
    pub(crate) decision: Option<Decision>,
    /// The breaker's state, when the outcome could have changed it.
    pub(crate) breaker: Option<BreakerState>,
}

/// Whether a failure says the command (or what it calls downstream) is
/// failing, as opposed to the caller's bad input.
fn counts_against_command(failure: &FailureClass) -> bool {
    !matches!(
        failure,
        FailureClass::InvalidInput | FailureClass::Overloaded
    )
}

impl<H: WorkerHandle, T: WaiterToken> Core<H, T> {
    /// The `command` metric label of the request labelled `label` (a
    /// command name or `program:<id>`): bounded by the commands workers
    /// registered.
    pub(crate) fn command_label(&self, label: &str) -> String {
        if label.starts_with("program:") {
            labels::PROGRAM.to_owned()
        } else if self.idempotent.contains_key(label) {
            label.to_owned()
        } else {
            labels::OTHER.to_owned()
        }
    }

    /// A request failed before reaching a worker: counted; returns its label.
    pub(crate) fn count_unsettled_failure(&mut self, command: &str) -> String {
        self.counters.requests_failed += 1;
        self.command_label(command)
    }

    /// Settles one attempt on worker `worker`: the recovery policy's
    /// verdict, the worker's state machine and its next use, the breaker,
    /// the counters and the metric label.
    #[allow(
        clippy::too_many_arguments,
        reason = "one attempt's settle: every argument is its own fact"
    )]
    pub(crate) fn finish(
        &mut self,
        worker: WorkerId,
        permit: Option<(BreakerKey, Permit)>,
        key: &JobKey,
        command: &str,
        learned: Option<ProgramKey>,
        ending: Ending,
        fx: &mut Effects<H, T>,
    ) -> Settled {
        if let Some(program) = learned {
            self.remember_program(worker, program);
        }
        let decision = ending.failure.as_ref().map(|failure| {
            let context = AttemptContext {
                attempt: ending.attempt,
                elapsed: ending.elapsed,
                reached_worker: ending.reached_worker,
                idempotent: self.is_idempotent(key),
            };
            let rng: &mut dyn RandomSource = &mut self.rng;
            self.recovery.decide(failure, &context, rng)
        });
        let action = decision
            .as_ref()
            .map_or(WorkerAction::Keep, |decision| decision.worker);
        self.release(worker, ending.replied, action, fx);
        let outcome = match &ending.failure {
            Some(failure) if counts_against_command(failure) => CallOutcome::Failure,
            _ => CallOutcome::Success,
        };
        let label = self.command_label(command);
        let breaker = permit.and_then(|(key, permit)| self.record_permit(&key, permit, outcome));
        let retry_after = decision.as_ref().and_then(Decision::retry_delay);
        match (&ending.failure, retry_after) {
            (None, _) => self.counters.requests_ok += 1,
            (Some(_), Some(_)) => self.counters.retries += 1,
            (Some(_), None) => self.counters.requests_failed += 1,
        }
        Settled {
            retry_after,
            label,
            decision,
            breaker,
        }
    }

    /// A request reached its deadline (the shell cancels it on its worker):
    /// the recovery policy's verdict for the caller and the counters;
    /// returns the retry delay and the metric label. The worker is settled
    /// after the cancel's grace ([`Core::finish_after_grace`]).
    pub(crate) fn deadline(
        &mut self,
        key: &JobKey,
        command: &str,
        attempt: u32,
        elapsed: Duration,
    ) -> (Option<Duration>, String) {
        let context = AttemptContext {
            attempt,
            elapsed,
            reached_worker: true,
            idempotent: self.is_idempotent(key),
        };
        let rng: &mut dyn RandomSource = &mut self.rng;
        let decision = self
            .recovery
            .decide(&FailureClass::DeadlineExceeded, &context, rng);
        let retry_after = decision.retry_delay();
        if retry_after.is_some() {
            self.counters.retries += 1;
        } else {
            self.counters.requests_failed += 1;
        }
        (retry_after, self.command_label(command))
    }

    /// After a cancelled request's grace: `replied` if it ended within it
    /// (the worker is kept), else the worker is killed and replaced (its
    /// other requests end with `worker_exited`). Its permit counts a failure.
    pub(crate) fn finish_after_grace(
        &mut self,
        worker: WorkerId,
        permit: Option<(BreakerKey, Permit)>,
        replied: bool,
        command: &str,
        fx: &mut Effects<H, T>,
    ) -> (Option<BreakerState>, String) {
        let action = if replied {
            WorkerAction::Keep
        } else {
            WorkerAction::Remove { replace: true }
        };
        self.release(worker, replied, action, fx);
        let breaker =
            permit.and_then(|(key, permit)| self.record_permit(&key, permit, CallOutcome::Failure));
        (breaker, self.command_label(command))
    }

    /// Takes a worker back after a request: `replied` if the worker
    /// answered, `action` the recovery policy's verdict for it. A lent
    /// worker whose caller left before using it comes back as
    /// `(false, Keep)`: nothing counts.
    pub(crate) fn release(
        &mut self,
        id: WorkerId,
        replied: bool,
        action: WorkerAction,
        fx: &mut Effects<H, T>,
    ) {
        let event = match action {
            WorkerAction::Keep if replied => Event::CheckinOk,
            WorkerAction::Keep => Event::RequestFailed {
                severity: FailureSeverity::Harmless,
            },
            WorkerAction::Degrade => Event::RequestFailed {
                severity: FailureSeverity::Suspect,
            },
            WorkerAction::Remove { .. } => Event::RequestFailed {
                severity: FailureSeverity::Fatal,
            },
        };
        if replied {
            self.confirm_spawn(id);
        }
        let Some(worker) = self.workers.get(&id) else {
            // Gone already (killed, crashed): nothing to give back.
            return;
        };
        let others = worker.in_flight() > 1;
        let lifecycle = worker.lifecycle.state();
        if others {
            self.release_shared(id, event, fx);
            return;
        }
        if lifecycle == State::Draining && !self.shutting_down {
            // Marked to stop (recycle, draining, resize) while it held
            // several requests: the last one settled, it goes now.
            self.apply(id, event);
            let how = match action {
                WorkerAction::Remove { .. } => Retirement::Failed,
                _ => Retirement::Graceful,
            };
            self.retire(id, how, fx);
            return;
        }
        self.apply(id, event);
        self.settle(id, fx);
    }

    /// One of several requests on worker `id` settled and others remain in
    /// flight: the outcome counts on its state machine (which keeps the
    /// worker Busy, or Draining, unless the worker must go), and the freed
    /// slot goes to a waiter.
    fn release_shared(&mut self, id: WorkerId, event: Event, fx: &mut Effects<H, T>) {
        self.apply(id, event);
        let Some(worker) = self.workers.get(&id) else {
            return;
        };
        match worker.lifecycle.state() {
            State::Busy => {
                if worker.is_draining() || (!worker.overflow && self.above_size()) {
                    // Stopping on its own, or the pool shrank: no new
                    // requests; it goes when its last one settles.
                    self.apply(id, Event::Shutdown);
                    self.unpin_waiters(id, fx);
                    self.ensure_size(fx);
                } else if !self.recycle_if_due(id, fx) {
                    self.dispatch(id, fx);
                }
            }
            State::Ready | State::Degraded => {
                // Not expected with requests in flight: it must go, ending
                // what it still holds.
                self.apply(id, Event::Shutdown);
                self.retire(id, Retirement::Failed, fx);
            }
            State::Terminating | State::Terminated => {
                // A fatal outcome: kill it; its other requests end with `worker_exited`.
                let how = if self.shutting_down {
                    Retirement::Graceful
                } else {
                    Retirement::Failed
                };
                self.retire(id, how, fx);
            }
            State::Starting | State::Draining => {}
        }
    }

    /// Decides what happens next to idle worker `id`: recycle, retire, or
    /// hand to the next waiter.
    pub(super) fn settle(&mut self, id: WorkerId, fx: &mut Effects<H, T>) {
        let Some(worker) = self.workers.get(&id) else {
            return;
        };
        match worker.lifecycle.state() {
            State::Ready | State::Degraded => {
                let available = worker.lifecycle.is_available();
                let overflow = worker.overflow;
                if worker.is_draining() {
                    // Stopping on its own (SIGTERM): never lend it again.
                    self.apply(id, Event::Shutdown);
                    self.retire(id, Retirement::Graceful, fx);
                } else if self.recycle_if_due(id, fx) {
                    // Retired; its replacement is starting.
                } else if !available {
                    self.apply(id, Event::Shutdown);
                    self.retire(id, Retirement::Failed, fx);
                } else if (overflow && self.prune_waiters(fx) == 0)
                    || (!overflow && self.above_size())
                {
                    // Overflow no longer needed, or the pool was resized down.
                    self.apply(id, Event::Shutdown);
                    self.retire(id, Retirement::Graceful, fx);
                } else {
                    self.dispatch(id, fx);
                }
            }
            State::Terminating | State::Terminated => {
                let failed = !self.shutting_down && worker.lifecycle.drain_cause().is_none();
                let how = if failed {
                    Retirement::Failed
                } else {
                    Retirement::Graceful
                };
                self.retire(id, how, fx);
            }
            State::Starting | State::Busy | State::Draining => {}
        }
    }

    /// Recycles worker `id` if it reached a recycle limit (an idle one is
    /// stopped, a busy one drains); returns whether it did.
    pub(super) fn recycle_if_due(&mut self, id: WorkerId, fx: &mut Effects<H, T>) -> bool {
        let Some(worker) = self.workers.get(&id) else {
            return false;
        };
        let limits = &self.config.recycle;
        if limits.max_requests.is_none()
            && limits.max_age.is_none()
            && limits.max_memory_bytes.is_none()
        {
            return false;
        }
        // Reading a process tree's memory costs a few /proc reads: only
        // when there is a limit to compare it with.
        let rss = match (&limits.max_memory_bytes, &worker.handle) {
            (Some(_), Some(handle)) => handle.resident_memory_bytes(),
            _ => None,
        };
        let Some(reason) = worker.lifecycle.recycle_due(limits, rss) else {
            return false;
        };
        tracing::info!(worker_id = id, %reason, "recycling worker");
        fx.push(Effect::Note(Note::Recycled(reason)));
        self.counters.recycled += 1;
        self.apply(id, Event::RecycleDue(reason));
        // A busy worker (requests still in flight) drains: it takes nothing
        // new and is stopped when its last request settles.
        let draining = self
            .workers
            .get(&id)
            .is_some_and(|worker| worker.lifecycle.state() == State::Draining);
        if draining {
            // Its callers take any worker; its replacement starts now.
            self.unpin_waiters(id, fx);
            self.ensure_size(fx);
        } else {
            self.retire(id, Retirement::Graceful, fx);
        }
        true
    }

    /// Hands worker `id` (ready, or partially busy) to the first waiters
    /// still waiting while it has room; parks it idle if nothing is in flight.
    pub(super) fn dispatch(&mut self, id: WorkerId, fx: &mut Effects<H, T>) {
        loop {
            let Some(worker) = self.workers.get(&id) else {
                return;
            };
            if worker.in_flight() > 0 && !worker.has_spare_room() {
                return;
            }
            let position = self.waiters.iter().position(|waiter| {
                !waiter.token.is_gone() && waiter.wants.is_none_or(|wanted| wanted == id)
            });
            let Some(position) = position else {
                break;
            };
            let Some(lent) = self.lend(id, fx) else {
                // The worker was retired instead (unhealthy, or draining): the
                // waiter keeps its place for the next worker.
                return;
            };
            if let Some(waiter) = self.waiters.remove(position) {
                fx.push(Effect::Lend {
                    waiter: waiter.token,
                    lent,
                });
                fx.push(Effect::Note(Note::QueueDepth(self.waiters.len())));
            }
        }
        if self
            .workers
            .get(&id)
            .is_some_and(|worker| worker.in_flight() == 0)
        {
            self.idle.push_back(id);
        }
    }

    /// Remembers that worker `worker` holds program `key`.
    pub(crate) fn remember_program(&mut self, worker: WorkerId, key: ProgramKey) {
        if let Some(worker) = self.workers.get_mut(&worker) {
            if worker.programs.len() >= crate::job::REMEMBERED_PROGRAMS {
                worker.programs.clear();
            }
            worker.programs.insert(key);
        }
    }

    /// Whether worker `worker` is known to hold program `key`.
    pub(crate) fn knows_program(&self, worker: WorkerId, key: &ProgramKey) -> bool {
        self.workers
            .get(&worker)
            .is_some_and(|worker| worker.programs.contains(key))
    }

    /// Worker `worker` applied the settings of version `version`.
    pub(crate) fn settings_applied(&mut self, worker: WorkerId, version: u64) {
        if let Some(worker) = self.workers.get_mut(&worker) {
            worker.settings_version = worker.settings_version.max(version);
        }
    }
}
