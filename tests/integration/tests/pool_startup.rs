//! The old system's "checkout during init" case: many requests sent while the
//! pool is still starting all succeed once workers are ready; a broken
//! handler module surfaces as its own error, not a timeout.
#![cfg(feature = "real-python")]

use std::time::Duration;

use pypool::{PoolError, SpawnError};
use pypool_integration::pool_builder;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_during_start_all_succeed() {
    let pool = pool_builder(&["handlers_basic.py"])
        .size(4)
        .build()
        .expect("pool builds");
    // No ready() first: the requests queue while the workers start.
    let calls = (0..200).map(|n| {
        let pool = pool.clone();
        async move { (n, pool.execute("add", json!({ "a": n, "b": 1 })).await) }
    });
    for (n, result) in futures::future::join_all(calls).await {
        assert_eq!(result.expect("served"), json!(n + 1));
    }
    // The requests may all be served before the last worker finishes its
    // handshake; once it has, exactly four were started (none replaced).
    let status = tokio::time::timeout(
        Duration::from_secs(60),
        pool.wait_until(|status| status.ready == 4),
    )
    .await
    .expect("all four workers become ready");
    assert_eq!(status.counters.spawned, 4);
    pool.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_handler_module_fails_ready_with_its_error() {
    let pool = pool_builder(&["broken_import.py"])
        .size(2)
        .build()
        .expect("pool builds");
    let error = tokio::time::timeout(Duration::from_secs(60), pool.ready())
        .await
        .expect("ready answers well before a minute")
        .expect_err("the module is broken");
    let PoolError::Spawn(SpawnError::StartupFailed { kind, message, .. }) = &error else {
        panic!("expected a startup failure, got {error:?}")
    };
    assert_eq!(kind, "handler_import");
    assert!(message.contains("broken on purpose"));
    pool.shutdown(Duration::from_secs(5)).await;
}
