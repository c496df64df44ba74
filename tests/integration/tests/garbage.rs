//! A worker whose frame stream is corrupted is a protocol violation: the call
//! fails with a typed error and the worker is killed.
#![cfg(feature = "real-python")]

use pypool_integration::{bounded, config, repo_root, request, spawn};
use pypool_seam::CallError;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_stdout_is_a_protocol_violation() {
    let mut config = config(&[]).with_python_path(repo_root().join("tests").join("fixtures"));
    config.worker_module = "garbage_worker".to_owned();
    let worker = spawn(config, 3)
        .await
        .expect("the fake worker shakes hands");
    let error = worker
        .call(request(1, "ping", json!({})))
        .await
        .expect_err("garbage");
    assert!(
        matches!(error, CallError::ProtocolViolation { worker_id: 3, .. }),
        "{error:?}"
    );
    let exit = bounded("the worker's exit", worker.exited()).await;
    assert_eq!(exit.signal, Some(9), "the host killed the worker: {exit}");
}
