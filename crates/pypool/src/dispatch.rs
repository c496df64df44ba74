//! Handing workers to waiting requests (FIFO), taking them back, retiring
//! them, and keeping the pool at its size.

use std::sync::Arc;
use std::time::Duration;

use pypool_breaker::CallOutcome;
use pypool_lifecycle::{Event, FailureSeverity, State as WorkerState};
use pypool_recovery::WorkerAction;
use pypool_seam::{WorkerConnection, WorkerId};
use tokio::sync::oneshot;

use crate::config::StartMode;
use crate::inner::{Inner, State, Waiter};
use crate::job::JobKey;
use crate::lease::{CommandPermit, Lease};
use crate::{PoolError, metrics};

/// Why a worker leaves the pool, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retirement {
    /// Recycle limit, overflow no longer needed, resize, shutdown: SIGTERM, then SIGKILL after the grace.
    Graceful,
    /// Crash, deadline, protocol violation, failed health: SIGKILL at once.
    Failed,
}

impl Inner {
    /// Takes a worker for one request, waiting in the FIFO queue if none is
    /// free (tests check out without a request).
    #[cfg(test)]
    pub(crate) async fn checkout(&self, command: &str) -> Result<Lease, PoolError> {
        self.checkout_inner(command, None, self.config.timeouts.checkout, None)
            .await
            .map(|(lease, _)| lease)
    }

    /// Admits a request keyed `key` through its breaker and takes any
    /// worker for it, both in one lock take (waiting in the FIFO queue if
    /// none is free).
    pub(crate) async fn checkout_admitted(
        self: &Arc<Self>,
        command: &str,
        key: &JobKey,
    ) -> Result<(Lease, CommandPermit), PoolError> {
        let (lease, permit) = self
            .checkout_inner(command, None, self.config.timeouts.checkout, Some(key))
            .await?;
        let permit = permit.unwrap_or_else(|| CommandPermit::new(Arc::clone(self), None));
        Ok((lease, permit))
    }

    /// Takes worker `wanted` (or any worker when `None`) for one request,
    /// waiting up to `limit` in the FIFO queue; admits the request through
    /// its breaker first, in the same lock take, when `admit` names its key.
    pub(crate) async fn checkout_inner(
        &self,
        command: &str,
        mut wanted: Option<WorkerId>,
        limit: Duration,
        admit: Option<&JobKey>,
    ) -> Result<(Lease, Option<CommandPermit>), PoolError> {
        let (waiting, permit) = {
            let mut state = self.lock();
            let permit = match (admit, self.strong()) {
                (Some(key), Some(inner)) => Some(inner.admit_locked(&mut state, command, key)?),
                _ => None,
            };
            if state.shutting_down {
                if let Some(permit) = permit.and_then(CommandPermit::take) {
                    state.release_permit(&permit.0, permit.1);
                }
                return Err(PoolError::ShuttingDown {
                    command: command.to_owned(),
                });
            }
            // Callers that left are no longer in line (else an idle worker
            // would wait behind a caller that is gone).
            let queued = state.live_waiters();
            let taken = match wanted {
                Some(id) => self.take_idle_worker(&mut state, id),
                // Idle workers exist only while no caller waits for any worker.
                None if state.waiters.iter().all(|waiter| waiter.wants.is_some()) => {
                    self.take_idle(&mut state)
                }
                None => None,
            };
            if let Some(lease) = taken {
                self.publish(&state);
                return Ok((lease, permit));
            }
            if wanted.is_some_and(|id| !state.workers.contains_key(&id)) {
                // The wanted worker just left the pool (recycled, say): any will do.
                wanted = None;
                if state.waiters.iter().all(|waiter| waiter.wants.is_some()) {
                    if let Some(lease) = self.take_idle(&mut state) {
                        self.publish(&state);
                        return Ok((lease, permit));
                    }
                }
            }
            if queued >= self.config.queue_bound {
                if let Some(permit) = permit.and_then(CommandPermit::take) {
                    state.release_permit(&permit.0, permit.1);
                }
                return Err(PoolError::Overloaded {
                    queued,
                    bound: self.config.queue_bound,
                });
            }
            let (sender, waiting) = oneshot::channel();
            state.waiters.push_back(Waiter {
                sender,
                wants: wanted,
            });
            self.grow_for_demand(&mut state);
            self.metrics.queue_depth(state.waiters.len());
            // `Pool::wait_until` watchers see the queue grow.
            self.publish(&state);
            (waiting, permit)
        };
        let waited = tokio::time::timeout(limit, waiting).await;
        match waited {
            // The pool refuses queued requests without knowing their command: name it here.
            Ok(Ok(Err(PoolError::ShuttingDown { .. }))) | Ok(Err(_)) => {
                Err(PoolError::ShuttingDown {
                    command: command.to_owned(),
                })
            }
            Ok(Ok(result)) => result.map(|lease| (lease, permit)),
            Err(_elapsed) => {
                // The waiter is gone (its receiver was dropped): let watchers see the queue shrink.
                let mut state = self.lock();
                state.live_waiters();
                if let Some(permit) = permit.and_then(CommandPermit::take) {
                    state.release_permit(&permit.0, permit.1);
                }
                self.publish(&state);
                drop(state);
                Err(PoolError::CheckoutTimeout {
                    command: command.to_owned(),
                    waited: limit,
                })
            }
        }
    }

