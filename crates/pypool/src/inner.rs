//! The shell's shared state: the synchronous core (every decision, see
//! [`crate::core`]) behind one `std::sync::Mutex` that is never held across
//! an await, and what the shell needs to carry the core's effects out after
//! unlocking (the waiters' channels, the exit watches).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use pypool_affinity::{AffinityStore, SessionId};
use pypool_clock::SharedClock;
use pypool_seam::{CallError, RequestId, SpawnError, WorkerConnection, WorkerId, WorkerSpawner};
use pypool_store::{ProgramStore, SessionDataStore};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::{PoolConfig, StartMode};
use crate::core::{
    Core, CoreConfig, Effect, Effects, Note, Retirement, WaitFailure, WaiterToken, WorkerHandle,
};
use crate::lease::Lease;
use crate::{PoolError, metrics};

/// A worker's connection, as the core holds it.
pub(crate) type Conn = Arc<dyn WorkerConnection>;

impl WorkerHandle for Conn {
    fn is_draining(&self) -> bool {
        WorkerConnection::is_draining(self.as_ref())
    }

    fn resident_memory_bytes(&self) -> Option<u64> {
        WorkerConnection::resident_memory_bytes(self.as_ref())
    }
}

/// The core's name for a queued caller: the key of its channel in
/// [`Books::senders`], and a flag the caller sets when it stops waiting.
#[derive(Debug)]
pub(crate) struct Ticket {
    id: u64,
    gone: Arc<AtomicBool>,
}

impl WaiterToken for Ticket {
    fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire)
    }
}

/// Marks a queued caller gone when its wait ends, however it ends (the
/// caller's future dropped included): no lock taken.
#[derive(Debug)]
pub(crate) struct WaitGuard(pub(crate) Arc<AtomicBool>);

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// What a queued caller receives.
pub(crate) type Handed = Result<Lease, PoolError>;

/// Hashes a ticket (a counter, never chosen by a caller) with one
/// multiplication instead of SipHash: queued callers are the common case
/// under load.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct TicketHasher(u64);

impl Hasher for TicketHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*byte)).wrapping_mul(FIBONACCI);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(FIBONACCI);
    }
}

/// 2^64 divided by the golden ratio: spreads consecutive tickets over the table.
const FIBONACCI: u64 = 0x9E37_79B9_7F4A_7C15;

/// The core and the shell's bookkeeping of it, under one lock.
#[derive(Debug)]
pub(crate) struct Books {
    pub(crate) core: Core<Conn, Ticket>,
    pub(crate) shelf: Shelf,
}

/// What the shell keeps to carry effects out: each queued caller's channel
/// and each worker's exit watch.
#[derive(Debug, Default)]
pub(crate) struct Shelf {
    senders: HashMap<u64, oneshot::Sender<Handed>, BuildHasherDefault<TicketHasher>>,
    exit_watches: HashMap<WorkerId, JoinHandle<()>>,
    next_ticket: u64,
}

impl Shelf {
    /// A new ticket for a caller about to queue; returns it with the
    /// caller's end of its channel and its gone flag.
    pub(crate) fn ticket(&mut self) -> (Ticket, oneshot::Receiver<Handed>, Arc<AtomicBool>) {
        self.next_ticket += 1;
        let id = self.next_ticket;
        let (sender, receiver) = oneshot::channel();
        self.senders.insert(id, sender);
        let gone = Arc::new(AtomicBool::new(false));
        let ticket = Ticket {
            id,
            gone: Arc::clone(&gone),
        };
        (ticket, receiver, gone)
    }

    /// Keeps worker `id`'s exit watch (aborted when the worker leaves the books).
    pub(crate) fn watch_exit(&mut self, id: WorkerId, watch: JoinHandle<()>) {
        self.exit_watches.insert(id, watch);
    }

    /// Detaches worker `id`'s exit watch (the watch itself is ending).
    pub(crate) fn detach_exit_watch(&mut self, id: WorkerId) {
        drop(self.exit_watches.remove(&id));
    }
}

