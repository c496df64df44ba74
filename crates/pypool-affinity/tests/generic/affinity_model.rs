//! The affinity store's model test, generic over the backend: one body,
//! run against the in-memory store (`tests/model.rs`, in `cargo test
//! --workspace`) and against Redis (`crates/pypool-redis/tests/affinity_model.rs`,
//! in `cargo xtask test-redis`). Included with `#[path]`.
//!
//! The model is a `BTreeMap` from session to (worker, last use) that scans
//! everything it needs, sharing no data structure with any store. Times are
//! milliseconds since the start, on a `ManualClock` both backends read.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use pypool_affinity::{AffinityStats, AffinityStore, SessionId, WorkerId};
use pypool_clock::ManualClock;

/// A store under test: how to make one on a clock, and its counters.
#[allow(
    async_fn_in_trait,
    reason = "test helper, never used as a trait object"
)]
pub trait Backend {
    /// The store type.
    type Store: AffinityStore;
    /// A new, empty store whose bindings expire after `ttl` on `clock`.
    async fn make(&self, ttl: Duration, clock: ManualClock) -> Self::Store;
    /// The store's hit, miss, expiry and unbind counters.
    fn stats(store: &Self::Store) -> AffinityStats;
}

pub const MAX_OPS: usize = 120;
pub const TTL_MS: u64 = 100;
const SESSIONS: usize = 8;
const WORKERS: u64 = 4;

#[derive(Debug, Clone)]
pub enum Op {
    Bind(usize, WorkerId),
    Lookup(usize),
    UnbindWorker(WorkerId),
    Remove(usize),
    Sweep,
    Len,
    Advance(u64),
}

pub fn op() -> impl Strategy<Value = Op> {
    let session = 0..SESSIONS;
    let worker = 0..WORKERS;
    prop_oneof![
        4 => (session.clone(), worker.clone()).prop_map(|(s, w)| Op::Bind(s, w)),
        5 => session.clone().prop_map(Op::Lookup),
        1 => worker.prop_map(Op::UnbindWorker),
        1 => session.prop_map(Op::Remove),
        1 => Just(Op::Sweep),
        1 => Just(Op::Len),
        // Small steps, exact TTL boundaries and jumps past everything.
        3 => prop_oneof![0..30_u64, Just(TTL_MS - 1), Just(TTL_MS), Just(TTL_MS + 1), 0..3 * TTL_MS]
            .prop_map(Op::Advance),
    ]
}

/// The affinity store's specification, written as plainly as possible.
#[derive(Debug, Default)]
struct Model {
    now: u64,
    bindings: BTreeMap<usize, (WorkerId, u64)>,
    stats: AffinityStats,
}

impl Model {
    fn expired(&self, last_used: u64) -> bool {
        self.now - last_used >= TTL_MS
    }

    fn lookup(&mut self, session: usize) -> Option<WorkerId> {
        match self.bindings.get(&session).copied() {
            Some((worker, last_used)) if !self.expired(last_used) => {
                self.bindings.insert(session, (worker, self.now));
                self.stats.hits += 1;
                Some(worker)
            }
            Some(_) => {
                self.bindings.remove(&session);
                self.stats.expired += 1;
                self.stats.misses += 1;
                None
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    fn bind(&mut self, session: usize, worker: WorkerId) {
        let replaces_expired = self
            .bindings
            .get(&session)
            .is_some_and(|&(_, last_used)| self.expired(last_used));
        if replaces_expired {
            self.stats.expired += 1;
        }
        self.bindings.insert(session, (worker, self.now));
    }

    fn unbind_worker(&mut self, worker: WorkerId) -> usize {
        let theirs: Vec<(usize, u64)> = self
            .bindings
            .iter()
            .filter(|(_, (bound, _))| *bound == worker)
            .map(|(session, (_, last_used))| (*session, *last_used))
            .collect();
        let mut live = 0;
        for (session, last_used) in theirs {
            self.bindings.remove(&session);
            if self.expired(last_used) {
                self.stats.expired += 1;
            } else {
                live += 1;
            }
        }
        self.stats.unbound += live as u64;
        live
    }

    fn remove(&mut self, session: usize) -> bool {
        match self.bindings.remove(&session) {
            Some((_, last_used)) if self.expired(last_used) => {
                self.stats.expired += 1;
                false
            }
            Some(_) => true,
            None => false,
        }
    }

    fn sweep(&mut self) -> usize {
        let before = self.bindings.len();
        let now = self.now;
        self.bindings
            .retain(|_, (_, last_used)| now - *last_used < TTL_MS);
        let dropped = before - self.bindings.len();
        self.stats.expired += dropped as u64;
        dropped
    }
}

/// Runs `ops` on a fresh store of `backend` and on the model, comparing every answer.
pub async fn run<B: Backend>(backend: &B, ops: &[Op]) -> Result<(), TestCaseError> {
    let clock = ManualClock::new();
    let store = backend
        .make(Duration::from_millis(TTL_MS), clock.clone())
        .await;
    let ids: Vec<SessionId> = (0..SESSIONS)
        .map(|index| SessionId::new(format!("s{index}")).unwrap())
        .collect();
    let mut model = Model::default();
    {
        for (step, op) in ops.iter().enumerate() {
            match *op {
                Op::Bind(session, worker) => {
                    store.bind(&ids[session], worker).await;
                    model.bind(session, worker);
                }
                Op::Lookup(session) => {
                    prop_assert_eq!(
                        store.lookup(&ids[session]).await,
                        model.lookup(session),
                        "step {}",
                        step
                    );
                }
                Op::UnbindWorker(worker) => {
                    prop_assert_eq!(
                        store.unbind_worker(worker).await,
                        model.unbind_worker(worker),
                        "step {}",
                        step
                    );
                }
                Op::Remove(session) => {
                    prop_assert_eq!(
                        store.remove_session(&ids[session]).await,
                        model.remove(session),
                        "step {}",
                        step
                    );
                }
                Op::Sweep => {
                    prop_assert_eq!(store.sweep().await, model.sweep(), "step {}", step);
                    prop_assert_eq!(
                        store.len().await,
                        model.bindings.len(),
                        "len after sweep, step {}",
                        step
                    );
                }
                Op::Len => {
                    prop_assert_eq!(store.len().await, model.bindings.len(), "step {}", step);
                }
                Op::Advance(millis) => {
                    clock.advance(Duration::from_millis(millis));
                    model.now += millis;
                }
            }
            prop_assert_eq!(B::stats(&store), model.stats, "stats after step {}", step);
        }
        // Every session ends up where the model says.
        for (session, id) in ids.iter().enumerate() {
            prop_assert_eq!(store.lookup(id).await, model.lookup(session));
        }
        prop_assert_eq!(store.sweep().await, model.sweep());
        prop_assert_eq!(store.len().await, model.bindings.len());
        Ok(())
    }
}
