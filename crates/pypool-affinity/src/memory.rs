//! The in-process affinity store.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pypool_clock::{SharedClock, SystemClock};
use serde::Serialize;

use crate::recency::{RecencyList, Slot};
use crate::{AffinityStore, SessionId, WorkerId};

/// Counters of an [`InMemoryAffinityStore`] since it was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct AffinityStats {
    /// Lookups that found a live binding.
    pub hits: u64,
    /// Lookups that found no binding or an expired one.
    pub misses: u64,
    /// Bindings dropped because they had expired, whichever method found
    /// them (lookup, sweep, rebinding, unbinding or removal).
    pub expired: u64,
    /// Live bindings removed by [`AffinityStore::unbind_worker`].
    pub unbound: u64,
}

/// An [`AffinityStore`] held in this process's memory.
///
/// # Data structures and costs
///
/// - `sessions`: a `HashMap` from session to its worker and its position in
///   the recency list, so [`lookup`](AffinityStore::lookup) and
///   [`bind`](AffinityStore::bind) are O(1).
/// - `by_worker`: a `HashMap` from worker to the `HashSet` of its sessions, so
///   [`unbind_worker`](AffinityStore::unbind_worker) costs O(sessions of that
///   worker) rather than a scan of every binding.
/// - a recency list: a doubly linked list (in an arena of slots, no unsafe
///   code) of sessions ordered from least to most recently used, each with
///   the instant of its last use. A hit moves its node to the back in O(1).
///
/// Why a recency list rather than a `BTreeMap` keyed by expiry or a
/// lazily-cleaned queue of expiry records: every binding has the same idle
/// time-to-live, so the order of last use *is* the order of expiry and the
/// expired bindings are always a prefix of the list. [`sweep`](AffinityStore::sweep)
/// pops from the front until it meets a live binding, so it costs O(expired),
/// and refreshing on a hit costs O(1) where a `BTreeMap` would cost O(log n).
/// A queue with one record per refresh and generation checks would also be
/// O(1) per hit, but it grows with the number of lookups between sweeps (one
/// stale record per hit) instead of staying at one node per binding.
///
/// A `std::sync::Mutex` guards the whole state; it is never held across an
/// `.await` (the async methods do no awaiting). The clock is read while the
/// lock is held, so the recency list stays sorted under concurrent callers.
/// A time-to-live of zero makes every binding expire at once.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use pypool_affinity::{AffinityStore, InMemoryAffinityStore, SessionId};
/// use pypool_clock::ManualClock;
///
/// # futures::executor::block_on(async {
/// let clock = ManualClock::new();
/// let store = InMemoryAffinityStore::new(Duration::from_secs(60), Arc::new(clock.clone()));
/// let chat = SessionId::new("chat-1")?;
///
/// store.bind(&chat, 3).await;
/// clock.advance(Duration::from_secs(59));
/// assert_eq!(store.lookup(&chat).await, Some(3), "a hit restarts the idle time-to-live");
/// clock.advance(Duration::from_secs(59));
/// assert_eq!(store.lookup(&chat).await, Some(3));
///
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(store.sweep().await, 1);
/// assert_eq!(store.lookup(&chat).await, None);
/// assert_eq!(store.stats().hits, 2);
/// # Ok::<(), pypool_affinity::IdError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct InMemoryAffinityStore {
    ttl: Duration,
    clock: SharedClock,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy)]
struct Binding {
    worker: WorkerId,
    slot: Slot,
}

#[derive(Debug)]
struct State {
    sessions: HashMap<SessionId, Binding>,
    by_worker: HashMap<WorkerId, HashSet<SessionId>>,
    recency: RecencyList<SessionId>,
    stats: AffinityStats,
}

impl InMemoryAffinityStore {
    /// The idle time-to-live of [`InMemoryAffinityStore::default`]: 5 minutes.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);

    /// An empty store whose bindings expire after `ttl` without use, reading
    /// time from `clock`.
    pub fn new(ttl: Duration, clock: SharedClock) -> Self {
        Self {
            ttl,
            clock,
            state: Mutex::new(State {
                sessions: HashMap::new(),
                by_worker: HashMap::new(),
                recency: RecencyList::new(),
                stats: AffinityStats::default(),
            }),
        }
    }

    /// The idle time-to-live of a binding.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The hit, miss, expiry and unbind counters so far.
    pub fn stats(&self) -> AffinityStats {
        self.lock().stats
    }

