//! A worker speaking protocol version 1 (one request at a time, no cancel)
//! or 2 (no streaming replies) is refused by this host (version 3) with a
//! `ProtocolMismatch` naming both versions and what to do; the worker the
//! host started is killed. The real worker of this checkout is accepted and
//! announces version 3.
#![cfg(feature = "real-python")]

use std::time::Duration;

use pypool_integration::{
    MARKER_ENV, config, marked_processes, repo_root, spawn, unique_marker, wait_until,
};
use pypool_seam::SpawnError;

/// `lying_worker.py` telling the truth about its pid but announcing `protocol`.
fn old_worker(protocol: u32, marker: &str) -> pypool_process::PythonSpawnerConfig {
    let mut config = config(&[])
        .with_python_path(repo_root().join("tests").join("fixtures"))
        .with_env("PYPOOL_LIE_PID", "self")
        .with_env("PYPOOL_LIE_PROTOCOL", protocol.to_string())
        .with_env(MARKER_ENV, marker);
    config.worker_module = "lying_worker".to_owned();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_worker_is_refused_with_a_protocol_mismatch_and_killed() {
    assert_eq!(pypool_wire::PROTOCOL_VERSION, 3);
    let marker = unique_marker("protocol-v1");
    let error = spawn(old_worker(1, &marker), 1)
        .await
        .expect_err("a version 1 worker is refused");
    assert!(
        matches!(
            error,
            SpawnError::ProtocolMismatch {
                worker_version: 1,
                host_version: 3,
                ..
            }
        ),
        "a protocol mismatch naming both versions, got: {error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("protocol version 1") && message.contains("this host speaks 3"),
        "the message names both versions: {message}"
    );
    let gone = tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(10), || {
            marked_processes(&marker).is_empty()
        })
    })
    .await
    .expect("the poll runs");
    assert!(gone, "the refused worker was killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_worker_without_streaming_is_refused_too() {
    let marker = unique_marker("protocol-v2");
    let error = spawn(old_worker(2, &marker), 4)
        .await
        .expect_err("a version 2 worker is refused");
    assert!(
        matches!(
            error,
            SpawnError::ProtocolMismatch {
                worker_version: 2,
                host_version: 3,
                ..
            }
        ),
        "a protocol mismatch naming both versions, got: {error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_fake_announcing_version_3_is_accepted() {
    let marker = unique_marker("protocol-v3");
    let worker = spawn(old_worker(3, &marker), 2)
        .await
        .expect("a version 3 handshake is accepted");
    assert_eq!(worker.handshake().protocol, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_worker_speaks_version_3() {
    let worker = spawn(config(&[]), 3).await.expect("the worker starts");
    assert_eq!(worker.handshake().protocol, pypool_wire::PROTOCOL_VERSION);
}
