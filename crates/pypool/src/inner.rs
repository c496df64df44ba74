//! The state every pool handle shares, and the small synchronous operations
//! on it. The lock is a `std::sync::Mutex` and is never held across an await.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use pypool_affinity::{AffinityStore, SessionId};
use pypool_breaker::{BreakerState, CircuitBreaker, Permit, Rejected};
use pypool_clock::SharedClock;
use pypool_lifecycle::{Event, LifecycleConfig, State as WorkerState, WorkerLifecycle};
use pypool_recovery::{RecoveryPolicy, SeededRandom};
use pypool_seam::{SpawnError, WorkerId, WorkerSpawner};
use pypool_store::{ProgramStore, SessionDataStore};
use tokio::sync::{oneshot, watch};

use crate::config::PoolConfig;
use crate::job::JobKey;
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
    /// One breaker per announced command and per program (in its
    /// namespace, at most [`MAX_PROGRAM_BREAKERS`]), plus one for every
    /// command no worker announced: bounded, whatever callers send.
    command_breakers: HashMap<BreakerKey, CircuitBreaker>,
    /// Commands and whether they are idempotent, from handshakes and the builder.
    pub(crate) idempotent: HashMap<String, bool>,
    pub(crate) rng: SeededRandom,
    pub(crate) counters: PoolCounters,
    /// Whether any worker announced a capacity above 1 (else checkout never
    /// looks for a partially busy worker).
    pub(crate) any_shared: bool,
}

/// What a command breaker guards.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum BreakerKey {
    /// A command some worker announced (or the builder declared), or a program.
    Known(JobKey),
    /// Every command no worker announced, together.
    Unknown,
}

/// The most program breakers kept; past it, closed ones are forgotten.
pub(crate) const MAX_PROGRAM_BREAKERS: usize = 4096;

impl State {
    /// Whether `command` was announced by a worker or declared by the builder.
    pub(crate) fn is_known_command(&self, command: &str) -> bool {
        self.idempotent.contains_key(command)
    }

    /// Whether a request keyed `key` may run twice: an idempotent command,
    /// or a global program declared idempotent as `program:<id>`. A
    /// session's program never borrows that declaration.
    pub(crate) fn is_idempotent(&self, key: &JobKey) -> bool {
        match key {
            JobKey::Command(command) => self.idempotent.get(command).copied().unwrap_or(false),
            JobKey::Program { namespace, id } if namespace == "global" => self
                .idempotent
                .get(&format!("program:{id}"))
                .copied()
                .unwrap_or(false),
            JobKey::Program { .. } => false,
        }
    }

    /// The breaker that guards requests keyed `key`.
    pub(crate) fn breaker_key(&self, key: &JobKey) -> BreakerKey {
        match key {
            JobKey::Command(command) if !self.is_known_command(command) => BreakerKey::Unknown,
            known => BreakerKey::Known(known.clone()),
        }
    }

    /// Takes a permit from the breaker that guards `key` (creating it on
    /// first use). `Ok(None)`: no breaker (the program breakers are all in
    /// use by open ones); the request runs unguarded.
    pub(crate) fn admit(
        &mut self,
        key: &JobKey,
        config: pypool_breaker::BreakerConfig,
        clock: &SharedClock,
    ) -> Result<Option<(BreakerKey, Permit)>, Rejected> {
        let key = self.breaker_key(key);
        if !self.command_breakers.contains_key(&key) {
            if matches!(key, BreakerKey::Known(JobKey::Program { .. })) {
                let programs = |breakers: &HashMap<BreakerKey, CircuitBreaker>| {
                    breakers
                        .keys()
                        .filter(|key| matches!(key, BreakerKey::Known(JobKey::Program { .. })))
                        .count()
                };
                if programs(&self.command_breakers) >= MAX_PROGRAM_BREAKERS {
                    self.command_breakers.retain(|key, breaker| {
                        !matches!(key, BreakerKey::Known(JobKey::Program { .. }))
                            || breaker.state() != BreakerState::Closed
                    });
                    if programs(&self.command_breakers) >= MAX_PROGRAM_BREAKERS {
                        return Ok(None);
                    }
                }
            }
            let breaker = CircuitBreaker::new(config, Arc::clone(clock));
            self.command_breakers.insert(key.clone(), breaker);
        }
        match self.command_breakers.get_mut(&key) {
            Some(breaker) => breaker.try_acquire().map(|permit| Some((key, permit))),
            None => Ok(None),
        }
    }

    /// Records an attempt's outcome on its breaker; returns the breaker's
    /// state when the outcome could have changed it.
    pub(crate) fn record_permit(
        &mut self,
        key: &BreakerKey,
        permit: Permit,
        outcome: pypool_breaker::CallOutcome,
    ) -> Option<BreakerState> {
        let breaker = self.command_breakers.get_mut(key)?;
        breaker.record(permit, outcome);
        // Only a failure or a probe's outcome can change the state (a
        // success in the closed state never does): skip the clock read else.
        let may_change = outcome == pypool_breaker::CallOutcome::Failure || permit.is_probe();
        may_change.then(|| breaker.state())
    }