    /// Locks the state. A poisoned lock is recovered: no method leaves the
    /// state half-updated at a point where it could panic.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_expired(&self, last_used: Instant, now: Instant) -> bool {
        now.saturating_duration_since(last_used) >= self.ttl
    }
}

impl Default for InMemoryAffinityStore {
    /// A store with [`InMemoryAffinityStore::DEFAULT_TTL`] on the system clock.
    fn default() -> Self {
        Self::new(Self::DEFAULT_TTL, std::sync::Arc::new(SystemClock))
    }
}

impl State {
    /// Removes `session`'s binding everywhere and returns it with its last use.
    fn remove(&mut self, session: &SessionId) -> Option<(WorkerId, Option<Instant>)> {
        let binding = self.sessions.remove(session)?;
        let last_used = self.recency.last_used(binding.slot);
        self.recency.remove(binding.slot);
        self.forget_worker_session(binding.worker, session);
        Some((binding.worker, last_used))
    }

    fn forget_worker_session(&mut self, worker: WorkerId, session: &SessionId) {
        if let Some(sessions) = self.by_worker.get_mut(&worker) {
            sessions.remove(session);
            if sessions.is_empty() {
                self.by_worker.remove(&worker);
            }
        }
    }
}

#[async_trait]
impl AffinityStore for InMemoryAffinityStore {
    async fn lookup(&self, session: &SessionId) -> Option<WorkerId> {
        let mut state = self.lock();
        let now = self.clock.now();
        let Some(binding) = state.sessions.get(session).copied() else {
            state.stats.misses += 1;
            return None;
        };
        let last_used = state.recency.last_used(binding.slot).unwrap_or(now);
        if self.is_expired(last_used, now) {
            state.remove(session);
            state.stats.expired += 1;
            state.stats.misses += 1;
            return None;
        }
        state.recency.touch(binding.slot, now);
        state.stats.hits += 1;
        Some(binding.worker)
    }

    async fn bind(&self, session: &SessionId, worker: WorkerId) {
        let mut state = self.lock();
        let now = self.clock.now();
        let state = &mut *state;
        match state.sessions.get_mut(session) {
            Some(binding) => {
                let slot = binding.slot;
                let previous = std::mem::replace(&mut binding.worker, worker);
                let last_used = state.recency.last_used(slot).unwrap_or(now);
                if self.is_expired(last_used, now) {
                    state.stats.expired += 1;
                }
                state.recency.touch(slot, now);
                if previous != worker {
                    state.forget_worker_session(previous, session);
                    state
                        .by_worker
                        .entry(worker)
                        .or_default()
                        .insert(session.clone());
                }
            }
            None => {
                let slot = state.recency.push_back(session.clone(), now);
                state
                    .sessions
                    .insert(session.clone(), Binding { worker, slot });
                state
                    .by_worker
                    .entry(worker)
                    .or_default()
                    .insert(session.clone());
            }
        }
    }

    async fn unbind_worker(&self, worker: WorkerId) -> usize {
        let mut state = self.lock();
        let now = self.clock.now();
        let Some(sessions) = state.by_worker.remove(&worker) else {
            return 0;
        };
        let mut live = 0;
        for session in &sessions {
            let Some(binding) = state.sessions.remove(session) else {
                continue;
            };
            let last_used = state.recency.last_used(binding.slot).unwrap_or(now);
            state.recency.remove(binding.slot);
            if self.is_expired(last_used, now) {
                state.stats.expired += 1;
            } else {
                live += 1;
            }
        }
        state.stats.unbound += live as u64;
        live
    }

    async fn remove_session(&self, session: &SessionId) -> bool {
        let mut state = self.lock();
        let now = self.clock.now();
        match state.remove(session) {
            Some((_, last_used)) if self.is_expired(last_used.unwrap_or(now), now) => {
                state.stats.expired += 1;
                false
            }
            Some(_) => true,
            None => false,
        }
    }

    async fn sweep(&self) -> usize {
        let mut state = self.lock();
        let now = self.clock.now();
        let mut dropped = 0;
        while let Some((_, session, last_used)) = state.recency.front() {
            if !self.is_expired(last_used, now) {
                break;
            }
            let session = session.clone();
            state.remove(&session);
            dropped += 1;
        }
        state.stats.expired += dropped as u64;
        dropped
    }

