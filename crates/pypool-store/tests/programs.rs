//! Program store behaviour: isolation between sessions, shadowing, replace
//! and versions, deletion — on the in-memory store (the bodies are shared
//! with the Redis store: `generic/programs.rs`).

#![allow(clippy::unwrap_used, clippy::panic)] // tests: a panic is a failure report

use futures::executor::block_on;
use pypool_store::InMemoryProgramStore;

#[path = "generic/programs.rs"]
mod generic;

#[test]
fn a_session_cannot_see_get_list_or_delete_another_sessions_program() {
    block_on(
        generic::a_session_cannot_see_get_list_or_delete_another_sessions_program(
            InMemoryProgramStore::new(),
        ),
    );
}

#[test]
fn a_sessions_program_shadows_a_global_one_until_deleted() {
    block_on(
        generic::a_sessions_program_shadows_a_global_one_until_deleted(InMemoryProgramStore::new()),
    );
}

#[test]
fn create_refuses_an_existing_id_and_put_replaces_with_a_new_version() {
    block_on(
        generic::create_refuses_an_existing_id_and_put_replaces_with_a_new_version(
            InMemoryProgramStore::new(),
        ),
    );
}

#[test]
fn invalid_definitions_are_not_stored() {
    block_on(generic::invalid_definitions_are_not_stored(
        InMemoryProgramStore::new(),
    ));
}

#[test]
fn delete_session_removes_only_that_sessions_programs() {
    block_on(generic::delete_session_removes_only_that_sessions_programs(
        InMemoryProgramStore::new(),
    ));
}

#[test]
fn delete_reports_missing_programs() {
    block_on(generic::delete_reports_missing_programs(
        InMemoryProgramStore::new(),
    ));
}

#[test]
fn stored_programs_round_trip_through_json() {
    block_on(generic::stored_programs_round_trip_through_json(
        InMemoryProgramStore::new(),
    ));
}

#[test]
fn stores_are_usable_as_trait_objects() {
    block_on(generic::stores_are_usable_as_trait_objects(
        InMemoryProgramStore::new(),
    ));
}
