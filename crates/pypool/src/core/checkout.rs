//! Admission and checkout: the breaker, the queue bound, picking a worker by
//! free capacity, and queueing the caller when none has room.

use std::time::Duration;

use pypool_breaker::Permit;
use pypool_lifecycle::{Event, State};
use pypool_seam::WorkerId;

use super::{
    Affinity, BreakerKey, Core, Effect, Effects, Note, Retirement, Waiter, WaiterToken,
    WorkerHandle,
};
use crate::job::JobKey;

/// A worker lent to one request.
#[derive(Debug)]
pub(crate) struct Lent<H> {
    /// The worker.
    pub(crate) worker: WorkerId,
    /// Its connection.
    pub(crate) handle: H,
    /// The settings version the worker had applied when it was lent.
    pub(crate) settings_applied: u64,
}

/// Why a checkout was refused at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The request's breaker is open.
    CircuitOpen {
        /// When it may be tried again.
        retry_after: Duration,
    },
    /// The pool is shutting down.
    ShuttingDown,
    /// The queue is full.
    Overloaded {
        /// Callers waiting.
        queued: usize,
        /// The bound.
        bound: usize,
    },
}

/// What a checkout did.
#[derive(Debug)]
pub(crate) enum Checkout<H> {
    /// A worker with room was lent at once.
    Lent(Lent<H>),
    /// The caller waits in the queue (its token was taken).
    Queued,
    /// Refused.
    Refused(Refusal),
}

/// Whether a request sent now would be accepted (tower's `poll_ready`).
#[cfg(feature = "tower")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Room {
    /// Yes.
    Open,
    /// The queue is full.
    Full,
    /// Shutting down.
    Closed,
}

impl<H: WorkerHandle, T: WaiterToken> Core<H, T> {
    /// Admits a request keyed `admit` through its breaker (when given) and
    /// checks out worker `wanted` (or any when `None`): lent at once if one
    /// has room, else the caller queues under the token `make_token` makes.
    /// The permit comes back with a lent or queued checkout; a refusal
    /// gives it back itself.
    pub(crate) fn checkout(
        &mut self,
        admit: Option<&JobKey>,
        mut wanted: Option<WorkerId>,
        make_token: impl FnOnce() -> T,
        fx: &mut Effects<H, T>,
    ) -> (Checkout<H>, Option<(BreakerKey, Permit)>) {
        let permit = match admit.map(|key| self.admit(key)) {
            None => None,
            Some(Ok(permit)) => permit,
            Some(Err(rejected)) => {
                return (
                    Checkout::Refused(Refusal::CircuitOpen {
                        retry_after: rejected.retry_after,
                    }),
                    None,
                );
            }
        };
        if self.shutting_down {
            self.give_back(permit);
            return (Checkout::Refused(Refusal::ShuttingDown), None);
        }
        // Callers that left are no longer in line (else an idle worker
        // would wait behind a caller that is gone).
        let queued = self.prune_waiters(fx);
        let taken = match wanted {
            Some(id) => self.take_worker(id, fx),
            // Idle workers exist only while no caller waits for any worker.
            None if self.no_waiter_for_any() => self.take_any(fx),
            None => None,
        };
        if let Some(lent) = taken {
            return (Checkout::Lent(lent), permit);
        }
        if wanted.is_some_and(|id| !self.takes_new_work(id)) {
            // The wanted worker left the pool or is on its way out
            // (recycled, say): any will do.
            wanted = None;
            if self.no_waiter_for_any() {
                if let Some(lent) = self.take_any(fx) {
                    return (Checkout::Lent(lent), permit);
                }
            }
        }
        let bound = self.config.queue_bound;
        if queued >= bound {
            self.give_back(permit);
            return (
                Checkout::Refused(Refusal::Overloaded { queued, bound }),
                None,
            );
        }
        self.waiters.push_back(Waiter {
            token: make_token(),
            wants: wanted,
        });
        self.grow_for_demand(fx);
        fx.push(Effect::Note(Note::QueueDepth(self.waiters.len())));
        (Checkout::Queued, permit)
    }

    /// A queued caller stopped waiting (its token now says so): it leaves
    /// the queue, and its permit goes back.
    pub(crate) fn waiter_left(
        &mut self,
        permit: Option<(BreakerKey, Permit)>,
        fx: &mut Effects<H, T>,
    ) {
        self.prune_waiters(fx);
        self.give_back(permit);
    }

    fn give_back(&mut self, permit: Option<(BreakerKey, Permit)>) {
        if let Some((key, permit)) = permit {
            self.release_permit(&key, permit);
        }
    }

    fn no_waiter_for_any(&self) -> bool {
        self.waiters.iter().all(|waiter| waiter.wants.is_some())
    }

    /// Takes worker `id` if it has room: idle, or partially busy (a worker
    /// past a recycle limit is recycled instead, see [`Core::lend`]).
    fn take_worker(&mut self, id: WorkerId, fx: &mut Effects<H, T>) -> Option<Lent<H>> {
        if self
            .workers
            .get(&id)
            .is_some_and(|worker| worker.has_spare_room())
        {
            return self.lend(id, fx);
        }
        let position = self.idle.iter().position(|idle| *idle == id)?;
        self.idle.remove(position);
        self.lend(id, fx)
    }