    async fn len(&self) -> usize {
        self.lock().sessions.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::executor::block_on;
    use pypool_clock::ManualClock;

    use super::*;

    fn id(text: &str) -> SessionId {
        SessionId::new(text).unwrap()
    }

    impl InMemoryAffinityStore {
        /// Checks that the three indexes describe the same bindings.
        fn assert_consistent(&self) {
            let state = self.lock();
            let listed = state.recency.values_in_order();
            assert_eq!(listed.len(), state.sessions.len());
            let in_recency: HashSet<&SessionId> = listed.into_iter().collect();
            assert_eq!(
                in_recency.len(),
                state.sessions.len(),
                "no session twice in the list"
            );
            let mut indexed = 0;
            for (worker, sessions) in &state.by_worker {
                assert!(!sessions.is_empty(), "empty worker sets are dropped");
                for session in sessions {
                    assert_eq!(state.sessions[session].worker, *worker);
                    indexed += 1;
                }
            }
            assert_eq!(indexed, state.sessions.len());
            for (session, binding) in &state.sessions {
                assert!(in_recency.contains(session));
                assert!(state.recency.last_used(binding.slot).is_some());
            }
            let order: Vec<Instant> = state
                .recency
                .values_in_order()
                .into_iter()
                .map(|session| {
                    state
                        .recency
                        .last_used(state.sessions[session].slot)
                        .unwrap()
                })
                .collect();
            assert!(
                order.windows(2).all(|pair| pair[0] <= pair[1]),
                "list sorted by last use"
            );
        }
    }

    #[test]
    fn rebinding_moves_the_session_between_workers() {
        block_on(async {
            let store =
                InMemoryAffinityStore::new(Duration::from_secs(10), Arc::new(ManualClock::new()));
            store.bind(&id("a"), 1).await;
            store.bind(&id("b"), 1).await;
            store.bind(&id("a"), 2).await;
            store.assert_consistent();
            assert_eq!(store.lookup(&id("a")).await, Some(2));
            assert_eq!(store.unbind_worker(1).await, 1);
            assert_eq!(store.lookup(&id("b")).await, None);
            assert_eq!(store.lookup(&id("a")).await, Some(2));
            store.assert_consistent();
            assert_eq!(store.len().await, 1);
        });
    }

    #[test]
    fn expired_bindings_are_dropped_by_whichever_method_meets_them() {
        block_on(async {
            let clock = ManualClock::new();
            let store =
                InMemoryAffinityStore::new(Duration::from_secs(10), Arc::new(clock.clone()));
            for (session, worker) in [("a", 1), ("b", 1), ("c", 2), ("d", 3), ("e", 4)] {
                store.bind(&id(session), worker).await;
            }
            clock.advance(Duration::from_secs(10));
            assert_eq!(store.lookup(&id("a")).await, None);
            assert!(!store.remove_session(&id("c")).await);
            assert_eq!(store.unbind_worker(1).await, 0, "b had expired");
            store.bind(&id("d"), 5).await;
            store.assert_consistent();
            assert_eq!(store.len().await, 2, "d rebound, e not yet swept");
            assert_eq!(store.sweep().await, 1);
            assert_eq!(store.lookup(&id("d")).await, Some(5));
            assert_eq!(
                store.stats(),
                AffinityStats {
                    hits: 1,
                    misses: 1,
                    expired: 5,
                    unbound: 0
                }
            );
            store.assert_consistent();
        });
    }

    #[test]
    fn sweep_stops_at_the_first_live_binding() {
        block_on(async {
            let clock = ManualClock::new();
            let store =
                InMemoryAffinityStore::new(Duration::from_secs(10), Arc::new(clock.clone()));
            store.bind(&id("old"), 1).await;
            clock.advance(Duration::from_secs(5));
            store.bind(&id("new"), 1).await;
            clock.advance(Duration::from_secs(4));
            assert_eq!(store.lookup(&id("old")).await, Some(1), "refreshes old");
            clock.advance(Duration::from_secs(6));
            assert_eq!(store.sweep().await, 1, "new expired, old refreshed");
            assert_eq!(store.lookup(&id("old")).await, Some(1));
            store.assert_consistent();
        });
    }

    #[test]
    fn zero_ttl_keeps_nothing() {
        block_on(async {
            let store = InMemoryAffinityStore::new(Duration::ZERO, Arc::new(ManualClock::new()));
            store.bind(&id("a"), 1).await;
            assert_eq!(store.lookup(&id("a")).await, None);
            assert!(store.is_empty().await);
        });
    }

    #[test]
    fn default_uses_five_minutes() {
        assert_eq!(
            InMemoryAffinityStore::default().ttl(),
            Duration::from_secs(300)
        );
    }
}