/// An effect turned into work for after the unlock.
enum Deferred {
    Hand(
        oneshot::Sender<Handed>,
        Result<crate::core::Lent<Conn>, WaitFailure>,
    ),
    Spawn(WorkerId),
    Stop {
        worker: WorkerId,
        handle: Option<Conn>,
        how: Retirement,
        watch: Option<JoinHandle<()>>,
    },
    Kill(Conn),
    Note(Note),
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

/// Where the pool keeps sessions and programs: behind traits, so a shared
/// (for example Redis-backed) store can replace the in-memory ones.
#[derive(Debug, Clone)]
pub(crate) struct Stores {
    pub(crate) affinity: Arc<dyn AffinityStore>,
    pub(crate) programs: Arc<dyn ProgramStore>,
    pub(crate) session_data: Arc<dyn SessionDataStore>,
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
    pub(crate) readiness: watch::Sender<Readiness>,
    /// The request path's metric handles.
    pub(crate) metrics: metrics::Handles,
    pub(crate) myself: Weak<Inner>,
    books: Mutex<Books>,
    /// How many times the books' lock was taken (tests count a request's takes).
    #[cfg(test)]
    pub(crate) lock_takes: AtomicU64,
    next_request_id: AtomicU64,
}

impl Inner {
    pub(crate) fn new(
        config: PoolConfig,
        spawner: Arc<dyn WorkerSpawner>,
        stores: Stores,
        clock: SharedClock,
    ) -> Arc<Self> {
        let core_config = CoreConfig {
            size: config.size,
            max_overflow: config.max_overflow,
            eager: config.start_mode == StartMode::Eager,
            queue_bound: config.queue_bound,
            lifecycle: config.lifecycle,
            recycle: config.recycle,
            recovery: config.recovery,
            spawn_breaker: config.spawn_breaker,
            command_breaker: config.command_breaker,
            idempotent_commands: config.idempotent_commands.iter().cloned().collect(),
            seed: config.seed,
        };
        let books = Books {
            core: Core::new(core_config, clock),
            shelf: Shelf::default(),
        };
        let handles = metrics::Handles::new(&config.name);
        Arc::new_cyclic(|myself| Self {
            config,
            spawner,
            stores,
            settings: Mutex::new((0, serde_json::Map::new())),
            settings_version: AtomicU64::new(0),
            killed_at_deadline: Mutex::new(VecDeque::new()),
            session_last_used: Mutex::new(HashMap::new()),
            readiness: watch::Sender::new(Readiness::default()),
            metrics: handles,
            myself: myself.clone(),
            books: Mutex::new(books),
            #[cfg(test)]
            lock_takes: AtomicU64::new(0),
            next_request_id: AtomicU64::new(1),
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
    fn was_killed_at_deadline(&self, id: WorkerId) -> bool {
        self.killed_at_deadline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&id)
    }

    /// `call_error` as the caller should see it: a request whose worker the
    /// pool killed because another request on it outlived its deadline
    /// ended with the worker (`worker_exited`, signal 9), not with a closed
    /// connection.
    pub(crate) fn as_seen_by_caller(
        &self,
        call_error: CallError,
        request_id: RequestId,
    ) -> CallError {
        match call_error {
            CallError::Closed { worker_id, .. } if self.was_killed_at_deadline(worker_id) => {
                CallError::WorkerExited {
                    worker_id,
                    request_id,
                    exit: pypool_seam::WorkerExit::signal(9),
                }
            }
            other => other,
        }
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
    fn forget_worker(&self, id: WorkerId) {
        let affinity = Arc::clone(&self.stores.affinity);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                affinity.unbind_worker(id).await;
            });
        }
    }

    /// Takes the books' lock.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Books> {
        #[cfg(test)]
        self.lock_takes.fetch_add(1, Ordering::Relaxed);
        self.books.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs one core operation under the lock and carries its effects out
    /// after unlocking; returns what the operation returned.
    pub(crate) fn decide<R>(
        &self,
        operation: impl FnOnce(&mut Books, &mut Effects<Conn, Ticket>) -> R,
    ) -> R {
        let mut books = self.lock();
        let mut fx = Vec::new();
        let decided = operation(&mut books, &mut fx);
        self.carry_out(books, fx);
        decided
    }

