//! The pool's synchronous core: every decision the pool makes, and nothing
//! else (bb8's `internals.rs` to the shell's `inner.rs`).
//!
//! The core owns the pool's books — workers and their state machines,
//! the idle list, the FIFO queue of waiters, breakers, counters — as
//! private state. Each operation takes the books one step further and says
//! what must happen outside them as [`Effect`]s (hand a worker to a waiter,
//! fail a waiter, spawn a worker, stop a worker's process, ...). The async
//! shell (`inner.rs`, `checkout.rs`, `spawning.rs`, ...) calls one operation
//! under the pool's lock and carries its effects out after unlocking.
//!
//! Invariant: the core makes every decision; the shell only carries out
//! effects. The core knows no runtime (no tokio, no channels: a waiter is an
//! opaque token of the shell's, see [`WaiterToken`]), does no I/O (a worker
//! is a handle it may only ask two questions, see [`WorkerHandle`]) and reads
//! time only through the injected clock.

mod breakers;
mod checkout;
mod health;
mod retire;
mod settle;
mod spawn;
mod view;
mod worker;

#[cfg(test)]
mod model_tests;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use pypool_breaker::{BreakerConfig, BreakerState, CircuitBreaker};
use pypool_clock::SharedClock;
use pypool_lifecycle::{Event, LifecycleConfig, RecycleLimits, RecycleReason, WorkerLifecycle};
use pypool_recovery::{RecoveryConfig, RecoveryPolicy, SeededRandom};
use pypool_seam::{SpawnError, WorkerId};

pub(crate) use breakers::BreakerKey;
#[cfg(feature = "tower")]
pub(crate) use checkout::Room;
pub(crate) use checkout::{Checkout, Lent, Refusal};
pub(crate) use health::HealthNext;
pub(crate) use settle::{Ending, Settled};
pub(crate) use spawn::SpawnGate;

use breakers::Breakers;
use worker::Worker;

/// What the core asks of a worker's connection: two cheap questions, never
/// I/O on the request path (memory is read only when a memory limit is set).
pub(crate) trait WorkerHandle: Clone + fmt::Debug {
    /// Whether the worker announced it is stopping on its own.
    fn is_draining(&self) -> bool;
    /// The worker's resident memory, if known.
    fn resident_memory_bytes(&self) -> Option<u64>;
}

/// A caller waiting in the queue, as the shell names it. The core only asks
/// whether the caller has gone (it then drops the waiter, see
/// [`Effect::Abandon`]).
pub(crate) trait WaiterToken: fmt::Debug {
    /// Whether the caller stopped waiting.
    fn is_gone(&self) -> bool;
}

/// Why a worker leaves the pool, for the shell's way of stopping it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retirement {
    /// Recycle limit, overflow no longer needed, resize, shutdown: SIGTERM, then SIGKILL after the grace.
    Graceful,
    /// Crash, deadline, protocol violation, failed health: SIGKILL at once.
    Failed,
    /// The last pool handle is gone: SIGKILL now, synchronously, nothing waited for.
    Abandoned,
}

/// Why a waiter is failed.
#[derive(Debug, Clone)]
pub(crate) enum WaitFailure {
    /// The pool is shutting down.
    ShuttingDown,
    /// No worker is alive and the latest spawn failed.
    Spawn(SpawnError),
}

/// Facts for metrics and readiness, reported by the shell.
#[derive(Debug, Clone)]
pub(crate) enum Note {
    /// A worker was recycled.
    Recycled(RecycleReason),
    /// A failed worker was removed (and is replaced).
    Replaced,
    /// The spawn breaker's state, after an admission.
    SpawnBreaker(BreakerState),
    /// The queue's length changed.
    QueueDepth(usize),
    /// A spawn failed (for readiness).
    SpawnFailed(SpawnError),
}

/// What the shell must do, outside the lock, after a core operation.
#[derive(Debug)]
pub(crate) enum Effect<H, T> {
    /// Hand `lent` to the waiting caller `waiter` (if it has gone meanwhile,
    /// the shell gives the worker back as unused).
    Lend {
        /// The waiter.
        waiter: T,
        /// The worker lent.
        lent: Lent<H>,
    },
    /// Fail the waiting caller `waiter`.
    Fail {
        /// The waiter.
        waiter: T,
        /// Why.
        reason: WaitFailure,
    },
    /// The caller behind `waiter` left; the core forgot it.
    Abandon(T),
    /// Start worker `worker` (its slot is in the books, Starting).
    Spawn(WorkerId),
    /// Worker `worker` left the books: forget it (affinity, exit watch) and
    /// stop its process, if it has one, `how`. A graceful or failed stop
    /// ends with [`Core::stopped`].
    Stop {
        /// The worker.
        worker: WorkerId,
        /// Its connection, if it got through its handshake.
        handle: Option<H>,
        /// How to stop it.
        how: Retirement,
    },
    /// Kill the worker's process now (it stays in the books until its exit).
    Kill(H),
    /// A fact for metrics.
    Note(Note),
}

/// The effects of one operation, in order.
pub(crate) type Effects<H, T> = Vec<Effect<H, T>>;

/// The core's configuration.
#[derive(Debug, Clone)]
pub(crate) struct CoreConfig {
    /// Workers kept (eager) or allowed before overflow (lazy).
    pub(crate) size: usize,
    /// Extra workers allowed under load.
    pub(crate) max_overflow: usize,
    /// Whether `size` workers are kept started (else started on demand).
    pub(crate) eager: bool,
    /// The most callers that may wait.
    pub(crate) queue_bound: usize,
    /// Each worker's state machine.
    pub(crate) lifecycle: LifecycleConfig,
    /// Recycle limits.
    pub(crate) recycle: RecycleLimits,
    /// The recovery policy.
    pub(crate) recovery: RecoveryConfig,
    /// The spawn breaker.
    pub(crate) spawn_breaker: BreakerConfig,
    /// Each command's breaker.
    pub(crate) command_breaker: BreakerConfig,
    /// Commands declared idempotent by the builder.
    pub(crate) idempotent_commands: Vec<String>,
    /// The seed of the recovery policy's jitter.
    pub(crate) seed: u64,
}

