//! A point-in-time snapshot of the pool (deadpool's `Status`, with more).

use std::time::Duration;

use pypool_breaker::BreakerState;
use pypool_lifecycle::{Health, State as WorkerState};
use pypool_seam::WorkerId;
use serde::Serialize;

use crate::inner::{Inner, PoolCounters};

/// A snapshot of the pool, cheap to take and serialisable for reports.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The pool's name (its metrics label).
    pub name: String,
    /// The configured size (minimum kept in eager mode).
    pub size: usize,
    /// Extra workers allowed under load.
    pub max_overflow: usize,
    /// Workers in the table, whatever their state.
    pub workers: usize,
    /// Workers idle and ready for a request, including those a health
    /// check holds for a moment (see `checking`), so that `ready` does not
    /// flap every health-check interval.
    pub ready: usize,
    /// Idle workers a health check holds right now (counted in `ready`).
    pub checking: usize,
    /// Workers running a request.
    pub busy: usize,
    /// Workers spawned but not yet through their handshake.
    pub starting: usize,
    /// Workers serving but suspect after failures.
    pub degraded: usize,
    /// Workers finishing a request before they stop.
    pub draining: usize,
    /// Workers being stopped in the background.
    pub retiring: usize,
    /// Requests waiting for a worker.
    pub queue_len: usize,
    /// The most requests that may wait ([`PoolBuilder::queue_bound`](crate::PoolBuilder::queue_bound)):
    /// with `queue_len` at this bound a new request fails with
    /// [`PoolError::Overloaded`](crate::PoolError::Overloaded).
    pub queue_bound: usize,
    /// Whether the pool is shutting down.
    pub shutting_down: bool,
    /// The spawn circuit breaker's state.
    pub spawn_breaker: BreakerState,
    /// Running totals.
    pub counters: PoolCounters,
    /// One entry per worker, by id.
    pub worker_details: Vec<WorkerStatus>,
}

/// One worker in a [`Status`].
#[derive(Debug, Clone, Serialize)]
pub struct WorkerStatus {
    /// The worker's id.
    pub id: WorkerId,
    /// The operating-system pid of the process the pool spawned for this
    /// worker (the one it signals; with the Python guardian, the guardian,
    /// whose death takes the worker down), once started.
    pub pid: Option<u32>,
    /// The pid the worker reported in its handshake (the Python process that
    /// runs handlers: use it with profilers). Information only: the pool
    /// never signals it.
    pub reported_pid: Option<u32>,
    /// Its state machine's state.
    pub state: WorkerState,
    /// Its health.
    pub health: Health,
    /// Requests it has served.
    pub requests_served: u64,
    /// Consecutive failed health checks.
    pub consecutive_health_failures: u32,
    /// Consecutive failed requests.
    pub consecutive_request_failures: u32,
    /// Time since it was spawned.
    pub age: Duration,
    /// Spawned above `size` to absorb load.
    pub overflow: bool,
}

impl Inner {
    pub(crate) fn status(&self) -> Status {
        // A pure read: nothing in the pool changes because someone looked.
        let mut state = self.lock();
        let queue_len = state
            .waiters
            .iter()
            .filter(|waiter| !waiter.sender.is_closed())
            .count();
        let spawn_breaker = state.spawn_breaker.state();
        let worker_details: Vec<WorkerStatus> = state
            .workers
            .iter()
            .map(|(id, slot)| {
                let counters = slot.lifecycle.counters();
                WorkerStatus {
                    id: *id,
                    pid: slot
                        .connection
                        .as_ref()
                        .and_then(|connection| connection.process_id()),
                    reported_pid: slot
                        .connection
                        .as_ref()
                        .map(|connection| connection.handshake().pid),
                    state: slot.lifecycle.state(),
                    health: slot.lifecycle.health(),
                    requests_served: counters.requests_served,
                    consecutive_health_failures: counters.consecutive_health_failures,
                    consecutive_request_failures: counters.consecutive_request_failures,
                    age: counters.age,
                    overflow: slot.overflow,
                }
            })
            .collect();
        let checking = state
            .workers
            .values()
            .filter(|slot| slot.health_checking && slot.lifecycle.is_available())
            .count();
        let count =
            |wanted: WorkerState| worker_details.iter().filter(|w| w.state == wanted).count();
        Status {
            name: self.config.name.clone(),
            size: state.target_size,
            max_overflow: self.config.max_overflow,
            workers: worker_details.len(),
            // Idle workers, counting those a health check holds for a
            // moment: `ready` must not flap every check interval.
            ready: state.idle.len() + checking,
            checking,
            busy: count(WorkerState::Busy),
            starting: count(WorkerState::Starting),
            degraded: count(WorkerState::Degraded),
            draining: count(WorkerState::Draining),
            retiring: state.retiring,
            queue_len,
            queue_bound: self.config.queue_bound,
            shutting_down: state.shutting_down,
            spawn_breaker,
            counters: state.counters,
            worker_details,
        }
    }
}