    /// Carries out `fx`: the bookkeeping under the lock the caller holds
    /// (which channel, which exit watch), the rest after unlocking.
    pub(crate) fn carry_out(&self, mut books: MutexGuard<'_, Books>, fx: Effects<Conn, Ticket>) {
        let mut deferred = Vec::with_capacity(fx.len());
        for effect in fx {
            match effect {
                Effect::Lend { waiter, lent } => match books.shelf.senders.remove(&waiter.id) {
                    Some(sender) => deferred.push(Deferred::Hand(sender, Ok(lent))),
                    // Never happens (every ticket has a channel); give it back.
                    None => deferred.push(Deferred::Hand(oneshot::channel().0, Ok(lent))),
                },
                Effect::Fail { waiter, reason } => {
                    if let Some(sender) = books.shelf.senders.remove(&waiter.id) {
                        deferred.push(Deferred::Hand(sender, Err(reason)));
                    }
                }
                Effect::Abandon(waiter) => {
                    books.shelf.senders.remove(&waiter.id);
                }
                Effect::Spawn(worker) => deferred.push(Deferred::Spawn(worker)),
                Effect::Stop {
                    worker,
                    handle,
                    how,
                } => {
                    let watch = books.shelf.exit_watches.remove(&worker);
                    deferred.push(Deferred::Stop {
                        worker,
                        handle,
                        how,
                        watch,
                    });
                }
                Effect::Kill(handle) => deferred.push(Deferred::Kill(handle)),
                Effect::Note(note) => deferred.push(Deferred::Note(note)),
            }
        }
        self.publish(&books.core);
        drop(books);
        for work in deferred {
            self.carry_out_one(work);
        }
    }

    fn carry_out_one(&self, work: Deferred) {
        match work {
            Deferred::Hand(sender, handed) => {
                let handed = match handed {
                    Ok(lent) => match self.strong() {
                        Some(inner) => Ok(Lease::new(
                            inner,
                            lent.worker,
                            lent.handle,
                            lent.settings_applied,
                        )),
                        None => Err(PoolError::ShuttingDown {
                            command: "queued request".to_owned(),
                        }),
                    },
                    Err(WaitFailure::ShuttingDown) => Err(PoolError::ShuttingDown {
                        command: "queued request".to_owned(),
                    }),
                    Err(WaitFailure::Spawn(error)) => Err(PoolError::Spawn(error)),
                };
                // A caller that left meanwhile drops the lease: the worker
                // comes back as unused (settled by a task of its own).
                let _caller_gone = sender.send(handed);
            }
            Deferred::Spawn(worker) => {
                if let Some(inner) = self.strong() {
                    tokio::spawn(async move { inner.spawn_until_started(worker).await });
                }
            }
            Deferred::Stop {
                worker,
                handle,
                how,
                watch,
            } => {
                if let Some(watch) = watch {
                    watch.abort();
                }
                if how == Retirement::Abandoned {
                    if let Some(handle) = handle {
                        handle.kill();
                    }
                    return;
                }
                self.forget_worker(worker);
                if let Some(handle) = handle {
                    let grace = self.config.timeouts.terminate_grace;
                    let inner = self.myself.clone();
                    tokio::spawn(async move {
                        crate::spawning::stop_process(handle, how, grace).await;
                        if let Some(inner) = inner.upgrade() {
                            inner.decide(|books, _| books.core.stopped());
                        }
                    });
                }
            }
            Deferred::Kill(handle) => handle.kill(),
            Deferred::Note(note) => match note {
                Note::Recycled(reason) => metrics::recycled(&self.config.name, &reason),
                Note::Replaced => metrics::replaced(&self.config.name),
                Note::SpawnBreaker(state) => {
                    metrics::breaker_state(&self.config.name, "spawn", state);
                }
                Note::QueueDepth(depth) => self.metrics.queue_depth(depth),
                Note::SpawnFailed(error) => {
                    self.readiness
                        .send_modify(|readiness| readiness.spawn_error = Some(error));
                }
            },
        }
    }

    /// A strong handle to this pool core, for tasks it starts.
    pub(crate) fn strong(&self) -> Option<Arc<Inner>> {
        self.myself.upgrade()
    }

    pub(crate) fn next_request_id(&self) -> u64 {
        self.next_request_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Publishes worker counts for `Pool::ready`, `Pool::shutdown` and metrics.
    fn publish(&self, core: &Core<Conn, Ticket>) {
        let (live, remaining) = core.readiness();
        // Watchers (`Pool::wait_until`, `ready`, `shutdown`) hear of every
        // change; with nobody watching, only a change of the counts is news.
        let watched = self.readiness.receiver_count() > 0;
        self.readiness.send_if_modified(|readiness| {
            let changed = readiness.live != live || readiness.remaining != remaining;
            readiness.live = live;
            readiness.remaining = remaining;
            changed || watched
        });
        self.metrics.publish_gauges(core.state_counts());
    }
}
