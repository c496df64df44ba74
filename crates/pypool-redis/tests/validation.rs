//! Definition validation through the Redis program store (the in-memory
//! store's body, `crates/pypool-store/tests/generic/validation.rs`).
#![cfg(feature = "redis-tests")]
#![allow(clippy::unwrap_used, clippy::panic)] // tests: a panic is a failure report

mod support;

use support::RedisServer;

#[path = "../../pypool-store/tests/generic/validation.rs"]
mod generic;

#[test]
fn the_store_applies_the_definition_rules() {
    let server = RedisServer::start();
    support::runtime().block_on(async {
        generic::the_store_applies_the_definition_rules(
            support::system_stores(&server).await.programs,
        )
        .await;
    });
}
