//! A pool that restricts the modules `python` programs may name refuses any
//! other callable when the program is created, and its workers refuse to
//! build one too (issue 10, item 3: a program definition is code).
#![cfg(feature = "real-python")]

use std::time::Duration;

use pypool::{PoolError, ProgramSpec, RemoteErrorKind};
use pypool_integration::program_pool_builder;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_modules_become_programs() {
    let pool = program_pool_builder()
        .size(1)
        .allowed_program_modules(["programs_basic"])
        .build()
        .expect("pool builds");
    pool.ready().await.expect("worker starts");
    for callable in ["os:system", "subprocess:run", "programs_basicx:greet"] {
        let error = pool
            .create_program("evil", ProgramSpec::python(callable))
            .await
            .expect_err("refused");
        assert!(
            matches!(&error, PoolError::ProgramNotAllowed { callable: named, .. } if named == callable),
            "{error:?}"
        );
        assert!(error.to_string().contains("programs_basic"), "{error}");
    }
    pool.create_program("greet", ProgramSpec::python("programs_basic:greet"))
        .await
        .expect("allowed");
    assert_eq!(
        pool.execute_program("greet", json!({ "name": "Ada" }))
            .await
            .expect("runs"),
        json!("Hello, Ada!")
    );
    pool.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_refuse_a_disallowed_program_the_host_store_let_in() {
    // A program created by another host sharing the store, without the
    // allow-list: this pool's workers still refuse to build it.
    let store = pypool::InMemoryProgramStore::new();
    let id = pypool::ProgramId::new("evil").expect("valid id");
    pypool::ProgramStore::create(
        &store,
        pypool::Namespace::Global,
        id,
        ProgramSpec::python("os:getcwd"),
    )
    .await
    .expect("stored");
    let pool = program_pool_builder()
        .size(1)
        .program_store(store)
        .allowed_program_modules(["programs_basic"])
        .build()
        .expect("pool builds");
    pool.ready().await.expect("worker starts");
    let error = pool
        .execute_program("evil", json!({}))
        .await
        .expect_err("the worker refuses to build it");
    let PoolError::Remote { error: remote, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(remote.kind, RemoteErrorKind::InvalidArguments);
    assert!(remote.message.contains("not allowed"), "{}", remote.message);
    pool.shutdown(Duration::from_secs(5)).await;
}
