//! Session data behaviour (the in-memory store's bodies,
//! `crates/pypool-store/tests/generic/session_data.rs`) against the Redis
//! store on a private redis-server, one server per test.
#![cfg(feature = "redis-tests")]
#![allow(clippy::unwrap_used, clippy::panic)] // tests: a panic is a failure report

mod support;

use std::sync::Arc;

use pypool_clock::SystemClock;
use pypool_redis::{RedisSessionDataStore, RedisStores};
use pypool_store::SessionDataLimits;
use support::RedisServer;

#[path = "../../pypool-store/tests/generic/session_data.rs"]
mod generic;

/// A fresh store (new prefix) with `limits`.
async fn make(server: &RedisServer, limits: SessionDataLimits) -> RedisSessionDataStore {
    let config = support::config(server, "host-a");
    let store = RedisStores::connect_with_limits(&config, Arc::new(SystemClock), limits)
        .await
        .unwrap()
        .session_data;
    assert_eq!(store.limits(), limits);
    store
}

#[test]
fn each_session_has_its_own_map() {
    let server = RedisServer::start();
    support::runtime().block_on(generic::each_session_has_its_own_map(async |limits| {
        make(&server, limits).await
    }));
}

#[test]
fn values_are_limited_to_64_kib_of_json() {
    let server = RedisServer::start();
    support::runtime().block_on(generic::values_are_limited_to_64_kib_of_json(
        async |limits| make(&server, limits).await,
    ));
}

#[test]
fn a_session_holds_at_most_256_keys() {
    let server = RedisServer::start();
    support::runtime().block_on(generic::a_session_holds_at_most_256_keys(async |limits| {
        make(&server, limits).await
    }));
}

#[test]
fn keys_follow_the_id_rules() {
    let server = RedisServer::start();
    support::runtime().block_on(generic::keys_follow_the_id_rules(async |limits| {
        make(&server, limits).await
    }));
}

#[test]
fn limits_are_configurable() {
    let server = RedisServer::start();
    support::runtime().block_on(generic::limits_are_configurable(async |limits| {
        make(&server, limits).await
    }));
}