    /// Takes worker `id` if it is idle.
    /// A worker that reached a recycle limit while idle is recycled, not lent.
    fn take_idle_worker(&self, state: &mut State, id: WorkerId) -> Option<Lease> {
        let position = state.idle.iter().position(|idle| *idle == id)?;
        state.idle.remove(position);
        if self.recycle_if_due(state, id) {
            return None;
        }
        self.lend(state, id)
    }

    /// Whether worker `id` is in the pool and idle.
    pub(crate) fn is_idle(&self, id: WorkerId) -> bool {
        self.lock().idle.contains(&id)
    }

    /// Whether worker `id` is still in the pool.
    pub(crate) fn has_worker(&self, id: WorkerId) -> bool {
        self.lock().workers.contains_key(&id)
    }

    /// Pops idle workers until one accepts a checkout. A worker that reached
    /// a recycle limit while idle (age, memory) is recycled, not lent.
    fn take_idle(&self, state: &mut State) -> Option<Lease> {
        while let Some(id) = state.idle.pop_front() {
            if self.recycle_if_due(state, id) {
                continue;
            }
            if let Some(lease) = self.lend(state, id) {
                return Some(lease);
            }
        }
        None
    }

    /// Moves worker `id` to Busy and wraps it in a lease; a worker that
    /// refuses (unhealthy) is retired instead.
    fn lend(&self, state: &mut State, id: WorkerId) -> Option<Lease> {
        let inner = self.strong()?;
        let slot = state.workers.get_mut(&id)?;
        let connection = slot.connection.clone()?;
        if connection.is_draining() {
            // It is stopping on its own (SIGTERM): let it go, a replacement starts.
            tracing::debug!(worker_id = id, "worker is draining; retiring it");
            self.apply(state, id, Event::Shutdown);
            self.retire(state, id, Retirement::Graceful);
            return None;
        }
        let settings_applied = slot.settings_version;
        match slot.lifecycle.apply(Event::Checkout) {
            Ok(_) => Some(Lease::new(inner, id, connection, settings_applied)),
            Err(refused) => {
                tracing::debug!(worker_id = id, %refused, "worker not lendable; retiring it");
                self.retire(state, id, Retirement::Failed);
                None
            }
        }
    }

    /// Takes a worker back after a request (see [`Lease::finish`]).
    pub(crate) fn release(&self, id: WorkerId, replied: bool, action: WorkerAction) {
        let mut state = self.lock();
        self.release_locked(&mut state, id, replied, action);
    }

