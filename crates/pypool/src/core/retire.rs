//! Retiring workers, keeping the pool at its size, resizing it, and
//! shutting it down.

use pypool_breaker::CallOutcome;
use pypool_lifecycle::{Event, State};
use pypool_seam::WorkerId;

use super::{Core, Effect, Effects, Note, Retirement, WaitFailure, WaiterToken, WorkerHandle};

impl<H: WorkerHandle, T: WaiterToken> Core<H, T> {
    /// Removes worker `id` from the books (the shell stops its process);
    /// then tops the pool back up.
    pub(super) fn retire(&mut self, id: WorkerId, how: Retirement, fx: &mut Effects<H, T>) {
        self.idle.retain(|idle| *idle != id);
        let Some(mut worker) = self.workers.remove(&id) else {
            return;
        };
        // Callers waiting for this very worker (session affinity) now take any.
        self.unpin_waiters(id, fx);
        if let Some(permit) = worker.spawn_permit.take() {
            match how {
                Retirement::Failed => self.spawn_breaker.record(permit, CallOutcome::Failure),
                Retirement::Graceful | Retirement::Abandoned => self.spawn_breaker.release(permit),
            }
        }
        if how == Retirement::Failed && !self.shutting_down {
            self.counters.replaced += 1;
            fx.push(Effect::Note(Note::Replaced));
        }
        let handle = worker.handle.take();
        if handle.is_some() && how != Retirement::Abandoned {
            self.retiring += 1;
        }
        fx.push(Effect::Stop {
            worker: id,
            handle,
            how,
        });
        self.ensure_size(fx);
    }

    /// A retired worker's process is gone (or given up on).
    pub(crate) fn stopped(&mut self) {
        self.retiring = self.retiring.saturating_sub(1);
    }

    /// Spawns workers until the pool holds its minimum again.
    pub(super) fn ensure_size(&mut self, fx: &mut Effects<H, T>) {
        if self.shutting_down {
            return;
        }
        let minimum = if self.config.eager {
            self.target_size
        } else {
            0
        };
        let kept = self.regular_workers();
        for _ in kept..minimum {
            self.start_spawn(false, fx);
        }
        self.grow_for_demand(fx);
    }

    /// Spawns a worker for waiting requests when none is starting for them,
    /// within `size + max_overflow`.
    pub(super) fn grow_for_demand(&mut self, fx: &mut Effects<H, T>) {
        if self.shutting_down {
            return;
        }
        self.prune_waiters(fx);
        // Only callers any worker can serve: one pinned (affinity) to a
        // worker in the pool waits for that worker, a new one cannot help.
        let waiting = self
            .waiters
            .iter()
            .filter(|waiter| {
                waiter
                    .wants
                    .is_none_or(|id| !self.workers.contains_key(&id))
            })
            .count();
        let starting = self.count_in(State::Starting);
        let limit = self.target_size + self.config.max_overflow;
        let mut total = self.workers.len();
        let mut needed = waiting.saturating_sub(starting);
        while needed > 0 && total < limit {
            let overflow = self
                .workers
                .values()
                .filter(|worker| !worker.overflow)
                .count()
                >= self.target_size;
            self.start_spawn(overflow, fx);
            total += 1;
            needed -= 1;
        }
    }

    /// Whether the pool holds more regular (non-overflow) workers than its
    /// size, after a resize shrank it.
    pub(super) fn above_size(&self) -> bool {
        self.regular_workers() > self.target_size
    }

    /// Regular (non-overflow) workers that still count toward the size: not
    /// those draining their last requests before they stop (their replacement
    /// may start meanwhile).
    fn regular_workers(&self) -> usize {
        self.workers
            .values()
            .filter(|worker| !worker.overflow && worker.lifecycle.state() != State::Draining)
            .count()
    }

    pub(super) fn count_in(&self, state: State) -> usize {
        self.workers
            .values()
            .filter(|worker| worker.lifecycle.state() == state)
            .count()
    }

    /// Changes the pool's size: grows at once; shrinks by dropping workers
    /// still starting, then retiring idle workers now and busy ones when
    /// their request ends.
    pub(crate) fn resize(&mut self, size: usize, fx: &mut Effects<H, T>) {
        if self.shutting_down {
            return;
        }
        self.target_size = size;
        // Shrinking drops workers still starting first (newest first): a
        // ready worker is worth more than one whose handshake is pending.
        // Their spawns see the slot gone and kill the worker if it arrives.
        let regular = self
            .workers
            .values()
            .filter(|worker| !worker.overflow)
            .count();
        let starting: Vec<_> = self
            .workers
            .iter()
            .rev()
            .filter(|(_, worker)| !worker.overflow && worker.lifecycle.state() == State::Starting)
            .map(|(id, _)| *id)
            .take(regular.saturating_sub(size))
            .collect();
        for id in starting {
            self.workers.remove(&id);
        }
        self.ensure_size(fx);
        let idle: Vec<_> = self.idle.drain(..).collect();
        for id in idle {
            self.settle(id, fx);
        }
    }

    /// Shutdown begins: new requests are refused, waiters fail, idle
    /// workers are stopped, busy ones drain.
    pub(crate) fn begin_shutdown(&mut self, fx: &mut Effects<H, T>) {
        self.shutting_down = true;
        self.fail_waiters(&WaitFailure::ShuttingDown, fx);
        let ids: Vec<_> = self.workers.keys().copied().collect();
        for id in ids {
            self.apply(id, Event::Shutdown);
            let busy = self
                .workers
                .get(&id)
                .is_some_and(|worker| worker.lifecycle.state() == State::Draining);
            if !busy {
                self.retire(id, Retirement::Graceful, fx);
            }
        }
    }

    /// Shutdown's deadline passed: every worker left is killed and removed;
    /// returns how many.
    pub(crate) fn force_shutdown(&mut self, fx: &mut Effects<H, T>) -> usize {
        self.shutting_down = true;
        let ids: Vec<_> = self.workers.keys().copied().collect();
        for id in &ids {
            if let Some(handle) = self
                .workers
                .get(id)
                .and_then(|worker| worker.handle.clone())
            {
                fx.push(Effect::Kill(handle));
            }
            self.retire(*id, Retirement::Failed, fx);
        }
        ids.len()
    }

    /// The last pool handle is gone: every waiter fails, every worker is
    /// killed at once.
    pub(crate) fn abandon(&mut self, fx: &mut Effects<H, T>) {
        self.shutting_down = true;
        self.fail_waiters(&WaitFailure::ShuttingDown, fx);
        self.idle.clear();
        let ids: Vec<_> = self.workers.keys().copied().collect();
        for id in ids {
            self.retire(id, Retirement::Abandoned, fx);
        }
    }
}
