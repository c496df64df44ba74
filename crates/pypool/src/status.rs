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
                    in_flight: slot.in_flight,
                    capacity: slot.capacity,
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
            partially_busy: state
                .workers
                .values()
                .filter(|slot| slot.has_spare_room())
                .count(),
            in_flight: state.workers.values().map(|slot| slot.in_flight).sum(),
            capacity: state
                .workers
                .values()
                .filter(|slot| slot.connection.is_some())
                .map(|slot| slot.capacity)
                .sum(),
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
