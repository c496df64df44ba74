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

    /// Takes worker `id` if it has room: idle, or partially busy.
    /// A worker that reached a recycle limit while idle is recycled, not lent.
    fn take_idle_worker(&self, state: &mut State, id: WorkerId) -> Option<Lease> {
        if state
            .workers
            .get(&id)
            .is_some_and(|slot| slot.has_spare_room())
        {
            return self.lend(state, id);
        }
        let position = state.idle.iter().position(|idle| *idle == id)?;
        state.idle.remove(position);
        if self.recycle_if_due(state, id) {
            return None;
        }
        self.lend(state, id)
    }

    /// Whether worker `id` is in the pool and could take a request now
    /// (idle, or partially busy with room).
    pub(crate) fn has_room(&self, id: WorkerId) -> bool {
        let state = self.lock();
        state.idle.contains(&id)
            || state
                .workers
                .get(&id)
                .is_some_and(|slot| slot.has_spare_room())
    }

    /// Whether worker `id` is still in the pool.
    pub(crate) fn has_worker(&self, id: WorkerId) -> bool {
        self.lock().workers.contains_key(&id)
    }

    /// Takes the least-loaded worker with room: an idle one first (popping
    /// idle workers until one accepts a checkout; one that reached a recycle
    /// limit while idle is recycled, not lent), else the partially busy one
    /// with the fewest requests in flight.
    fn take_idle(&self, state: &mut State) -> Option<Lease> {
        while let Some(id) = state.idle.pop_front() {
            if self.recycle_if_due(state, id) {
                continue;
            }
            if let Some(lease) = self.lend(state, id) {
                return Some(lease);
            }
        }
        if !state.any_shared {
            return None;
        }
        let least_loaded = state
            .workers
            .iter()
            .filter(|(_, slot)| slot.has_spare_room())
            .min_by_key(|(_, slot)| slot.in_flight)
            .map(|(id, _)| *id)?;
        self.lend(state, least_loaded)
    }

    /// Lends worker `id` one more request: an idle one moves to Busy, a
    /// partially busy one takes one more slot; wrapped in a lease. A worker
    /// that refuses (unhealthy) is retired instead.
    fn lend(&self, state: &mut State, id: WorkerId) -> Option<Lease> {
        let inner = self.strong()?;
        let slot = state.workers.get_mut(&id)?;
        let connection = slot.connection.clone()?;
        if slot.in_flight > 0 {
            if !slot.has_spare_room() {
                if connection.is_draining() {
                    // Stopping on its own: no new requests; it goes when its last one settles.
                    self.apply(state, id, Event::Shutdown);
                    self.ensure_size(state);
                }
                return None;
            }
            slot.in_flight += 1;
            let settings_applied = slot.settings_version;
            return Some(Lease::new(inner, id, connection, settings_applied));
        }
        if connection.is_draining() {
            // It is stopping on its own (SIGTERM): let it go, a replacement starts.
            tracing::debug!(worker_id = id, "worker is draining; retiring it");
            self.apply(state, id, Event::Shutdown);
            self.retire(state, id, Retirement::Graceful);
            return None;
        }
        let settings_applied = slot.settings_version;
        match slot.lifecycle.apply(Event::Checkout) {
            Ok(_) => {
                slot.in_flight = 1;
                Some(Lease::new(inner, id, connection, settings_applied))
            }
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
        let Some(slot) = state.workers.get_mut(&id) else {
            // Gone already (killed, crashed): nothing to give back.
            self.publish(state);
            return;
        };
        slot.in_flight = slot.in_flight.saturating_sub(1);
        let remaining = slot.in_flight;
        let lifecycle = slot.lifecycle.state();
        if remaining > 0 {
            self.release_shared(state, id, event, lifecycle);
            return;
        }
        if lifecycle == WorkerState::Draining && !state.shutting_down {
            // Marked to stop (recycle, draining, resize) while it held
            // several requests: the last one settled, it goes now.
            self.apply(state, id, event);
            let how = match action {
                WorkerAction::Remove { .. } => Retirement::Failed,
                _ => Retirement::Graceful,
            };
            self.retire(state, id, how);
            return;
        }
        self.apply(state, id, event);
        self.settle(state, id);
    }

    /// One of several requests on worker `id` settled and others remain in
    /// flight: the outcome counts on its state machine (which stays Busy
    /// unless the worker must go), and the freed slot goes to a waiter.
    fn release_shared(
        &self,
        state: &mut State,
        id: WorkerId,
        event: Event,
        lifecycle: WorkerState,
    ) {
        match lifecycle {
            WorkerState::Busy => {
                // The outcome moves it out of Busy (counting the request);
                // its other requests keep it busy.
                self.apply(state, id, event);
                let after = state.workers.get(&id).map(|slot| slot.lifecycle.state());
                if matches!(after, Some(WorkerState::Ready | WorkerState::Degraded)) {
                    self.apply(state, id, Event::Checkout);
                }
            }
            WorkerState::Draining => {
                // It takes nothing new; only a fatal outcome ends it early.
                if matches!(
                    event,
                    Event::RequestFailed {
                        severity: FailureSeverity::Fatal
                    }
                ) {
                    self.apply(state, id, event);
                }
            }
            _ => {}
        }
        let Some(slot) = state.workers.get(&id) else {
            self.publish(state);
            return;
        };
        match slot.lifecycle.state() {
            WorkerState::Busy => {
                let overflow = slot.overflow;
                let draining = slot
                    .connection
                    .as_ref()
                    .is_some_and(|connection| connection.is_draining());
                if draining || (!overflow && above_size(state)) {
                    // Stopping on its own, or the pool shrank: no new
                    // requests; it goes when its last one settles.
                    self.apply(state, id, Event::Shutdown);
                    self.ensure_size(state);
                } else if !self.recycle_if_due(state, id) {
                    self.dispatch(state, id);
                }
            }
            WorkerState::Ready | WorkerState::Degraded => {
                // Refused to go busy again (a failure threshold): it must go,
                // ending what it still holds.
                self.apply(state, id, Event::Shutdown);
                self.retire(state, id, Retirement::Failed);
            }
            WorkerState::Terminating | WorkerState::Terminated => {
                // A fatal outcome: kill it; its other requests end with `worker_exited`.
                let how = if state.shutting_down {
                    Retirement::Graceful
                } else {
                    Retirement::Failed
                };
                self.retire(state, id, how);
            }
            WorkerState::Starting | WorkerState::Draining => {}
        }
        self.publish(state);
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
        // A busy worker (requests still in flight) drains: it takes nothing
        // new and is stopped when its last request settles.
        let draining = state
            .workers
            .get(&id)
            .is_some_and(|slot| slot.lifecycle.state() == WorkerState::Draining);
        if draining {
            // Its replacement starts now.
            self.ensure_size(state);
        } else {
            self.retire(state, id, Retirement::Graceful);
        }
        true
    }

    /// Hands worker `id` (ready, or partially busy) to the first waiters
    /// still waiting while it has room; parks it idle if nothing is in flight.
    fn dispatch(&self, state: &mut State, id: WorkerId) {
        loop {
            let Some(slot) = state.workers.get(&id) else {
                return;
            };
            if slot.in_flight > 0 && !slot.has_spare_room() {
                return;
            }
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
                self.unlend(state, id);
                break;
            };
            match waiter.sender.send(Ok(lease)) {
                Ok(()) => {
                    self.metrics.queue_depth(state.waiters.len());
                }
                Err(returned) => {
                    // The caller left between our check and the send.
                    if let Ok(lease) = returned {
                        lease.disarm();
                    }
                    self.unlend(state, id);
                }
            }
        }
        if state
            .workers
            .get(&id)
            .is_some_and(|slot| slot.in_flight == 0)
        {
            state.idle.push_back(id);
        }
    }

    /// Takes back a slot lent by `dispatch` to a caller that left before
    /// getting it: nothing was sent, nothing counts.
    fn unlend(&self, state: &mut State, id: WorkerId) {
        let Some(slot) = state.workers.get_mut(&id) else {
            return;
        };
        slot.in_flight = slot.in_flight.saturating_sub(1);
        if slot.in_flight == 0 {
            self.apply(
                state,
                id,
                Event::RequestFailed {
                    severity: FailureSeverity::Harmless,
                },
            );
        }
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
            let partial: Vec<WorkerId> = state
                .workers
                .iter()
                .filter(|(_, slot)| slot.has_spare_room())
                .map(|(id, _)| *id)
                .collect();
            for partial_id in partial {
                self.dispatch(state, partial_id);
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
        let kept = regular_workers(state);
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
    regular_workers(state) > state.target_size
}

/// Regular (non-overflow) workers that still count toward the size: not
/// those draining their last requests before they stop (their replacement
/// may start meanwhile).
fn regular_workers(state: &State) -> usize {
    state
        .workers
        .values()
        .filter(|slot| !slot.overflow && slot.lifecycle.state() != WorkerState::Draining)
        .count()
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
