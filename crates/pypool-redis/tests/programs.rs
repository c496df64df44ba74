//! Program store behaviour (the in-memory store's bodies,
//! `crates/pypool-store/tests/generic/programs.rs`) against the Redis store
//! on a private redis-server, one server per test, a fresh store per body.
#![cfg(feature = "redis-tests")]
#![allow(clippy::unwrap_used, clippy::panic)] // tests: a panic is a failure report

mod support;

use support::RedisServer;

#[path = "../../pypool-store/tests/generic/programs.rs"]
mod generic;

#[test]
fn a_session_cannot_see_get_list_or_delete_another_sessions_program() {
    let server = RedisServer::start();
    support::runtime().block_on(async {
        generic::a_session_cannot_see_get_list_or_delete_another_sessions_program(
            support::system_stores(&server).await.programs,
        )
        .await;
    });
}

#[test]
fn a_sessions_program_shadows_a_global_one_until_deleted() {
    let server = RedisServer::start();
    support::runtime().block_on(async {
        generic::a_sessions_program_shadows_a_global_one_until_deleted(
            support::system_stores(&server).await.programs,
        )
        .await;
    });
}

#[test]
fn create_refuses_an_existing_id_and_put_replaces_with_a_new_version() {
    let server = RedisServer::start();
    support::runtime().block_on(async {
        generic::create_refuses_an_existing_id_and_put_replaces_with_a_new_version(
            support::system_stores(&server).await.programs,
        )
        .await;
    });
}

#[test]
fn invalid_definitions_are_not_stored() {
    let server = RedisServer::start();
    support::runtime().block_on(async {
        generic::invalid_definitions_are_not_stored(support::system_stores(&server).await.programs)
            .await;
    });
}

#[test]
fn delete_session_removes_only_that_sessions_programs() {
    let server = RedisServer::start();
    support::runtime().block_on(async {
        generic::delete_session_removes_only_that_sessions_programs(
            support::system_stores(&server).await.programs,
        )
        .await;
    });
}

#[test]
fn delete_reports_missing_programs() {
    let server = RedisServer::start();
    support::runtime().block_on(async {
        generic::delete_reports_missing_programs(support::system_stores(&server).await.programs)
            .await;
    });
}

#[test]
fn stored_programs_round_trip_through_json() {
    let server = RedisServer::start();
    support::runtime().block_on(async {
        generic::stored_programs_round_trip_through_json(
            support::system_stores(&server).await.programs,
        )
        .await;
    });
}

#[test]
fn stores_are_usable_as_trait_objects() {
    let server = RedisServer::start();
    support::runtime().block_on(async {
        generic::stores_are_usable_as_trait_objects(support::system_stores(&server).await.programs)
            .await;
    });
}
