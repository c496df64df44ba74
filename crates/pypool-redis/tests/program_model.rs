//! The program store's model test (the in-memory store's body,
//! `crates/pypool-store/tests/generic/program_model.rs`) against the Redis
//! store on a private redis-server.
#![cfg(feature = "redis-tests")]
#![allow(clippy::unwrap_used, clippy::panic)] // tests: a panic is a failure report

mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use pypool_redis::RedisProgramStore;
use support::RedisServer;

#[path = "../../pypool-store/tests/generic/program_model.rs"]
mod generic;

/// Fewer cases than in memory: each step is a round trip to Redis.
const CASES: u32 = 300;

struct Redis<'a>(&'a RedisServer);

impl generic::Backend for Redis<'_> {
    type Store = RedisProgramStore;

    async fn make(&self) -> Self::Store {
        support::system_stores(self.0).await.programs
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