    /// Takes the least-loaded worker with room: an idle one first (popping
    /// idle workers until one accepts a checkout), else the partially busy
    /// one with the fewest requests in flight. One past a recycle limit is
    /// recycled, not lent, and the next is tried.
    pub(super) fn take_any(&mut self, fx: &mut Effects<H, T>) -> Option<Lent<H>> {
        while let Some(id) = self.idle.pop_front() {
            if let Some(lent) = self.lend(id, fx) {
                return Some(lent);
            }
        }
        if !self.any_shared {
            return None;
        }
        // Each refusal takes a worker out of the candidates (it drains or
        // leaves): at most one try per worker.
        for _ in 0..self.workers.len() {
            let least_loaded = self
                .workers
                .iter()
                .filter(|(_, worker)| worker.has_spare_room())
                .min_by_key(|(_, worker)| worker.in_flight())
                .map(|(id, _)| *id)?;
            if let Some(lent) = self.lend(least_loaded, fx) {
                return Some(lent);
            }
        }
        None
    }

    /// Lends worker `id` one more request: an idle one moves to Busy, a
    /// partially busy one takes one more slot. Every lend checks the
    /// recycle limits first: a worker past one is recycled (an idle one
    /// stops, a busy one drains), never lent. A worker that refuses
    /// (unhealthy, or stopping on its own) is retired instead.
    pub(super) fn lend(&mut self, id: WorkerId, fx: &mut Effects<H, T>) -> Option<Lent<H>> {
        if !self.workers.contains_key(&id) || self.recycle_if_due(id, fx) {
            return None;
        }
        let worker = self.workers.get_mut(&id)?;
        let handle = worker.handle.clone()?;
        let draining = handle.is_draining();
        if worker.in_flight() > 0 {
            if !worker.has_spare_room() {
                if draining && worker.lifecycle.state() == State::Busy {
                    // Stopping on its own: no new requests; it goes when its last one settles.
                    self.apply(id, Event::Shutdown);
                    self.unpin_waiters(id, fx);
                    self.ensure_size(fx);
                }
                return None;
            }
            // One more on a partially busy worker (its state machine counts it).
            let settings_applied = worker.settings_version;
            if let Err(refused) = worker.lifecycle.apply(Event::Checkout) {
                tracing::debug!(worker_id = id, %refused, "lifecycle event ignored");
                return None;
            }
            return Some(Lent {
                worker: id,
                handle,
                settings_applied,
            });
        }
        if draining {
            // It is stopping on its own (SIGTERM): let it go, a replacement starts.
            tracing::debug!(worker_id = id, "worker is draining; retiring it");
            self.apply(id, Event::Shutdown);
            self.retire(id, Retirement::Graceful, fx);
            return None;
        }
        let settings_applied = worker.settings_version;
        match worker.lifecycle.apply(Event::Checkout) {
            Ok(_) => Some(Lent {
                worker: id,
                handle,
                settings_applied,
            }),
            Err(refused) => {
                tracing::debug!(worker_id = id, %refused, "worker not lendable; retiring it");
                self.retire(id, Retirement::Failed, fx);
                None
            }
        }
    }

    /// Whether worker `id` may take new requests at all (it is in the pool
    /// and not on its way out), whether or not it has room now.
    fn takes_new_work(&self, id: WorkerId) -> bool {
        self.workers.get(&id).is_some_and(|worker| {
            !matches!(
                worker.lifecycle.state(),
                State::Draining | State::Terminating | State::Terminated
            ) && !worker.is_draining()
        })
    }

    /// Callers waiting for worker `id` (session affinity), which takes no
    /// new requests any more, now take any worker, starting with those
    /// with room right now.
    pub(super) fn unpin_waiters(&mut self, id: WorkerId, fx: &mut Effects<H, T>) {
        let mut unpinned = false;
        for waiter in self
            .waiters
            .iter_mut()
            .filter(|waiter| waiter.wants == Some(id))
        {
            waiter.wants = None;
            unpinned = true;
        }
        if !unpinned {
            return;
        }
        let idle: Vec<WorkerId> = self.idle.drain(..).collect();
        for idle_id in idle {
            self.dispatch(idle_id, fx);
        }
        let partial: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, worker)| worker.has_spare_room())
            .map(|(id, _)| *id)
            .collect();
        for partial_id in partial {
            self.dispatch(partial_id, fx);
        }
        self.grow_for_demand(fx);
    }

    /// Whether worker `id` is in the pool and could take a request now
    /// (idle, or partially busy with room).
    pub(crate) fn has_room(&self, id: WorkerId) -> bool {
        self.idle.contains(&id)
            || self
                .workers
                .get(&id)
                .is_some_and(|worker| worker.has_spare_room())
    }

    /// Whether worker `id` is still in the pool.
    pub(crate) fn has_worker(&self, id: WorkerId) -> bool {
        self.workers.contains_key(&id)
    }

    /// Whether a request sent now would be accepted.
    #[cfg(feature = "tower")]
    pub(crate) fn room(&self) -> Room {
        if self.shutting_down {
            return Room::Closed;
        }
        let queued = self.live_waiters();
        if queued < self.config.queue_bound || (queued == 0 && !self.idle.is_empty()) {
            Room::Open
        } else {
            Room::Full
        }
    }

    /// Counts how a session call used its binding.
    pub(crate) fn count_affinity(&mut self, outcome: Affinity) {
        let counters = &mut self.counters;
        match outcome {
            Affinity::Hit => counters.affinity_hits += 1,
            Affinity::Miss => counters.affinity_misses += 1,
            Affinity::Spill => counters.affinity_spills += 1,
        }
    }
}