    /// Gives back the permit of an attempt that never ran.
    pub(crate) fn release_permit(&mut self, key: &BreakerKey, permit: Permit) {
        if let Some(breaker) = self.command_breakers.get_mut(key) {
            breaker.release(permit);
        }
    }

    /// How many command breakers exist (for tests of the bound).
    #[cfg(test)]
    pub(crate) fn breaker_count(&self) -> usize {
        self.command_breakers.len()
    }

    /// Waiters whose caller is still waiting.
    pub(crate) fn live_waiters(&mut self) -> usize {
        self.waiters.retain(|waiter| !waiter.sender.is_closed());
        self.waiters.len()
    }

    /// Each worker's state, by id.
    pub(crate) fn worker_states(&self) -> impl Iterator<Item = WorkerState> + '_ {
        self.workers.values().map(|slot| slot.lifecycle.state())
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

/// How many workers killed at a deadline the pool remembers (their
/// in-flight siblings end within moments of the kill).
pub(crate) const KILLED_REMEMBERED: usize = 64;

/// The shared core of a pool; `Pool` is a handle to it.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: PoolConfig,
    pub(crate) spawner: Arc<dyn WorkerSpawner>,
    pub(crate) stores: Stores,
    /// The pool's worker-wide settings and their version (0: never set).
    settings: Mutex<(u64, serde_json::Map<String, serde_json::Value>)>,
    /// The settings version (a copy of `settings.0` readable without a lock).
    settings_version: AtomicU64,
    /// Workers the pool killed at a request's deadline (the latest
    /// [`KILLED_REMEMBERED`]): their other requests end with `worker_exited`.
    killed_at_deadline: Mutex<VecDeque<WorkerId>>,
    /// When each session was last used, for expiring its programs and data.
    pub(crate) session_last_used: Mutex<HashMap<SessionId, tokio::time::Instant>>,
    pub(crate) clock: SharedClock,
    pub(crate) recovery: RecoveryPolicy,
    pub(crate) readiness: watch::Sender<Readiness>,
    /// The request path's metric handles.
    pub(crate) metrics: metrics::Handles,
    pub(crate) myself: Weak<Inner>,
    state: Mutex<State>,
    /// How many times the state lock was taken (tests count a request's takes).
    #[cfg(test)]
    pub(crate) lock_takes: AtomicU64,
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
            any_shared: false,
        };
        let recovery = RecoveryPolicy::new(config.recovery);
        let handles = metrics::Handles::new(&config.name);
        Arc::new_cyclic(|myself| Self {
            config,
            spawner,
            stores,
            settings: Mutex::new((0, serde_json::Map::new())),
            settings_version: AtomicU64::new(0),
            killed_at_deadline: Mutex::new(VecDeque::new()),
            session_last_used: Mutex::new(HashMap::new()),
            clock,
            recovery,
            readiness: watch::Sender::new(Readiness::default()),
            metrics: handles,
            myself: myself.clone(),
            state: Mutex::new(state),
            #[cfg(test)]
            lock_takes: AtomicU64::new(0),
            next_request_id: AtomicU64::new(1),
            next_worker_id: AtomicU64::new(1),
        })
    }

    /// Remembers that the pool is killing worker `id` because a request
    /// outlived its deadline and grace.
    pub(crate) fn note_killed_at_deadline(&self, id: WorkerId) {
        let mut killed = self
            .killed_at_deadline
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if killed.len() >= KILLED_REMEMBERED {
            killed.pop_front();
        }
        killed.push_back(id);
    }

    /// Whether the pool killed worker `id` at a request's deadline.
    pub(crate) fn was_killed_at_deadline(&self, id: WorkerId) -> bool {
        self.killed_at_deadline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&id)
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
        self.settings_version.store(current.0, Ordering::Release);
        current.0
    }

    /// The current settings version, without taking a lock.
    pub(crate) fn settings_version(&self) -> u64 {
        self.settings_version.load(Ordering::Acquire)
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
        #[cfg(test)]
        self.lock_takes.fetch_add(1, Ordering::Relaxed);
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
        // Watchers (`Pool::wait_until`, `ready`, `shutdown`) hear of every
        // change; with nobody watching, only a change of the counts is news.
        let watched = self.readiness.receiver_count() > 0;
        self.readiness.send_if_modified(|readiness| {
            let changed = readiness.live != live || readiness.remaining != remaining;
            readiness.live = live;
            readiness.remaining = remaining;
            changed || watched
        });
        self.metrics.publish_gauges(state);
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
