//! A point-in-time snapshot of the pool (deadpool's `Status`, with more).

use std::time::Duration;

use pypool_breaker::BreakerState;
use pypool_lifecycle::{Health, State as WorkerState};
use pypool_seam::WorkerId;
use serde::Serialize;

use crate::core::PoolCounters;
use crate::inner::Inner;

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
    /// Workers idle (nothing in flight) and ready for a request, including
    /// those a health check holds for a moment (see `checking`), so that
    /// `ready` does not flap every health-check interval. A partially busy
    /// worker (some requests in flight, room for more) is not counted here
    /// but in `busy` and `partially_busy`.
    pub ready: usize,
    /// Idle workers a health check holds right now (counted in `ready`).
    pub checking: usize,
    /// Workers running at least one request (partially busy or full).
    pub busy: usize,
    /// Busy workers with room for more requests (in flight below their capacity).
    pub partially_busy: usize,
    /// Requests lent to workers and not yet settled, over all workers.
    pub in_flight: usize,
    /// Requests the live workers hold at once, in total (the sum of their capacities).
    pub capacity: usize,
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
    /// Requests it holds right now.
    pub in_flight: usize,
    /// Requests it holds at most at once (its handshake's capacity).
    pub capacity: usize,
}

impl Inner {
    pub(crate) fn status(&self) -> Status {
        // A pure read: nothing in the pool changes because someone looked.
        let mut books = self.lock();
        let spawn_breaker = books.core.spawn_breaker_state();
        let core = &books.core;
        let mut checking = 0;
        let mut partially_busy = 0;
        let mut in_flight = 0;
        let mut capacity = 0;
        let worker_details: Vec<WorkerStatus> = core
            .workers()
            .map(|worker| {
                let counters = worker.lifecycle.counters();
                if worker.health_checking && worker.lifecycle.is_available() {
                    checking += 1;
                }
                if worker.has_spare_room {
                    partially_busy += 1;
                }
                in_flight += worker.in_flight;
                if worker.handle.is_some() {
                    capacity += worker.capacity;
                }
                WorkerStatus {
                    id: worker.id,
                    pid: worker.handle.and_then(|connection| connection.process_id()),
                    reported_pid: worker.handle.map(|connection| connection.handshake().pid),
                    state: worker.lifecycle.state(),
                    health: worker.lifecycle.health(),
                    requests_served: counters.requests_served,
                    consecutive_health_failures: counters.consecutive_health_failures,
                    consecutive_request_failures: counters.consecutive_request_failures,
                    age: counters.age,
                    overflow: worker.overflow,
                    in_flight: worker.in_flight,
                    capacity: worker.capacity,
                }
            })
            .collect();
        let count =
            |wanted: WorkerState| worker_details.iter().filter(|w| w.state == wanted).count();
        Status {
            name: self.config.name.clone(),
            size: core.target_size(),
            max_overflow: self.config.max_overflow,
            workers: worker_details.len(),
            // Idle workers, counting those a health check holds for a
            // moment: `ready` must not flap every check interval.
            ready: core.idle_count() + checking,
            checking,
            busy: count(WorkerState::Busy),
            partially_busy,
            in_flight,
            capacity,
            starting: count(WorkerState::Starting),
            degraded: count(WorkerState::Degraded),
            draining: count(WorkerState::Draining),
            retiring: core.retiring(),
            queue_len: core.live_waiters(),
            queue_bound: self.config.queue_bound,
            shutting_down: core.is_shutting_down(),
            spawn_breaker,
            counters: core.counters(),
            worker_details,
        }
    }
}