/// Running totals reported by `Pool::status`.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct PoolCounters {
    /// Workers that completed a handshake.
    pub spawned: u64,
    /// Spawn attempts that failed.
    pub spawn_failures: u64,
    /// Workers removed because they failed (crash, deadline, protocol, health).
    pub replaced: u64,
    /// Workers retired because a recycle limit was reached.
    pub recycled: u64,
    /// Requests that ended with a result.
    pub requests_ok: u64,
    /// Requests that ended with an error.
    pub requests_failed: u64,
    /// Attempts retried by the recovery policy.
    pub retries: u64,
    /// Session calls served by the session's bound worker.
    pub affinity_hits: u64,
    /// Session calls of an unbound session, or one whose worker was gone.
    pub affinity_misses: u64,
    /// Session calls (hint mode) run elsewhere because the bound worker stayed busy.
    pub affinity_spills: u64,
}

/// How a session call used its worker binding.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Affinity {
    /// Served by the bound worker.
    Hit,
    /// Unbound, or its worker gone: served by any worker.
    Miss,
    /// Hint mode: the bound worker stayed busy past the wait; served elsewhere.
    Spill,
}

/// A caller waiting in the FIFO queue for a worker.
#[derive(Debug)]
struct Waiter<T> {
    token: T,
    /// The one worker this caller waits for (session affinity), or any.
    wants: Option<WorkerId>,
}

/// The pool's books and every decision on them.
#[derive(Debug)]
pub(crate) struct Core<H, T> {
    config: CoreConfig,
    clock: SharedClock,
    recovery: RecoveryPolicy,
    workers: BTreeMap<WorkerId, Worker<H>>,
    idle: VecDeque<WorkerId>,
    waiters: VecDeque<Waiter<T>>,
    target_size: usize,
    shutting_down: bool,
    /// Workers removed from the books whose process is still being stopped.
    retiring: usize,
    spawn_breaker: CircuitBreaker,
    breakers: Breakers,
    /// Commands and whether they are idempotent, from handshakes and the builder.
    idempotent: HashMap<String, bool>,
    rng: SeededRandom,
    counters: PoolCounters,
    /// Whether any worker announced a capacity above 1 (else checkout never
    /// looks for a partially busy worker).
    any_shared: bool,
    next_worker_id: WorkerId,
}

impl<H: WorkerHandle, T: WaiterToken> Core<H, T> {
    /// Empty books; [`Core::start`] decides the first spawns.
    pub(crate) fn new(config: CoreConfig, clock: SharedClock) -> Self {
        Self {
            recovery: RecoveryPolicy::new(config.recovery),
            spawn_breaker: CircuitBreaker::new(config.spawn_breaker, Arc::clone(&clock)),
            breakers: Breakers::default(),
            idempotent: config
                .idempotent_commands
                .iter()
                .map(|command| (command.clone(), true))
                .collect(),
            rng: SeededRandom::new(config.seed),
            target_size: config.size,
            config,
            clock,
            workers: BTreeMap::new(),
            idle: VecDeque::new(),
            waiters: VecDeque::new(),
            shutting_down: false,
            retiring: 0,
            counters: PoolCounters::default(),
            any_shared: false,
            next_worker_id: 1,
        }
    }

    /// The pool starts: spawn what it keeps.
    pub(crate) fn start(&mut self, fx: &mut Effects<H, T>) {
        self.ensure_size(fx);
    }

    /// Whether the pool is shutting down.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// The recovery policy (the shell asks it for spawn backoffs only through the core).
    fn new_lifecycle(&self) -> WorkerLifecycle {
        WorkerLifecycle::new(self.config.lifecycle, Arc::clone(&self.clock))
    }

    /// Applies `event` to worker `id`'s state machine. An invalid transition
    /// is a pool bug, never the caller's: it is logged, not raised.
    fn apply(&mut self, id: WorkerId, event: Event) {
        if let Some(worker) = self.workers.get_mut(&id) {
            if let Err(invalid) = worker.lifecycle.apply(event) {
                tracing::debug!(worker_id = id, %invalid, "lifecycle event ignored");
            }
        }
    }

    /// Waiters whose caller is still waiting; forgets the others.
    fn prune_waiters(&mut self, fx: &mut Effects<H, T>) -> usize {
        if self.waiters.iter().any(|waiter| waiter.token.is_gone()) {
            let mut kept = VecDeque::with_capacity(self.waiters.len());
            for waiter in self.waiters.drain(..) {
                if waiter.token.is_gone() {
                    fx.push(Effect::Abandon(waiter.token));
                } else {
                    kept.push_back(waiter);
                }
            }
            self.waiters = kept;
            fx.push(Effect::Note(Note::QueueDepth(self.waiters.len())));
        }
        self.waiters.len()
    }

    /// Fails every waiter with `reason`.
    fn fail_waiters(&mut self, reason: &WaitFailure, fx: &mut Effects<H, T>) {
        for waiter in self.waiters.drain(..) {
            fx.push(Effect::Fail {
                waiter: waiter.token,
                reason: reason.clone(),
            });
        }
    }

    /// The recovery policy's backoff before spawn attempt `attempt + 1`.
    fn spawn_backoff(&mut self, attempt: u32) -> Duration {
        let rng: &mut dyn pypool_recovery::RandomSource = &mut self.rng;
        self.recovery.backoff(attempt, rng)
    }
}
