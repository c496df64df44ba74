//! Python programs through a pool of real workers: inputs checked before the
//! call, updates never run stale, sessions isolated.
#![cfg(feature = "real-python")]

use std::time::Duration;

use pypool::{PoolError, ProgramSpec, RemoteErrorKind};
use pypool_integration::program_pool_builder;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_input_is_named_and_the_worker_keeps_serving() {
    let pool = program_pool_builder().size(1).build().expect("pool builds");
    pool.ready().await.expect("worker starts");
    pool.create_program("greet", ProgramSpec::python("programs_basic:greet"))
        .await
        .expect("stored");
    let error = pool
        .execute_program("greet", json!({}))
        .await
        .expect_err("name is required");
    let PoolError::Remote { error: remote, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(remote.kind, RemoteErrorKind::InvalidInput);
    assert!(remote.message.contains("name"), "{}", remote.message);
    let error = pool
        .execute_program("greet", json!({ "name": "Ada", "colour": "red" }))
        .await
        .expect_err("colour is unknown");
    let PoolError::Remote { error: remote, .. } = &error else {
        panic!("{error:?}")
    };
    assert!(remote.message.contains("colour"), "{}", remote.message);
    assert_eq!(
        pool.execute_program("greet", json!({ "name": "Ada" }))
            .await
            .expect("still serving"),
        json!("Hello, Ada!")
    );
    assert_eq!(pool.status().counters.replaced, 0);
    pool.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_updated_program_is_never_run_stale() {
    let pool = program_pool_builder().size(2).build().expect("pool builds");
    pool.ready().await.expect("workers start");
    let first = pool
        .put_program("p", ProgramSpec::python("programs_basic:greet"))
        .await
        .expect("stored");
    for _ in 0..4 {
        assert_eq!(
            pool.execute_program("p", json!({ "name": "Ada" }))
                .await
                .expect("runs"),
            json!("Hello, Ada!")
        );
    }
    let second = pool
        .put_program("p", ProgramSpec::python("programs_basic:add"))
        .await
        .expect("updated");
    assert_ne!(first.version, second.version);
    for _ in 0..4 {
        assert_eq!(
            pool.execute_program("p", json!({ "a": 2, "b": 3 }))
                .await
                .expect("runs"),
            json!(5)
        );
    }
    pool.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_see_their_own_programs_and_global_ones_only() {
    let pool = program_pool_builder().size(2).build().expect("pool builds");
    pool.ready().await.expect("workers start");
    let alice = pool.session("alice").expect("valid id");
    let bob = pool.session("bob").expect("valid id");
    alice
        .create_program("mine", ProgramSpec::python("programs_basic:greet"))
        .await
        .expect("stored");
    pool.create_program("shared", ProgramSpec::python("programs_basic:add"))
        .await
        .expect("stored");
    assert_eq!(
        alice
            .execute_program("mine", json!({ "name": "A" }))
            .await
            .expect("own"),
        json!("Hello, A!")
    );
    assert_eq!(
        bob.execute_program("shared", json!({ "a": 1, "b": 1 }))
            .await
            .expect("global"),
        json!(2)
    );
    let error = bob
        .execute_program("mine", json!({ "name": "B" }))
        .await
        .expect_err("isolated");
    assert_eq!(error.kind(), "program_not_found");
    let error = pool
        .execute_program("mine", json!({ "name": "B" }))
        .await
        .expect_err("isolated");
    assert_eq!(error.kind(), "program_not_found");
    let deleted = alice.delete().await.unwrap();
    assert_eq!(deleted.programs, 1);
    pool.shutdown(Duration::from_secs(5)).await;
}
