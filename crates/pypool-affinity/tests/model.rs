//! The in-memory store against a plain reference model, over random
//! sequences of binds, lookups, unbinds, removals, sweeps and clock moves
//! (the body is shared with the Redis store: `generic/affinity_model.rs`).

#![allow(clippy::unwrap_used, clippy::panic)] // tests: a panic is a failure report

use std::sync::Arc;
use std::time::Duration;

use futures::executor::block_on;
use proptest::prelude::*;
use pypool_affinity::{AffinityStats, InMemoryAffinityStore};
use pypool_clock::ManualClock;

#[path = "generic/affinity_model.rs"]
mod generic;

use generic::{MAX_OPS, op};

const CASES: u32 = 1_000;

struct Memory;

impl generic::Backend for Memory {
    type Store = InMemoryAffinityStore;

    async fn make(&self, ttl: Duration, clock: ManualClock) -> Self::Store {
        InMemoryAffinityStore::new(ttl, Arc::new(clock))
    }

    fn stats(store: &Self::Store) -> AffinityStats {
        store.stats()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn store_agrees_with_the_model(ops in prop::collection::vec(op(), 1..MAX_OPS)) {
        block_on(generic::run(&Memory, &ops))?;
    }
}
