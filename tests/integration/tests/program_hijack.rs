//! A session cannot reach another session's program (issue 10, item 3): the
//! attack observed — session B calls the reserved `pypool.run_program`
//! itself, learns the version of A's program from `program_not_cached`, and
//! caches its own code under A's id and version — is replayed step by step.
#![cfg(feature = "real-python")]

use std::time::Duration;

use pypool::{PoolError, ProgramSpec};
use pypool_integration::program_pool_builder;
use serde_json::{Value, json};

/// What session B learns from a direct `pypool.run_program` without a definition.
async fn probe(session: &pypool::Session, program_id: &str) -> Result<Value, PoolError> {
    session
        .execute(
            "pypool.run_program",
            json!({ "program_id": program_id, "version": "guess", "definition": null, "inputs": {} }),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_session_cannot_plant_code_under_a_sessions_program() {
    // One worker, so A and B share its program cache.
    let pool = program_pool_builder().size(1).build().expect("pool builds");
    pool.ready().await.expect("worker starts");
    let alice = pool.session("alice").expect("valid id");
    let mallory = pool.session("mallory").expect("valid id");
    let stored = alice
        .create_program("secret", ProgramSpec::python("programs_basic:greet"))
        .await
        .expect("stored");
    let private = json!({ "name": "Ada (private)" });
    assert_eq!(
        alice
            .execute_program("secret", private.clone())
            .await
            .expect("runs"),
        json!("Hello, Ada (private)!")
    );

    // 1. Mallory probes the worker's cache through `execute`.
    let probed = probe(&mallory, "secret").await;
    let error = probed.expect_err("the reserved command is refused");
    assert_eq!(error.kind(), "reserved_command", "{error}");
    let text = error.to_string();
    assert!(
        text.contains("`pypool.`"),
        "names the reserved prefix: {text}"
    );
    assert!(
        !text.contains(&stored.version),
        "reveals no version: {text}"
    );

    // 2. Even knowing the version (leaked some other way), Mallory cannot
    //    cache her own definition under Alice's id and version.
    let planted = mallory
        .execute(
            "pypool.run_program",
            json!({
                "program_id": "secret",
                "version": stored.version,
                "definition": { "kind": "python", "spec": { "callable": "builtins:dict" } },
                "inputs": {},
            }),
        )
        .await;
    assert_eq!(
        planted.as_ref().map_err(PoolError::kind),
        Err("reserved_command"),
        "{planted:?}"
    );
    for reserved in ["pypool.apply_settings", "pypool.anything"] {
        let refused = pool.execute(reserved, json!({})).await;
        assert_eq!(
            refused.as_ref().map_err(PoolError::kind),
            Err("reserved_command"),
            "{reserved}: {refused:?}"
        );
    }

    // 3. Alice's next run still runs Alice's code on Alice's input.
    assert_eq!(
        alice
            .execute_program("secret", private)
            .await
            .expect("runs"),
        json!("Hello, Ada (private)!")
    );

    // 4. A program of Mallory's own under the same id runs Mallory's code for
    //    Mallory only, on the same worker, and never replaces Alice's.
    mallory
        .create_program("secret", ProgramSpec::python("builtins:dict"))
        .await
        .expect("Mallory may own a program of that id");
    assert_eq!(
        mallory
            .execute_program("secret", json!({ "name": "Eve" }))
            .await
            .expect("runs"),
        json!({ "name": "Eve" })
    );
    assert_eq!(
        alice
            .execute_program("secret", json!({ "name": "Ada" }))
            .await
            .expect("runs"),
        json!("Hello, Ada!")
    );
    pool.shutdown(Duration::from_secs(5)).await;
}
