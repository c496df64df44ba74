//! Counters a [`MockSpawner`](crate::MockSpawner) keeps about its workers.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The counters behind a [`BehaviourStats`] handle.
#[derive(Debug, Default)]
pub(crate) struct StatsInner {
    spawns: AtomicU64,
    spawn_failures: AtomicU64,
    workers_started: AtomicU64,
    workers_exited: AtomicU64,
    requests_served: AtomicU64,
    crashes_injected: AtomicU64,
    python_errors_injected: AtomicU64,
    kills: AtomicU64,
    terminations: AtomicU64,
}

fn bump(counter: &AtomicU64) -> u64 {
    counter.fetch_add(1, Ordering::Relaxed) + 1
}

impl StatsInner {
    /// Counts a `spawn` call and returns its 1-based number.
    pub(crate) fn spawn_started(&self) -> u64 {
        bump(&self.spawns)
    }

    pub(crate) fn spawn_failed(&self) {
        bump(&self.spawn_failures);
    }

    pub(crate) fn worker_started(&self) {
        bump(&self.workers_started);
    }

    pub(crate) fn worker_exited(&self) {
        bump(&self.workers_exited);
    }

    pub(crate) fn request_answered(&self) {
        bump(&self.requests_served);
    }

    pub(crate) fn crash_injected(&self) {
        bump(&self.crashes_injected);
    }

    pub(crate) fn python_error_injected(&self) {
        bump(&self.python_errors_injected);
    }

    pub(crate) fn kill_observed(&self) {
        bump(&self.kills);
    }

    pub(crate) fn termination_observed(&self) {
        bump(&self.terminations);
    }
}

/// A cloneable, read-only view of a [`MockSpawner`](crate::MockSpawner)'s
/// counters; clones see the same numbers, and they keep counting after the
/// spawner is dropped while its workers live.
#[derive(Clone)]
pub struct BehaviourStats {
    inner: Arc<StatsInner>,
}

impl BehaviourStats {
    pub(crate) fn from_inner(inner: Arc<StatsInner>) -> Self {
        Self { inner }
    }

    fn read(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// How many times `spawn` was called.
    pub fn spawns(&self) -> u64 {
        Self::read(&self.inner.spawns)
    }

    /// How many `spawn` calls returned an error (injected failures, handshake
    /// timeouts, refused handshakes).
    pub fn spawn_failures(&self) -> u64 {
        Self::read(&self.inner.spawn_failures)
    }

    /// How many workers were created (including any killed because their
    /// handshake was refused or arrived too late).
    pub fn workers_started(&self) -> u64 {
        Self::read(&self.inner.workers_started)
    }

    /// How many workers have exited, for whatever reason.
    pub fn workers_exited(&self) -> u64 {
        Self::read(&self.inner.workers_exited)
    }

    /// Workers started and not yet exited: after a pool shuts down this must be 0.
    pub fn workers_alive(&self) -> u64 {
        self.workers_started().saturating_sub(self.workers_exited())
    }

    /// How many replies workers sent (results and error replies alike,
    /// including late replies that were discarded).
    pub fn requests_served(&self) -> u64 {
        Self::read(&self.inner.requests_served)
    }

    /// How many workers a [`Behaviour`](crate::Behaviour)'s `crash_every` crashed.
    pub fn crashes_injected(&self) -> u64 {
        Self::read(&self.inner.crashes_injected)
    }

    /// How many Python-exception replies a [`Behaviour`](crate::Behaviour)'s
    /// `failure_rate` produced.
    pub fn python_errors_injected(&self) -> u64 {
        Self::read(&self.inner.python_errors_injected)
    }

    /// How many workers the host killed (`kill()` or dropping the connection).
    pub fn kills(&self) -> u64 {
        Self::read(&self.inner.kills)
    }

    /// How many workers the host asked to terminate.
    pub fn terminations(&self) -> u64 {
        Self::read(&self.inner.terminations)
    }
}

impl fmt::Debug for BehaviourStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BehaviourStats")
            .field("spawns", &self.spawns())
            .field("spawn_failures", &self.spawn_failures())
            .field("workers_started", &self.workers_started())
            .field("workers_exited", &self.workers_exited())
            .field("requests_served", &self.requests_served())
            .field("crashes_injected", &self.crashes_injected())
            .field("python_errors_injected", &self.python_errors_injected())
            .field("kills", &self.kills())
            .field("terminations", &self.terminations())
            .finish()
    }
}
