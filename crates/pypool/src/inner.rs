//! The state every pool handle shares, and the small synchronous operations
//! on it. The lock is a `std::sync::Mutex` and is never held across an await.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use pypool_affinity::{AffinityStore, SessionId};
use pypool_breaker::CircuitBreaker;
use pypool_clock::SharedClock;
use pypool_lifecycle::{Event, LifecycleConfig, State as WorkerState, WorkerLifecycle};
use pypool_recovery::{RecoveryPolicy, SeededRandom};
use pypool_seam::{SpawnError, WorkerId, WorkerSpawner};
use pypool_store::{ProgramStore, SessionDataStore};
use tokio::sync::{oneshot, watch};

use crate::config::PoolConfig;
use crate::lease::Lease;
use crate::slot::Slot;
use crate::{PoolError, metrics};

/// A caller waiting in the FIFO queue for a worker.
#[derive(Debug)]
pub(crate) struct Waiter {
    pub(crate) sender: oneshot::Sender<Result<Lease, PoolError>>,
    /// The one worker this caller waits for (session affinity), or any.
    pub(crate) wants: Option<WorkerId>,
}

/// What `Pool::ready` watches.
#[derive(Debug, Clone, Default)]
pub(crate) struct Readiness {
    /// Workers that finished their handshake and are still alive.
    pub(crate) live: usize,
    /// The latest spawn failure, cleared by the next successful spawn.
    pub(crate) spawn_error: Option<SpawnError>,
    /// Slots (starting or live) plus workers being retired; zero once a shut-down pool is empty.
    pub(crate) remaining: usize,
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

/// Where the pool keeps sessions and programs: behind traits, so a shared
/// (for example Redis-backed) store can replace the in-memory ones.
#[derive(Debug, Clone)]
pub(crate) struct Stores {
    pub(crate) affinity: Arc<dyn AffinityStore>,
    pub(crate) programs: Arc<dyn ProgramStore>,
    pub(crate) session_data: Arc<dyn SessionDataStore>,
}

/// The pool's mutable state.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) workers: BTreeMap<WorkerId, Slot>,
    pub(crate) idle: VecDeque<WorkerId>,
    pub(crate) waiters: VecDeque<Waiter>,
    pub(crate) target_size: usize,
    pub(crate) shutting_down: bool,
    /// Workers removed from the table whose process is still being stopped.
    pub(crate) retiring: usize,
    pub(crate) spawn_breaker: CircuitBreaker,
    pub(crate) command_breakers: HashMap<String, CircuitBreaker>,
    /// Commands and whether they are idempotent, from handshakes and the builder.
    pub(crate) idempotent: HashMap<String, bool>,
    pub(crate) rng: SeededRandom,
    pub(crate) counters: PoolCounters,
}

impl State {
    /// Waiters whose caller is still waiting.
    pub(crate) fn live_waiters(&mut self) -> usize {
        self.waiters.retain(|waiter| !waiter.sender.is_closed());
        self.waiters.len()
    }

    pub(crate) fn count_in(&self, state: WorkerState) -> usize {
        self.workers
            .values()
            .filter(|slot| slot.lifecycle.state() == state)
            .count()
    }

    pub(crate) fn live_workers(&self) -> usize {
        self.workers
            .values()
            .filter(|slot| slot.connection.is_some())
            .count()
    }
}

/// The shared core of a pool; `Pool` is a handle to it.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: PoolConfig,
    pub(crate) spawner: Arc<dyn WorkerSpawner>,
    pub(crate) stores: Stores,
    /// The pool's worker-wide settings and their version (0: never set).
    settings: Mutex<(u64, serde_json::Map<String, serde_json::Value>)>,
    /// When each session was last used, for expiring its programs and data.
    pub(crate) session_last_used: Mutex<HashMap<SessionId, tokio::time::Instant>>,
    pub(crate) clock: SharedClock,
    pub(crate) recovery: RecoveryPolicy,
    pub(crate) readiness: watch::Sender<Readiness>,
    pub(crate) myself: Weak<Inner>,
    state: Mutex<State>,
    next_request_id: AtomicU64,
    next_worker_id: AtomicU64,
}

impl Inner {
    pub(crate) fn new(
        config: PoolConfig,
        spawner: Arc<dyn WorkerSpawner>,
        stores: Stores,
        clock: SharedClock,
    ) -> Arc<Self> {
        let state = State {
            workers: BTreeMap::new(),
            idle: VecDeque::new(),
            waiters: VecDeque::new(),
            target_size: config.size,
            shutting_down: false,
            retiring: 0,
            spawn_breaker: CircuitBreaker::new(config.spawn_breaker, Arc::clone(&clock)),
            command_breakers: HashMap::new(),
            idempotent: config
                .idempotent_commands
                .iter()
                .map(|command| (command.clone(), true))
                .collect(),
            rng: SeededRandom::new(config.seed),
            counters: PoolCounters::default(),
        };
        let recovery = RecoveryPolicy::new(config.recovery);
        Arc::new_cyclic(|myself| Self {
            config,
            spawner,
            stores,
            settings: Mutex::new((0, serde_json::Map::new())),
            session_last_used: Mutex::new(HashMap::new()),
            clock,
            recovery,
            readiness: watch::Sender::new(Readiness::default()),
            myself: myself.clone(),
            state: Mutex::new(state),
            next_request_id: AtomicU64::new(1),
            next_worker_id: AtomicU64::new(1),
        })
    }

    /// The current settings and their version.
    pub(crate) fn settings_snapshot(&self) -> (u64, serde_json::Map<String, serde_json::Value>) {
        self.settings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the settings; returns the new version.
    pub(crate) fn replace_settings(
        &self,
        settings: serde_json::Map<String, serde_json::Value>,
    ) -> u64 {
        let mut current = self.settings.lock().unwrap_or_else(PoisonError::into_inner);
        current.0 += 1;
        current.1 = settings;
        current.0
    }

    /// Worker `id` left the pool: its sessions rebind on their next call.
    pub(crate) fn forget_worker(&self, id: WorkerId) {
        let affinity = Arc::clone(&self.stores.affinity);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                affinity.unbind_worker(id).await;
            });
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A strong handle to this pool core, for tasks it starts.
    pub(crate) fn strong(&self) -> Option<Arc<Inner>> {
        self.myself.upgrade()
    }

    pub(crate) fn next_request_id(&self) -> u64 {
        self.next_request_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn next_worker_id(&self) -> WorkerId {
        self.next_worker_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn new_lifecycle(&self) -> WorkerLifecycle {
        let config: LifecycleConfig = self.config.lifecycle;
        WorkerLifecycle::new(config, Arc::clone(&self.clock))
    }

    /// Publishes worker counts for `Pool::ready`, `Pool::shutdown` and metrics.
    pub(crate) fn publish(&self, state: &State) {
        let live = state.live_workers();
        let remaining = state.workers.len() + state.retiring;
        self.readiness.send_modify(|readiness| {
            readiness.live = live;
            readiness.remaining = remaining;
        });
        metrics::publish_gauges(&self.config.name, state);
    }

    /// Applies `event` to worker `id`'s state machine. An invalid transition
    /// is a pool bug, never the caller's: it is logged, not raised.
    pub(crate) fn apply(&self, state: &mut State, id: WorkerId, event: Event) {
        if let Some(slot) = state.workers.get_mut(&id) {
            if let Err(invalid) = slot.lifecycle.apply(event) {
                tracing::debug!(worker_id = id, %invalid, "lifecycle event ignored");
            }
        }
    }
}
