//! Read-only views of the books, for `Pool::status`, readiness and the
//! gauges. Nothing here changes anything.

use pypool_breaker::BreakerState;
use pypool_lifecycle::{State, WorkerLifecycle};
use pypool_seam::WorkerId;

use super::worker::Worker;
use super::{Core, PoolCounters, WaiterToken, WorkerHandle};

/// One worker, as the status shows it.
#[derive(Debug)]
pub(crate) struct WorkerView<'a, H> {
    /// Its id.
    pub(crate) id: WorkerId,
    /// Its connection, once started.
    pub(crate) handle: Option<&'a H>,
    /// Its state machine.
    pub(crate) lifecycle: &'a WorkerLifecycle,
    /// Spawned above `size`.
    pub(crate) overflow: bool,
    /// Requests it holds.
    pub(crate) in_flight: usize,
    /// Requests it may hold at once.
    pub(crate) capacity: usize,
    /// Lent to a health check right now.
    pub(crate) health_checking: bool,
    /// Partially busy with room for more.
    pub(crate) has_spare_room: bool,
}

fn view<H: WorkerHandle>(id: WorkerId, worker: &Worker<H>) -> WorkerView<'_, H> {
    WorkerView {
        id,
        handle: worker.handle.as_ref(),
        lifecycle: &worker.lifecycle,
        overflow: worker.overflow,
        in_flight: worker.in_flight(),
        capacity: worker.capacity(),
        health_checking: worker.health_checking,
        has_spare_room: worker.has_spare_room(),
    }
}

impl<H: WorkerHandle, T: WaiterToken> Core<H, T> {
    /// Every worker, by id.
    pub(crate) fn workers(&self) -> impl Iterator<Item = WorkerView<'_, H>> {
        self.workers.iter().map(|(id, worker)| view(*id, worker))
    }

    /// Idle workers (nothing in flight, in the idle list).
    pub(crate) fn idle_count(&self) -> usize {
        self.idle.len()
    }

    /// Waiters whose caller still waits.
    pub(crate) fn live_waiters(&self) -> usize {
        self.waiters
            .iter()
            .filter(|waiter| !waiter.token.is_gone())
            .count()
    }

    /// What each caller still waiting waits for: a worker, or any (`None`).
    #[cfg(test)]
    pub(crate) fn waiter_wants(&self) -> impl Iterator<Item = Option<WorkerId>> + '_ {
        self.waiters
            .iter()
            .filter(|waiter| !waiter.token.is_gone())
            .map(|waiter| waiter.wants)
    }

    /// The size the pool keeps.
    pub(crate) fn target_size(&self) -> usize {
        self.target_size
    }

    /// Workers removed whose process is still being stopped.
    pub(crate) fn retiring(&self) -> usize {
        self.retiring
    }

    /// The spawn breaker's state (the breaker moves from open to half-open by the clock when read).
    pub(crate) fn spawn_breaker_state(&mut self) -> BreakerState {
        self.spawn_breaker.state()
    }

    /// The running totals.
    pub(crate) fn counters(&self) -> PoolCounters {
        self.counters
    }

    /// (live workers, workers in the books plus those being stopped), for
    /// `Pool::ready` and `Pool::shutdown`.
    pub(crate) fn readiness(&self) -> (usize, usize) {
        (self.live_workers(), self.workers.len() + self.retiring)
    }

    /// Workers by state: starting, ready, busy, degraded, draining.
    pub(crate) fn state_counts(&self) -> [usize; 5] {
        let mut counts = [0_usize; 5];
        for worker in self.workers.values() {
            let index = match worker.lifecycle.state() {
                State::Starting => 0,
                State::Ready => 1,
                State::Busy => 2,
                State::Degraded => 3,
                State::Draining => 4,
                State::Terminating | State::Terminated => continue,
            };
            if let Some(count) = counts.get_mut(index) {
                *count += 1;
            }
        }
        counts
    }
}