    /// [`Inner::release`] under a lock the caller holds.
    pub(crate) fn release_locked(
        &self,
        state: &mut State,
        id: WorkerId,
        replied: bool,
        action: WorkerAction,
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
            self.confirm_spawn(state, id);
        }
        self.apply(state, id, event);
        self.settle(state, id);
    }

    /// Decides what happens next to idle worker `id`: recycle, retire, or
    /// hand to the next waiter.
    pub(crate) fn settle(&self, state: &mut State, id: WorkerId) {
        let Some(slot) = state.workers.get(&id) else {
            self.publish(state);
            return;
        };
        match slot.lifecycle.state() {
            WorkerState::Ready | WorkerState::Degraded => {
                let available = slot.lifecycle.is_available();
                let overflow = slot.overflow;
                let draining = slot
                    .connection
                    .as_ref()
                    .is_some_and(|connection| connection.is_draining());
                if draining {
                    // Stopping on its own (SIGTERM): never lend it again.
                    self.apply(state, id, Event::Shutdown);
                    self.retire(state, id, Retirement::Graceful);
                } else if self.recycle_if_due(state, id) {
                    // Retired; its replacement is starting.
                } else if !available {
                    self.apply(state, id, Event::Shutdown);
                    self.retire(state, id, Retirement::Failed);
                } else if (overflow && state.live_waiters() == 0)
                    || (!overflow && above_size(state))
                {
                    // Overflow no longer needed, or the pool was resized down.
                    self.apply(state, id, Event::Shutdown);
                    self.retire(state, id, Retirement::Graceful);
                } else {
                    self.dispatch(state, id);
                }
            }
            WorkerState::Terminating | WorkerState::Terminated => {
                let failed = !state.shutting_down && slot.lifecycle.drain_cause().is_none();
                self.retire(
                    state,
                    id,
                    if failed {
                        Retirement::Failed
                    } else {
                        Retirement::Graceful
                    },
                );
            }
            WorkerState::Starting | WorkerState::Busy | WorkerState::Draining => {}
        }
        self.publish(state);
    }

    /// Recycles idle worker `id` (SIGTERM, replacement) if it reached a
    /// recycle limit; returns whether it did.
    fn recycle_if_due(&self, state: &mut State, id: WorkerId) -> bool {
        let Some(slot) = state.workers.get(&id) else {
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
        let rss = match (&self.config.recycle.max_memory_bytes, &slot.connection) {
            (Some(_), Some(connection)) => connection.resident_memory_bytes(),
            _ => None,
        };
        let Some(reason) = slot.lifecycle.recycle_due(&self.config.recycle, rss) else {
            return false;
        };
        tracing::info!(worker_id = id, %reason, "recycling worker");
        metrics::recycled(&self.config.name, &reason);
        state.counters.recycled += 1;
        self.apply(state, id, Event::RecycleDue(reason));
        self.retire(state, id, Retirement::Graceful);
        true
    }

    /// Hands ready worker `id` to the first waiter still waiting, or parks it idle.
    fn dispatch(&self, state: &mut State, id: WorkerId) {
        loop {
            let position = state.waiters.iter().position(|waiter| {
                !waiter.sender.is_closed() && waiter.wants.is_none_or(|wanted| wanted == id)
            });
            let Some(position) = position else {
                break;
            };
            let Some(lease) = self.lend(state, id) else {
                // The worker was retired instead (unhealthy, or draining): the
                // waiter keeps its place for the next worker.
                return;
            };
            let Some(waiter) = state.waiters.remove(position) else {
                lease.disarm();
                self.apply(
                    state,
                    id,
                    Event::RequestFailed {
                        severity: FailureSeverity::Harmless,
                    },
                );
                break;
            };
            match waiter.sender.send(Ok(lease)) {
                Ok(()) => {
                    self.metrics.queue_depth(state.waiters.len());
                    return;
                }
                Err(returned) => {
                    // The caller left between our check and the send.
                    if let Ok(lease) = returned {
                        lease.disarm();
                    }
                    self.apply(
                        state,
                        id,
                        Event::RequestFailed {
                            severity: FailureSeverity::Harmless,
                        },
                    );
                }
            }
        }
        state.idle.push_back(id);
    }

    /// Removes worker `id` from the pool and stops its process in the
    /// background; then tops the pool back up.
    pub(crate) fn retire(&self, state: &mut State, id: WorkerId, how: Retirement) {
        state.idle.retain(|idle| *idle != id);
        let Some(mut slot) = state.workers.remove(&id) else {
            return;
        };
        // Callers waiting for this very worker (session affinity) now take
        // any, starting with the workers idle right now.
        let mut released_waiters = false;
        for waiter in state
            .waiters
            .iter_mut()
            .filter(|waiter| waiter.wants == Some(id))
        {
            waiter.wants = None;
            released_waiters = true;
        }
        if released_waiters {
            let idle: Vec<WorkerId> = state.idle.drain(..).collect();
            for idle_id in idle {
                self.dispatch(state, idle_id);
            }
        }
        self.forget_worker(id);
        if let Some(watch) = slot.exit_watch.take() {
            watch.abort();
        }
        if let Some(permit) = slot.spawn_permit.take() {
            match how {
                Retirement::Failed => state.spawn_breaker.record(permit, CallOutcome::Failure),
                Retirement::Graceful => state.spawn_breaker.release(permit),
            }
        }
        if how == Retirement::Failed && !state.shutting_down {
            state.counters.replaced += 1;
            metrics::replaced(&self.config.name);
        }
        if let Some(connection) = slot.connection.take() {
            state.retiring += 1;
            let grace = self.config.timeouts.terminate_grace;
            let inner = self.myself.clone();
            tokio::spawn(async move {
                stop_process(connection, how, grace).await;
                if let Some(inner) = inner.upgrade() {
                    let mut state = inner.lock();
                    state.retiring = state.retiring.saturating_sub(1);
                    inner.publish(&state);
                }
            });
        }
        self.ensure_size(state);
        self.publish(state);
    }

    /// Spawns workers until the pool holds its minimum again.
    pub(crate) fn ensure_size(&self, state: &mut State) {
        if state.shutting_down {
            return;
        }
        let minimum = match self.config.start_mode {
            StartMode::Eager => state.target_size,
            StartMode::Lazy => 0,
        };
        let kept = state.workers.values().filter(|slot| !slot.overflow).count();
        for _ in kept..minimum {
            self.start_spawn(state, false);
        }
        self.grow_for_demand(state);
    }

    /// Spawns a worker for waiting requests when none is starting for them,
    /// within `size + max_overflow`.
    pub(crate) fn grow_for_demand(&self, state: &mut State) {
        if state.shutting_down {
            return;
        }
        state.live_waiters();
        // Only callers any worker can serve: one pinned (affinity) to a
        // worker in the pool waits for that worker, a new one cannot help.
        let waiting = state
            .waiters
            .iter()
            .filter(|waiter| {
                waiter
                    .wants
                    .is_none_or(|id| !state.workers.contains_key(&id))
            })
            .count();
        let starting = state.count_in(WorkerState::Starting);
        let limit = state.target_size + self.config.max_overflow;
        let mut total = state.workers.len();
        let mut needed = waiting.saturating_sub(starting);
        while needed > 0 && total < limit {
            let overflow =
                state.workers.values().filter(|slot| !slot.overflow).count() >= state.target_size;
            self.start_spawn(state, overflow);
            total += 1;
            needed -= 1;
        }
    }
}

/// Whether the pool holds more regular (non-overflow) workers than its size,
/// after `Pool::resize` shrank it.
fn above_size(state: &State) -> bool {
    let regular = state.workers.values().filter(|slot| !slot.overflow).count();
    regular > state.target_size
}

/// Stops a removed worker: SIGTERM and a grace period when graceful, SIGKILL otherwise.
async fn stop_process(connection: Arc<dyn WorkerConnection>, how: Retirement, grace: Duration) {
    if how == Retirement::Graceful {
        connection.terminate();
        if tokio::time::timeout(grace, connection.exited())
            .await
            .is_ok()
        {
            return;
        }
    }
    connection.kill();
    let _ = tokio::time::timeout(grace, connection.exited()).await;
}
