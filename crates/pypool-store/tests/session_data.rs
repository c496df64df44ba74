//! Session data: per-session maps, limits and deletion — on the in-memory
//! store (the bodies are shared with the Redis store: `generic/session_data.rs`).

#![allow(clippy::unwrap_used, clippy::panic)] // tests: a panic is a failure report

use futures::executor::block_on;
use pypool_store::{InMemorySessionDataStore, SessionDataLimits};

#[path = "generic/session_data.rs"]
mod generic;

async fn make(limits: SessionDataLimits) -> InMemorySessionDataStore {
    let store = InMemorySessionDataStore::with_limits(limits);
    assert_eq!(store.limits(), limits);
    store
}

#[test]
fn each_session_has_its_own_map() {
    block_on(generic::each_session_has_its_own_map(make));
}

#[test]
fn values_are_limited_to_64_kib_of_json() {
    block_on(generic::values_are_limited_to_64_kib_of_json(make));
}

#[test]
fn a_session_holds_at_most_256_keys() {
    block_on(generic::a_session_holds_at_most_256_keys(make));
}

#[test]
fn keys_follow_the_id_rules() {
    block_on(generic::keys_follow_the_id_rules(make));
}

#[test]
fn limits_are_configurable() {
    block_on(generic::limits_are_configurable(make));
}
