//! The affinity store's model test (the in-memory store's body,
//! `crates/pypool-affinity/tests/generic/affinity_model.rs`) against the
//! Redis store on a private redis-server.
#![cfg(feature = "redis-tests")]
#![allow(clippy::unwrap_used, clippy::panic)] // tests: a panic is a failure report

mod support;

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use pypool_affinity::AffinityStats;
use pypool_clock::ManualClock;
use pypool_redis::{RedisAffinityStore, RedisStores};
use support::RedisServer;

#[path = "../../pypool-affinity/tests/generic/affinity_model.rs"]
mod generic;

/// Fewer cases than in memory: each step is a round trip to Redis.
const CASES: u32 = 200;

struct Redis<'a>(&'a RedisServer);

impl generic::Backend for Redis<'_> {
    type Store = RedisAffinityStore;

    async fn make(&self, ttl: Duration, clock: ManualClock) -> Self::Store {
        let config = support::config(self.0, "host-a").with_binding_ttl(ttl);
        RedisStores::connect(&config, Arc::new(clock))
            .await
            .unwrap()
            .affinity
    }

    fn stats(store: &Self::Store) -> AffinityStats {
        store.stats()
    }
}

#[test]
fn store_agrees_with_the_model() {
    let server = RedisServer::start();
    let runtime = support::runtime();
    let mut runner = TestRunner::new(Config::with_cases(CASES));
    let strategy = prop::collection::vec(generic::op(), 1..generic::MAX_OPS);
    let result = runner.run(&strategy, |ops| {
        runtime.block_on(generic::run(&Redis(&server), &ops))
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
